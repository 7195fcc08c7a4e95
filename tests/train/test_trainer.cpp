// The trainer: resume continues bit-identically (plain, mix-up, guided mix-up, PGD-AT, with
// accumulation and a schedule), gradient accumulation equals the large batch, early stopping,
// checkpoints, logs, cost accounting and its errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "avgrad/optim/adam.hpp"
#include "avgrad/optim/sgd.hpp"
#include "avgrad/train/adversarial.hpp"
#include "avgrad/train/guided_mixup.hpp"
#include "support/testing.hpp"
#include "train/tiny_av.hpp"

using namespace avgrad;
using namespace avgrad::train;
using M = avgrad::testing::TinyAV<float>;

namespace {

std::filesystem::path temp_dir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / ("avgrad_trainer_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

std::unique_ptr<Defense<M>> make_defense(const std::string& kind, const AVBatch<float>& held) {
  if (kind == "plain") return std::make_unique<PlainTraining<M>>();
  if (kind == "mixup") return std::make_unique<InputMixup<M>>(MixupOptions{.scope = MixScope::per_modality});
  if (kind == "guided")
    return std::make_unique<GuidedMixup<M>>(held, nullptr,
                                            GuidedMixupOptions{.refresh_every = 2, .measure = {.convexity_pairs = 40}});
  attacks::Budget b{.eps = 0.3, .step = 0.1};
  return std::make_unique<AdversarialTraining<M>>(
      AdversarialTrainingOptions{.threat = attacks::ThreatModel::joint(b, b), .steps = 3});
}

struct RunRecord {
  std::vector<double> losses;
  std::vector<float> params;
  Cost cost;
};

/// Trains `steps` steps with a log row per step; optionally stops at `stop_at`, and resumes from
/// the checkpoint in a fresh model, optimizer, schedule and trainer.
RunRecord run_training(const std::string& kind, std::int64_t steps, std::int64_t stop_at,
                       const std::filesystem::path& dir) {
  const auto data = avgrad::testing::clusters<float>(40, 3, 4, 5, 1.5, 1);
  const auto held = avgrad::testing::clusters<float>(24, 3, 4, 5, 1.5, 2).all();
  ShuffledBatches<float> source(data, 8, 17);
  TrainerOptions o{.epochs = 10,
                   .max_steps = stop_at > 0 ? stop_at : steps,
                   .accumulate = 2,
                   .log_every = 1,
                   .progress = false,
                   .seed = 5};
  o.checkpoint_dir = dir;
  RunRecord r;
  {
    auto model = avgrad::testing::tiny_av<float>(4, 5, 3, 3);
    optim::Adam<float> adam(model->parameters(), {.lr = 0.01});
    optim::StepLR sched(adam, 2, 0.5);
    auto defense = make_defense(kind, held);
    default_generator().manual_seed(99);
    Trainer<M> t(*model, adam, *defense, o, &sched);
    for (const auto& row : t.fit(source).history) r.losses.push_back(row.train_loss);
    if (stop_at <= 0) {
      for (const auto& p : model->parameters())
        for (float v : p.to_vector()) r.params.push_back(v);
      r.cost = t.cost();
      return r;
    }
  }
  auto model = avgrad::testing::tiny_av<float>(4, 5, 3, 123);  // other weights: the checkpoint must restore them
  optim::Adam<float> adam(model->parameters(), {.lr = 0.5});
  optim::StepLR sched(adam, 2, 0.5);
  auto defense = make_defense(kind, held);
  default_generator().manual_seed(1);
  o.max_steps = steps;
  Trainer<M> t(*model, adam, *defense, o, &sched);
  t.resume(dir / "last.safetensors");
  EXPECT_EQ(t.step(), stop_at);
  for (const auto& row : t.fit(source).history) r.losses.push_back(row.train_loss);
  for (const auto& p : model->parameters())
    for (float v : p.to_vector()) r.params.push_back(v);
  r.cost = t.cost();
  return r;
}

}  // namespace

TEST(Trainer, ResumeContinuesBitIdentically) {
  for (const std::string kind : {"plain", "mixup", "guided", "pgd"}) {
    const auto dir = temp_dir("resume_" + kind);
    const RunRecord whole = run_training(kind, 7, 0, dir / "a");
    const RunRecord resumed = run_training(kind, 7, 3, dir / "b");
    ASSERT_EQ(whole.losses.size(), 7u) << kind;
    ASSERT_EQ(resumed.losses.size(), 7u) << kind;
    for (std::size_t i = 0; i < 7; ++i) EXPECT_EQ(whole.losses[i], resumed.losses[i]) << kind << " step " << i + 1;
    ASSERT_EQ(whole.params.size(), resumed.params.size());
    for (std::size_t i = 0; i < whole.params.size(); ++i) ASSERT_EQ(whole.params[i], resumed.params[i]) << kind;
    EXPECT_EQ(whole.cost.forward_passes, resumed.cost.forward_passes) << kind;
    EXPECT_EQ(whole.cost.backward_passes, resumed.cost.backward_passes) << kind;
    EXPECT_EQ(whole.cost.examples_seen, resumed.cost.examples_seen) << kind;
    std::filesystem::remove_all(dir);
  }
}

TEST(Trainer, AccumulationEqualsTheLargerBatch) {
  const auto data = avgrad::testing::clusters<double>(32, 3, 4, 5, 1.5, 3);
  using MD = avgrad::testing::TinyAV<double>;
  std::vector<std::vector<double>> params;
  for (auto [batch, acc] : {std::pair<std::int64_t, std::int64_t>{8, 1}, {4, 2}}) {
    auto model = avgrad::testing::tiny_av<double>(4, 5, 3, 4);
    optim::SGD<double> sgd(model->parameters(), {.lr = 0.1});
    PlainTraining<MD> plain;
    Trainer<MD> t(*model, sgd, plain, TrainerOptions{.epochs = 1, .accumulate = acc, .progress = false});
    ShuffledBatches<double> source(data, batch, 7);
    const auto res = t.fit(source);
    EXPECT_EQ(res.steps, 4);
    EXPECT_EQ(res.cost.examples_seen, 32);
    EXPECT_EQ(res.cost.forward_passes, 32 / batch);
    EXPECT_EQ(res.cost.backward_passes, 32 / batch);
    std::vector<double> p;
    for (const auto& t : model->parameters())
      for (double v : t.to_vector()) p.push_back(v);
    params.push_back(p);
  }
  for (std::size_t i = 0; i < params[0].size(); ++i) EXPECT_NEAR(params[0][i], params[1][i], 1e-12);
}

TEST(Trainer, EarlyStoppingBestCheckpointAndLogs) {
  const auto dir = temp_dir("early");
  const auto data = avgrad::testing::clusters<float>(24, 3, 4, 5, 1.5, 4);
  const auto val = avgrad::testing::clusters<float>(12, 3, 4, 5, 1.5, 5);
  auto model = avgrad::testing::tiny_av<float>(4, 5, 3, 5);
  optim::SGD<float> sgd(model->parameters(), {.lr = 0.0});  // nothing improves after the first evaluation
  PlainTraining<M> plain;
  TrainerOptions o{.epochs = 50, .eval_every = 1, .patience = 3, .progress = false};
  o.checkpoint_dir = dir / "ckpt";
  o.log_csv = dir / "log.csv";
  o.log_jsonl = dir / "log.jsonl";
  Trainer<M> t(*model, sgd, plain, o);
  ShuffledBatches<float> source(data, 6, 1);
  const auto res = t.fit(source, &val);
  EXPECT_TRUE(res.stopped_early);
  EXPECT_EQ(res.steps, 4);  // best at step 1, then 3 evaluations without improvement
  EXPECT_EQ(res.best_step, 1);
  EXPECT_NEAR(res.best_metric, evaluate(*model, val).accuracy, 1e-12);
  EXPECT_TRUE(std::filesystem::is_regular_file(dir / "ckpt" / "best.safetensors"));
  EXPECT_TRUE(std::filesystem::is_regular_file(dir / "ckpt" / "last.safetensors"));
  std::ifstream csv(dir / "log.csv"), jl(dir / "log.jsonl");
  std::string line;
  std::vector<std::string> lines;
  while (std::getline(csv, line)) lines.push_back(line);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0].rfind("step,epoch,lr,train_loss,train_accuracy,val_loss,val_accuracy,seconds", 0), 0u);
  EXPECT_EQ(lines[1].rfind("1,0.25,0,", 0), 0u) << lines[1];
  int n = 0;
  while (std::getline(jl, line)) {
    ++n;
    EXPECT_NE(line.find("\"val_accuracy\": "), std::string::npos);
    EXPECT_NE(line.find("\"defense\": \"plain\""), std::string::npos);
  }
  EXPECT_EQ(n, 4);
  EXPECT_EQ(res.history.size(), 4u);
  EXPECT_GT(res.cost.seconds, 0.0);
  std::filesystem::remove_all(dir);
}

