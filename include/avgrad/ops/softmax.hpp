// softmax and log_softmax along one axis. Forward is max-shifted (no overflow
// for large logits); backward uses dedicated line kernels built from the saved
// output only, so the input is not kept alive by the tape.
#pragma once

#include <cmath>
#include <limits>
#include <vector>

#include <omp.h>

#include "avgrad/ops/view.hpp"

namespace avgrad {

namespace backend {
/// Softmax line kernels of a device other than the CPU (cuda/avgrad/cuda/softmax.cuh):
/// forward(x, axis, log_space) and backward(y, g, axis, log_space), as the CPU ones below.
template <Device D> struct Softmax;
}  // namespace backend

namespace detail {

/// Base offsets of every line along axis `a` of a tensor (shape, strides), in
/// row-major order of the other dims: line l holds elements base[l] + k·strides[a].
inline std::vector<std::int64_t> line_offsets(const Shape& shape, const Strides& strides, int a) {
  Shape lines = shape;
  lines[a] = 1;
  std::vector<std::int64_t> offs;
  offs.reserve(static_cast<std::size_t>(lines.numel()));
  for_each_offset(lines, strides, [&](std::int64_t o) { offs.push_back(o); });
  return offs;
}

/// True when a loop over `work` elements should fork threads.
inline bool parallel_lines(std::int64_t work) { return work >= cpu::kParallelGrain && !omp_in_parallel(); }

/// The pieces of log Σ_k e^{p[k·s]} (k < n) = shift + log_sum: shift is the line
/// max, so every e^{p − shift} ≤ 1 and nothing overflows. A line whose max is not
/// finite (all −inf, or a +inf) is shifted by 0 instead, so −inf/+inf/NaN come
/// out as IEEE arithmetic says rather than as a spurious NaN from inf − inf.
/// Keeping the two apart lets callers form x − shift − log_sum without rounding
/// a large shift into the small log_sum.
template <Floating T> struct LineLse {
  T shift;
  T log_sum;
};
template <Floating T> LineLse<T> line_logsumexp(const T* p, std::int64_t n, std::int64_t s) {
  T m = -std::numeric_limits<T>::infinity();
  for (std::int64_t k = 0; k < n; ++k) m = std::max(m, p[k * s]);  // NaN skipped here, caught by the sum
  const T shift = std::isfinite(m) ? m : T(0);
  acc_t<T> sum = 0;
  for (std::int64_t k = 0; k < n; ++k) sum += std::exp(static_cast<acc_t<T>>(p[k * s] - shift));
  return {shift, static_cast<T>(std::log(sum))};
}

/// y = softmax(x) or log_softmax(x) along axis a; x any strides, y fresh contiguous.
template <Floating T> Tensor<T, Cpu> softmax_forward(const Tensor<T, Cpu>& x, int a, bool log_space) {
  auto y = Tensor<T, Cpu>::empty(x.shape());
  const std::int64_t n = x.shape()[a], xs = x.strides()[a], ys = y.strides()[a];
  const auto xo = line_offsets(x.shape(), x.strides(), a);
  const auto yo = line_offsets(y.shape(), y.strides(), a);
  const auto L = static_cast<std::int64_t>(xo.size());
  const T* xp = x.data();
  T* yp = y.data();
#pragma omp parallel for if (parallel_lines(L * n))
  for (std::int64_t l = 0; l < L; ++l) {
    const T* p = xp + xo[static_cast<std::size_t>(l)];
    T* q = yp + yo[static_cast<std::size_t>(l)];
    const auto [shift, log_sum] = line_logsumexp(p, n, xs);
    // log_softmax: (x − shift) − log_sum; softmax: its exponential (≤ 1)
    for (std::int64_t k = 0; k < n; ++k) {
      const T z = (p[k * xs] - shift) - log_sum;
      q[k * ys] = log_space ? z : std::exp(z);
    }
  }
  return y;
}

/// Backward of softmax / log_softmax along axis a from the saved output y
/// (contiguous) and the incoming gradient g (any strides); dx fresh contiguous.
///
/// softmax: y_j = e^{x_j}/Σe^{x}, so ∂y_j/∂x_k = y_j(δ_jk − y_k) and
///   dx_k = Σ_j g_j y_j(δ_jk − y_k) = y_k (g_k − Σ_j g_j y_j).
/// log_softmax: z_j = x_j − log Σe^{x}, so ∂z_j/∂x_k = δ_jk − softmax_k and
///   dx_k = g_k − softmax_k Σ_j g_j, with softmax_k = e^{z_k}.
template <Floating T>
Tensor<T, Cpu> softmax_backward(const Tensor<T, Cpu>& y, const Tensor<T, Cpu>& g, int a, bool log_space) {
  auto dx = Tensor<T, Cpu>::empty(y.shape());
  const std::int64_t n = y.shape()[a], ys = y.strides()[a], gs = g.strides()[a], ds = dx.strides()[a];
  const auto yo = line_offsets(y.shape(), y.strides(), a);
  const auto go = line_offsets(g.shape(), g.strides(), a);
  const auto dxo = line_offsets(dx.shape(), dx.strides(), a);
  const auto L = static_cast<std::int64_t>(yo.size());
  const T* yp = y.data();
  const T* gp = g.data();
  T* dp = dx.data();
#pragma omp parallel for if (parallel_lines(L * n))
  for (std::int64_t l = 0; l < L; ++l) {
    const auto i = static_cast<std::size_t>(l);
    const T* yl = yp + yo[i];
    const T* gl = gp + go[i];
    T* dl = dp + dxo[i];
    acc_t<T> dot = 0;  // Σ_j g_j y_j (softmax) or Σ_j g_j (log_softmax)
    for (std::int64_t k = 0; k < n; ++k)
      dot += log_space ? static_cast<acc_t<T>>(gl[k * gs])
                       : static_cast<acc_t<T>>(gl[k * gs]) * static_cast<acc_t<T>>(yl[k * ys]);
    const T d = static_cast<T>(dot);
    for (std::int64_t k = 0; k < n; ++k) {
      const T yk = yl[k * ys], gk = gl[k * gs];
      dl[k * ds] = log_space ? gk - std::exp(yk) * d : yk * (gk - d);
    }
  }
  return dx;
}

/// The shared op body of softmax and log_softmax.
template <Floating T, Device D>
Tensor<T, D> softmax_op(const char* name, const Tensor<T, D>& x, std::int64_t axis, bool log_space) {
  check_defined(x, name);
  if (x.dim() == 0) {  // a scalar is a one-element line: softmax 1, log_softmax 0
    AVGRAD_CHECK(axis == 0 || axis == -1, name, "axis ", axis, " out of range for rank 0 (use 0 or -1)");
    return softmax_op(name, x.reshape(Shape{1}), 0, log_space).reshape(Shape{});
  }
  const int a = normalize_axis(axis, x.dim(), name);
  Tensor<T, D> y;
  if constexpr (std::same_as<D, Cpu>)
    y = softmax_forward(x, a, log_space);
  else
    y = backend::Softmax<D>::forward(x, a, log_space);
  if (!autograd::any_requires_grad<T, D>({&x})) return y;
  autograd::Saved<T, D> sy(y);  // the output alone determines the backward
  return autograd::record<T, D>(name, y, {x}, [=](const Tensor<T, D>& g, const std::vector<bool>&) {
    if constexpr (std::same_as<D, Cpu>)
      return autograd::Grads<T, D>{softmax_backward(sy.get(name), g, a, log_space)};
    else
      return autograd::Grads<T, D>{backend::Softmax<D>::backward(sy.get(name), g, a, log_space)};
  });
}

}  // namespace detail

/// y_i = e^{x_i} / Σ_j e^{x_j} along `axis` (default last). x: any shape, any
/// strides; y: x's shape, contiguous. Lines whose max is finite are shifted by
/// it (no overflow); NaN in a line makes that line NaN. Rank 0 gives 1.
template <Floating T, Device D> Tensor<T, D> softmax(const Tensor<T, D>& x, std::int64_t axis = -1) {
  return detail::softmax_op("softmax", x, axis, false);
}

/// y_i = x_i − log Σ_j e^{x_j} along `axis` (default last), computed with the
/// max shift, so large or very negative logits give finite log-probabilities.
template <Floating T, Device D> Tensor<T, D> log_softmax(const Tensor<T, D>& x, std::int64_t axis = -1) {
  return detail::softmax_op("log_softmax", x, axis, true);
}

}  // namespace avgrad
