// Mix-up family and metric-guided mix-up: λ draws, plans, the convex combinations and soft labels
// they produce, the soft-label losses' gradients, and the guidance policy's choices.
#include <gtest/gtest.h>

#include "avgrad/train/guided_mixup.hpp"
#include "support/testing.hpp"
#include "train/tiny_av.hpp"

using namespace avgrad;
using namespace avgrad::train;
using avgrad::testing::TD;

namespace {

double sum_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s;
}

}  // namespace

TEST(Mixup, BetaDrawsHaveTheBetaMeanAndVariance) {
  Generator gen(3);
  for (double a : {0.2, 1.0, 2.5}) {
    const int n = 20000;
    std::vector<double> v;
    for (int i = 0; i < n; ++i) v.push_back(beta_draw(a, a, gen));
    const double m = sum_of(v) / n;
    double var = 0;
    for (double x : v) var += (x - m) * (x - m);
    var /= n - 1;
    const double expected_var = 1.0 / (4 * (2 * a + 1));  // αβ/((α+β)²(α+β+1)) with α = β
    EXPECT_NEAR(m, 0.5, 0.01) << "alpha " << a;
    EXPECT_NEAR(var, expected_var, 0.06 * expected_var + 0.002) << "alpha " << a;
    for (double x : v) ASSERT_TRUE(x >= 0 && x <= 1);
  }
  EXPECT_THROW(beta_draw(0.0, 1.0, gen), Error);
  avgrad::testing::expect_error([&] { (void)(InputMixup<avgrad::testing::TinyAV<float>>(MixupOptions{.alpha = -1})); },
                                {"alpha"});
}

TEST(Mixup, PlansFollowTheirScope) {
  Generator gen(5);
  const std::int64_t B = 64;
  for (MixScope s :
       {MixScope::shared, MixScope::per_modality, MixScope::audio_only, MixScope::video_only, MixScope::cross_modal}) {
    const auto p = random_mix_plan(B, MixupOptions{.alpha = 1.0, .scope = s, .audio_share = 0.3}, gen);
    p.check(B);
    std::vector<int> seen(B, 0);
    for (auto j : p.partner) ++seen[static_cast<std::size_t>(j)];
    for (int c : seen) EXPECT_EQ(c, 1) << "partners are a permutation";
    for (std::size_t i = 0; i < static_cast<std::size_t>(B); ++i) {
      const double la = p.lam_audio[i], lv = p.lam_video[i], ly = p.lam_label[i];
      switch (s) {
        case MixScope::shared:
          EXPECT_EQ(la, lv);
          EXPECT_EQ(ly, la);
          break;
        case MixScope::per_modality:
          EXPECT_DOUBLE_EQ(ly, 0.3 * la + 0.7 * lv);
          break;
        case MixScope::audio_only:
          EXPECT_EQ(lv, 1.0);
          EXPECT_DOUBLE_EQ(ly, 0.3 * la + 0.7);
          break;
        case MixScope::video_only:
          EXPECT_EQ(la, 1.0);
          EXPECT_DOUBLE_EQ(ly, 0.3 + 0.7 * lv);
          break;
        case MixScope::cross_modal:
          EXPECT_DOUBLE_EQ(lv, 1.0 - la);
          EXPECT_DOUBLE_EQ(ly, 0.3 * la + 0.7 * lv);
          break;
      }
    }
  }
}

