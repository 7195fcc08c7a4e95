// softmax / log_softmax and the losses: gradchecks over every option and layout,
// forward values (and a few gradients) against PyTorch float64 references from
// fixtures/loss_reference.inc, stability and NaN propagation, and error paths.
#include <cmath>
#include <limits>

#include "avgrad/ops/loss.hpp"
#include "ops/fixtures/loss_reference.inc"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::testing;

namespace {

using TI = Tensor<std::int64_t, Cpu>;
constexpr double kRefTol = 1e-10;
const Reduction kReductions[] = {Reduction::none, Reduction::mean, Reduction::sum};

TD ref(const std::vector<double>& v, const std::vector<std::int64_t>& shape) {
  return from_vector<double>(v, Shape(shape));
}
TI ref(const std::vector<std::int64_t>& v, const std::vector<std::int64_t>& shape) {
  return from_vector<std::int64_t>(v, Shape(shape));
}
#define REF(name) ref(loss_ref::name, loss_ref::name##_shape)

/// Values and shape against a reference array, to 1e-10.
void expect_ref(const TD& got, const std::vector<double>& want, const std::vector<std::int64_t>& shape) {
  EXPECT_EQ(got.shape(), Shape(shape));
  expect_close<double>(got, want, kRefTol);
}
#define EXPECT_REF(got, name) expect_ref(got, loss_ref::name, loss_ref::name##_shape)

/// A fresh (contiguous) leaf copy of x: each gradcheck gets its own.
TD fresh(const TD& x) {
  TD c = x.detach().clone();
  c.requires_grad_();
  return c;
}

// ---- softmax / log_softmax --------------------------------------------------------

TEST(Softmax, GradcheckAxesLayoutsAndRank) {
  for (bool log_space : {false, true}) {
    auto f = [log_space](std::int64_t axis) {
      return Fn([=](const std::vector<TD>& x) { return log_space ? log_softmax(x[0], axis) : softmax(x[0], axis); });
    };
    expect_gradcheck(f(1), {leaf({3, 4}, 1)});
    expect_gradcheck(f(0), {leaf({3, 4}, 2)});
    expect_gradcheck(f(-1), {leaf({2, 3, 4}, 3)});
    expect_gradcheck(f(1), {leaf({2, 3, 4}, 4)});
    expect_gradcheck(f(-1), {leaf_transposed({2, 3, 5}, 5)});  // reduced axis has stride 3
    expect_gradcheck(f(1), {leaf_transposed({2, 3, 5}, 6)});
    expect_gradcheck(f(0), {leaf({6}, 7)});
    // composed with a second use of x: the backward must accumulate, not overwrite
    Fn twice = [log_space](const std::vector<TD>& x) {
      auto y = log_space ? log_softmax(x[0], 1) : softmax(x[0], 1);
      return y * x[0];
    };
    expect_gradcheck(twice, {leaf({3, 4}, 8)});
  }
}

TEST(Softmax, MatchesTorchIncludingHugeLogits) {
  auto x = REF(sm_x);  // row 1 holds 1000, 1001.5, 999, -1000
  EXPECT_REF(softmax(x, 1), sm_axis1);
  EXPECT_REF(softmax(x, 0), sm_axis0);
  EXPECT_REF(log_softmax(x, 1), lsm_axis1);
  EXPECT_REF(log_softmax(x, 0), lsm_axis0);
  auto x3 = REF(sm3_x);
  EXPECT_REF(softmax(x3, 1), sm3_axis1);
  EXPECT_REF(log_softmax(x3, 1), lsm3_axis1);
  // the same values through a non-contiguous view of the transposed data
  auto xt = x.t().contiguous().t();
  ASSERT_FALSE(xt.is_contiguous());
  EXPECT_REF(softmax(xt, 1), sm_axis1);
  EXPECT_REF(log_softmax(xt, -1), lsm_axis1);
}

TEST(Softmax, FloatStaysAccurateForLargeLogitsAndSumsToOne) {
  auto x = from_vector<float>({3000.f, 3001.f, 2999.f, -5000.f});
  auto y = softmax(x);
  const double e0 = 1.0, e1 = std::exp(1.0), e2 = std::exp(-1.0), s = e0 + e1 + e2;
  expect_close<float>(y, {float(e0 / s), float(e1 / s), float(e2 / s), 0.f}, 1e-6);
  auto l = log_softmax(x);
  expect_close<float>(l, {float(std::log(e0 / s)), float(std::log(e1 / s)), float(std::log(e2 / s)), -8001.4076f},
                      2e-3);
  Generator gen(3);
  auto r = softmax(randn<double>({5, 7}, gen), 1);
  auto rows = sum(r, {1});
  expect_close<double>(rows, std::vector<double>(5, 1.0), 1e-14);
}

TEST(Softmax, NonFiniteInputsPropagate) {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  auto y = softmax(from_vector<double>({1.0, nan, 2.0, 0.0, -inf, 1.0}, {2, 3}), 1);
  auto v = y.to_vector();
  for (int k = 0; k < 3; ++k) EXPECT_TRUE(std::isnan(v[k]));  // a NaN poisons its line only
  EXPECT_NEAR(v[3], 1 / (1 + std::exp(1.0)), 1e-15);
  EXPECT_EQ(v[4], 0.0);
  // all −inf: no finite shift exists; the result is NaN, as PyTorch, not a crash
  auto z = log_softmax(from_vector<double>({-inf, -inf}));
  EXPECT_TRUE(std::isnan(z.to_vector()[0]));
  // rank 0: one-element line
  EXPECT_EQ(softmax(scalar<double>(4.0)).item(), 1.0);
  EXPECT_EQ(log_softmax(scalar<double>(4.0)).item(), 0.0);
}

TEST(Softmax, Errors) {
  expect_error([] { (void)softmax(zeros<double>({2, 3}), 2); }, {"softmax", "axis 2", "rank 2"});
  expect_error([] { (void)log_softmax(Tensor<float>(), 0); }, {"log_softmax", "undefined"});
}

// ---- cross-entropy with class indices ----------------------------------------------

TEST(CrossEntropyIndex, GradcheckEveryOptionAndReduction) {
  auto y = from_vector<std::int64_t>({1, 0, 4, 2});
  auto y_ign = from_vector<std::int64_t>({1, 3, 4, 3});
  auto w = from_vector<double>({0.5, 2.0, 1.0, 0.25, 3.0});
  for (Reduction red : kReductions) {
    SCOPED_TRACE(static_cast<int>(red));
    const std::vector<std::pair<TI, CrossEntropyOptions<double>>> cases = {
        {y, {.reduction = red}},
        {y, {.reduction = red, .label_smoothing = 0.2}},
        {y_ign, {.ignore_index = 3, .reduction = red}},
        {y, {.weight = w, .reduction = red}},
        {y_ign, {.weight = w, .ignore_index = 3, .reduction = red, .label_smoothing = 0.1}},
        {y, {.weight = w, .reduction = red, .label_smoothing = 1.0}},
    };
    for (const auto& [target, opt] : cases) {
      Fn f = [&](const std::vector<TD>& x) { return cross_entropy(x[0], target, opt); };
      expect_gradcheck(f, {leaf({4, 5}, 11)});
      expect_gradcheck(f, {leaf_transposed({4, 5}, 12)});  // class axis strided
    }
  }
}

TEST(CrossEntropyIndex, GradcheckSequenceLayoutAndUnbatched) {
  // (B,K,T) as PyTorch: classes on axis 1, target (B,T)
  auto y = from_vector<std::int64_t>({0, 2, 1, -1, 2, 2, 0, 1}, {2, 4});
  auto w = from_vector<double>({1.5, 0.5, 2.0});
  for (Reduction red : kReductions) {
    CrossEntropyOptions<double> opt{.weight = w, .ignore_index = -1, .reduction = red, .label_smoothing = 0.15};
    Fn f = [&](const std::vector<TD>& x) { return cross_entropy(x[0], y, opt); };
    expect_gradcheck(f, {leaf({2, 3, 4}, 21)});
    expect_gradcheck(f, {leaf_transposed({2, 3, 4}, 22)});
    expect_gradcheck(f, {leaf({2, 4, 3}, 23).permute({0, 2, 1}).detach().requires_grad_()});
  }
  // (B,K,d1,d2)
  Generator gen(5);
  auto y4 = randint<std::int64_t>(0, 3, {2, 2, 3}, gen);
  Fn f4 = [&](const std::vector<TD>& x) { return cross_entropy(x[0], y4, {.label_smoothing = 0.3}); };
  expect_gradcheck(f4, {leaf({2, 3, 2, 3}, 24)});
  // unbatched (K) with a scalar target
  auto y0 = full<std::int64_t>(Shape{}, 3);
  Fn f1 = [&](const std::vector<TD>& x) { return cross_entropy(x[0], y0, {.label_smoothing = 0.1}); };
  expect_gradcheck(f1, {leaf({5}, 25)});
}

TEST(CrossEntropyIndex, MatchesTorch) {
  auto x = REF(ce_x);
  auto y = REF(ce_y), y_ign = REF(ce_y_ign);
  auto w = REF(ce_w);
  const char* names[] = {"none", "mean", "sum"};
  for (int r = 0; r < 3; ++r) {
    SCOPED_TRACE(names[r]);
    const Reduction red = kReductions[r];
    const auto& plain = r == 0 ? loss_ref::ce_plain_none : r == 1 ? loss_ref::ce_plain_mean : loss_ref::ce_plain_sum;
    const auto& ls = r == 0 ? loss_ref::ce_ls_none : r == 1 ? loss_ref::ce_ls_mean : loss_ref::ce_ls_sum;
    const auto& ign = r == 0 ? loss_ref::ce_ign_none : r == 1 ? loss_ref::ce_ign_mean : loss_ref::ce_ign_sum;
    const auto& wt = r == 0 ? loss_ref::ce_w_none : r == 1 ? loss_ref::ce_w_mean : loss_ref::ce_w_sum;
    const auto& all = r == 0 ? loss_ref::ce_all_none : r == 1 ? loss_ref::ce_all_mean : loss_ref::ce_all_sum;
    const std::vector<std::int64_t> shape = r == 0 ? std::vector<std::int64_t>{4} : std::vector<std::int64_t>{};
    expect_ref(cross_entropy(x, y, {.reduction = red}), plain, shape);
    expect_ref(cross_entropy(x, y, {.reduction = red, .label_smoothing = 0.2}), ls, shape);
    expect_ref(cross_entropy(x, y_ign, {.ignore_index = 3, .reduction = red}), ign, shape);
    expect_ref(cross_entropy(x, y, {.weight = w, .reduction = red}), wt, shape);
    expect_ref(cross_entropy(x, y_ign, {.weight = w, .ignore_index = 3, .reduction = red, .label_smoothing = 0.1}), all,
               shape);
  }
  // the derived backward against torch's gradient
  auto xl = fresh(x);
  cross_entropy(xl, y_ign, {.weight = w, .ignore_index = 3, .label_smoothing = 0.1}).backward();
  EXPECT_REF(xl.grad(), ce_all_mean_dx);
  // default options are PyTorch's: mean, ignore_index −100, no smoothing
  EXPECT_REF(cross_entropy(x, y), ce_plain_mean);
}

TEST(CrossEntropyIndex, SequenceLayoutMatchesTorch) {
  auto x = REF(ce3_x);
  auto y = REF(ce3_y);
  CrossEntropyOptions<double> opt{.weight = REF(ce3_w), .ignore_index = -1, .label_smoothing = 0.15};
  EXPECT_REF(cross_entropy(x, y, opt), ce3_mean);
  opt.reduction = Reduction::none;
  EXPECT_REF(cross_entropy(x, y, opt), ce3_none);
  // strided logits: same values through a (B,T,K) buffer permuted to (B,K,T)
  auto xs = x.permute({0, 2, 1}).contiguous().permute({0, 2, 1});
  ASSERT_FALSE(xs.is_contiguous());
  EXPECT_REF(cross_entropy(xs, y, opt), ce3_none);
  opt.reduction = Reduction::mean;
  auto xl = fresh(xs);
  cross_entropy(xl, y, opt).backward();
  EXPECT_REF(xl.grad(), ce3_mean_dx);
  EXPECT_REF(cross_entropy(REF(ce1_x), full<std::int64_t>(Shape{}, 3)), ce1_loss);
}

TEST(CrossEntropyIndex, StableForHugeLogitsAndMatchesClosedForm) {
  // logits 1e4 apart: a naive exp overflows; the loss is exactly the gap
  auto x = from_vector<double>({1e4, 0.0, -1e4, 0.0, 2e4, 1e4}, {2, 3});
  auto y = from_vector<std::int64_t>({1, 2});
  auto l = cross_entropy(x, y, {.reduction = Reduction::none});
  expect_close<double>(l, {1e4, 1e4}, 1e-9);
  auto xf = from_vector<float>({1e4f, 0.f, -1e4f, 0.f, 2e4f, 1e4f}, {2, 3});
  expect_close<float>(cross_entropy(xf, y, {.reduction = Reduction::none}), {1e4f, 1e4f}, 1e-2);
  // K = 2, uniform logits, smoothing: loss = log 2 whatever ε
  auto u = zeros<double>({3, 2});
  expect_close<double>(cross_entropy(u, from_vector<std::int64_t>({0, 1, 1}), {.label_smoothing = 0.4}),
                       {std::log(2.0)}, 1e-15);
}

TEST(CrossEntropyIndex, FloatAgreesWithDouble) {
  auto x = REF(ce_x);
  auto y = REF(ce_y_ign);
  auto w = REF(ce_w);
  auto xf = x.to<float>();
  xf.requires_grad_();
  auto lf = cross_entropy(xf, y, {.weight = w.to<float>(), .ignore_index = 3, .label_smoothing = 0.1});
  lf.backward();
  EXPECT_NEAR(lf.item(), loss_ref::ce_all_mean[0], 1e-5);
  expect_close<float>(xf.grad(), std::vector<float>(loss_ref::ce_all_mean_dx.begin(), loss_ref::ce_all_mean_dx.end()),
                      1e-5);
}

TEST(CrossEntropyIndex, IgnoredPositionsAndNonFiniteLogits) {
  auto x = leaf({3, 4}, 31);
  auto y = from_vector<std::int64_t>({-100, 2, -100});
  auto none = cross_entropy(x, y, {.reduction = Reduction::none});
  EXPECT_EQ(none.to_vector()[0], 0.0);
  EXPECT_EQ(none.to_vector()[2], 0.0);
  // mean over the one counted position equals that position's loss
  EXPECT_NEAR(cross_entropy(x, y).item(), none.to_vector()[1], 1e-15);
  cross_entropy(x, y).backward();
  auto g = x.grad().to_vector();
  for (int k = 0; k < 4; ++k) {
    EXPECT_EQ(g[k], 0.0);
    EXPECT_EQ(g[8 + k], 0.0);
  }
  // every position ignored: the mean is 0/0 = NaN (PyTorch), no throw
  EXPECT_TRUE(std::isnan(cross_entropy(x, full<std::int64_t>({3}, -100)).item()));
  // NaN / inf logits flow through forward and backward without throwing
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  auto bad = from_vector<double>({nan, 0.0, 1.0, 0.0, -inf, 2.0}, {2, 3});
  bad.requires_grad_();
  auto l = cross_entropy(bad, from_vector<std::int64_t>({0, 1}), {.reduction = Reduction::none});
  auto lv = l.to_vector();
  EXPECT_TRUE(std::isnan(lv[0]));
  EXPECT_EQ(lv[1], inf);  // −log p of a −inf logit
  EXPECT_NO_THROW(sum(l).backward());
  EXPECT_TRUE(std::isnan(bad.grad().to_vector()[0]));
}

TEST(CrossEntropyIndex, LargeInputsTakeTheParallelPath) {
  // 512·100 elements: above cpu::kParallelGrain, so the position loops fork
  const std::int64_t B = 512, K = 100;
  Generator gen(77);
  auto x = randn<double>({B, K}, gen, 0.0, 3.0);
  x.requires_grad_();
  auto y = randint<std::int64_t>(0, K, {B}, gen);
  auto l = cross_entropy(x, y, {.reduction = Reduction::sum});
  l.backward();
  NoGradGuard ng;
  auto lsm = log_softmax(x.detach(), 1), sm = softmax(x.detach(), 1);
  double want = 0;
  for (std::int64_t b = 0; b < B; ++b) want -= lsm.at({b, y.at({b})});
  EXPECT_NEAR(l.item(), want, 1e-9);
  auto g = x.grad();
  double worst = 0;
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t k = 0; k < K; ++k)
      worst = std::max(worst, std::abs(g.at({b, k}) - (sm.at({b, k}) - (k == y.at({b}) ? 1.0 : 0.0))));
  EXPECT_LT(worst, 1e-14);
}

