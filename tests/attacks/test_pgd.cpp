// The attack foundation and the PGD family: exact projections (L∞, L2, L1 against an
// independent bisection), steepest-ascent steps, seeded random starts, the attack losses
// (values by hand, gradchecks), FGSM/PGD/MI-FGSM reaching the closed-form optimum of linear
// models, targeted attacks, restarts, early stop, budgets never left, and Theorem 1 of the
// study: an audio-only perturbation inside the audio model's own robustness radius flips a
// late-fusion model.
#include <cmath>

#include "avgrad/attacks/pgd.hpp"
#include "avgrad/models/classifier.hpp"
#include "avgrad/models/fusion.hpp"
#include "avgrad/models/heads.hpp"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::testing;
using namespace avgrad::attacks;
using namespace avgrad::models;

namespace {

using Linear =
    AVClassifier<InputPassthrough<double>, InputPassthrough<double>, LateFusion<double>, IdentityHead<double>>;

/// logits = A·x_a + b + V·x_v (K classes): a late-fusion model that is linear in both inputs.
std::unique_ptr<Linear> linear_model(std::int64_t K, const std::vector<double>& A, const std::vector<double>& b,
                                     const std::vector<double>& V) {
  const auto Da = static_cast<std::int64_t>(A.size()) / K, Dv = static_cast<std::int64_t>(V.size()) / K;
  auto m = std::make_unique<Linear>(
      std::make_unique<InputPassthrough<double>>(Da), std::make_unique<InputPassthrough<double>>(Dv),
      std::make_unique<LateFusion<double>>(
          LateFusionOptions{.audio_dim = Da, .video_dim = Dv, .dim = K, .align = TimeAlign::pool, .video_bias = false}),
      std::make_unique<IdentityHead<double>>(K));
  NoGradGuard no_grad;
  copy_(m->fusion().audio_proj.weight, from_vector<double>(A, Shape{K, Da}));
  copy_(m->fusion().audio_proj.bias, from_vector<double>(b, Shape{K}));
  copy_(m->fusion().video_proj.weight, from_vector<double>(V, Shape{K, Dv}));
  return m;
}

Labels<double> classes(const std::vector<std::int64_t>& y) {
  return {from_vector<std::int64_t>(y, Shape{static_cast<std::int64_t>(y.size())}), {}};
}
TD randn_d(const Shape& s, std::uint64_t seed) {
  Generator g(seed);
  return randn<double>(s, g);
}
double sgn(double v) { return (v > 0) - (v < 0); }

// ---- geometry ---------------------------------------------------------------------------------

TEST(Projection, LinfClampsThenRespectsTheValidRange) {
  auto x = from_vector<double>({0.0, 0.5, 0.95, 0.2}, Shape{1, 4});
  auto d = from_vector<double>({-0.3, 0.05, 0.3, -0.1}, Shape{1, 4});
  project_(d, x, Budget{.norm = Norm::linf, .eps = 0.1, .lo = 0.0, .hi = 1.0});
  expect_close(d, {0.0, 0.05, 0.05, -0.1}, 1e-15);
}

TEST(Projection, L2ScalesOntoTheSphereOnlyWhenOutside) {
  auto x = zeros<double>({2, 2});
  auto d = from_vector<double>({3, 4, 0.3, 0.4}, Shape{2, 2});
  project_(d, x, Budget{.norm = Norm::l2, .eps = 1.0});
  expect_close(d, {0.6, 0.8, 0.3, 0.4}, 1e-15);
}

/// The L1 projection by bisection on the threshold θ: Σ max(|v| − θ, 0) = ε.
std::vector<double> l1_projection_by_bisection(const std::vector<double>& v, double eps) {
  double l1 = 0;
  for (double a : v) l1 += std::abs(a);
  if (l1 <= eps) return v;
  double lo = 0, hi = 0;
  for (double a : v) hi = std::max(hi, std::abs(a));
  for (int it = 0; it < 200; ++it) {
    const double mid = 0.5 * (lo + hi);
    double s = 0;
    for (double a : v) s += std::max(std::abs(a) - mid, 0.0);
    (s > eps ? lo : hi) = mid;
  }
  std::vector<double> out;
  for (double a : v) out.push_back(sgn(a) * std::max(std::abs(a) - 0.5 * (lo + hi), 0.0));
  return out;
}

TEST(Projection, L1MatchesAnIndependentBisection) {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    auto d = randn_d({1, 17}, seed);
    auto v = d.to_vector();
    const double eps = 0.5 + 0.1 * static_cast<double>(seed % 7);
    project_(d, zeros<double>({1, 17}), Budget{.norm = Norm::l1, .eps = eps});
    expect_close(d, l1_projection_by_bisection(v, eps), 1e-9);
    EXPECT_NEAR(geometry::norms(d, Norm::l1)[0],
                std::min(eps, geometry::norms(from_vector<double>(v, Shape{1, 17}), Norm::l1)[0]), 1e-12);
  }
}