TEST(Mixup, AppliedPlanGivesConvexCombinationsAndMixedLabels) {
  const auto data = avgrad::testing::clusters<double>(6, 3, 4, 5, 2.0, 1);
  const auto b = data.all();
  MixPlan p;
  p.partner = {3, 0, 5, 1, 4, 2};
  p.lam_audio = {0.25, 1.0, 0.5, 0.0, 0.9, 0.1};
  p.lam_video = {0.75, 0.3, 1.0, 0.6, 0.9, 0.0};
  p.lam_label = {0.5, 0.65, 0.75, 0.3, 0.9, 0.05};
  const auto m = apply_mix(b, p, 3);
  const auto a = b.x.audio.to_vector(), v = b.x.video.to_vector(), ma = m.x.audio.to_vector(),
             mv = m.x.video.to_vector(), t = m.targets.to_vector();
  const auto y = b.y.classes.to_vector();
  for (std::size_t i = 0; i < 6; ++i) {
    const auto j = static_cast<std::size_t>(p.partner[i]);
    for (std::size_t d = 0; d < 4; ++d)
      EXPECT_NEAR(ma[i * 4 + d], p.lam_audio[i] * a[i * 4 + d] + (1 - p.lam_audio[i]) * a[j * 4 + d], 1e-15);
    for (std::size_t d = 0; d < 5; ++d)
      EXPECT_NEAR(mv[i * 5 + d], p.lam_video[i] * v[i * 5 + d] + (1 - p.lam_video[i]) * v[j * 5 + d], 1e-15);
    for (std::int64_t k = 0; k < 3; ++k) {
      const double expected = p.lam_label[i] * (y[i] == k) + (1 - p.lam_label[i]) * (y[j] == k);
      EXPECT_NEAR(t[i * 3 + static_cast<std::size_t>(k)], expected, 1e-15) << "example " << i << " class " << k;
    }
  }
  MixPlan bad = p;
  bad.partner[2] = 6;
  avgrad::testing::expect_error([&] { (void)(apply_mix(b, bad, 3)); }, {"partner 6 of example 2"});
  bad = p;
  bad.lam_video[1] = 1.5;
  avgrad::testing::expect_error([&] { (void)(apply_mix(b, bad, 3)); }, {"outside [0, 1]"});
}

TEST(Mixup, SoftLabelLossesAndLatentMixHaveCorrectGradients) {
  using avgrad::testing::expect_gradcheck;
  using avgrad::testing::leaf;
  Generator g(2);
  auto targets = softmax(randn<double>({4, 3}, g), 1).detach();
  auto multi = rand<double>({4, 3}, g, 0.0, 1.0).detach();
  expect_gradcheck([&](const std::vector<TD>& in) { return soft_label_loss(in[0], targets, false); },
                   {leaf({4, 3}, 11)});
  expect_gradcheck([&](const std::vector<TD>& in) { return soft_label_loss(in[0], multi, true); }, {leaf({4, 3}, 12)});
  const std::vector<std::int64_t> partner{2, 0, 1, 1};
  const std::vector<double> lam{0.3, 1.0, 0.5, 0.8};
  expect_gradcheck([&](const std::vector<TD>& in) { return sum(mix_latent(in[0], partner, lam) * in[0]); },
                   {leaf({4, 5}, 13)});
  expect_gradcheck([&](const std::vector<TD>& in) { return mix_latent(in[0], partner, lam); }, {leaf({4, 2, 3}, 14)});
  // The soft loss on a one-hot target is the hard loss.
  auto z = randn<double>({4, 3}, g);
  auto y = from_vector<std::int64_t>({0, 2, 1, 2});
  attacks::Labels<double> lab{y, {}};
  EXPECT_NEAR(soft_label_loss(z, soft_targets(lab, 3), false).item(), label_loss(z, lab).item(), 1e-12);
  avgrad::testing::expect_error([&] { (void)(soft_label_loss(z, targets.slice(0, 0, 2), false)); },
                                {"targets of the same shape"});
}

