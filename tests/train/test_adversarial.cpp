// Adversarial training: the training batches stay inside each modality's budget, the attack's
// passes are charged to the cost, TRADES' KL has the right gradient, and a tiny model trained with
// PGD-AT is measurably more robust to PGD than the same model trained plainly.
#include <gtest/gtest.h>

#include <cmath>

#include "avgrad/optim/adam.hpp"
#include "avgrad/train/adversarial.hpp"
#include "support/testing.hpp"
#include "train/tiny_av.hpp"

using namespace avgrad;
using namespace avgrad::train;
using M = avgrad::testing::TinyAV<float>;
using attacks::Budget;
using attacks::ThreatModel;

namespace {

float max_abs_diff(const Tensor<float, Cpu>& a, const Tensor<float, Cpu>& b) {
  const auto x = a.contiguous().to_vector(), y = b.contiguous().to_vector();
  float m = 0;
  for (std::size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

}  // namespace

TEST(AdversarialTraining, BatchesStayInsideEachModalitysBudget) {
  auto model = avgrad::testing::tiny_av<float>(4, 5, 3, 1);
  const auto b = avgrad::testing::clusters<float>(16, 3, 4, 5, 2.0, 1).all();
  const Budget ba{.eps = 0.2, .step = 0.08}, bv{.eps = 0.5, .step = 0.2, .lo = -3, .hi = 3};
  struct Case {
    ThreatModel tm;
    AdversarialMethod method;
  };
  for (const auto& c : {Case{ThreatModel::audio_only(ba), AdversarialMethod::pgd},
                        Case{ThreatModel::video_only(bv), AdversarialMethod::pgd},
                        Case{ThreatModel::joint(ba, bv), AdversarialMethod::pgd},
                        Case{ThreatModel::joint(ba, bv), AdversarialMethod::fgsm_rs},
                        Case{ThreatModel::audio_only(ba), AdversarialMethod::trades}}) {
    AdversarialTraining<M> at(AdversarialTrainingOptions{.method = c.method, .threat = c.tm, .steps = 4});
    Cost cost;
    AVBatch<float> clipped = b;
    clipped.x.video = clamp(b.x.video, -3.0, 3.0);
    const auto probs = softmax(model->forward(clipped.x).logits.detach(), 1);
    const auto adv =
        at.perturb(*model, clipped, 7, cost, c.method == AdversarialMethod::trades ? probs : Tensor<float, Cpu>{});
    const float da = max_abs_diff(adv.audio, clipped.x.audio), dv = max_abs_diff(adv.video, clipped.x.video);
    SCOPED_TRACE(at.name());
    if (c.tm.audio) {
      EXPECT_LE(da, 0.2f + 1e-6f);
      EXPECT_GT(da, 0.05f) << "the audio was perturbed";
    } else {
      EXPECT_EQ(da, 0.0f);
    }
    if (c.tm.video) {
      EXPECT_LE(dv, 0.5f + 1e-6f);
      EXPECT_GT(dv, 0.1f);
      const auto v = adv.video.to_vector();
      for (float x : v) ASSERT_TRUE(x >= -3.0f && x <= 3.0f) << "outside the valid range";
    } else {
      EXPECT_EQ(dv, 0.0f);
    }
    const int steps = c.method == AdversarialMethod::fgsm_rs ? 1 : 4;
    EXPECT_EQ(cost.forward_passes, steps + 1);  // steps with gradient + the final probe
    EXPECT_EQ(cost.backward_passes, steps);
    EXPECT_TRUE(model->is_training()) << "the model's mode is restored";
  }
  avgrad::testing::expect_error(
      [&] { AdversarialTraining<M>(AdversarialTrainingOptions{.threat = ThreatModel::audio_only({.eps = 0.1})}); },
      {"step is 0"});
  avgrad::testing::expect_error([&] { AdversarialTraining<M>(AdversarialTrainingOptions{}); }, {"attacks no modality"});
}

TEST(AdversarialTraining, StepLossesAndCost) {
  auto model = avgrad::testing::tiny_av<float>(4, 5, 3, 2);
  const auto b = avgrad::testing::clusters<float>(16, 3, 4, 5, 2.0, 2).all();
  const Budget bud{.eps = 0.3, .step = 0.1};
  Generator gen(1);
  {
    AdversarialTraining<M> at(AdversarialTrainingOptions{.threat = ThreatModel::joint(bud, bud), .steps = 5});
    Cost cost;
    auto out = at.loss(*model, b, gen, cost);
    EXPECT_EQ(cost.forward_passes, 5 + 1 + 1);
    EXPECT_EQ(cost.backward_passes, 5);
    EXPECT_EQ(cost.forward_examples, 7 * 16);
    // The adversarial loss exceeds the clean loss: the attack ascended it.
    EXPECT_GT(out.loss.item(), label_loss(model->forward(b.x).logits, b.y).item());
  }
  {
    AdversarialTraining<M> trades(AdversarialTrainingOptions{
        .method = AdversarialMethod::trades, .threat = ThreatModel::audio_only(bud), .steps = 2});
    Cost cost;
    auto out = trades.loss(*model, b, gen, cost);
    EXPECT_EQ(cost.forward_passes, 1 + 3 + 1);  // clean, attack (2 + probe), adversarial
    out.loss.backward();
    EXPECT_TRUE(model->head().fc->weight.grad().defined());
  }
  // KL(p ‖ softmax(z)) per example: its gradient, zero at z = log p, positive elsewhere.
  using avgrad::testing::TD;
  Generator g(3);
  const auto p = softmax(randn<double>({3, 4}, g), 1).detach();
  avgrad::testing::expect_gradcheck([&](const std::vector<TD>& in) { return kl_from_probs(p, in[0]); },
                                    {avgrad::testing::leaf({3, 4}, 21)});
  for (double v : kl_from_probs(p, log(p)).to_vector()) EXPECT_NEAR(v, 0.0, 1e-12);
}

// Synthetic data where adversarial training reliably helps (Tsipras et al. 2019): the audio has
// one robust feature (class sign · 2 + small noise) and many weak ones (class sign · 0.35 + unit
// noise) that together predict well but each flip under ε = 0.5. Plain training leans on the weak
// features and breaks under an L∞ attack of ε = 0.5; PGD-AT learns to use the robust one.
TEST(AdversarialTraining, PgdAtIsMeasurablyMoreRobustThanPlainTraining) {
  const std::int64_t weak = 24, D = weak + 1;
  auto make = [&](std::int64_t n, std::uint64_t seed) {
    Generator gen(seed);
    auto a = randn<float>({n, D}, gen);
    auto v = randn<float>({n, 3}, gen);  // the video carries no signal
    std::vector<std::int64_t> y;
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t c = i % 2;
      const float s = c ? 1.f : -1.f;
      y.push_back(c);
      a.data()[i * D] = s * 2.0f + 0.3f * a.data()[i * D];
      for (std::int64_t d = 1; d < D; ++d) a.data()[i * D + d] = s * 0.35f + a.data()[i * D + d];
    }
    TensorData<float> t;
    t.audio = a;
    t.video = v;
    t.y.classes = from_vector<std::int64_t>(y);
    return t;
  };
  const auto train_set = make(400, 1), test_set = make(400, 2);
  const Budget bud{.eps = 0.5, .step = 0.2};
  const ThreatModel tm = ThreatModel::audio_only(bud);
  const attacks::Pgd<float> pgd(attacks::PgdOptions{.steps = 10, .seed = 11});
  std::vector<double> clean_plain, robust_plain, clean_at, robust_at;
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    for (bool adversarial : {false, true}) {
      auto model = avgrad::testing::tiny_av<float>(D, 3, 2, seed, 16);
      optim::Adam<float> adam(model->parameters(), {.lr = 0.01});
      std::unique_ptr<Defense<M>> defense;
      if (adversarial)
        defense = std::make_unique<AdversarialTraining<M>>(AdversarialTrainingOptions{.threat = tm, .steps = 5});
      else
        defense = std::make_unique<PlainTraining<M>>();
      Trainer<M> t(*model, adam, *defense, TrainerOptions{.epochs = 8, .progress = false, .seed = seed});
      ShuffledBatches<float> source(train_set, 32, seed);
      t.fit(source);
      const auto r = robust_accuracy(*model, test_set.all(), pgd, tm);
      (adversarial ? clean_at : clean_plain).push_back(r.clean);
      (adversarial ? robust_at : robust_plain).push_back(r.robust);
    }
  }
  // Per seed the robust accuracies are independent binomials over 400 examples (standard error
  // ≤ 0.025); the margin asks for ~10 standard errors of the difference on every seed.
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_GT(clean_plain[i], 0.9) << "seed " << i + 1;
    EXPECT_GT(robust_at[i], robust_plain[i] + 0.3)
        << "seed " << i + 1 << ": plain robust " << robust_plain[i] << ", PGD-AT robust " << robust_at[i];
  }
  std::printf(
      "plain: clean %.3f %.3f %.3f, robust %.3f %.3f %.3f\nPGD-AT: clean %.3f %.3f %.3f, robust %.3f %.3f %.3f\n",
      clean_plain[0], clean_plain[1], clean_plain[2], robust_plain[0], robust_plain[1], robust_plain[2], clean_at[0],
      clean_at[1], clean_at[2], robust_at[0], robust_at[1], robust_at[2]);
}