TEST(Projection, NeverLeavesTheBallOrTheRange) {
  Generator g(3);
  for (Norm n : {Norm::linf, Norm::l2, Norm::l1})
    for (int trial = 0; trial < 30; ++trial) {
      auto x = rand<double>({3, 10}, g, 0.0, 1.0);
      auto d = randn<double>({3, 10}, g) * 2.0;
      const Budget b{.norm = n, .eps = 0.3, .lo = 0.0, .hi = 1.0};
      project_(d, x, b);
      for (double v : geometry::norms(d, n)) EXPECT_LE(v, 0.3 * (1 + 1e-12)) << norm_name(n);
      auto xv = (x + d).to_vector();
      for (double v : xv) {
        EXPECT_GE(v, 0.0);
        EXPECT_LE(v, 1.0);
      }
    }
}

TEST(Projection, ActiveMaskLeavesOtherExamplesAlone) {
  auto d = from_vector<double>({5, -5, 5, -5}, Shape{2, 2});
  std::vector<char> active{0, 1};
  project_(d, zeros<double>({2, 2}), Budget{.norm = Norm::linf, .eps = 1}, &active);
  expect_close(d, {5, -5, 1, -1}, 0);
  expect_error([&] { project_(d, zeros<double>({2, 3}), Budget{}); }, {"project_", "(2,3)"});
}

TEST(Ascend, SteepestAscentDirectionPerNorm) {
  auto g = from_vector<double>({3, -4, 0, 0, 0, 0}, Shape{2, 3});
  auto d = zeros<double>({2, 3});
  ascend_(d, g, Budget{.norm = Norm::linf}, 0.1);
  expect_close(d, {0.1, -0.1, 0, 0, 0, 0}, 1e-15);  // sign(0) = 0; a zero gradient does not move
  d = zeros<double>({2, 3});
  ascend_(d, g, Budget{.norm = Norm::l2}, 0.5);
  expect_close(d, {0.3, -0.4, 0, 0, 0, 0}, 1e-15);
  d = zeros<double>({1, 4});
  ascend_(d, from_vector<double>({0.1, -2, 0.5, 1}, Shape{1, 4}), Budget{.norm = Norm::l1, .l1_sparsity = 0.5}, 1.0);
  expect_close(d, {0, -0.5, 0, 0.5}, 1e-15);  // the top half of |g|: sign, unit L1 norm
}

TEST(RandomStart, InsideTheBallAndTheRangeAndSeeded) {
  auto x = full<double>({4, 50}, 0.05);
  for (Norm n : {Norm::linf, Norm::l2, Norm::l1}) {
    const Budget b{.norm = n, .eps = 0.2, .lo = 0.0, .hi = 1.0};
    auto d1 = zeros<double>({4, 50}), d2 = zeros<double>({4, 50});
    Generator g1(9), g2(9);
    random_start_(d1, x, b, g1);
    random_start_(d2, x, b, g2);
    EXPECT_EQ(d1.to_vector(), d2.to_vector()) << "same seed, same start";
    for (double v : geometry::norms(d1, n)) {
      EXPECT_LE(v, 0.2 * (1 + 1e-12));
      EXPECT_GT(v, 0.0);
    }
    for (double v : (x + d1).to_vector()) EXPECT_GE(v, 0.0);
  }
}

