// Softmax<Cuda>: softmax / log_softmax along one axis, one warp per line. The line max
// and the sum of exponentials are warp reductions (sums in double for float, as on the
// CPU), so the result matches the CPU twin to rounding; backward needs only the output.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <limits>

#include "avgrad/cuda/elementwise.cuh"
#include "avgrad/ops/softmax.hpp"

namespace avgrad::cuda {

inline constexpr int kLinesPerBlock = 8;  // 8 warps of 32 threads

/// x lines: base offsets from `lines` (operand 0: y, operand 1: x), `n` elements apart by
/// the axis strides ys / xs.
template <class T> __global__ void softmax_forward_kernel(const T* x, T* y, Indexer<2> lines, std::int64_t n_lines,
                                                          std::int64_t n, std::int64_t xs, std::int64_t ys,
                                                          bool log_space) {
  using A = acc_t<T>;
  const int lane = threadIdx.x % 32;
  for (std::int64_t l = blockIdx.x * std::int64_t(kLinesPerBlock) + threadIdx.x / 32; l < n_lines;
       l += std::int64_t(gridDim.x) * kLinesPerBlock) {
    std::int64_t off[2];
    lines.offsets(l, off);
    const T* p = x + off[1];
    T* q = y + off[0];
    T m = -std::numeric_limits<T>::infinity();
    for (std::int64_t k = lane; k < n; k += 32) m = ::fmax(m, p[k * xs]);  // NaN skipped, caught by the sum
    m = warp_max(m);
    const T shift = ::isfinite(m) ? m : T(0);
    A s = 0;
    for (std::int64_t k = lane; k < n; k += 32) s += ::exp(static_cast<A>(p[k * xs] - shift));
    s = warp_sum(s);
    const T log_sum = static_cast<T>(::log(s));
    for (std::int64_t k = lane; k < n; k += 32) {
      const T z = (p[k * xs] - shift) - log_sum;
      q[k * ys] = log_space ? z : ::exp(z);
    }
  }
}

/// dx from the saved output y and the gradient g (operands 0: dx, 1: y, 2: g).
template <class T> __global__ void softmax_backward_kernel(const T* y, const T* g, T* dx, Indexer<3> lines,
                                                           std::int64_t n_lines, std::int64_t n, std::int64_t ys,
                                                           std::int64_t gs, std::int64_t ds, bool log_space) {
  using A = acc_t<T>;
  const int lane = threadIdx.x % 32;
  for (std::int64_t l = blockIdx.x * std::int64_t(kLinesPerBlock) + threadIdx.x / 32; l < n_lines;
       l += std::int64_t(gridDim.x) * kLinesPerBlock) {
    std::int64_t off[3];
    lines.offsets(l, off);
    const T* yl = y + off[1];
    const T* gl = g + off[2];
    T* dl = dx + off[0];
    A dot = 0;  // Σ g·y (softmax) or Σ g (log_softmax)
    for (std::int64_t k = lane; k < n; k += 32)
      dot += log_space ? static_cast<A>(gl[k * gs]) : static_cast<A>(gl[k * gs]) * static_cast<A>(yl[k * ys]);
    const T d = static_cast<T>(warp_sum(dot));
    for (std::int64_t k = lane; k < n; k += 32) {
      const T yk = yl[k * ys], gk = gl[k * gs];
      dl[k * ds] = log_space ? gk - ::exp(yk) * d : yk * (gk - d);
    }
  }
}

/// The shape of the lines along axis a (that extent set to 1).
inline Shape line_shape(Shape s, int a) {
  s[a] = 1;
  return s;
}
inline unsigned line_blocks(std::int64_t n_lines) {
  const std::int64_t b = (n_lines + kLinesPerBlock - 1) / kLinesPerBlock;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 * 16 ? 65535 * 16 : b));
}

}  // namespace avgrad::cuda

namespace avgrad::backend {

template <> struct Softmax<Cuda> {
  template <Floating T> static Tensor<T, Cuda> forward(const Tensor<T, Cuda>& x, int a, bool log_space) {
    auto y = Tensor<T, Cuda>::empty(x.shape());
    const std::int64_t n = x.shape()[a];
    const Shape ls = cuda::line_shape(x.shape(), a);
    const std::int64_t n_lines = ls.numel();
    if (n_lines == 0 || n == 0) return y;
    auto ix = cuda::Indexer<2>::make(ls, {y.strides(), x.strides()});
    cuda::softmax_forward_kernel<<<cuda::line_blocks(n_lines), 32 * cuda::kLinesPerBlock, 0, cuda::current_stream()>>>(
        x.data(), y.data(), ix, n_lines, n, x.strides()[a], y.strides()[a], log_space);
    cuda::check_launch("softmax_forward_kernel");
    return y;
  }
  template <Floating T>
  static Tensor<T, Cuda> backward(const Tensor<T, Cuda>& y, const Tensor<T, Cuda>& g, int a, bool log_space) {
    auto dx = Tensor<T, Cuda>::empty(y.shape());
    const std::int64_t n = y.shape()[a];
    const Shape ls = cuda::line_shape(y.shape(), a);
    const std::int64_t n_lines = ls.numel();
    if (n_lines == 0 || n == 0) return dx;
    auto ix = cuda::Indexer<3>::make(ls, {dx.strides(), y.strides(), g.strides()});
    cuda::softmax_backward_kernel<<<cuda::line_blocks(n_lines), 32 * cuda::kLinesPerBlock, 0, cuda::current_stream()>>>(
        y.data(), g.data(), dx.data(), ix, n_lines, n, y.strides()[a], g.strides()[a], dx.strides()[a], log_space);
    cuda::check_launch("softmax_backward_kernel");
    return dx;
  }
};

}  // namespace avgrad::backend
