// Gradchecks and error paths for unary and binary elementwise ops, including
// broadcasting and non-contiguous inputs.
#include <cmath>

#include "avgrad/ops/reduce.hpp"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::testing;

namespace {

struct UnaryCase {
  const char* name;
  std::function<TD(const TD&)> f;
  double lo, hi;  // input range (lo == hi: standard normal)
};

class Unary : public ::testing::TestWithParam<UnaryCase> {};

TEST_P(Unary, GradcheckContiguousAndTransposed) {
  const auto& c = GetParam();
  Fn f = [&](const std::vector<TD>& x) { return c.f(x[0]); };
  expect_gradcheck(f, {leaf({3, 4}, 1, c.lo, c.hi)});
  expect_gradcheck(f, {leaf_transposed({2, 3, 5}, 2, c.lo, c.hi)});
}

INSTANTIATE_TEST_SUITE_P(
    Ops, Unary,
    ::testing::Values(UnaryCase{"neg", [](const TD& x) { return neg(x); }, 0, 0},
                      UnaryCase{"abs", [](const TD& x) { return abs(x); }, 0, 0},
                      UnaryCase{"sign", [](const TD& x) { return sign(x) * x; }, 0, 0},
                      UnaryCase{"exp", [](const TD& x) { return exp(x); }, 0, 0},
                      UnaryCase{"log", [](const TD& x) { return log(x); }, 0.2, 3},
                      UnaryCase{"log1p", [](const TD& x) { return log1p(x); }, -0.5, 3},
                      UnaryCase{"sqrt", [](const TD& x) { return sqrt(x); }, 0.2, 3},
                      UnaryCase{"rsqrt", [](const TD& x) { return rsqrt(x); }, 0.2, 3},
                      UnaryCase{"square", [](const TD& x) { return square(x); }, 0, 0},
                      UnaryCase{"pow_scalar", [](const TD& x) { return pow(x, 2.5); }, 0.2, 3},
                      UnaryCase{"relu", [](const TD& x) { return relu(x); }, 0, 0},
                      UnaryCase{"leaky_relu", [](const TD& x) { return leaky_relu(x, 0.1); }, 0, 0},
                      UnaryCase{"elu", [](const TD& x) { return elu(x, 0.7); }, 0, 0},
                      UnaryCase{"gelu", [](const TD& x) { return gelu(x); }, 0, 0},
                      UnaryCase{"gelu_tanh", [](const TD& x) { return gelu(x, GeluApprox::tanh); }, 0, 0},
                      UnaryCase{"silu", [](const TD& x) { return silu(x); }, 0, 0},
                      UnaryCase{"sigmoid", [](const TD& x) { return sigmoid(x); }, 0, 0},
                      UnaryCase{"tanh", [](const TD& x) { return tanh(x); }, 0, 0},
                      UnaryCase{"softplus", [](const TD& x) { return softplus(x, 2.0, 3.0); }, 0, 0},
                      UnaryCase{"clamp", [](const TD& x) { return clamp(x, -0.5, 0.7); }, 0, 0},
                      UnaryCase{"sin", [](const TD& x) { return sin(x); }, 0, 0},
                      UnaryCase{"cos", [](const TD& x) { return cos(x); }, 0, 0},
                      UnaryCase{"scalar_arith", [](const TD& x) { return (2.0 - x) * 3.0 + 1.0 / (x + 5.0); }, 0, 0}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Unary, ForwardValuesMatchStdMath) {
  auto x = from_vector<double>({-2.0, -0.5, 0.0, 0.5, 3.0});
  expect_close(relu(x), {0, 0, 0, 0.5, 3.0});
  expect_close(sigmoid(x), {1 / (1 + std::exp(2.0)), 1 / (1 + std::exp(0.5)), 0.5, 1 / (1 + std::exp(-0.5)),
                            1 / (1 + std::exp(-3.0))});
  expect_close(gelu(x), {-2.0 * 0.5 * std::erfc(2.0 / std::sqrt(2.0)), -0.5 * 0.5 * std::erfc(0.5 / std::sqrt(2.0)), 0,
                         0.5 * 0.5 * std::erfc(-0.5 / std::sqrt(2.0)), 3.0 * 0.5 * std::erfc(-3.0 / std::sqrt(2.0))});
  // sigmoid stays finite far out on both sides
  auto big = sigmoid(from_vector<double>({-800.0, 800.0}));
  expect_close(big, {0.0, 1.0});
  expect_close(softplus(from_vector<double>({100.0})), {100.0});
}

struct BinaryCase {
  const char* name;
  std::function<TD(const TD&, const TD&)> f;
  double lo, hi;
};
class Binary : public ::testing::TestWithParam<BinaryCase> {};

TEST_P(Binary, GradcheckWithBroadcastingAndViews) {
  const auto& c = GetParam();
  Fn f = [&](const std::vector<TD>& x) { return c.f(x[0], x[1]); };
  expect_gradcheck(f, {leaf({3, 4}, 1, c.lo, c.hi), leaf({3, 4}, 2, c.lo, c.hi)});
  expect_gradcheck(f, {leaf({2, 3, 4}, 3, c.lo, c.hi), leaf({3, 1}, 4, c.lo, c.hi)});  // b broadcast
  expect_gradcheck(f, {leaf({4}, 5, c.lo, c.hi), leaf({2, 3, 1}, 6, c.lo, c.hi)});     // both broadcast
  expect_gradcheck(f, {leaf_transposed({3, 4}, 7, c.lo, c.hi), leaf({4}, 8, c.lo, c.hi)});
}

INSTANTIATE_TEST_SUITE_P(
    Ops, Binary,
    ::testing::Values(BinaryCase{"add", [](const TD& a, const TD& b) { return a + b; }, 0, 0},
                      BinaryCase{"sub", [](const TD& a, const TD& b) { return a - b; }, 0, 0},
                      BinaryCase{"mul", [](const TD& a, const TD& b) { return a * b; }, 0, 0},
                      BinaryCase{"div", [](const TD& a, const TD& b) { return a / b; }, 0.5, 2},
                      BinaryCase{"pow", [](const TD& a, const TD& b) { return pow(a, b); }, 0.5, 2},
                      BinaryCase{"maximum", [](const TD& a, const TD& b) { return maximum(a, b); }, 0, 0},
                      BinaryCase{"minimum", [](const TD& a, const TD& b) { return minimum(a, b); }, 0, 0},
                      BinaryCase{"where", [](const TD& a, const TD& b) { return where(gt(a, 0.0), a, b); }, 0, 0}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Binary, BroadcastForwardValues) {
  auto a = from_vector<double>({1, 2, 3}, {3, 1});
  auto b = from_vector<double>({10, 20}, {2});
  expect_close(a + b, {11, 21, 12, 22, 13, 23});
  EXPECT_EQ((a * b).shape(), (Shape{3, 2}));
}

TEST(Binary, MaxTiesSplitGradient) {
  auto a = from_vector<double>({1.0, 2.0});
  auto b = from_vector<double>({1.0, 3.0});
  a.requires_grad_();
  b.requires_grad_();
  sum(maximum(a, b)).backward();
  expect_close(a.grad(), {0.5, 0.0});
  expect_close(b.grad(), {0.5, 1.0});
}

TEST(Binary, Comparisons) {
  auto a = from_vector<float>({1, 2, 3});
  auto b = from_vector<float>({3, 2, 1});
  EXPECT_EQ(lt(a, b).to_vector(), (std::vector<bool>{true, false, false}));
  EXPECT_EQ(ge(a, 2.0).to_vector(), (std::vector<bool>{false, true, true}));
  EXPECT_EQ(eq(a, b).to_vector(), (std::vector<bool>{false, true, false}));
}

TEST(Binary, ErrorsNameOpAndShapes) {
  auto a = zeros<float>({2, 3});
  auto b = zeros<float>({4});
  expect_error([&] { (void)(a + b); }, {"add", "(2,3)", "(4)", "broadcast"});
  expect_error([&] { (void)where(zeros<bool>({5}), a, a); }, {"where", "(5)"});
  expect_error([&] { (void)(Tensor<float>() * a); }, {"mul", "undefined"});
  expect_error([&] { (void)clamp(a, 1.0, 0.0); }, {"clamp", "exceeds"});
}

TEST(InPlace, RefusesTrackedLeafUnderGradMode) {
  auto w = ones<float>({3});
  w.requires_grad_();
  expect_error([&] { add_(w, ones<float>({3})); }, {"add_", "NoGradGuard"});
  NoGradGuard ng;
  add_(w, ones<float>({3}), 2.0);
  expect_close(w, {3.f, 3.f, 3.f});
}

TEST(InPlace, ModifyingSavedTensorIsReported) {
  auto x = from_vector<double>({1.0, 2.0});
  x.requires_grad_();
  auto y = exp(x);
  auto z = sum(y * y);
  {
    NoGradGuard ng;
    auto yd = y.detach();
    mul_(yd, 2.0);  // y's storage changed after mul saved it
  }
  expect_error([&] { z.backward(); }, {"mul", "modified in place"});
}

}  // namespace