TEST(Budget, RejectsNonsense) {
  expect_error([] { ThreatModel::audio_only({.eps = -1}).check("t"); }, {"audio budget", "eps"});
  expect_error([] { ThreatModel::video_only({.eps = 1, .lo = 1, .hi = 0}).check("t"); }, {"video budget", "empty"});
  expect_error([] { ThreatModel{}.check("t"); }, {"attacks no modality"});
  EXPECT_EQ(ThreatModel::joint({.eps = 0.1}, {.norm = Norm::l2, .eps = 2}).str(),
            "audio Linf eps=0.1 + video L2 eps=2");
  const Budget b{.eps = 0.1, .step = 0.01};
  EXPECT_DOUBLE_EQ(b.with_eps(0.2).step, 0.02);
}

// ---- losses -----------------------------------------------------------------------------------

TEST(Losses, MarginAndDlrValuesAndGradients) {
  auto z = from_vector<double>({2.0, 1.0, 0.5, -1.0, 0.0, 3.0, 1.0, 2.0}, Shape{2, 4});
  auto y = classes({0, 1});
  // Example 0 (label 0): best other 1; example 1 (label 1, logit 3): best other 2.
  expect_close(margin_loss(z, y), {1.0 - 2.0, 2.0 - 3.0}, 1e-15);
  // DLR, example 0: sorted 2, 1, 0.5, −1 → −(2 − 1)/(2 − 0.5); example 1: sorted 3, 2, 1, 0 → −(3 − 2)/(3 − 1).
  expect_close(dlr_loss(z, y), {-1.0 / 1.5, -1.0 / 2.0}, 1e-12);
  // Invariant to shifting and (positive) scaling of the logits.
  expect_close(dlr_loss(z * 3.0 + 7.0, y), dlr_loss(z, y).to_vector(), 1e-12);
  auto zl = leaf({3, 5}, 4);
  auto yl = classes({0, 3, 4});
  expect_gradcheck([&](const std::vector<TD>& in) { return dlr_loss(in[0], yl); }, {zl});
  expect_gradcheck([&](const std::vector<TD>& in) { return margin_loss(in[0], yl); }, {zl});
  auto tl = from_vector<std::int64_t>({1, 1, 2}, Shape{3});
  expect_gradcheck([&](const std::vector<TD>& in) { return dlr_targeted_loss(in[0], yl.classes, tl); }, {zl});
  expect_error([&] { dlr_loss(randn_d({2, 2}, 1), classes({0, 1})); }, {"dlr_loss", "3 classes"});
  expect_error([&] { margin_loss(z, classes({0, 7})); }, {"margin_loss", "label 7", "outside [0, 4)"});
}

TEST(Losses, SuccessTests) {
  auto z = from_vector<double>({2.0, 1.0, 0.0, 3.0}, Shape{2, 2});
  EXPECT_EQ(successes(z, classes({0, 0}), false), (std::vector<char>{0, 1}));
  EXPECT_EQ(successes(z, classes({0, 0}), true), (std::vector<char>{1, 0}));
  Labels<double> mh{{}, from_vector<double>({1, 1, 0, 1}, Shape{2, 2})};
  // sigmoid ≥ 0.5 ⇔ logit ≥ 0: both examples predict {0, 1}; the labels are {0, 1} and {1}.
  EXPECT_EQ(successes(z, mh, false), (std::vector<char>{0, 1}));
  EXPECT_EQ(successes(z, mh, true), (std::vector<char>{1, 0}));
}

// ---- the PGD family on linear models ----------------------------------------------------------

/// Binary linear model with w_a = A1 − A0 = (1, −2, 0.5), w_v = V1 − V0 = (−1, 3).
std::unique_ptr<Linear> binary_model() {
  return linear_model(2, {0.5, 0.0, 0.0, 1.5, -2.0, 0.5}, {0.1, -0.1}, {0.5, 0.0, -0.5, 3.0});
}

