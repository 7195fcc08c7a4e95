// Every defense trains the study's late-fusion model (StudyOptions::small) for a few steps through
// the Trainer as docs/training.md shows it: finite losses, the expected pass counts, weights that
// move, and the guided metrics measured on the model's real latent spaces.
#include <gtest/gtest.h>

#include <cmath>

#include "avgrad/models/study.hpp"
#include "avgrad/optim/adam.hpp"
#include "avgrad/train/adversarial.hpp"
#include "avgrad/train/guided_mixup.hpp"
#include "avgrad/train/trainer.hpp"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::train;
using Model = models::study::LateFusionModel<float, models::ClassifierHead<float>>;

namespace {

TensorData<float> random_set(std::int64_t n, std::uint64_t seed) {
  const auto o = models::study::StudyOptions::small(4);
  Generator g(seed);
  TensorData<float> d;
  d.audio = randn<float>({n, o.audio_frames, o.num_bins()}, g);
  d.video = randn<float>({n, o.video_frames, o.video_dim}, g);
  std::vector<std::int64_t> y;
  for (std::int64_t i = 0; i < n; ++i) y.push_back(i % 4);
  d.y.classes = from_vector<std::int64_t>(y);
  return d;
}

}  // namespace

TEST(StudyDefenses, EveryDefenseTrainsTheLateFusionModel) {
  static_assert(ComposedAVModel<Model>, "latent mix-up must accept the study's AVClassifier");
  const auto data = random_set(16, 1);
  const auto held = random_set(12, 2).all();
  const attacks::Budget audio{.eps = 0.1, .step = 0.05}, video{.eps = 0.05, .step = 0.025};
  struct Case {
    std::unique_ptr<Defense<Model>> defense;
    std::int64_t forward_per_step;  // training passes only (guided adds its measurement)
  };
  std::vector<Case> cases;
  cases.push_back({std::make_unique<PlainTraining<Model>>(), 1});
  cases.push_back({std::make_unique<InputMixup<Model>>(MixupOptions{.scope = MixScope::cross_modal}), 1});
  cases.push_back({std::make_unique<LatentMixup<Model>>(LatentMixupOptions{.level = LatentLevel::fused}), 1});
  cases.push_back({std::make_unique<LatentMixup<Model>>(
                       LatentMixupOptions{.mix = {.scope = MixScope::per_modality}, .level = LatentLevel::encoders}),
                   1});
  cases.push_back(
      {std::make_unique<GuidedMixup<Model>>(held, nullptr, GuidedMixupOptions{.measure = {.convexity_pairs = 20}}), 1});
  cases.push_back(
      {std::make_unique<GuidedMixup<Model>>(
           held, nullptr, GuidedMixupOptions{.measure = {.convexity_pairs = 20}, .level = GuidedLevel::encoders}),
       1});
  cases.push_back({std::make_unique<AdversarialTraining<Model>>(
                       AdversarialTrainingOptions{.threat = attacks::ThreatModel::joint(audio, video), .steps = 2}),
                   2 + 1 + 1});
  cases.push_back({std::make_unique<AdversarialTraining<Model>>(AdversarialTrainingOptions{
                       .method = AdversarialMethod::fgsm_rs, .threat = attacks::ThreatModel::video_only(video)}),
                   1 + 1 + 1});
  cases.push_back(
      {std::make_unique<AdversarialTraining<Model>>(AdversarialTrainingOptions{
           .method = AdversarialMethod::trades, .threat = attacks::ThreatModel::audio_only(audio), .steps = 2}),
       1 + 2 + 1 + 1});
  for (auto& c : cases) {
    SCOPED_TRACE(c.defense->name());
    Generator init(3);
    auto model =
        models::study::late_fusion<float, models::ClassifierHead<float>>(models::study::StudyOptions::small(4), init);
    const auto before = model->parameters()[0].clone();
    optim::Adam<float> adam(model->parameters(), {.lr = 1e-3});
    optim::LinearWarmupLinearDecayLR sched(adam, {.warmup_steps = 1, .total_steps = 4});
    Trainer<Model> trainer(*model, adam, *c.defense, TrainerOptions{.epochs = 1, .progress = false, .seed = 1}, &sched);
    ShuffledBatches<float> batches(data, 8, 1);
    const auto r = trainer.fit(batches, &data);
    ASSERT_EQ(r.steps, 2);
    ASSERT_EQ(r.history.size(), 1u);
    EXPECT_TRUE(std::isfinite(r.history[0].train_loss));
    EXPECT_TRUE(std::isfinite(r.history[0].val_accuracy));
    EXPECT_EQ(r.cost.examples_seen, 16);
    if (auto* g = dynamic_cast<GuidedMixup<Model>*>(c.defense.get())) {
      ASSERT_TRUE(g->metrics().measured());
      for (const auto& sp : g->metrics().spaces)
        for (double v : sp.convexity) EXPECT_TRUE(v >= 0 && v <= 1);
      EXPECT_GT(r.cost.forward_passes, 2 * c.forward_per_step);
    } else {
      EXPECT_EQ(r.cost.forward_passes, 2 * c.forward_per_step);
    }
    EXPECT_GT(avgrad::testing::worst_relative_error(model->parameters()[0].to<double>(), before.to<double>()), 0.0)
        << "the weights moved";
  }
}