TEST(CrossEntropyIndex, SavedLogitsModifiedInPlaceAreReported) {
  auto x = leaf({2, 3}, 41);
  auto l = cross_entropy(x, from_vector<std::int64_t>({0, 2}));
  {
    NoGradGuard ng;
    auto xd = x.detach();
    mul_(xd, 2.0);
  }
  expect_error([&] { l.backward(); }, {"cross_entropy", "modified in place"});
}

TEST(CrossEntropyIndex, Errors) {
  auto x = zeros<double>({4, 5});
  expect_error([&] { (void)cross_entropy(x, zeros<std::int64_t>({5})); },
               {"cross_entropy", "target of shape (5)", "logits of shape (4,5)", "expected (4)"});
  expect_error(
      [&] {
        (void)cross_entropy(x, zeros<std::int64_t>({4, 1}));
      },
      {"cross_entropy", "(4,1)", "expected (4)"});
  expect_error(
      [&] {
        (void)cross_entropy(x, from_vector<std::int64_t>({1, 7, 0, 2}));
      },
      {"cross_entropy", "target value 7", "position (1)", "out of range [0, 5)"});
  expect_error(
      [&] {
        (void)cross_entropy(zeros<double>({2, 3, 4}), from_vector<std::int64_t>({0, 1, 2, 0, 1, -3, 2, 0}, {2, 4}));
      },
      {"target value -3", "position (1,1)", "[0, 3)", "(2,3,4)"});
  // ignore_index only excuses its own value
  expect_error(
      [&] {
        (void)cross_entropy(x, from_vector<std::int64_t>({1, 5, 0, -1}), {.ignore_index = -1});
      },
      {"target value 5", "position (1)"});
  expect_error([&] { (void)cross_entropy(x, zeros<std::int64_t>({4}), {.weight = ones<double>({4})}); },
               {"cross_entropy", "weight", "(K) = (5)", "(4)"});
  expect_error([&] { (void)cross_entropy(x, zeros<std::int64_t>({4}), {.label_smoothing = 1.5}); },
               {"cross_entropy", "label_smoothing", "1.5"});
  expect_error([&] { (void)cross_entropy(scalar<double>(1.0), full<std::int64_t>(Shape{}, 0)); },
               {"cross_entropy", "scalar"});
  expect_error(
      [&] {
        (void)cross_entropy(zeros<double>({4, 0}), zeros<std::int64_t>({4}));
      },
      {"cross_entropy", "K = 0"});
  expect_error([&] { (void)cross_entropy(x, TI()); }, {"cross_entropy", "undefined"});
  auto w = ones<double>({5});
  w.requires_grad_();
  expect_error([&] { (void)cross_entropy(x, zeros<std::int64_t>({4}), {.weight = w}); },
               {"cross_entropy", "weight", "requires grad", "detach"});
}