TEST(Fgsm, ReachesTheLinfOptimumOfALinearModel) {
  auto m = binary_model();
  m->eval();
  const std::vector<double> wa{1, -2, 0.5}, wv{-1, 3};
  AVInput<double> x{randn_d({4, 3}, 11), randn_d({4, 2}, 12)};
  auto y = classes({0, 1, 0, 1});
  const Budget ba{.eps = 0.1}, bv{.eps = 0.2};
  for (const auto& tm : {ThreatModel::audio_only(ba), ThreatModel::video_only(bv), ThreatModel::joint(ba, bv)}) {
    auto r = fgsm<double>().run(*m, x, y, tm);
    for (std::int64_t b = 0; b < 4; ++b) {
      // CE grows as the other class gains: move along +w for label 0 and −w for label 1.
      const double s = y.classes.to_vector()[static_cast<std::size_t>(b)] == 0 ? 1.0 : -1.0;
      if (tm.audio) {
        auto d = r.delta.audio.to_vector();
        for (int i = 0; i < 3; ++i)
          EXPECT_DOUBLE_EQ(d[static_cast<std::size_t>(b * 3 + i)], 0.1 * s * sgn(wa[i])) << tm.str();
      } else {
        EXPECT_FALSE(r.delta.audio.defined());
      }
      if (tm.video) {
        auto d = r.delta.video.to_vector();
        for (int i = 0; i < 2; ++i)
          EXPECT_DOUBLE_EQ(d[static_cast<std::size_t>(b * 2 + i)], 0.2 * s * sgn(wv[i])) << tm.str();
      }
    }
    EXPECT_EQ(r.forward_passes, 2);
    EXPECT_EQ(r.backward_passes, 1);
  }
}

TEST(Pgd, ReachesTheL2OptimumOfALinearModel) {
  auto m = binary_model();
  AVInput<double> x{randn_d({3, 3}, 13), randn_d({3, 2}, 14)};
  auto y = classes({1, 0, 1});
  const auto tm = ThreatModel::audio_only({.norm = Norm::l2, .eps = 0.5, .step = 0.2});
  const double nw = std::sqrt(1 + 4 + 0.25);
  const std::vector<double> wa{1, -2, 0.5};
  // From δ = 0 every step is along ±w/‖w‖: the optimum ε·(±w)/‖w‖ exactly, once the ball's edge is hit.
  auto d = Pgd<double>({.steps = 8, .random_start = false}).run(*m, x, y, tm).delta.audio.to_vector();
  for (int b = 0; b < 3; ++b) {
    const double s = b == 1 ? 1.0 : -1.0;
    for (int i = 0; i < 3; ++i) EXPECT_NEAR(d[static_cast<std::size_t>(b * 3 + i)], 0.5 * s * wa[i] / nw, 1e-12);
  }
  // From a random start, projection shrinks the part orthogonal to w each step: nearly optimal.
  auto dr = Pgd<double>({.steps = 8, .random_start = true, .seed = 4}).run(*m, x, y, tm).delta.audio.to_vector();
  for (int b = 0; b < 3; ++b) {
    const double s = b == 1 ? 1.0 : -1.0;
    double along = 0;
    for (int i = 0; i < 3; ++i) along += s * wa[i] / nw * dr[static_cast<std::size_t>(b * 3 + i)];
    EXPECT_GT(along, 0.97 * 0.5);
  }
}

TEST(Pgd, TargetedReachesTheTarget) {
  // Three classes, audio only: logits = A·x_a; class 2 is far but reachable within ε.
  auto m = linear_model(3, {1, 0, 0, 1, -1, -1}, {0, 0, 0}, {0, 0, 0});
  AVInput<double> x{from_vector<double>({1.0, 0.0, 0.8, 0.1}, Shape{2, 2}), zeros<double>({2, 1})};
  auto targets = classes({2, 2});
  Pgd<double> pgd({.steps = 20, .random_start = false}, Objective<double>::of(LossKind::cross_entropy, true));
  auto r = pgd.run(*m, x, targets, ThreatModel::audio_only({.eps = 1.0, .step = 0.1}));
  EXPECT_EQ(r.success, (std::vector<char>{1, 1}));
  auto pred = argmax(r.logits, 1).to_vector();
  EXPECT_EQ(pred, (std::vector<std::int64_t>{2, 2}));
  EXPECT_EQ(pgd.name(), "PGD-20(ce, targeted)");
}

