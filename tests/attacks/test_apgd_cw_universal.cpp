// APGD, Carlini–Wagner L2 and universal PGD: budgets and ranges respected per example, the closed-form
// optima of linear models reached, the APGD checkpoint schedule, and each attack's own conventions.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "avgrad/attacks/apgd.hpp"
#include "avgrad/attacks/cw.hpp"
#include "avgrad/attacks/pgd.hpp"
#include "avgrad/attacks/universal.hpp"
#include "avgrad/models/classifier.hpp"
#include "avgrad/models/fusion.hpp"
#include "avgrad/models/heads.hpp"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::testing;
using namespace avgrad::models;
using namespace avgrad::attacks;

namespace {

constexpr double inf = std::numeric_limits<double>::infinity();
constexpr std::int64_t Da = 5, Dv = 4;  // audio and video widths of the linear models

// A linear model: passthrough encoders, late fusion (two linear maps), a linear head.
using Linear =
    AVClassifier<InputPassthrough<double>, InputPassthrough<double>, LateFusion<double>, ClassifierHead<double>>;

std::unique_ptr<Linear> make_linear(std::int64_t classes, std::uint64_t seed) {
  Generator gen(seed);
  return std::make_unique<Linear>(
      std::make_unique<InputPassthrough<double>>(Da), std::make_unique<InputPassthrough<double>>(Dv),
      std::make_unique<LateFusion<double>>(LateFusionOptions{.audio_dim = Da, .video_dim = Dv, .dim = 3}, gen),
      std::make_unique<ClassifierHead<double>>(ClassifierHeadOptions{.in_dim = 3, .num_classes = classes}, gen));
}

/// A two-layer per-frame MLP encoder: (B, L, in) → (B, L, out), nonlinear.
class FrameEncoder : public nn::UnaryModule<double> {
 public:
  FrameEncoder(std::int64_t in, std::int64_t out, Generator& gen) : l1(in, 8, true, gen), l2(8, out, true, gen) {
    register_module("l1", l1);
    register_module("l2", l2);
  }
  TD forward(const TD& x) override { return tanh(l2(relu(l1(x)))); }
  std::int64_t latent_dim() const { return l2.out_features(); }
  nn::Linear<double> l1, l2;
};

using Mlp = AVClassifier<FrameEncoder, FrameEncoder, LateFusion<double>, ClassifierHead<double>>;

/// Weights scaled by 3 and the fusion's and head's biases zeroed: at PyTorch's default initialisation
/// the biases dominate and every input gets the same class.
std::unique_ptr<Mlp> make_mlp(std::int64_t classes, std::uint64_t seed) {
  Generator gen(seed);
  auto m = std::make_unique<Mlp>(
      std::make_unique<FrameEncoder>(Da, 6, gen), std::make_unique<FrameEncoder>(Dv, 6, gen),
      std::make_unique<LateFusion<double>>(LateFusionOptions{.audio_dim = 6, .video_dim = 6, .dim = 6}, gen),
      std::make_unique<ClassifierHead<double>>(ClassifierHeadOptions{.in_dim = 6, .num_classes = classes}, gen));
  for (auto& [name, p] : m->named_parameters()) {
    const bool weight = name.ends_with("weight"), encoder = name.starts_with("audio") || name.starts_with("video");
    const double k = weight ? 3.0 : encoder ? 1.0 : 0.0;
    for (std::int64_t i = 0; i < p.numel(); ++i) p.data()[i] *= k;
  }
  return m;
}

Labels<double> labels(const std::vector<std::int64_t>& c) { return {from_vector<std::int64_t>(c), {}}; }

template <class M> std::vector<std::int64_t> predict(M& model, const AVInput<double>& x) {
  NoGradGuard no_grad;
  const auto z = model.forward(x).logits.contiguous();
  const std::int64_t B = z.size(0), K = z.size(1);
  std::vector<std::int64_t> out;
  for (std::int64_t b = 0; b < B; ++b)
    out.push_back(std::max_element(z.data() + b * K, z.data() + (b + 1) * K) - (z.data() + b * K));
  return out;
}

template <class M> double accuracy(M& model, const AVInput<double>& x, const std::vector<std::int64_t>& y) {
  const auto p = predict(model, x);
  double ok = 0;
  for (std::size_t b = 0; b < y.size(); ++b) ok += p[b] == y[b];
  return ok / static_cast<double>(y.size());
}

/// A binary linear model's margin d(x) = z_1 − z_0 = w_a·x_a + w_v·x_v + c, read off by probing.
struct Affine {
  std::vector<double> wa, wv;
  double c = 0;
  double operator()(const std::vector<double>& xa, const std::vector<double>& xv) const {
    double d = c;
    for (std::size_t i = 0; i < wa.size(); ++i) d += wa[i] * xa[i];
    for (std::size_t i = 0; i < wv.size(); ++i) d += wv[i] * xv[i];
    return d;
  }
};

Affine affine_margin(Linear& model) {
  const std::int64_t n = 1 + Da + Dv;
  auto xa = zeros<double>({n, Da}), xv = zeros<double>({n, Dv});
  for (std::int64_t i = 0; i < Da; ++i) xa.data()[(1 + i) * Da + i] = 1;
  for (std::int64_t i = 0; i < Dv; ++i) xv.data()[(1 + Da + i) * Dv + i] = 1;
  NoGradGuard no_grad;
  const auto z = model.forward({xa, xv}).logits.contiguous();
  auto d = [&](std::int64_t b) { return z.data()[b * 2 + 1] - z.data()[b * 2]; };
  Affine a;
  a.c = d(0);
  for (std::int64_t i = 0; i < Da; ++i) a.wa.push_back(d(1 + i) - a.c);
  for (std::int64_t i = 0; i < Dv; ++i) a.wv.push_back(d(1 + Da + i) - a.c);
  return a;
}

std::vector<double> row(const TD& t, std::int64_t b) {
  const auto c = t.contiguous();
  const auto n = c.numel() / c.size(0);
  return {c.data() + b * n, c.data() + (b + 1) * n};
}
double norm2(const std::vector<double>& v) {
  double s = 0;
  for (double e : v) s += e * e;
  return std::sqrt(s);
}
int sgn(double v) { return (v > 0) - (v < 0); }

/// Every example's δ of every attacked modality lies in its ball (unless `ball` is false) and x + δ in
/// the valid range; the unattacked modality has no δ.
void expect_in_budget(const AttackResult<double>& r, const AVInput<double>& x, const ThreatModel& tm,
                      bool ball = true) {
  for (Modality m : {Modality::audio, Modality::video}) {
    const auto& d = r.delta.at(m);
    if (!tm.attacks(m)) {
      EXPECT_FALSE(d.defined()) << modality_name(m) << " is not attacked";
      continue;
    }
    ASSERT_TRUE(d.defined()) << modality_name(m);
    const auto& xm = m == Modality::audio ? x.audio : x.video;
    ASSERT_EQ(d.shape(), xm.shape());
    const Budget& bud = tm.budget(m);
    if (ball) {
      for (double n : geometry::norms(d, bud.norm)) EXPECT_LE(n, bud.eps * (1 + 1e-12)) << modality_name(m);
    }
    const auto dv = d.to_vector(), xv = xm.to_vector();
    for (std::size_t i = 0; i < dv.size(); ++i) {
      EXPECT_GE(xv[i] + dv[i], bud.lo - 1e-12) << modality_name(m) << " element " << i;
      EXPECT_LE(xv[i] + dv[i], bud.hi + 1e-12) << modality_name(m) << " element " << i;
    }
  }
}

std::vector<ThreatModel> scopes(const Budget& a, const Budget& v) {
  return {ThreatModel::audio_only(a), ThreatModel::video_only(v), ThreatModel::joint(a, v)};
}

/// Inputs in [−1, 1] for the nonlinear model: audio (B, 3, Da), video (B, 2, Dv).
AVInput<double> unit_inputs(std::int64_t B, std::uint64_t seed) {
  Generator g(seed);
  return {rand<double>({B, 3, Da}, g, -1.0, 1.0), rand<double>({B, 2, Dv}, g, -1.0, 1.0)};
}

/// Inputs for the linear models: audio (B, Da), video (B, Dv), N(0, σ²).
AVInput<double> flat_inputs(std::int64_t B, std::uint64_t seed, double sigma = 1.0) {
  Generator g(seed);
  return {randn<double>({B, Da}, g) * sigma, randn<double>({B, Dv}, g) * sigma};
}

// ---- APGD ---------------------------------------------------------------------------------

TEST(Apgd, CheckpointScheduleFollowsTheFormula) {
  // p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06): 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99.
  EXPECT_EQ(apgd_checkpoints(100), (std::vector<int>{0, 22, 41, 57, 70, 80, 87, 93, 99}));
  for (int n : {7, 10, 37, 100, 250, 1000}) {
    // The same recursion in floating point, rounded to hundredths before the ceiling.
    std::vector<int> expected{0};
    double prev = 0, cur = 0.22;
    while (cur <= 1 + 1e-9) {
      const int w = static_cast<int>(std::ceil(std::round(cur * 100) * n / 100 - 1e-9));
      if (w > expected.back()) expected.push_back(w);
      const double next = cur + std::max(cur - prev - 0.03, 0.06);
      prev = cur;
      cur = next;
    }
    EXPECT_EQ(apgd_checkpoints(n), expected) << "N = " << n;
  }
  EXPECT_EQ(apgd_checkpoints(1), (std::vector<int>{0, 1})) << "repeated checkpoints are merged";
  expect_error([] { apgd_checkpoints(0); }, {"apgd_checkpoints", ">= 1"});
}

TEST(Apgd, ReachesTheClosedFormLinfOptimumOfALinearModel) {
  auto model = make_linear(2, 1);
  const auto f = affine_margin(*model);
  const auto x = flat_inputs(6, 2);
  const auto y = predict(*model, x);
  const Budget ba{.norm = Norm::linf, .eps = 0.05}, bv{.norm = Norm::linf, .eps = 0.08};
  for (const auto& tm : scopes(ba, bv)) {
    const auto r = Apgd<double>(ApgdOptions{.steps = 20, .seed = 3}).run(*model, x, labels(y), tm);
    expect_in_budget(r, x, tm);
    for (std::int64_t b = 0; b < 6; ++b) {
      const double s = y[static_cast<std::size_t>(b)] == 1 ? 1.0 : -1.0;  // the label as ±1
      for (Modality m : {Modality::audio, Modality::video}) {
        if (!tm.attacks(m)) continue;
        const auto& w = m == Modality::audio ? f.wa : f.wv;
        const auto d = row(r.delta.at(m), b);
        for (std::size_t i = 0; i < w.size(); ++i)
          EXPECT_NEAR(d[i], -tm.budget(m).eps * sgn(w[i]) * s, 1e-12) << tm.scope() << " example " << b;
      }
    }
    EXPECT_EQ(r.forward_passes, 21);
    EXPECT_EQ(r.backward_passes, 20);
    EXPECT_EQ(r.steps, std::vector<int>(6, 20));
  }
}

TEST(Apgd, ReachesTheClosedFormL2OptimumOfALinearModel) {
  auto model = make_linear(2, 4);
  const auto f = affine_margin(*model);
  const auto x = flat_inputs(6, 5);
  const auto y = predict(*model, x);
  const Budget ba{.norm = Norm::l2, .eps = 0.3}, bv{.norm = Norm::l2, .eps = 0.2};
  for (const auto& tm : scopes(ba, bv)) {
    const auto r = Apgd<double>(ApgdOptions{.steps = 100, .seed = 6}).run(*model, x, labels(y), tm);
    expect_in_budget(r, x, tm);
    for (std::int64_t b = 0; b < 6; ++b) {
      const double s = y[static_cast<std::size_t>(b)] == 1 ? 1.0 : -1.0;
      for (Modality m : {Modality::audio, Modality::video}) {
        if (!tm.attacks(m)) continue;
        const auto& w = m == Modality::audio ? f.wa : f.wv;
        const auto d = row(r.delta.at(m), b);
        for (std::size_t i = 0; i < w.size(); ++i)
          EXPECT_NEAR(d[i], -tm.budget(m).eps * s * w[i] / norm2(w), 1e-6) << tm.scope() << " example " << b;
      }
    }
  }
}

TEST(Apgd, KeepsEveryExampleInItsBallsAndTheValidRange) {
  auto model = make_mlp(3, 7);
  const auto x = unit_inputs(8, 8);
  const auto y = labels(predict(*model, x));
  for (Norm norm : {Norm::linf, Norm::l2}) {
    const double ea = norm == Norm::linf ? 0.1 : 0.4, ev = norm == Norm::linf ? 0.15 : 0.3;
    const Budget ba{.norm = norm, .eps = ea, .lo = -1, .hi = 1}, bv{.norm = norm, .eps = ev, .lo = -1, .hi = 1};
    for (const auto& tm : scopes(ba, bv)) {
      for (auto obj : {Objective<double>::of(LossKind::cross_entropy), Objective<double>::of(LossKind::dlr)}) {
        const auto r = Apgd<double>(ApgdOptions{.steps = 25, .restarts = 2, .seed = 9}, obj).run(*model, x, y, tm);
        SCOPED_TRACE(tm.str() + " " + obj.name);
        expect_in_budget(r, x, tm);
        // The result describes its δ: logits and value are the model's on x + δ.
        NoGradGuard no_grad;
        const auto z = model->forward(r.adversarial(x)).logits;
        EXPECT_LT(amax(abs(z - r.logits)).item(), 1e-12);
        const auto v = values_of(obj(z, y));
        for (std::size_t b = 0; b < v.size(); ++b) EXPECT_NEAR(v[b], r.value[b], 1e-12);
        EXPECT_EQ(r.success, successes(z, y, false));
        EXPECT_EQ(r.forward_passes, 2 * 26);
      }
    }
  }
}

TEST(Apgd, CeIsAtLeastAsStrongAsPgd10OnANonlinearModel) {
  auto model = make_mlp(3, 10);
  const auto x = unit_inputs(32, 11);
  const auto yv = predict(*model, x);
  const auto y = labels(yv);
  for (double eps : {0.1, 0.2, 0.3}) {
    const Budget b{.norm = Norm::linf, .eps = eps, .step = eps / 4, .lo = -1, .hi = 1};
    const auto tm = ThreatModel::joint(b, b);
    const auto pgd = Pgd<double>(PgdOptions{.steps = 10, .seed = 12}).run(*model, x, y, tm);
    const auto apgd = Apgd<double>(ApgdOptions{.steps = 100, .seed = 12}).run(*model, x, y, tm);
    const double pgd_acc = 1 - pgd.success_rate(), apgd_acc = 1 - apgd.success_rate();
    EXPECT_LE(apgd_acc, pgd_acc) << "eps " << eps;
    EXPECT_LT(apgd_acc, 1.0) << "eps " << eps << ": the attack must break something to compare";
    EXPECT_GT(pgd_acc + apgd_acc, 0.0) << "eps " << eps << ": too large to compare";
    // Robust accuracy is the model's accuracy on the returned adversarial inputs.
    EXPECT_DOUBLE_EQ(accuracy(*model, apgd.adversarial(x), yv), apgd_acc);
  }
}

TEST(Apgd, DlrWorksWithSeveralClasses) {
  auto model = make_mlp(4, 13);
  const auto x = unit_inputs(16, 14);
  const auto yv = predict(*model, x);
  const auto y = labels(yv);
  const Budget b{.norm = Norm::linf, .eps = 0.3, .lo = -1, .hi = 1};
  const auto tm = ThreatModel::joint(b, b);
  const Apgd<double> dlr(ApgdOptions{.steps = 50, .seed = 15}, Objective<double>::of(LossKind::dlr));
  EXPECT_EQ(dlr.name(), "APGD-50(dlr)");
  const auto r = dlr.run(*model, x, y, tm);
  expect_in_budget(r, x, tm);
  EXPECT_GT(r.success_rate(), 0.5);
  for (std::size_t b = 0; b < r.value.size(); ++b)
    if (r.success[b]) {
      EXPECT_GT(r.value[b], 0.0) << "a successful DLR value is positive (true class not on top)";
    }
  // Targeted DLR: every example reaches the class after its own.
  std::vector<std::int64_t> targets;
  for (auto c : yv) targets.push_back((c + 1) % 4);
  const Apgd<double> targeted(ApgdOptions{.steps = 50, .seed = 16},
                              targeted_dlr_objective<double>(from_vector<std::int64_t>(yv)));
  const auto t = targeted.run(*model, x, labels(targets), ThreatModel::joint(b.with_eps(1.0), b.with_eps(1.0)));
  EXPECT_EQ(targeted.name(), "APGD-50(dlr-targeted, targeted)");
  EXPECT_GT(t.success_rate(), 0.5);
  const auto reached = predict(*model, t.adversarial(x));
  for (std::size_t b = 0; b < targets.size(); ++b) EXPECT_EQ(reached[b] == targets[b], t.success[b] != 0);
}

TEST(Apgd, RejectsWhatItDoesNotSupport) {
  auto model = make_linear(2, 17);
  const auto x = flat_inputs(2, 18);
  const auto y = labels({0, 1});
  expect_error([&] { Apgd<double>().run(*model, x, y, ThreatModel::audio_only({.norm = Norm::l1, .eps = 1})); },
               {"APGD-100", "audio", "L1"});
  expect_error([] { Apgd<double>(ApgdOptions{.rho = 1.5}); }, {"Apgd", "rho"});
  expect_error([] { Apgd<double>(ApgdOptions{.alpha = 0}); }, {"Apgd", "alpha"});
  expect_error([] { Apgd<double>(ApgdOptions{.steps = 0}); }, {"Apgd", "steps"});
}

// ---- Carlini–Wagner L2 ---------------------------------------------------------------------

TEST(CarliniWagner, FindsTheMinimalL2PerturbationOfALinearModel) {
  auto model = make_linear(2, 19);
  const auto f = affine_margin(*model);
  // Inputs placed at joint distances 0.3, 0.4, … from the decision boundary, on either side: Adam moves
  // x' by up to lr·(hi − lo)/2 per step, so much closer points would be resolved coarsely.
  auto x = flat_inputs(6, 20, 0.5);
  double wnorm = 0;
  for (double e : f.wa) wnorm += e * e;
  for (double e : f.wv) wnorm += e * e;
  wnorm = std::sqrt(wnorm);
  for (std::int64_t b = 0; b < 6; ++b) {
    const double d = f(row(x.audio, b), row(x.video, b));
    const double want = (b % 2 ? 1.0 : -1.0) * (0.3 + 0.1 * static_cast<double>(b)) * wnorm;
    const double k = (want - d) / (wnorm * wnorm);
    for (std::int64_t i = 0; i < Da; ++i) x.audio.data()[b * Da + i] += k * f.wa[static_cast<std::size_t>(i)];
    for (std::int64_t i = 0; i < Dv; ++i) x.video.data()[b * Dv + i] += k * f.wv[static_cast<std::size_t>(i)];
  }
  const auto yv = predict(*model, x);
  const Budget wide{.norm = Norm::l2, .eps = 0.5, .lo = -2, .hi = 2};
  for (const auto& tm : {ThreatModel::audio_only(wide), ThreatModel::joint(wide, wide)}) {
    SCOPED_TRACE(tm.scope());
    const auto r = CarliniWagnerL2<double>().run(*model, x, labels(yv), tm);
    expect_in_budget(r, x, tm, false);
    const auto norms = joint_l2_norms(r.delta);
    const auto adv = predict(*model, r.adversarial(x));
    for (std::int64_t b = 0; b < 6; ++b) {
      const auto i = static_cast<std::size_t>(b);
      // Distance to the hyperplane d = 0 in the attacked coordinates: |d(x)| / ‖w restricted to them‖.
      double w2 = 0;
      for (double e : f.wa) w2 += e * e;
      if (tm.attacks(Modality::video))
        for (double e : f.wv) w2 += e * e;
      const double dist = std::abs(f(row(x.audio, b), row(x.video, b))) / std::sqrt(w2);
      ASSERT_TRUE(r.success[i]) << "example " << b;
      EXPECT_NE(adv[i], yv[i]) << "example " << b << ": the adversarial example is misclassified";
      EXPECT_GE(norms[i], dist * (1 - 1e-9)) << "no perturbation shorter than the distance crosses";
      EXPECT_LE(norms[i], dist * 1.03) << "example " << b;
    }
    const auto inside = within_budget(r, tm);
    const auto counted = success_within_budget(r, tm);
    for (std::size_t b = 0; b < inside.size(); ++b) {
      bool ok = true;
      for (Modality m : {Modality::audio, Modality::video})
        if (tm.attacks(m)) ok = ok && geometry::norms(r.delta.at(m), Norm::l2)[b] <= wide.eps;
      EXPECT_EQ(inside[b] != 0, ok);
      EXPECT_EQ(counted[b] != 0, ok && r.success[b]);
    }
  }
}

TEST(CarliniWagner, TargetedReachesTheTargetInsideTheRange) {
  auto model = make_mlp(3, 21);
  const auto x = unit_inputs(6, 22);
  const auto yv = predict(*model, x);
  std::vector<std::int64_t> targets;
  for (auto c : yv) targets.push_back((c + 1) % 3);
  const Budget unit{.norm = Norm::l2, .eps = 1.0, .lo = -1, .hi = 1};
  for (const auto& tm : scopes(unit, unit)) {
    SCOPED_TRACE(tm.scope());
    const CarliniWagnerL2<double> cw(CarliniWagnerOptions{.binary_steps = 6, .steps = 60, .targeted = true});
    const auto r = cw.run(*model, x, labels(targets), tm);
    expect_in_budget(r, x, tm, false);
    const auto reached = predict(*model, r.adversarial(x));
    for (std::size_t b = 0; b < targets.size(); ++b) {
      if (r.success[b]) {
        EXPECT_EQ(reached[b], targets[b]);
        EXPECT_GE(r.value[b], 0.0);
      } else {
        EXPECT_EQ(amax(abs(r.delta.at(tm.attacks(Modality::audio) ? Modality::audio : Modality::video)
                               .select(0, static_cast<std::int64_t>(b))))
                      .item(),
                  0.0)
            << "a failed example keeps δ = 0";
      }
    }
    if (tm.scope() == "joint") {
      EXPECT_EQ(r.success_rate(), 1.0);
    }
  }
}

TEST(CarliniWagner, NeedsAFiniteRangeAndClassLabels) {
  auto model = make_linear(2, 23);
  const auto x = flat_inputs(2, 24);
  const Budget bounded{.norm = Norm::l2, .eps = 1, .lo = -10, .hi = 10}, open{.norm = Norm::l2, .eps = 1};
  expect_error(
      [&] {
        CarliniWagnerL2<double>().run(*model, x, labels({0, 1}), ThreatModel::joint(bounded, open));
      },
      {"CW-L2", "video", "must be finite"});
  Labels<double> multi{{}, zeros<double>({2, 2})};
  expect_error([&] { CarliniWagnerL2<double>().run(*model, x, multi, ThreatModel::audio_only(bounded)); },
               {"CW-L2", "multi-hot"});
  expect_error([] { CarliniWagnerL2<double>(CarliniWagnerOptions{.initial_c = 0}); }, {"CarliniWagnerL2", "initial_c"});
}

TEST(CarliniWagner, FlagsRowsWithNonFiniteGradients) {
  // The rows whose gradient has a NaN or ±Inf stop moving; every other row, zeros and huge values
  // included, is fine.
  auto g = zeros<double>({4, 2, 3});
  g.data()[1 * 6 + 4] = std::numeric_limits<double>::quiet_NaN();
  g.data()[2 * 6 + 0] = -std::numeric_limits<double>::infinity();
  g.data()[3 * 6 + 5] = 1e300;
  EXPECT_EQ(cw_detail::non_finite_rows(g), (std::vector<char>{0, 1, 1, 0}));
}

// ---- universal PGD -----------------------------------------------------------------------

using Batches = std::vector<std::pair<AVInput<double>, Labels<double>>>;

/// Batches of a linear binary model's inputs, all reflected to class 0 so that one direction (+w)
/// hurts every example.
Batches class0_batches(Linear& model, const Affine& f, int batches, std::int64_t B, std::uint64_t seed) {
  double w2 = 0;
  for (double e : f.wa) w2 += e * e;
  for (double e : f.wv) w2 += e * e;
  Batches out;
  for (int k = 0; k < batches; ++k) {
    auto x = flat_inputs(B, seed + static_cast<std::uint64_t>(k));
    for (std::int64_t b = 0; b < B; ++b) {
      const double d = f(row(x.audio, b), row(x.video, b));
      if (d <= 0) continue;
      for (std::int64_t i = 0; i < Da; ++i)
        x.audio.data()[b * Da + i] -= 2 * d * f.wa[static_cast<std::size_t>(i)] / w2;
      for (std::int64_t i = 0; i < Dv; ++i)
        x.video.data()[b * Dv + i] -= 2 * d * f.wv[static_cast<std::size_t>(i)] / w2;
    }
    out.emplace_back(x, labels(std::vector<std::int64_t>(static_cast<std::size_t>(B), 0)));
  }
  (void)model;
  return out;
}

TEST(UniversalPgd, ProjectedDeltaStaysInTheBallAndLowersAccuracy) {
  auto model = make_linear(2, 25);
  const auto f = affine_margin(*model);
  const auto data = class0_batches(*model, f, 3, 8, 26);
  const Budget b{.norm = Norm::linf, .eps = 0.6, .step = 0.2};
  const auto tm = ThreatModel::joint(b, b);
  const UniversalPgd<double> attack(UniversalPgdOptions{.passes = 5});
  EXPECT_EQ(attack.name(), "UniversalPGD-5(ce)");
  const auto u = attack.run(*model, data, tm);
  ASSERT_EQ(u.delta.audio.shape(), Shape({1, Da}));
  ASSERT_EQ(u.delta.video.shape(), Shape({1, Dv}));
  // The gradient's sign is that of w for every example: δ = ε·sign(w) exactly.
  const auto d = u.delta.audio.to_vector(), dv = u.delta.video.to_vector();
  for (std::int64_t i = 0; i < Da; ++i)
    EXPECT_NEAR(d[static_cast<std::size_t>(i)], b.eps * sgn(f.wa[static_cast<std::size_t>(i)]), 1e-12);
  for (std::int64_t i = 0; i < Dv; ++i)
    EXPECT_NEAR(dv[static_cast<std::size_t>(i)], b.eps * sgn(f.wv[static_cast<std::size_t>(i)]), 1e-12);
  EXPECT_EQ(u.updates, 15);
  EXPECT_EQ(u.forward_passes, 15);
  ASSERT_EQ(u.pass_objective.size(), 5u);
  EXPECT_GT(u.pass_objective.back(), u.pass_objective.front()) << "the mean loss grows over the passes";
  double clean = 0, attacked = 0;
  for (const auto& [x, y] : data) {
    const std::vector<std::int64_t> yv(static_cast<std::size_t>(x.batch()), 0);
    clean += accuracy(*model, x, yv) / 3;
    const auto r = u.attack_batch(*model, x, y);
    expect_in_budget(r, x, tm);
    attacked += (1 - r.success_rate()) / 3;
    EXPECT_DOUBLE_EQ(accuracy(*model, u.apply(x), yv), 1 - r.success_rate());
    EXPECT_EQ(r.steps, std::vector<int>(static_cast<std::size_t>(x.batch()), 15));
  }
  EXPECT_EQ(clean, 1.0);
  EXPECT_LT(attacked, 0.7);
  // Any forward range of pairs will do: a span over the same batches gives the same δ.
  const auto again = attack.run(*model, std::span<const Batches::value_type>(data), tm);
  EXPECT_EQ(again.delta.audio.to_vector(), d);
}

TEST(UniversalPgd, UnprojectedDeltaGrowsBeyondTheBallAsTheReferenceCodeDoes) {
  auto model = make_linear(2, 27);
  const auto f = affine_margin(*model);
  const auto data = class0_batches(*model, f, 2, 4, 28);
  const Budget b{.norm = Norm::linf, .eps = 0.1, .step = 0.05};
  const UniversalPgd<double> bugged(UniversalPgdOptions{.passes = 4, .project = false});
  EXPECT_EQ(bugged.name(), "UniversalPGD-4(ce, unprojected)");
  const auto u = bugged.run(*model, data, ThreatModel::joint(b, b));
  // Constant gradient signs: every step adds 0.05 in the same direction, 8 steps in all.
  for (double n : geometry::norms(u.delta.audio, Norm::linf)) EXPECT_NEAR(n, 8 * 0.05, 1e-12);
  for (double n : geometry::norms(u.delta.video, Norm::linf)) EXPECT_GT(n, b.eps);
  // The valid range still holds where δ is applied.
  const Budget clamped{.norm = Norm::linf, .eps = 0.1, .step = 2, .lo = -10, .hi = 10};
  const auto c = bugged.run(*model, data, ThreatModel::joint(clamped, clamped));
  // δ grows until x + δ is clamped for every example (the gradient vanishes there): far beyond ε.
  for (double n : geometry::norms(c.delta.audio, Norm::linf)) EXPECT_GT(n, 10);
  const auto adv = c.apply(data[0].first).audio.to_vector();
  EXPECT_EQ(*std::min_element(adv.begin(), adv.end()), -10);
  EXPECT_EQ(*std::max_element(adv.begin(), adv.end()), 10);
}

TEST(UniversalPgd, KeepsTheBallAndRangeOnANonlinearModel) {
  auto model = make_mlp(3, 29);
  Batches data;
  for (int k = 0; k < 3; ++k) {
    auto x = unit_inputs(5, 30 + static_cast<std::uint64_t>(k));
    data.emplace_back(x, labels(predict(*model, x)));
  }
  for (Norm norm : {Norm::linf, Norm::l2}) {
    const double e = norm == Norm::linf ? 0.1 : 0.5;
    const Budget b{.norm = norm, .eps = e, .step = e / 3, .lo = -1, .hi = 1};
    for (const auto& tm : scopes(b, b)) {
      SCOPED_TRACE(tm.str());
      const auto u = UniversalPgd<double>(UniversalPgdOptions{.passes = 4}).run(*model, data, tm);
      for (Modality m : {Modality::audio, Modality::video}) {
        if (!tm.attacks(m)) continue;
        for (double n : geometry::norms(u.delta.at(m), norm)) EXPECT_LE(n, e * (1 + 1e-12));
      }
      for (const auto& [x, y] : data) expect_in_budget(u.attack_batch(*model, x, y), x, tm);
    }
  }
  const Budget b{.norm = Norm::linf, .eps = 0.1, .step = 0.02, .lo = -1, .hi = 1};
  expect_error([&] { UniversalPgd<double>().run(*model, Batches{}, ThreatModel::audio_only(b)); },
               {"UniversalPGD", "empty"});
  Batches mixed = data;
  mixed.emplace_back(AVInput<double>{rand<double>({5, 4, Da}, default_generator(), 0.0, 1.0), data[0].first.video},
                     data[0].second);
  expect_error([&] { UniversalPgd<double>().run(*model, mixed, ThreatModel::audio_only(b)); },
               {"UniversalPGD", "audio", "(5,4,5)", "(1,3,5)"});
  Budget no_step = b;
  no_step.step = 0;
  expect_error([&] { UniversalPgd<double>().run(*model, data, ThreatModel::video_only(no_step)); },
               {"UniversalPGD", "video", "step"});
}

TEST(Attacks, RunInFloat) {
  // The attacks are templates on the scalar: a float model gets float perturbations within the budget.
  Generator gen(40);
  using LinearF =
      AVClassifier<InputPassthrough<float>, InputPassthrough<float>, LateFusion<float>, ClassifierHead<float>>;
  LinearF model(std::make_unique<InputPassthrough<float>>(Da), std::make_unique<InputPassthrough<float>>(Dv),
                std::make_unique<LateFusion<float>>(LateFusionOptions{.audio_dim = Da, .video_dim = Dv, .dim = 3}, gen),
                std::make_unique<ClassifierHead<float>>(ClassifierHeadOptions{.in_dim = 3, .num_classes = 3}, gen));
  AVInput<float> x{rand<float>({4, Da}, gen, -1.0, 1.0), rand<float>({4, Dv}, gen, -1.0, 1.0)};
  Labels<float> y{from_vector<std::int64_t>({0, 1, 2, 0}), {}};
  const Budget b{.norm = Norm::linf, .eps = 0.1f, .step = 0.05f, .lo = -1, .hi = 1};
  const auto tm = ThreatModel::joint(b, b);
  const auto check = [&](const AttackResult<float>& r, bool ball) {
    for (Modality m : {Modality::audio, Modality::video}) {
      if (ball) {
        for (double n : geometry::norms(r.delta.at(m), Norm::linf)) EXPECT_LE(n, 0.1f * (1 + 1e-6));
      }
      const auto adv = (m == Modality::audio ? x.audio : x.video) + r.delta.at(m);
      for (float v : adv.to_vector()) EXPECT_TRUE(v >= -1.0f - 1e-6f && v <= 1.0f + 1e-6f);
    }
  };
  check(Apgd<float>(ApgdOptions{.steps = 10}).run(model, x, y, tm), true);
  check(CarliniWagnerL2<float>(CarliniWagnerOptions{.binary_steps = 2, .steps = 10}).run(model, x, y, tm), false);
  std::vector<std::pair<AVInput<float>, Labels<float>>> data{{x, y}};
  const auto u = UniversalPgd<float>(UniversalPgdOptions{.passes = 3}).run(model, data, tm);
  check(u.attack_batch(model, x, y), true);
}

}  // namespace