// ---- cross-entropy with soft targets ----------------------------------------------

TEST(CrossEntropySoft, GradcheckLogitsAndTargets) {
  auto w = from_vector<double>({0.5, 2.0, 1.0, 0.25, 3.0});
  for (Reduction red : kReductions) {
    for (const CrossEntropyOptions<double>& opt :
         {CrossEntropyOptions<double>{.reduction = red},
          CrossEntropyOptions<double>{.weight = w, .reduction = red, .label_smoothing = 0.1}}) {
      Fn f = [&](const std::vector<TD>& x) { return cross_entropy(x[0], x[1], opt); };
      expect_gradcheck(f, {leaf({4, 5}, 51), leaf({4, 5}, 52, 0.0, 1.0)});
      expect_gradcheck(f, {leaf_transposed({4, 5}, 53), leaf_transposed({4, 5}, 54, 0.0, 1.0)});
      auto w3 = from_vector<double>({1.5, 0.5, 2.0});
      CrossEntropyOptions<double> o3{.weight = w3, .reduction = red, .label_smoothing = opt.label_smoothing};
      Fn f3 = [&](const std::vector<TD>& x) { return cross_entropy(x[0], x[1], o3); };
      expect_gradcheck(f3, {leaf_transposed({2, 3, 4}, 55), leaf({2, 3, 4}, 56, 0.0, 1.0)});
    }
  }
  // a constant target: only the logits get a gradient
  Generator gen(57);
  auto t = rand<double>({3, 4}, gen);
  Fn f = [&](const std::vector<TD>& x) { return cross_entropy(x[0], t); };
  expect_gradcheck(f, {leaf({3, 4}, 58)});
}