/// A small nonlinear model for the statistical checks: tanh MLP per branch, late fusion.
template <Floating T> class TanhMlp : public nn::UnaryModule<T> {
 public:
  TanhMlp(std::int64_t in, std::int64_t out, Generator& gen) : fc(in, out, true, gen) {
    this->register_module("fc", fc);
  }
  Tensor<T> forward(const Tensor<T>& x) override { return tanh(fc(x)) * 3.0; }
  std::int64_t latent_dim() const { return fc.out_features(); }
  nn::Linear<T> fc;
};
using Mlp = AVClassifier<TanhMlp<double>, TanhMlp<double>, LateFusion<double>, ClassifierHead<double>>;
std::unique_ptr<Mlp> mlp(Generator& gen) {
  return std::make_unique<Mlp>(
      std::make_unique<TanhMlp<double>>(6, 8, gen), std::make_unique<TanhMlp<double>>(5, 8, gen),
      std::make_unique<LateFusion<double>>(LateFusionOptions{.audio_dim = 8, .video_dim = 8, .dim = 8}, gen),
      std::make_unique<ClassifierHead<double>>(ClassifierHeadOptions{.in_dim = 8, .num_classes = 4}, gen));
}

TEST(Pgd, RestartsKeepTheWorstCaseAndEarlyStopSavesSteps) {
  Generator gen(20);
  auto m = mlp(gen);
  AVInput<double> x{rand<double>({16, 6}, gen), rand<double>({16, 5}, gen)};
  auto y = classes({0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3});
  const auto tm =
      ThreatModel::joint({.eps = 0.05, .step = 0.02, .lo = 0, .hi = 1}, {.norm = Norm::l2, .eps = 0.1, .step = 0.04});
  auto one = Pgd<double>({.steps = 5, .restarts = 1, .seed = 7}).run(*m, x, y, tm);
  auto three = Pgd<double>({.steps = 5, .restarts = 3, .seed = 7}).run(*m, x, y, tm);
  for (std::size_t b = 0; b < 16; ++b) {
    EXPECT_GE(three.success[b], one.success[b]);
    if (three.success[b] == one.success[b]) {
      EXPECT_GE(three.value[b], one.value[b] - 1e-12);
    }
  }
  EXPECT_EQ(three.forward_passes, 3 * 6);
  auto big = ThreatModel::joint({.eps = 0.5, .step = 0.25, .lo = 0, .hi = 1}, {.norm = Norm::l2, .eps = 2, .step = 1});
  auto full = Pgd<double>({.steps = 10, .seed = 1}).run(*m, x, y, big);
  auto early = Pgd<double>({.steps = 10, .early_stop = true, .seed = 1}).run(*m, x, y, big);
  int saved = 0;
  for (std::size_t b = 0; b < 16; ++b) {
    EXPECT_LE(early.steps[b], full.steps[b]);
    saved += full.steps[b] - early.steps[b];
    if (early.steps[b] < 10) {
      EXPECT_TRUE(early.success[b]) << "stopped early only after succeeding";
    }
  }
  EXPECT_GT(saved, 0);
}

TEST(Pgd, EveryAttackStaysInsideItsBudgets) {
  Generator gen(21);
  auto m = mlp(gen);
  AVInput<double> x{rand<double>({8, 6}, gen), rand<double>({8, 5}, gen)};
  auto y = classes({0, 1, 2, 3, 3, 2, 1, 0});
  for (Norm na : {Norm::linf, Norm::l2, Norm::l1}) {
    const Budget ba{.norm = na, .eps = 0.3, .step = 0.1, .lo = 0, .hi = 1, .l1_sparsity = 0.3};
    const Budget bv{.norm = Norm::linf, .eps = 0.1, .step = 0.03, .lo = 0, .hi = 1};
    for (const auto& tm : {ThreatModel::audio_only(ba), ThreatModel::video_only(bv), ThreatModel::joint(ba, bv)}) {
      std::vector<Pgd<double>> attacks{fgsm<double>(),
                                       fgsm<double>(Objective<double>::of(LossKind::cross_entropy), true),
                                       Pgd<double>({.steps = 7, .restarts = 2}),
                                       mi_fgsm<double>(5),
                                       Pgd<double>({.steps = 4}, Objective<double>::of(LossKind::dlr)),
                                       Pgd<double>({.steps = 4}, Objective<double>::of(LossKind::margin))};
      for (const auto& a : attacks) {
        auto r = a.run(*m, x, y, tm);
        for (Modality mod : {Modality::audio, Modality::video}) {
          if (!tm.attacks(mod)) continue;
          const auto& b = tm.budget(mod);
          for (double v : geometry::norms(r.delta.at(mod), b.norm))
            EXPECT_LE(v, b.eps * (1 + 1e-12)) << a.name() << " " << tm.str();
          for (double v : r.adversarial(x).audio.to_vector()) {
            EXPECT_GE(v, 0.0);
            EXPECT_LE(v, 1.0);
          }
        }
      }
    }
  }
}