TEST(Mixup, InputMixupTrainsOnTheMixedBatchItPlans) {
  auto model = avgrad::testing::tiny_av<double>(4, 5, 3, 7);
  const auto data = avgrad::testing::clusters<double>(12, 3, 4, 5, 2.0, 2);
  const auto b = data.all();
  for (MixScope s : {MixScope::shared, MixScope::per_modality, MixScope::video_only, MixScope::cross_modal}) {
    InputMixup<avgrad::testing::TinyAV<double>> mix(MixupOptions{.alpha = 0.7, .scope = s});
    Generator g1(9), g2(9);
    Cost cost;
    auto out = mix.loss(*model, b, g1, cost);
    const auto plan = random_mix_plan(b.size(), mix.options(), g2);
    const auto mixed = apply_mix(b, plan, 3);
    const double expected = soft_label_loss(model->forward(mixed.x).logits, mixed.targets, false).item();
    EXPECT_DOUBLE_EQ(out.loss.item(), expected) << mix_scope_name(s);
    EXPECT_EQ(cost.forward_passes, 1);
    EXPECT_EQ(cost.forward_examples, 12);
    EXPECT_EQ(g1.offset(), g2.offset());
    // It differs from the clean loss: the batch really was mixed.
    EXPECT_NE(out.loss.item(), label_loss(model->forward(b.x).logits, b.y).item());
  }
}

TEST(Mixup, LatentMixupMixesAtTheChosenLevel) {
  using M = avgrad::testing::TinyAV<double>;
  auto model = avgrad::testing::tiny_av<double>(4, 5, 3, 8);
  const auto b = avgrad::testing::clusters<double>(8, 3, 4, 5, 2.0, 3).all();
  // An identity plan gives the clean logits at both levels.
  const auto clean = model->forward(b.x).logits.to_vector();
  for (LatentLevel lv : {LatentLevel::encoders, LatentLevel::fused}) {
    const auto z = mixed_latent_logits(*model, b.x, MixPlan::identity(8), lv).to_vector();
    for (std::size_t i = 0; i < z.size(); ++i) EXPECT_NEAR(z[i], clean[i], 1e-12);
  }
  // At the fused level the head (linear) sees λ·z_i + (1 − λ)·z_j: its logits mix the same way.
  MixPlan p = MixPlan::identity(8);
  p.partner = {1, 0, 3, 2, 5, 4, 7, 6};
  for (auto& l : p.lam_label) l = 0.25;
  const auto mixed = mixed_latent_logits(*model, b.x, p, LatentLevel::fused).to_vector();
  for (std::size_t i = 0; i < 8; ++i)
    for (std::size_t k = 0; k < 3; ++k)
      EXPECT_NEAR(mixed[i * 3 + k],
                  0.25 * clean[i * 3 + k] + 0.75 * clean[static_cast<std::size_t>(p.partner[i]) * 3 + k], 1e-12);
  LatentMixup<M> mix(
      LatentMixupOptions{.mix = {.alpha = 1.0, .scope = MixScope::per_modality}, .level = LatentLevel::encoders});
  Generator g(1);
  Cost cost;
  auto out = mix.loss(*model, b, g, cost);
  out.loss.backward();
  EXPECT_TRUE(model->audio().fc.weight.grad().defined());
  EXPECT_TRUE(model->video().fc.weight.grad().defined());
  avgrad::testing::expect_error(
      [&] { (void)(LatentMixup<M>(LatentMixupOptions{.mix = {.scope = MixScope::audio_only}})); },
      {"only MixScope::shared"});
}