TEST(CrossEntropySoft, MatchesTorch) {
  auto x = REF(cs_x), t = REF(cs_t), w = REF(ce_w);
  const char* names[] = {"none", "mean", "sum"};
  for (int r = 0; r < 3; ++r) {
    SCOPED_TRACE(names[r]);
    const auto& plain = r == 0 ? loss_ref::cs_plain_none : r == 1 ? loss_ref::cs_plain_mean : loss_ref::cs_plain_sum;
    const auto& all = r == 0 ? loss_ref::cs_all_none : r == 1 ? loss_ref::cs_all_mean : loss_ref::cs_all_sum;
    const std::vector<std::int64_t> shape = r == 0 ? std::vector<std::int64_t>{4} : std::vector<std::int64_t>{};
    expect_ref(cross_entropy(x, t, {.reduction = kReductions[r]}), plain, shape);
    expect_ref(cross_entropy(x, t, {.weight = w, .reduction = kReductions[r], .label_smoothing = 0.1}), all, shape);
  }
  auto xl = fresh(x), tl = fresh(t);
  cross_entropy(xl, tl, {.weight = w, .label_smoothing = 0.1}).backward();
  EXPECT_REF(xl.grad(), cs_all_mean_dx);
  EXPECT_REF(tl.grad(), cs_all_mean_dt);
  // (B,K,T)
  auto x3 = REF(cs3_x), t3 = REF(cs3_t), w3 = REF(ce3_w);
  EXPECT_REF(cross_entropy(x3, t3, {.weight = w3, .label_smoothing = 0.05}), cs3_mean);
  EXPECT_REF(cross_entropy(x3, t3, {.weight = w3, .reduction = Reduction::none, .label_smoothing = 0.05}), cs3_none);
}

