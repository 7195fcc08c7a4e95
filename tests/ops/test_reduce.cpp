// Reductions: gradchecks over axis sets with and without keepdim, forward values
// against direct loops, NaN propagation, and error paths.
#include <cmath>
#include <limits>

#include "avgrad/ops/reduce.hpp"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::testing;

namespace {

struct ReduceCase {
  const char* name;
  std::function<TD(const TD&, const Axes&, bool)> f;
  double lo, hi;
};
class Reduce : public ::testing::TestWithParam<ReduceCase> {};

TEST_P(Reduce, GradcheckAxisSets) {
  const auto& c = GetParam();
  for (bool keep : {false, true}) {
    for (const Axes& ax : {Axes{}, Axes{0}, Axes{-1}, Axes{0, 2}, Axes{1}}) {
      SCOPED_TRACE(::testing::Message() << "axes size " << ax.size() << " keepdim " << keep);
      Fn f = [&](const std::vector<TD>& x) { return c.f(x[0], ax, keep); };
      expect_gradcheck(f, {leaf({3, 4, 5}, 11, c.lo, c.hi)});
      expect_gradcheck(f, {leaf_transposed({3, 4, 5}, 12, c.lo, c.hi)});
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Ops, Reduce,
    ::testing::Values(
        ReduceCase{"sum", [](const TD& x, const Axes& a, bool k) { return sum(x, a, k); }, 0, 0},
        ReduceCase{"mean", [](const TD& x, const Axes& a, bool k) { return mean(x, a, k); }, 0, 0},
        ReduceCase{"var", [](const TD& x, const Axes& a, bool k) { return var(x, a, k); }, 0, 0},
        ReduceCase{"var_biased", [](const TD& x, const Axes& a, bool k) { return var(x, a, k, 0); }, 0, 0},
        ReduceCase{"std", [](const TD& x, const Axes& a, bool k) { return std_dev(x, a, k); }, 0, 0},
        ReduceCase{"amax", [](const TD& x, const Axes& a, bool k) { return amax(x, a, k); }, 0, 0},
        ReduceCase{"amin", [](const TD& x, const Axes& a, bool k) { return amin(x, a, k); }, 0, 0},
        ReduceCase{"logsumexp", [](const TD& x, const Axes& a, bool k) { return logsumexp(x, a, k); }, 0, 0},
        ReduceCase{"norm1", [](const TD& x, const Axes& a, bool k) { return norm(x, 1.0, a, k); }, 0, 0},
        ReduceCase{"norm2", [](const TD& x, const Axes& a, bool k) { return norm(x, 2.0, a, k); }, 0, 0},
        ReduceCase{
            "norm_inf",
            [](const TD& x, const Axes& a, bool k) { return norm(x, std::numeric_limits<double>::infinity(), a, k); },
            0, 0}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Reduce, ForwardValuesAgainstLoops) {
  Generator g(5);
  auto x = randn<double>({4, 3, 5}, g);
  auto s = sum(x, {1});
  auto m = mean(x, {0, 2}, true);
  auto v = var(x, {2});
  EXPECT_EQ(m.shape(), (Shape{1, 3, 1}));
  for (int i = 0; i < 4; ++i)
    for (int k = 0; k < 5; ++k) {
      double acc = 0;
      for (int j = 0; j < 3; ++j) acc += x.at({i, j, k});
      EXPECT_NEAR(s.at({i, k}), acc, 1e-12);
    }
  for (int j = 0; j < 3; ++j) {
    double acc = 0;
    for (int i = 0; i < 4; ++i)
      for (int k = 0; k < 5; ++k) acc += x.at({i, j, k});
    EXPECT_NEAR(m.at({0, j, 0}), acc / 20, 1e-12);
  }
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) {
      double mu = 0, ss = 0;
      for (int k = 0; k < 5; ++k) mu += x.at({i, j, k}) / 5;
      for (int k = 0; k < 5; ++k) ss += (x.at({i, j, k}) - mu) * (x.at({i, j, k}) - mu);
      EXPECT_NEAR(v.at({i, j}), ss / 4, 1e-12);
    }
  auto lse = logsumexp(from_vector<double>({1000.0, 1000.0}));
  EXPECT_NEAR(lse.item(), 1000.0 + std::log(2.0), 1e-9);  // no overflow
  auto ninf = -std::numeric_limits<double>::infinity();
  EXPECT_EQ(logsumexp(from_vector<double>({ninf, ninf})).item(), ninf);
  EXPECT_NEAR(norm(from_vector<double>({3, -4})).item(), 5.0, 1e-12);
  EXPECT_NEAR(norm(from_vector<double>({3, -4}), 1.0).item(), 7.0, 1e-12);
}

TEST(Reduce, LargeFloatSumIsAccurateAndParallelSafe) {
  // 4M float ones: a float accumulator would stall at 2^24; the double one is exact.
  auto x = ones<float>({1 << 22});
  EXPECT_EQ(sum(x).item(), float(1 << 22));
  auto y = ones<float>({3, 1 << 20});
  expect_close(sum(y, {1}), {float(1 << 20), float(1 << 20), float(1 << 20)});
}

TEST(Reduce, ArgmaxArgminFirstOccurrenceAndNaN) {
  auto x = from_vector<float>({1, 5, 5, 0, 2, -1, -1, 3}, {2, 4});
  EXPECT_EQ(argmax(x, 1).to_vector(), (std::vector<std::int64_t>{1, 3}));
  EXPECT_EQ(argmin(x, 1).to_vector(), (std::vector<std::int64_t>{3, 1}));
  EXPECT_EQ(argmax(x, 0, true).shape(), (Shape{1, 4}));
  EXPECT_EQ(argmax(x.t(), 0).to_vector(), (std::vector<std::int64_t>{1, 3}));
  auto n = from_vector<float>({1, std::nanf(""), 3});
  EXPECT_EQ(argmax(n, 0).item(), 1);
  EXPECT_TRUE(std::isnan(amax(n).item()));
}

TEST(Reduce, MaxGradientSplitsAcrossTies) {
  auto x = from_vector<double>({2, 2, 1});
  x.requires_grad_();
  amax(x).backward();
  expect_close(x.grad(), {0.5, 0.5, 0});
}

TEST(Reduce, Norm2GradientAtZeroIsZero) {
  auto x = zeros<double>({3});
  x.requires_grad_();
  norm(x).backward();
  expect_close(x.grad(), {0, 0, 0});
}

TEST(Cumsum, ValuesAndGradcheck) {
  auto x = from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  expect_close(cumsum(x, 1), {1, 3, 6, 4, 9, 15});
  expect_close(cumsum(x, 0), {1, 2, 3, 5, 7, 9});
  for (int axis : {0, 1, -1}) {
    Fn f = [axis](const std::vector<TD>& v) { return cumsum(v[0], axis); };
    expect_gradcheck(f, {leaf({3, 4}, 3)});
    expect_gradcheck(f, {leaf_transposed({3, 4}, 4)});
  }
}

TEST(Reduce, Errors) {
  auto x = zeros<float>({2, 3});
  expect_error([&] { (void)sum(x, {2}); }, {"sum", "axis 2", "rank 2"});
  expect_error([&] { (void)sum(x, {1, -1}); }, {"sum", "repeated"});
  expect_error([&] { (void)var(zeros<float>({1, 3}), {0}); }, {"var", "more than 1"});
  expect_error([&] { (void)norm(x, 3.0); }, {"norm", "3"});
  expect_error([&] { (void)amax(zeros<float>({0, 3}), {0}); }, {"amax", "empty"});
  expect_error([&] { (void)argmax(zeros<float>({2, 0}), 1); }, {"argmax", "empty"});
  expect_error([&] { (void)mean(zeros<float>({0})); }, {"mean", "empty"});
  expect_error([&] { (void)cumsum(x, 3); }, {"cumsum", "axis 3"});
}

}  // namespace

namespace {
TEST(Allclose, TolerancesAndNaN) {
  auto a = from_vector<double>({1.0, 2.0, INFINITY});
  EXPECT_TRUE(allclose(a, from_vector<double>({1.0 + 1e-9, 2.0, INFINITY})));
  EXPECT_FALSE(allclose(a, from_vector<double>({1.1, 2.0, INFINITY})));
  EXPECT_TRUE(allclose(a, from_vector<double>({1.1, 2.0, INFINITY}), 0.2));
  auto n = from_vector<double>({NAN});
  EXPECT_FALSE(allclose(n, n));
  EXPECT_TRUE(allclose(n, n, 0, 0, true));
  EXPECT_TRUE(allclose(from_vector<double>({3.0, 3.0}), from_vector<double>({3.0})));  // broadcast
}

TEST(CheckFinite, NamesWhatAndWhere) {
  EXPECT_TRUE(all_finite(ones<float>({4})));
  auto x = from_vector<float>({1.f, 2.f, NAN, 4.f}, {2, 2});
  EXPECT_FALSE(all_finite(x));
  expect_error([&] { check_finite(x, "audio batch"); }, {"audio batch", "nan", "flat index 2", "(2,2)"});
}
}  // namespace
