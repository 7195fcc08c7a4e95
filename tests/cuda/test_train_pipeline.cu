// The study's pipeline at tiny size on the GPU against the CPU twin: host data, a late-fusion
// model on each device from the same weights, every defense trained through the Trainer (batches
// moved to the device, Adam there), checkpoints that cross devices, then the robustness sweep with
// host batches (moved per batch) on the GPU model.
#include "avgrad/optim/adam.hpp"
#include "avgrad/train/adversarial.hpp"
#include "avgrad/train/guided_mixup.hpp"
#include "avgrad/train/trainer.hpp"
#include "cuda_twin.cuh"

using namespace avgrad;
using namespace avgrad::train;
using avgrad::testing::close_to_cpu;

namespace {

using CpuModel = models::study::LateFusionModel<float, models::ClassifierHead<float>>;
using GpuModel = models::study::LateFusionModel<float, models::ClassifierHead<float, Cuda>>;

TensorData<float> random_set(std::int64_t n, std::uint64_t seed) {
  const auto o = models::study::StudyOptions::small(4);
  Generator g(seed);
  TensorData<float> d;
  d.audio = randn<float>({n, o.audio_frames, o.num_bins()}, g);
  d.video = rand<float>({n, o.video_frames, o.video_dim}, g);
  std::vector<std::int64_t> y;
  for (std::int64_t i = 0; i < n; ++i) y.push_back(i % 4);
  d.y.classes = from_vector<std::int64_t>(y);
  return d;
}

struct Twins {
  std::unique_ptr<CpuModel> cpu;
  std::unique_ptr<GpuModel> gpu;
};
Twins twins() {
  Generator init(3);
  Twins t;
  t.cpu = models::study::late_fusion<float, models::ClassifierHead<float>>(models::study::StudyOptions::small(4), init);
  t.gpu = models::study::late_fusion<float, models::ClassifierHead<float, Cuda>>(models::study::StudyOptions::small(4),
                                                                                 init);
  EXPECT_TRUE(t.gpu->load_state_dict(t.cpu->state_dict()).ok());
  return t;
}

template <class M> TrainResult fit(M& model, Defense<M>& defense, const TensorData<float>& data) {
  optim::Adam<float, typename M::device_type> adam(model.parameters(), {.lr = 1e-3});
  Trainer<M> trainer(model, adam, defense, TrainerOptions{.epochs = 2, .progress = false, .seed = 1});
  ShuffledBatches<float> batches(data, 8, 1);
  return trainer.fit(batches, &data);
}

template <template <class> class Make> void expect_training_twin(const char* what) {
  SCOPED_TRACE(what);
  const auto data = random_set(16, 1);
  auto t = twins();
  auto dc = Make<CpuModel>::make();
  auto dg = Make<GpuModel>::make();
  // dropout draws from the default generator on both devices: both fits start from its same state
  const std::uint64_t seed = default_generator().seed(), offset = default_generator().offset();
  const auto rc = fit(*t.cpu, *dc, data);
  default_generator().set_state(seed, offset);
  const auto rg = fit(*t.gpu, *dg, data);
  ASSERT_EQ(rg.history.size(), rc.history.size());
  for (std::size_t i = 0; i < rc.history.size(); ++i) {
    EXPECT_NEAR(rg.history[i].train_loss, rc.history[i].train_loss, 5e-3 * (1 + std::abs(rc.history[i].train_loss)));
    EXPECT_NEAR(rg.history[i].val_loss, rc.history[i].val_loss, 5e-3 * (1 + std::abs(rc.history[i].val_loss)));
  }
  EXPECT_EQ(rg.cost.forward_passes, rc.cost.forward_passes);
  // Adam moves a coordinate by about lr whatever its gradient's size, so a gradient entry at
  // rounding level (or a PGD sign step flipped by it) may differ by up to 2·lr per step: 4 steps
  const auto pc = t.cpu->parameters();
  const auto pg = t.gpu->parameters();
  for (std::size_t i = 0; i < pc.size(); ++i) EXPECT_TRUE(close_to_cpu(pg[i], pc[i], 1e-2, 8e-3)) << "parameter " << i;
}

const attacks::Budget kAudio{.eps = 0.1, .step = 0.05}, kVideo{.eps = 0.05, .step = 0.025, .lo = 0.0, .hi = 1.0};

template <class M> struct Plain {
  static std::unique_ptr<Defense<M>> make() { return std::make_unique<PlainTraining<M>>(); }
};
template <class M> struct Mixup {
  static std::unique_ptr<Defense<M>> make() {
    return std::make_unique<InputMixup<M>>(MixupOptions{.scope = MixScope::per_modality});
  }
};
template <class M> struct Manifold {
  static std::unique_ptr<Defense<M>> make() {
    return std::make_unique<LatentMixup<M>>(LatentMixupOptions{.level = LatentLevel::fused});
  }
};
template <class M> struct Guided {
  static std::unique_ptr<Defense<M>> make() {
    return std::make_unique<GuidedMixup<M>>(random_set(12, 2).all(), nullptr,
                                            GuidedMixupOptions{.measure = {.convexity_pairs = 20}});
  }
};
template <class M> struct PgdAt {
  static std::unique_ptr<Defense<M>> make() {
    return std::make_unique<AdversarialTraining<M>>(
        AdversarialTrainingOptions{.threat = attacks::ThreatModel::joint(kAudio, kVideo), .steps = 2});
  }
};
template <class M> struct Trades {
  static std::unique_ptr<Defense<M>> make() {
    return std::make_unique<AdversarialTraining<M>>(AdversarialTrainingOptions{
        .method = AdversarialMethod::trades, .threat = attacks::ThreatModel::audio_only(kAudio), .steps = 2});
  }
};

TEST(CudaTraining, EveryDefenseTrainsAsOnTheCpu) {
  AVGRAD_REQUIRE_GPU();
  expect_training_twin<Plain>("plain");
  expect_training_twin<Mixup>("input mix-up, per modality");
  expect_training_twin<Manifold>("latent mix-up, fused");
  expect_training_twin<Guided>("guided mix-up");
  expect_training_twin<PgdAt>("PGD-AT, joint");
  expect_training_twin<Trades>("TRADES, audio");
}

TEST(CudaTraining, CheckpointsCrossDevices) {
  AVGRAD_REQUIRE_GPU();
  auto t = twins();
  const auto data = random_set(16, 4);
  PlainTraining<GpuModel> plain;
  optim::Adam<float, Cuda> adam(t.gpu->parameters(), {.lr = 1e-3});
  Trainer<GpuModel> trainer(*t.gpu, adam, plain, TrainerOptions{.epochs = 1, .progress = false});
  ShuffledBatches<float> batches(data, 8, 1);
  trainer.fit(batches);
  const auto path = std::filesystem::temp_directory_path() / "avgrad_cuda_checkpoint.safetensors";
  trainer.save(path);
  CheckpointParts<float> parts;
  parts.module = t.cpu.get();
  load_checkpoint(path, parts);
  std::filesystem::remove(path);
  EXPECT_EQ(parts.step, 2);
  const auto pc = t.cpu->parameters();
  const auto pg = t.gpu->parameters();
  for (std::size_t i = 0; i < pc.size(); ++i) EXPECT_TRUE(close_to_cpu(pg[i], pc[i], 0, 0)) << "parameter " << i;
}

TEST(CudaTraining, RobustnessSweepFromHostBatches) {
  AVGRAD_REQUIRE_GPU();
  auto t = twins();
  t.cpu->eval();
  t.gpu->eval();
  const auto test = random_set(16, 5);
  std::vector<std::pair<models::AVInput<float>, attacks::Labels<float>>> batches;
  for (std::int64_t s = 0; s < 16; s += 8) {
    auto b = test.rows({s, s + 1, s + 2, s + 3, s + 4, s + 5, s + 6, s + 7});
    batches.emplace_back(b.x, b.y);
  }
  attacks::EvaluateOptions o;
  o.quiet = true;
  const std::vector<double> grid{0.0, 0.02, 0.1};
  const auto base = attacks::ThreatModel::joint(kAudio, kVideo);
  const auto sc = attacks::epsilon_sweep(
      *t.cpu, batches, attacks::attack_spec(attacks::Pgd<float>(attacks::PgdOptions{.steps = 3})), base, grid, o);
  const auto sg = attacks::epsilon_sweep(
      *t.gpu, batches, attacks::attack_spec(attacks::Pgd<float, Cuda>(attacks::PgdOptions{.steps = 3})), base, grid, o);
  ASSERT_EQ(sg.points.size(), sc.points.size());
  for (std::size_t i = 0; i < sc.points.size(); ++i) {
    EXPECT_EQ(sg.points[i].summary.clean_correct, sc.points[i].summary.clean_correct);
    EXPECT_LE(std::abs(sg.points[i].summary.robust_correct - sc.points[i].summary.robust_correct), 1)
        << "eps " << grid[i];
  }
}

TEST(CudaTraining, LatentReportMatchesTheCpu) {
  AVGRAD_REQUIRE_GPU();
  auto t = twins();
  const auto data = random_set(24, 6);
  std::vector<std::pair<models::AVInput<float>, attacks::Labels<float>>> batches;
  for (std::int64_t s = 0; s < 24; s += 12) {
    std::vector<std::int64_t> idx;
    for (std::int64_t i = s; i < s + 12; ++i) idx.push_back(i);
    auto b = data.rows(idx);
    batches.emplace_back(b.x, b.y);
  }
  const metrics::LatentReportOptions o{.density = {.k = 3}, .convexity = {.pairs = 20}, .quiet = true};
  const auto rc = metrics::latent_report(*t.cpu, batches, o);
  const auto rg = metrics::latent_report(*t.gpu, batches, o);
  EXPECT_EQ(rg.accuracy, rc.accuracy);
  ASSERT_EQ(rg.spaces.size(), rc.spaces.size());
  for (std::size_t s = 0; s < rc.spaces.size(); ++s) {
    SCOPED_TRACE(rc.spaces[s].space);
    EXPECT_NEAR(rg.spaces[s].mean_purity, rc.spaces[s].mean_purity, 1e-6);
    EXPECT_NEAR(rg.spaces[s].mean_convexity, rc.spaces[s].mean_convexity, 0.05);
  }
}

}  // namespace