TEST(CrossEntropySoft, OneHotTargetsEqualClassIndices) {
  auto x = REF(ce3_x);
  auto y = from_vector<std::int64_t>({0, 2, 1, 1, 2, 2, 0, 1}, {2, 4});
  auto onehot = zeros<double>({2, 3, 4});
  for (std::int64_t b = 0; b < 2; ++b)
    for (std::int64_t s = 0; s < 4; ++s) onehot.set({b, y.at({b, s}), s}, 1.0);
  auto a = cross_entropy(x, y, {.reduction = Reduction::none, .label_smoothing = 0.3});
  auto b = cross_entropy(x, onehot, {.reduction = Reduction::none, .label_smoothing = 0.3});
  expect_close<double>(a, b.to_vector(), 1e-14);
}

TEST(CrossEntropySoft, Errors) {
  auto x = zeros<double>({4, 5});
  expect_error([&] { (void)cross_entropy(x, zeros<double>({4, 4})); }, {"cross_entropy", "soft", "(4,4)", "(4,5)"});
  expect_error([&] { (void)cross_entropy(x, zeros<double>({5})); }, {"cross_entropy", "(5)", "(4,5)"});
  expect_error(
      [&] {
        (void)cross_entropy(x, zeros<double>({4, 5}), {.ignore_index = 0});
      },
      {"cross_entropy", "ignore_index", "soft"});
  expect_error(
      [&] {
        (void)cross_entropy(x, zeros<double>({4, 5}), {.weight = ones<double>({2, 5})});
      },
      {"cross_entropy", "weight", "(2,5)"});
}

