// Test support for the CUDA backend: skip without a GPU, poison every device block so a
// kernel that writes nothing fails, and compare a Cuda result with its CPU twin.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "avgrad/avgrad.hpp"
#include "avgrad/cuda.cuh"

/// Skips the current test, with the reason, when no CUDA device is visible.
#define AVGRAD_REQUIRE_GPU()                                                             \
  do {                                                                                   \
    if (!::avgrad::cuda::available()) GTEST_SKIP() << "no CUDA device present; skipped"; \
    ::avgrad::cuda::set_poison(true);                                                    \
  } while (0)

namespace avgrad::testing {

/// Element-wise |gpu - cpu| <= atol + rtol·|cpu|, NaN only where the CPU has NaN.
template <class T, class U>::testing::AssertionResult close_to_cpu(const Tensor<T, Cuda>& gpu,
                                                                   const Tensor<U, Cpu>& cpu, double rtol = 1e-5,
                                                                   double atol = 1e-6) {
  if (!gpu.defined() || !cpu.defined())
    return ::testing::AssertionFailure() << "undefined tensor (gpu " << gpu.defined() << ", cpu " << cpu.defined()
                                         << ")";
  if (gpu.shape() != cpu.shape())
    return ::testing::AssertionFailure() << "shape " << gpu.shape() << " on the GPU, " << cpu.shape() << " on the CPU";
  const auto g = gpu.template to<Cpu>().to_vector();
  const auto c = cpu.to_vector();
  for (std::size_t i = 0; i < c.size(); ++i) {
    const double a = static_cast<double>(g[i]), b = static_cast<double>(c[i]);
    if ((std::isnan(b) && std::isnan(a)) || a == b) continue;  // equal infinities included
    if (!(std::abs(a - b) <= atol + rtol * std::abs(b)))
      return ::testing::AssertionFailure() << "element " << i << ": gpu " << a << ", cpu " << b;
  }
  return ::testing::AssertionSuccess();
}

/// Runs `f` on CPU inputs and on their device copies, checks the outputs and, for each
/// input that requires grad, the gradients of sum(out · w) for a fixed random w.
template <class T> void expect_twin(const std::string& what, const std::vector<Tensor<T, Cpu>>& inputs,
                                    const std::function<Tensor<T, Cpu>(const std::vector<Tensor<T, Cpu>>&)>& f_cpu,
                                    const std::function<Tensor<T, Cuda>(const std::vector<Tensor<T, Cuda>>&)>& f_gpu,
                                    double rtol = 1e-5, double atol = 1e-6) {
  SCOPED_TRACE(what);
  std::vector<Tensor<T, Cpu>> xc;
  std::vector<Tensor<T, Cuda>> xg;
  for (const auto& x : inputs) {
    auto c = x.detach().clone();
    if (x.requires_grad()) c.requires_grad_();
    xc.push_back(c);
    xg.push_back(c.template to<Cuda>());
  }
  auto yc = f_cpu(xc);
  auto yg = f_gpu(xg);
  ASSERT_TRUE(close_to_cpu(yg, yc, rtol, atol)) << "forward";
  if (!yc.requires_grad()) return;
  Generator gen(1234);
  auto w = randn<T>(yc.shape(), gen);
  sum(yc * w).backward();
  sum(yg * w.template to<Cuda>()).backward();
  for (std::size_t i = 0; i < xc.size(); ++i) {
    if (!xc[i].requires_grad()) continue;
    ASSERT_TRUE(xg[i].grad().defined()) << "no gradient reached GPU input " << i;
    EXPECT_TRUE(close_to_cpu(xg[i].grad(), xc[i].grad(), rtol, atol)) << "gradient of input " << i;
  }
}

/// A CPU leaf that requires grad: N(mean, scale²) from a seeded generator.
template <class T = float>
Tensor<T, Cpu> leaf(const Shape& s, std::uint64_t seed, double scale = 1.0, double mean = 0.0) {
  Generator g(seed);
  auto x = randn<T>(s, g, mean, scale);
  x.requires_grad_();
  return x;
}

/// expect_twin for one generic lambda `f` over the input vector, instantiated for both devices.
template <class T = float, class F>
void twin_of(const std::string& what, const std::vector<Tensor<T, Cpu>>& in, F f, double rtol, double atol) {
  using Fc = std::function<Tensor<T, Cpu>(const std::vector<Tensor<T, Cpu>>&)>;
  using Fg = std::function<Tensor<T, Cuda>(const std::vector<Tensor<T, Cuda>>&)>;
  expect_twin<T>(what, in, Fc(f), Fg(f), rtol, atol);
}

}  // namespace avgrad::testing