namespace {
class NanDefense final : public Defense<M> {
 public:
  std::string name() const override { return "nan"; }
  StepOutput<float> loss(M& model, const AVBatch<float>& b, Generator&, Cost&) override {
    return {mean(model.forward(b.x).logits) * std::numeric_limits<float>::quiet_NaN(), 0, b.size()};
  }
};
}  // namespace

TEST(Trainer, ErrorsNameWhatAndWhere) {
  const auto data = avgrad::testing::clusters<float>(12, 3, 4, 5, 1.5, 6);
  auto model = avgrad::testing::tiny_av<float>(4, 5, 3, 6);
  optim::SGD<float> sgd(model->parameters(), {.lr = 0.1});
  NanDefense nan;
  Trainer<M> t(*model, sgd, nan, TrainerOptions{.progress = false});
  ShuffledBatches<float> source(data, 4, 1);
  avgrad::testing::expect_error([&] { t.fit(source); }, {"non-finite loss", "step 0", "epoch 0", "'nan'"});
  avgrad::testing::expect_error([&] { t.resume("/nonexistent/last.safetensors"); },
                                {"no checkpoint", "/nonexistent/last.safetensors"});
  PlainTraining<M> plain;
  avgrad::testing::expect_error([&] { Trainer<M>(*model, sgd, plain, TrainerOptions{.accumulate = 0}); },
                                {"accumulate >= 1"});
  avgrad::testing::expect_error([&] { ShuffledBatches<float>(data, 0, 1); }, {"batch_size must be >= 1"});
  auto bad = data;
  bad.video = bad.video.slice(0, 0, 5);
  avgrad::testing::expect_error([&] { ShuffledBatches<float>(bad, 4, 1); }, {"video of shape", "12 labels"});
}