// ---- binary cross-entropy with logits -----------------------------------------------

TEST(BceWithLogits, GradcheckEveryOption) {
  auto pw = from_vector<double>({2.0, 0.5, 3.0});
  auto w_rows = from_vector<double>({1.0, 0.5, 2.0, 1.5}, {4, 1});
  auto w_cols = from_vector<double>({0.3, 1.0, 2.0});
  for (Reduction red : kReductions) {
    for (const BceWithLogitsOptions<double>& opt :
         {BceWithLogitsOptions<double>{.reduction = red},
          BceWithLogitsOptions<double>{.reduction = red, .pos_weight = pw},
          BceWithLogitsOptions<double>{.weight = w_rows, .reduction = red, .pos_weight = pw},
          BceWithLogitsOptions<double>{.weight = w_cols, .reduction = red}}) {
      Fn f = [&](const std::vector<TD>& x) { return binary_cross_entropy_with_logits(x[0], x[1], opt); };
      expect_gradcheck(f, {leaf({4, 3}, 61, -4.0, 4.0), leaf({4, 3}, 62, 0.0, 1.0)});
      expect_gradcheck(f, {leaf_transposed({4, 3}, 63, -4.0, 4.0), leaf_transposed({4, 3}, 64, 0.0, 1.0)});
    }
  }
  // (B,K,T) logits with a (K,1) pos_weight
  auto pw3 = from_vector<double>({2.0, 0.5, 3.0}, {3, 1});
  Fn f3 = [&](const std::vector<TD>& x) { return binary_cross_entropy_with_logits(x[0], x[1], {.pos_weight = pw3}); };
  expect_gradcheck(f3, {leaf({2, 3, 4}, 65), leaf({2, 3, 4}, 66, 0.0, 1.0)});
}