TEST(GuidedMixup, PolicySpendsMixingOnLowConvexityClassesAndModalities) {
  GuidanceMetrics m;
  m.num_classes = 4;
  m.measured_at_step = 0;
  for (auto& sp : m.spaces) {
    sp.convexity = {0.0, 1.0, 1.0, 1.0};  // class 0 is the non-convex one
    sp.purity = {0.2, 1.0, 1.0, 1.0};
  }
  m.spaces[GuidanceMetrics::video].convexity[0] = 1.0;  // ... in audio only
  m.spaces[GuidanceMetrics::video].purity[0] = 1.0;
  ConvexityDensityPolicy policy(ConvexityDensityOptions{.alpha = 1.0, .mix_rate = 0.3, .same_class = 1.0});
  std::vector<std::int64_t> labels;
  for (int i = 0; i < 32; ++i) labels.push_back(i % 4);
  Generator gen(4);
  std::vector<double> mixed(4, 0);
  double audio_mixed = 0, video_mixed = 0;
  for (int rep = 0; rep < 200; ++rep) {
    const auto p = policy.plan(m, labels, gen);
    p.check(32);
    for (std::size_t i = 0; i < 32; ++i) {
      if (p.partner[i] == static_cast<std::int64_t>(i)) continue;
      mixed[static_cast<std::size_t>(labels[i])] += 1;
      EXPECT_EQ(labels[static_cast<std::size_t>(p.partner[i])], labels[i]) << "same_class = 1";
      audio_mixed += p.lam_audio[i] != 1.0;
      video_mixed += p.lam_video[i] != 1.0;
    }
  }
  // need_0 = 0.05 + 0.9 = 0.95, need_other = 0.05: class 0 is mixed min(1, 0.3·0.95/0.275) ≈ 100%.
  EXPECT_GT(mixed[0], 0.95 * 200 * 8);
  for (int c = 1; c < 4; ++c) EXPECT_LT(mixed[static_cast<std::size_t>(c)], 0.1 * 200 * 8) << "class " << c;
  EXPECT_GT(audio_mixed, 5 * video_mixed);
  // Before any measurement every class is equally needy: plain mix-up at the base rate.
  const double frac = [&] {
    double n = 0;
    for (int rep = 0; rep < 100; ++rep) {
      const auto p = policy.plan(GuidanceMetrics{}, labels, gen);
      for (std::size_t i = 0; i < 32; ++i) n += p.partner[i] != static_cast<std::int64_t>(i);
    }
    return n / (100 * 32);
  }();
  EXPECT_NEAR(frac, 0.3, 0.03);
  avgrad::testing::expect_error([&] { (void)(ConvexityDensityPolicy(ConvexityDensityOptions{.same_class = 2})); },
                                {"same_class"});
}

TEST(GuidedMixup, MeasuresMetricsAndRoundTripsItsState) {
  using M = avgrad::testing::TinyAV<float>;
  auto model = avgrad::testing::tiny_av<float>(4, 5, 3, 9);
  const auto held = avgrad::testing::clusters<float>(30, 3, 4, 5, 2.0, 4).all();
  GuidedMixup<M> guided(held, nullptr, GuidedMixupOptions{.measure = {.convexity_pairs = 50, .density_k = 5}});
  Cost cost;
  model->train();
  guided.on_epoch_start(*model, 0, 0, cost);
  EXPECT_TRUE(model->is_training());
  const auto& g = guided.metrics();
  ASSERT_TRUE(g.measured());
  for (const auto& sp : g.spaces) {
    ASSERT_EQ(sp.convexity.size(), 3u);
    for (std::size_t c = 0; c < 3; ++c) {
      EXPECT_GE(sp.convexity[c], 0.0);
      EXPECT_LE(sp.convexity[c], 1.0);
      EXPECT_GE(sp.purity[c], 0.0);
      EXPECT_LE(sp.purity[c], 1.0);
    }
  }
  EXPECT_EQ(cost.forward_passes, 1 + 3 * 3);  // one held-out forward, one head call per class and space
  EXPECT_EQ(cost.backward_passes, 0);
  GuidedMixup<M> other(held);
  other.load_state_dict(guided.state_dict());
  for (int s = 0; s < 3; ++s)
    for (std::size_t c = 0; c < 3; ++c) {
      EXPECT_EQ(other.metrics().spaces[static_cast<std::size_t>(s)].convexity[c],
                g.spaces[static_cast<std::size_t>(s)].convexity[c]);
      EXPECT_EQ(other.metrics().spaces[static_cast<std::size_t>(s)].purity[c],
                g.spaces[static_cast<std::size_t>(s)].purity[c]);
    }
  Generator g1(3), g2(3);
  Cost c1, c2;
  EXPECT_EQ(guided.loss(*model, held, g1, c1).loss.item(), other.loss(*model, held, g2, c2).loss.item());
  auto multi = held;
  multi.y = {{}, ones<float>({30, 3})};
  avgrad::testing::expect_error([&] { (void)(GuidedMixup<M>(multi)); }, {"class labels"});
}
