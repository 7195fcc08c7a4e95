// The fused PGD update on the GPU: step along the steepest-ascent direction, project onto
// the ε-ball and clamp x + δ into the valid range, in one kernel. L∞ runs one thread per
// element; L2 one block per example (two block reductions: ‖g‖ and ‖δ + step·g/‖g‖‖).
// L1 (a top-k selection per example) runs on the CPU twin through a host round trip.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <vector>

#include "avgrad/attacks/threat_model.hpp"
#include "avgrad/cuda/elementwise.cuh"
#include "avgrad/cuda/transfer.cuh"

namespace avgrad::cuda {

/// clamp(v, lo − xi, hi − xi), written as project_ does: only a coordinate that leaves the
/// range changes, so an unbounded range adds no rounding.
__device__ inline double clamp_to_range(double d, double xi, double lo, double hi) {
  const double s = xi + d;
  return s < lo ? lo - xi : (s > hi ? hi - xi : d);
}

template <class T> __global__ void pgd_linf_kernel(T* delta, const T* g, const T* x, const char* active,
                                                   std::int64_t rows, std::int64_t n, double step, double eps,
                                                   double lo, double hi) {
  const std::int64_t total = rows * n;
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < total;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    if (active && !active[i / n]) continue;
    const T gi = g[i];
    // the rounding steps mirror ascend_ then project_ on the CPU
    const T moved = static_cast<T>(static_cast<double>(delta[i]) + step * static_cast<double>((gi > 0) - (gi < 0)));
    const T in_ball = static_cast<T>(::fmin(::fmax(static_cast<double>(moved), -eps), eps));
    delta[i] = static_cast<T>(clamp_to_range(static_cast<double>(in_ball), static_cast<double>(x[i]), lo, hi));
  }
}

template <int Threads> __device__ double block_sum(double v, double* shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int s = Threads / 2; s > 0; s /= 2) {
    if (static_cast<int>(threadIdx.x) < s) shared[threadIdx.x] += shared[threadIdx.x + s];
    __syncthreads();
  }
  const double total = shared[0];
  __syncthreads();
  return total;
}

template <int Threads, class T> __global__ void pgd_l2_kernel(T* delta, const T* g, const T* x, const char* active,
                                                              std::int64_t rows, std::int64_t n, double step,
                                                              double eps, double lo, double hi) {
  __shared__ double shared[Threads];
  for (std::int64_t b = blockIdx.x; b < rows; b += gridDim.x) {
    if (active && !active[b]) continue;  // uniform per block: no thread reaches a barrier alone
    T* d = delta + b * n;
    const T* gr = g + b * n;
    const T* xr = x + b * n;
    double gg = 0;
    for (std::int64_t i = threadIdx.x; i < n; i += Threads) gg += static_cast<double>(gr[i]) * gr[i];
    gg = block_sum<Threads>(gg, shared);
    const bool moves = gg > 0 && ::isfinite(gg);  // a zero or non-finite gradient does not move
    const double k = moves ? step / ::sqrt(gg) : 0.0;
    double dd = 0;
    for (std::int64_t i = threadIdx.x; i < n; i += Threads) {
      if (moves) d[i] = static_cast<T>(static_cast<double>(d[i]) + k * gr[i]);
      dd += static_cast<double>(d[i]) * d[i];
    }
    dd = block_sum<Threads>(dd, shared);
    const double nrm = ::sqrt(dd);
    const double scale = nrm > eps ? eps / nrm : 1.0;
    for (std::int64_t i = threadIdx.x; i < n; i += Threads) {
      const double v = scale != 1.0 ? static_cast<double>(d[i]) * scale : static_cast<double>(d[i]);
      d[i] = static_cast<T>(clamp_to_range(static_cast<double>(static_cast<T>(v)), static_cast<double>(xr[i]), lo, hi));
    }
    __syncthreads();
  }
}

}  // namespace avgrad::cuda

namespace avgrad::attacks {

/// The GPU twin of pgd_step_(Tensor<T, Cpu>&, ...): the same values, one kernel per call.
template <Floating T> void pgd_step_(Tensor<T, Cuda>& delta, const Tensor<T, Cuda>& g, const Tensor<T, Cuda>& x,
                                     const Budget& budget, double step, const std::vector<char>* active = nullptr) {
  AVGRAD_CHECK(delta.defined() && x.defined() && g.defined() && delta.shape() == x.shape() && g.shape() == x.shape() &&
                   delta.is_contiguous(),
               "pgd_step_", "δ must be contiguous and δ, gradient and input share one shape; got δ ",
               delta.defined() ? delta.shape().str() : std::string("undefined"), ", gradient ",
               g.defined() ? g.shape().str() : std::string("undefined"), ", input ",
               x.defined() ? x.shape().str() : std::string("undefined"));
  const auto [B, n] = geometry::rows(delta);
  AVGRAD_CHECK(!active || static_cast<std::int64_t>(active->size()) == B, "pgd_step_", "active mask has ",
               active ? active->size() : 0, " flags for ", B, " examples");
  if (budget.norm == Norm::l1) {  // top-k per example: the CPU twin through the host
    auto d = delta.template to<Cpu>();
    pgd_step_(d, g.template to<Cpu>(), x.template to<Cpu>(), budget, step, active);
    auto back = d.template to<Cuda>();
    copy_(delta, back);
    return;
  }
  if (B == 0 || n == 0) return;
  const auto gc = g.contiguous();
  const auto xc = x.contiguous();
  Tensor<std::uint8_t, Cuda> mask;
  if (active) {
    std::vector<std::uint8_t> flags(active->begin(), active->end());
    mask = from_vector<std::uint8_t>(flags).template to<Cuda>();
  }
  const char* m = active ? reinterpret_cast<const char*>(mask.data()) : nullptr;
  if (budget.norm == Norm::linf) {
    cuda::pgd_linf_kernel<<<cuda::blocks_for(B * n), cuda::kThreads, 0, cuda::current_stream()>>>(
        delta.data(), gc.data(), xc.data(), m, B, n, step, budget.eps, budget.lo, budget.hi);
    cuda::check_launch("pgd_linf_kernel");
  } else {
    const unsigned grid = static_cast<unsigned>(B < 65535 * 4 ? B : 65535 * 4);
    cuda::pgd_l2_kernel<cuda::kThreads><<<grid, cuda::kThreads, 0, cuda::current_stream()>>>(
        delta.data(), gc.data(), xc.data(), m, B, n, step, budget.eps, budget.lo, budget.hi);
    cuda::check_launch("pgd_l2_kernel");
  }
  delta.storage()->bump_version();
}

}  // namespace avgrad::attacks

namespace avgrad::backend {
template <> struct PgdStep<Cuda> {
  template <class T, class... A> static void step(Tensor<T, Cuda>& delta, const A&... a) {
    attacks::pgd_step_(delta, a...);
  }
};
}  // namespace avgrad::backend