TEST(BceWithLogits, MatchesTorch) {
  auto x = REF(bce_x), t = REF(bce_t), pw = REF(bce_pw), w = REF(bce_w);
  const char* names[] = {"none", "mean", "sum"};
  for (int r = 0; r < 3; ++r) {
    SCOPED_TRACE(names[r]);
    const auto& plain = r == 0 ? loss_ref::bce_plain_none : r == 1 ? loss_ref::bce_plain_mean : loss_ref::bce_plain_sum;
    const auto& all = r == 0 ? loss_ref::bce_all_none : r == 1 ? loss_ref::bce_all_mean : loss_ref::bce_all_sum;
    const std::vector<std::int64_t> shape = r == 0 ? std::vector<std::int64_t>{4, 3} : std::vector<std::int64_t>{};
    expect_ref(binary_cross_entropy_with_logits(x, t, {.reduction = kReductions[r]}), plain, shape);
    expect_ref(binary_cross_entropy_with_logits(x, t, {.weight = w, .reduction = kReductions[r], .pos_weight = pw}),
               all, shape);
  }
  auto xl = fresh(x), tl = fresh(t);
  binary_cross_entropy_with_logits(xl, tl, {.weight = w, .pos_weight = pw}).backward();
  EXPECT_REF(xl.grad(), bce_all_mean_dx);
  EXPECT_REF(tl.grad(), bce_all_mean_dt);
}

