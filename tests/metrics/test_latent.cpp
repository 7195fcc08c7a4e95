// Density and convexity with known answers: separated vs overlapping Gaussian classes, tight vs
// wide classes, a ball class under a linear head (convexity 1), and a ring around a central class
// whose convexity is integrated numerically in the test.
#include <algorithm>
#include <cmath>
#include <numbers>

#include "avgrad/attacks/objective.hpp"
#include "avgrad/data/detail/json.hpp"
#include "avgrad/metrics/latent.hpp"
#include "avgrad/metrics/report.hpp"
#include "avgrad/models/classifier.hpp"
#include "avgrad/models/fusion.hpp"
#include "avgrad/models/heads.hpp"
#include "avgrad/ops/join.hpp"
#include "avgrad/ops/reduce.hpp"
#include "avgrad/ops/unary.hpp"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::testing;
using namespace avgrad::metrics;

namespace {

/// N points per class around ±offset along the first axis, unit Gaussian noise, D dims.
std::pair<TD, ClassSets> two_gaussians(std::int64_t n, std::int64_t D, double offset, double scale0 = 1,
                                       double scale1 = 1) {
  Generator g(3);
  auto noise = randn<double>({2 * n, D}, g).to_vector();
  std::vector<std::int64_t> y;
  for (std::int64_t i = 0; i < 2 * n; ++i) {
    const bool first = i < n;
    for (std::int64_t d = 0; d < D; ++d) {
      auto& v = noise[static_cast<std::size_t>(i * D + d)];
      v *= first ? scale0 : scale1;
      if (d == 0) v += first ? offset : -offset;
    }
    y.push_back(first ? 0 : 1);
  }
  return {from_vector<double>(noise, Shape{2 * n, D}), ClassSets::single(y, 2)};
}

TEST(Density, SeparatedClassesArePureWithALargeMargin) {
  auto [z, cls] = two_gaussians(50, 4, 10.0);
  auto d = density(z, cls, {.k = 10});
  ASSERT_EQ(d.size(), 2u);
  for (const auto& c : d) {
    EXPECT_EQ(c.members, 50);
    EXPECT_DOUBLE_EQ(c.purity, 1.0);
    EXPECT_GT(c.margin_ratio, 5.0);
  }
}

TEST(Density, OverlappingClassesAreHalfPure) {
  auto [z, cls] = two_gaussians(200, 4, 0.0);
  auto d = density(z, cls, {.k = 10});
  for (const auto& c : d) {
    EXPECT_NEAR(c.purity, 0.5, 0.08);
    EXPECT_NEAR(c.margin_ratio, 1.0, 0.5);
  }
}

TEST(Density, TightClassesAreDenserThanWideOnes) {
  auto [z, cls] = two_gaussians(100, 3, 20.0, 0.2, 2.0);
  auto d = density(z, cls, {.k = 5});
  EXPECT_LT(d[0].local_density, 1.0);
  EXPECT_GT(d[1].local_density, 1.0);
  // Sequences (N, L, D) are pooled over L first: repeating each latent L times changes nothing.
  auto seq = z.unsqueeze(1).expand({200, 3, 3}).contiguous();
  auto ds = density(seq, cls, {.k = 5});
  EXPECT_NEAR(ds[0].local_density, d[0].local_density, 1e-12);
  expect_error([&] { density(z, ClassSets::single({0, 1}, 2)); }, {"density", "labels for 2 examples"});
  // A seeded subsample of half the examples keeps the picture: both classes, tight still tight.
  auto sub = density(z, cls, {.k = 5, .subsample = 100, .seed = 3});
  EXPECT_EQ(sub[0].members + sub[1].members, 100);
  EXPECT_GT(sub[0].members, 20);
  EXPECT_LT(sub[0].local_density, 1.0);
  EXPECT_GT(sub[1].local_density, 1.0);
  EXPECT_EQ(density(z, cls, {.k = 5, .subsample = 100, .seed = 3})[0].members, sub[0].members) << "seeded";
}

TEST(Density, MultiLabelNeighboursShareTheLabel) {
  // Three points; example 1 has both classes: it is "same class" for both others.
  auto z = from_vector<double>({0, 1, 2}, Shape{3, 1});
  auto cls = ClassSets::multi_hot(from_vector<double>({1, 0, 1, 1, 0, 1}, Shape{3, 2}));
  auto d = density(z, cls, {.k = 1});
  EXPECT_DOUBLE_EQ(d[0].purity, 1.0) << "members 0 and 1: 0's nearest is 1, 1's nearest is 0 (a tie, lower index)";
  // Class 1 (members 1 and 2): 1's nearest is 0 (no class 1), 2's nearest is 1 (class 1).
  EXPECT_DOUBLE_EQ(d[1].purity, 0.5);
}

/// logits (B, 2) = [z0, −z0]: class 0 on the right half-plane.
Tensor<double> halfplane_head(const Tensor<double>& z) {
  auto x = z.narrow(1, 0, 1);
  return concat({x, -x}, 1);
}

TEST(Convexity, BallsUnderALinearHeadAreConvex) {
  auto [z, cls] = two_gaussians(40, 2, 50.0, 1, 1);  // far from the boundary: every point correctly classified
  auto c = convexity<double>(halfplane_head, z, cls, {.pairs = 500, .seed = 1});
  ASSERT_EQ(c.size(), 2u);
  for (const auto& r : c) {
    EXPECT_DOUBLE_EQ(r.convexity, 1.0) << "class " << r.cls;
    EXPECT_EQ(r.pairs, 500);
  }
}

/// The chance that λu + (1 − λ)v has norm ≥ r for u, v uniform on the unit circle and λ ~ U(0, 1):
/// the angle between u and v is uniform on [0, π]; ‖·‖² = λ² + (1 − λ)² + 2λ(1 − λ)cos Δ.
double ring_convexity_reference(double r) {
  const int n = 2000;
  double hits = 0;
  for (int a = 0; a < n; ++a)
    for (int l = 0; l < n; ++l) {
      const double delta = std::numbers::pi * (a + 0.5) / n, lam = (l + 0.5) / n;
      hits += lam * lam + (1 - lam) * (1 - lam) + 2 * lam * (1 - lam) * std::cos(delta) >= r * r;
    }
  return hits / (double(n) * n);
}

TEST(Convexity, ARingAroundAnotherClassMatchesTheIntegral) {
  // Class 0: 720 points on the unit circle; class 1: points within radius 0.3 of the centre.
  // Head: class 1 inside radius 0.5, class 0 outside.
  const int ring = 720, centre = 100;
  std::vector<double> pts;
  std::vector<std::int64_t> y;
  for (int i = 0; i < ring; ++i) {
    const double t = 2 * std::numbers::pi * i / ring;
    pts.insert(pts.end(), {std::cos(t), std::sin(t)});
    y.push_back(0);
  }
  Generator g(5);
  auto u = rand<double>({centre, 2}, g, -0.2, 0.2).to_vector();
  for (int i = 0; i < centre; ++i) {
    pts.insert(pts.end(), {u[static_cast<std::size_t>(2 * i)], u[static_cast<std::size_t>(2 * i + 1)]});
    y.push_back(1);
  }
  auto z = from_vector<double>(pts, Shape{ring + centre, 2});
  auto cls = ClassSets::single(y, 2);
  auto radial_head = [](const Tensor<double>& b) {
    auto r = sqrt(sum(b * b, {1}, true));
    return concat({r - 0.5, 0.5 - r}, 1);
  };
  auto c = convexity<double>(radial_head, z, cls, {.pairs = 20000, .seed = 2});
  const double expected = ring_convexity_reference(0.5);
  EXPECT_NEAR(c[0].convexity, expected, 0.015) << "reference " << expected;
  EXPECT_LT(c[0].convexity, 0.9) << "a ring is far from convex";
  EXPECT_DOUBLE_EQ(c[1].convexity, 1.0) << "the central ball is convex";
  // Seeded: the same seed gives the same value; another seed a close one.
  EXPECT_EQ(convexity<double>(radial_head, z, cls, {.pairs = 20000, .seed = 2})[0].convexity, c[0].convexity);
}

TEST(Convexity, MultiLabelThresholdAndSequences) {
  // Sequences (N, L, D) interpolate elementwise; the head pools over L. Logit of class 0 is
  // the mean of the first feature: its sigmoid ≥ τ iff mean ≥ logit(τ).
  auto z = from_vector<double>({1, 0, 3, 0, -1, 0, -3, 0}, Shape{4, 2, 1});
  auto cls = ClassSets::multi_hot(from_vector<double>({1, 0, 1, 0, 0, 1, 0, 1}, Shape{4, 2}));
  auto head = [](const Tensor<double>& b) {
    auto m = mean(b, {1});  // (B, 1)
    return concat({m, -m}, 1);
  };
  auto c = convexity<double>(head, z, cls, {.pairs = 200, .tau = 0.1, .multi_label = true});
  // Class 0's latents have means 0.5 and 1.5: every interpolation has mean ≥ 0.5 > logit(0.1).
  EXPECT_DOUBLE_EQ(c[0].convexity, 1.0);
  // Class 1's means are −0.5 and −1.5: logit_1 = −mean ∈ [0.5, 1.5] ≥ logit(0.1) too.
  EXPECT_DOUBLE_EQ(c[1].convexity, 1.0);
  auto strict = convexity<double>(head, z, cls, {.pairs = 200, .tau = 0.9, .multi_label = true});
  EXPECT_LT(strict[0].convexity, 1.0) << "logit(0.9) ≈ 2.2 exceeds every interpolated mean";
  EXPECT_DOUBLE_EQ(strict[0].convexity, 0.0);
  auto small = ClassSets::single({0, 1, 1, 1}, 2);
  EXPECT_TRUE(std::isnan(convexity<double>(head, z, small, {.pairs = 10})[0].convexity)) << "one member: undefined";
  expect_error([&] { convexity<double>(head, z, small, {.pairs = 0}); }, {"convexity", "pairs >= 1"});
}

TEST(Pearson, KnownValues) {
  EXPECT_NEAR(pearson({1, 2, 3, 4}, {2, 4, 6, 8}), 1.0, 1e-15);
  EXPECT_NEAR(pearson({1, 2, 3, 4}, {8, 6, 4, 2}), -1.0, 1e-15);
  EXPECT_NEAR(pearson({1, 2, 3, NAN}, {1, 3, 2, 100}), 0.5, 1e-15);
}

// ---- the latent report ------------------------------------------------------------------------

TEST(LatentReport, SeparatedClassesInEverySpace) {
  using namespace avgrad::models;
  using Model =
      AVClassifier<InputPassthrough<double>, InputPassthrough<double>, LateFusion<double>, IdentityHead<double>>;
  Model m(std::make_unique<InputPassthrough<double>>(2), std::make_unique<InputPassthrough<double>>(2),
          std::make_unique<LateFusion<double>>(LateFusionOptions{.audio_dim = 2, .video_dim = 2, .dim = 2}),
          std::make_unique<IdentityHead<double>>(2));
  {
    NoGradGuard ng;
    const auto w = from_vector<double>({1, 0, -1, 0}, Shape{2, 2});
    copy_(m.fusion().audio_proj.weight, w);
    copy_(m.fusion().video_proj.weight, w);
    copy_(m.fusion().audio_proj.bias, zeros<double>({2}));
    copy_(m.fusion().video_proj.bias, zeros<double>({2}));
  }
  // Two batches; class 0 around (+5, 0), class 1 around (−5, 0), in both modalities.
  std::vector<std::pair<models::AVInput<double>, attacks::Labels<double>>> batches;
  Generator g(9);
  for (int b = 0; b < 2; ++b) {
    std::vector<std::int64_t> y;
    auto a = randn<double>({20, 2}, g).to_vector(), v = randn<double>({20, 2}, g).to_vector();
    for (int i = 0; i < 20; ++i) {
      y.push_back(i % 2);
      a[static_cast<std::size_t>(2 * i)] += i % 2 ? -5 : 5;
      v[static_cast<std::size_t>(2 * i)] += i % 2 ? -5 : 5;
    }
    batches.push_back({{from_vector<double>(a, Shape{20, 2}), from_vector<double>(v, Shape{20, 2})},
                       {from_vector<std::int64_t>(y, Shape{20}), {}}});
  }
  m.train();
  auto r = latent_report(m, batches, {.density = {.k = 5}, .convexity = {.pairs = 300}, .quiet = true});
  EXPECT_TRUE(m.is_training()) << "the model's mode is restored";
  EXPECT_EQ(r.examples, 40);
  EXPECT_DOUBLE_EQ(r.accuracy, 1.0);
  EXPECT_EQ(r.class_counts, (std::vector<std::int64_t>{20, 20}));
  ASSERT_EQ(r.spaces.size(), 3u);
  for (const auto& s : r.spaces) {
    EXPECT_DOUBLE_EQ(s.mean_purity, 1.0) << s.space;
    EXPECT_DOUBLE_EQ(s.mean_convexity, 1.0) << s.space;
    EXPECT_GT(s.mean_margin_ratio, 2.0) << s.space;
  }
  EXPECT_EQ(r.spaces[2].space, "fused");
  const auto json = avgrad::detail::json::parse(to_json(r));
  ASSERT_NE(json.find("spaces"), nullptr);
  EXPECT_EQ(json.find("spaces")->items.size(), 3u);
  EXPECT_NE(to_markdown(r).find("| fused | 1 | 20 |"), std::string::npos) << to_markdown(r);
  const auto csv = to_csv(r);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 3 * 2);
}

}  // namespace