TEST(Pgd, GradientsReachTheInputsOnly) {
  Generator gen(22);
  auto m = mlp(gen);
  AVInput<double> x{rand<double>({4, 6}, gen), rand<double>({4, 5}, gen)};
  Pgd<double>({.steps = 2}).run(*m, x, classes({0, 1, 2, 3}), ThreatModel::audio_only({.eps = 0.1, .step = 0.05}));
  for (auto& [n, p] : m->named_parameters()) {
    EXPECT_FALSE(p.grad().defined()) << n << " received a gradient";
    EXPECT_TRUE(p.requires_grad()) << n << " was left frozen";
  }
}

TEST(Pgd, NoSteadyStateAllocation) {
  // After one warm-up attack, a longer one is served entirely from the allocator's cache:
  // per-step buffers are the same sizes every step and are recycled.
  Generator gen(23);
  auto m = mlp(gen);
  AVInput<double> x{rand<double>({8, 6}, gen), rand<double>({8, 5}, gen)};
  auto y = classes({0, 1, 2, 3, 0, 1, 2, 3});
  const auto tm = ThreatModel::joint({.eps = 0.1, .step = 0.02}, {.norm = Norm::l2, .eps = 0.2, .step = 0.05});
  Pgd<double>({.steps = 3}).run(*m, x, y, tm);
  const auto before = cpu_memory_stats().system_allocations;
  Pgd<double>({.steps = 30}).run(*m, x, y, tm);
  EXPECT_EQ(cpu_memory_stats().system_allocations, before);
}

/// An encoder that cuts its input off the graph: the attack sees zero gradients.
template <Floating T> class Detached : public nn::UnaryModule<T> {
 public:
  explicit Detached(std::int64_t dim) : dim_(dim) {}
  Tensor<T> forward(const Tensor<T>& x) override { return x.detach(); }
  std::int64_t latent_dim() const { return dim_; }

 private:
  std::int64_t dim_;
};

TEST(Pgd, AModelWithoutInputGradientsIsReportedNotFatal) {
  Generator gen(24);
  AVClassifier m(std::make_unique<Detached<double>>(6), std::make_unique<Detached<double>>(5),
                 std::make_unique<LateFusion<double>>(LateFusionOptions{.audio_dim = 6, .video_dim = 5, .dim = 4}, gen),
                 std::make_unique<ClassifierHead<double>>(ClassifierHeadOptions{.in_dim = 4, .num_classes = 4}, gen));
  AVInput<double> x{rand<double>({3, 6}, gen), rand<double>({3, 5}, gen)};
  auto r = Pgd<double>({.steps = 3, .random_start = false})
               .run(m, x, classes({0, 1, 2}), ThreatModel::audio_only({.eps = 0.1, .step = 0.05}));
  EXPECT_EQ(r.bad_grad, (std::vector<char>{1, 1, 1}));
  EXPECT_EQ(geometry::norms(r.delta.audio, Norm::linf), (std::vector<double>{0, 0, 0}))
      << "a zero gradient does not move";
}