TEST(BceWithLogits, StableAtExtremeLogits) {
  // the naive −t·log σ(x) − (1−t)·log(1−σ(x)) gives inf/NaN here
  auto x = from_vector<double>({800.0, -800.0, 800.0, -800.0});
  auto t = from_vector<double>({1.0, 0.0, 0.0, 1.0});
  expect_close<double>(binary_cross_entropy_with_logits(x, t, {.reduction = Reduction::none}), {0.0, 0.0, 800.0, 800.0},
                       1e-12);
  auto xf = from_vector<float>({100.f, -100.f});
  auto tf = from_vector<float>({0.f, 1.f});
  auto pwf = from_vector<float>({3.f, 3.f});
  expect_close<float>(binary_cross_entropy_with_logits(xf, tf, {.reduction = Reduction::none, .pos_weight = pwf}),
                      {100.f, 300.f}, 1e-4);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  auto bad = from_vector<double>({nan, 1.0});
  bad.requires_grad_();
  auto l = binary_cross_entropy_with_logits(bad, from_vector<double>({1.0, 0.0}));
  EXPECT_TRUE(std::isnan(l.item()));
  EXPECT_NO_THROW(l.backward());
}

TEST(BceWithLogits, Errors) {
  auto x = zeros<double>({4, 3});
  expect_error(
      [&] {
        (void)binary_cross_entropy_with_logits(x, zeros<double>({4, 1}));
      },
      {"binary_cross_entropy_with_logits", "targets of shape (4,1)", "(4,3)"});
  expect_error(
      [&] {
        (void)binary_cross_entropy_with_logits(x, zeros<double>({4, 3}), {.pos_weight = ones<double>({4})});
      },
      {"binary_cross_entropy_with_logits", "pos_weight of shape (4)", "(4,3)", "expected (K) = (3)"});
  expect_error(
      [&] {
        (void)binary_cross_entropy_with_logits(x, zeros<double>({4, 3}), {.weight = ones<double>({2, 4, 3})});
      },
      {"binary_cross_entropy_with_logits", "weight of shape (2,4,3)"});
  auto pw = ones<double>({3});
  pw.requires_grad_();
  expect_error(
      [&] {
        (void)binary_cross_entropy_with_logits(x, zeros<double>({4, 3}), {.pos_weight = pw});
      },
      {"pos_weight", "requires grad"});
}

// ---- mse / l1 -----------------------------------------------------------------------

TEST(PointwiseLoss, GradcheckAndTorch) {
  for (Reduction red : kReductions) {
    Fn mse = [red](const std::vector<TD>& x) { return mse_loss(x[0], x[1], red); };
    Fn l1 = [red](const std::vector<TD>& x) { return l1_loss(x[0], x[1], red); };
    expect_gradcheck(mse, {leaf({3, 4}, 71), leaf_transposed({3, 4}, 72)});
    expect_gradcheck(l1, {leaf({3, 4}, 73), leaf_transposed({3, 4}, 74)});
  }
  auto a = REF(pt_a), b = REF(pt_b);
  EXPECT_REF(mse_loss(a, b, Reduction::none), mse_none);
  EXPECT_REF(mse_loss(a, b), mse_mean);
  EXPECT_REF(mse_loss(a, b, Reduction::sum), mse_sum);
  EXPECT_REF(l1_loss(a, b, Reduction::none), l1_none);
  EXPECT_REF(l1_loss(a, b), l1_mean);
  EXPECT_REF(l1_loss(a, b, Reduction::sum), l1_sum);
  // l1 at a tie: gradient 0 (PyTorch's sign convention)
  auto p = from_vector<double>({1.0, 2.0});
  p.requires_grad_();
  l1_loss(p, from_vector<double>({1.0, 0.0}), Reduction::sum).backward();
  expect_close<double>(p.grad(), {0.0, 1.0});
}

TEST(PointwiseLoss, Errors) {
  expect_error([] { (void)mse_loss(zeros<double>({3, 4}), zeros<double>({4})); }, {"mse_loss", "(3,4)", "(4)"});
  expect_error([] { (void)l1_loss(zeros<float>({2}), zeros<float>({2, 1})); }, {"l1_loss", "(2)", "(2,1)"});
}

}  // namespace
