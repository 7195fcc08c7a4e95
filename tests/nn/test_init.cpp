// Initialisers: fans and gains as torch.nn.init computes them, and the sample
// statistics (bounds, mean, std) each initialiser promises.
#include <cmath>

#include "avgrad/nn/init.hpp"
#include "avgrad/ops/reduce.hpp"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::testing;
namespace init = avgrad::nn::init;

namespace {

TEST(Init, FansAndGainsFollowTorch) {
  auto w = zeros<double>({16, 8, 3, 3});
  auto f = init::fans(w);
  EXPECT_EQ(f.in, 8 * 9);
  EXPECT_EQ(f.out, 16 * 9);
  EXPECT_EQ(init::fans(zeros<double>({5})).in, 5);
  EXPECT_DOUBLE_EQ(init::gain("relu"), std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(init::gain("tanh"), 5.0 / 3.0);
  EXPECT_DOUBLE_EQ(init::gain("leaky_relu", std::sqrt(5.0)), std::sqrt(1.0 / 3.0));
  EXPECT_DOUBLE_EQ(init::gain("linear"), 1.0);
  expect_error([] { (void)init::gain("swish"); }, {"init::gain", "swish"});
  expect_error([] { (void)init::fans(scalar<double>(1.0)); }, {"init", "rank"});
}

TEST(Init, KaimingAndXavierStatistics) {
  Generator g(1);
  auto w = zeros<double>({256, 128, 3});  // fan_in 384, fan_out 768
  init::kaiming_uniform_(w, 0.0, init::FanMode::fan_in, "relu", g);
  const double b = std::sqrt(2.0) * std::sqrt(3.0 / 384);
  EXPECT_LE(amax(abs(w)).item(), b);
  EXPECT_GT(amax(abs(w)).item(), 0.99 * b);
  EXPECT_NEAR(std_dev(w).item(), b / std::sqrt(3.0), 0.01 * b);
  init::kaiming_normal_(w, 0.0, init::FanMode::fan_out, "relu", g);
  EXPECT_NEAR(std_dev(w).item(), std::sqrt(2.0 / 768), 0.01 * std::sqrt(2.0 / 768));
  EXPECT_NEAR(mean(w).item(), 0.0, 0.002);
  init::xavier_normal_(w, 1.0, g);
  EXPECT_NEAR(std_dev(w).item(), std::sqrt(2.0 / (384 + 768)), 0.01 * std::sqrt(2.0 / (384 + 768)));
  init::xavier_uniform_(w, 2.0, g);
  EXPECT_LE(amax(abs(w)).item(), 2.0 * std::sqrt(6.0 / (384 + 768)));
}

TEST(Init, TruncNormalStaysInBoundsWithTheTruncatedMoments) {
  Generator g(2);
  auto w = zeros<double>({200000});
  init::trunc_normal_(w, 0.0, 1.0, -1.0, 2.0, g);
  EXPECT_GE(amin(w).item(), -1.0);
  EXPECT_LE(amax(w).item(), 2.0);
  // moments of N(0,1) truncated to [a, b]: mean = (φ(a) − φ(b))/Z, var = 1 + (aφ(a) − bφ(b))/Z − mean²
  auto phi = [](double x) { return std::exp(-x * x / 2) / std::sqrt(2 * M_PI); };
  auto cdf = [](double x) { return 0.5 * (1 + std::erf(x / std::sqrt(2.0))); };
  const double a = -1, b = 2, z = cdf(b) - cdf(a);
  const double m = (phi(a) - phi(b)) / z;
  const double v = 1 + (a * phi(a) - b * phi(b)) / z - m * m;
  EXPECT_NEAR(mean(w).item(), m, 0.01);
  EXPECT_NEAR(var(w).item(), v, 0.01);
  auto s = zeros<float>({50000});
  init::trunc_normal_(s, 0.0, 0.02, -2.0, 2.0, g);  // ViT's setting: truncation far out
  EXPECT_NEAR(std_dev(s).item(), 0.02, 0.0005);
  expect_error([&] { init::trunc_normal_(s, 0.0, 1.0, 1.0, -1.0, g); }, {"trunc_normal_"});
}

TEST(Init, ConstantsAndSeeds) {
  auto w = empty<float>({4, 4});
  init::zeros_(w);
  EXPECT_EQ(sum(w).item(), 0.f);
  init::ones_(w);
  EXPECT_EQ(sum(w).item(), 16.f);
  Generator g1(9), g2(9);
  auto a = zeros<float>({10}), b = zeros<float>({10});
  init::normal_(a, 0, 1, g1);
  init::normal_(b, 0, 1, g2);
  EXPECT_EQ(a.to_vector(), b.to_vector());
  // in place on a parameter that requires grad: allowed (no-grad inside), values change
  auto p = zeros<float>({3});
  p.requires_grad_();
  init::uniform_(p, 1.0, 2.0, g1);
  EXPECT_GE(amin(p).item(), 1.f);
}

}  // namespace