TEST(Pgd, RejectsBadInputs) {
  auto m = binary_model();
  AVInput<double> x{from_vector<double>({0.5, 1.5, 0.1}, Shape{1, 3}), randn_d({1, 2}, 1)};
  auto y = classes({0});
  Pgd<double> pgd;
  expect_error([&] { pgd.run(*m, x, y, ThreatModel::audio_only({.eps = 0.1, .step = 0.01, .lo = 0, .hi = 1})); },
               {"PGD", "audio input has 1.5", "flat index 1", "[0, 1]"});
  expect_error(
      [&] {
        pgd.run(*m, {x.audio, {}}, y, ThreatModel::video_only({.eps = 0.1, .step = 0.01}));
      },
      {"attacks the video input, which is missing"});
  expect_error(
      [&] {
        pgd.run(*m, x, classes({0, 1}), ThreatModel::audio_only({.eps = 0.1, .step = 0.01}));
      },
      {"class labels must be (1)"});
  expect_error([&] { pgd.run(*m, x, y, ThreatModel::audio_only({.eps = 0.1})); }, {"step is 0"});
  auto bad = x;
  bad.video = from_vector<double>({NAN, 0.0}, Shape{1, 2});
  expect_error([&] { pgd.run(*m, bad, y, ThreatModel::audio_only({.eps = 0.1, .step = 0.01})); }, {"video input"});
  expect_error([] { Pgd<double>({.steps = 0}); }, {"Pgd", "steps"});
}

TEST(MiFgsm, FollowsTheConstantGradientOfALinearModel) {
  auto m = binary_model();
  AVInput<double> x{randn_d({2, 3}, 30), randn_d({2, 2}, 31)};
  auto r = mi_fgsm<double>(4).run(*m, x, classes({0, 1}), ThreatModel::audio_only({.eps = 0.1, .step = 0.03}));
  auto d = r.delta.audio.to_vector();
  const std::vector<double> wa{1, -2, 0.5};
  for (int b = 0; b < 2; ++b)
    for (int i = 0; i < 3; ++i)
      EXPECT_DOUBLE_EQ(d[static_cast<std::size_t>(b * 3 + i)], 0.1 * (b == 0 ? 1 : -1) * sgn(wa[i]));
}

// ---- Theorem 1 of the study --------------------------------------------------------------------

TEST(Theorem1, AnAudioAttackTheAudioModelSurvivesBreaksLateFusion) {
  // Binary, true class 0 (score s = z1 − z0 < 0 is correct). Audio branch: s_a = w·x_a with
  // w·x_a = −3 (the audio model alone is correct with margin 3); video branch: s_v = +1 (the
  // video alone is wrong). Fused: s = −3 + 1 = −2, correct. Theorem 1: an audio perturbation
  // reaching s_a = −1/2 — inside the audio model's own radius 3/‖w‖ — makes s = +1/2: the fused
  // model is wrong while the audio model still is right.
  const std::vector<double> A{0, 0, 1, 2}, V{0, 1};  // w = A1 − A0 = (1, 2), v = (1)
  auto fused = linear_model(2, A, {0, 0}, V);
  auto audio_alone = linear_model(2, A, {0, 0}, {0, 0});  // video weight 0: the audio model alone
  const double nw = std::sqrt(5.0);
  AVInput<double> x{from_vector<double>({-1.0, -1.0}, Shape{1, 2}), from_vector<double>({1.0}, Shape{1, 1})};
  auto y = classes({0});
  {
    auto z = fused->forward(x).logits.to_vector();
    ASSERT_LT(z[1] - z[0], 0) << "the fused model is right on the clean input";
    auto za = audio_alone->forward(x).logits.to_vector();
    ASSERT_NEAR(za[1] - za[0], -3.0, 1e-12);
  }
  const double eps = 2.75 / nw;  // between (3 − 1/2)/‖w‖ and 3/‖w‖
  const auto tm = ThreatModel::audio_only({.norm = Norm::l2, .eps = eps, .step = eps / 4});
  Pgd<double> pgd({.steps = 10, .random_start = false});
  EXPECT_FALSE(pgd.run(*audio_alone, x, y, tm).success[0]) << "the audio model is robust at this radius";
  auto r = pgd.run(*fused, x, y, tm);
  EXPECT_TRUE(r.success[0]) << "the same-size audio-only attack breaks the late-fusion model";
  EXPECT_LE(geometry::norms(r.delta.audio, Norm::l2)[0], eps * (1 + 1e-12));
}

}  // namespace
