// Norm<Cuda>: batch, layer and group normalisation on the GPU. Every kernel works on
// "sets" (the elements one mean and variance cover) described by a small layout
// struct: a block per set for the statistics and the backward sums, a grid-stride
// loop per element for the output and dx. Statistics are two-pass sums in double, as
// the CPU's shifted sums, so both twins agree to rounding; the trees are fixed, so a
// run repeats bit for bit.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "avgrad/cuda/elementwise.cuh"
#include "avgrad/ops/norm.hpp"

namespace avgrad::cuda {

/// batch_norm: x contiguous (N, C, S); set q = channel q over its N·S elements (n, q, s).
/// Channel c of the affine parameters is set c.
struct ChannelSets {
  std::int64_t N, C, S;
  AVGRAD_HOST_DEVICE std::int64_t sets() const { return C; }
  AVGRAD_HOST_DEVICE std::int64_t set_size() const { return N * S; }
  AVGRAD_HOST_DEVICE std::int64_t set_offset(std::int64_t q, std::int64_t e) const {
    return (e / S) * C * S + q * S + e % S;
  }
  AVGRAD_HOST_DEVICE std::int64_t set_of(std::int64_t i) const { return (i / S) % C; }
  AVGRAD_HOST_DEVICE std::int64_t channel_of(std::int64_t i) const { return set_of(i); }
  AVGRAD_HOST_DEVICE std::int64_t channels() const { return C; }
  AVGRAD_HOST_DEVICE std::int64_t channel_size() const { return N * S; }
  /// Offset of element e of channel c; q receives its set.
  AVGRAD_HOST_DEVICE std::int64_t channel_element(std::int64_t c, std::int64_t e, std::int64_t& q) const {
    q = c;
    return set_offset(c, e);
  }
};

/// layer_norm / group_norm: detail::RowNormLayout, set q = row q (contiguous, cg·inner
/// elements); element j of row q uses channel (q % groups)·cg + j / inner.
struct RowSets {
  std::int64_t rows, groups, cg, inner;
  AVGRAD_HOST_DEVICE std::int64_t len() const { return cg * inner; }
  AVGRAD_HOST_DEVICE std::int64_t sets() const { return rows; }
  AVGRAD_HOST_DEVICE std::int64_t set_size() const { return len(); }
  AVGRAD_HOST_DEVICE std::int64_t set_offset(std::int64_t q, std::int64_t e) const { return q * len() + e; }
  AVGRAD_HOST_DEVICE std::int64_t set_of(std::int64_t i) const { return i / len(); }
  AVGRAD_HOST_DEVICE std::int64_t channel_of(std::int64_t i) const {
    return (set_of(i) % groups) * cg + (i % len()) / inner;
  }
  AVGRAD_HOST_DEVICE std::int64_t channels() const { return groups * cg; }
  AVGRAD_HOST_DEVICE std::int64_t channel_size() const { return rows / groups * inner; }
  AVGRAD_HOST_DEVICE std::int64_t channel_element(std::int64_t c, std::int64_t e, std::int64_t& q) const {
    const std::int64_t n = e / inner, s = e % inner, grp = c / cg;
    q = n * groups + grp;
    return q * len() + (c - grp * cg) * inner + s;
  }
};

/// Per set: mean, biased variance (when var is non-null) and 1/√(var + eps) (when rstd is).
template <class T, class Sets>
__global__ void set_moments_kernel(const T* x, Sets L, T* mean, T* var, T* rstd, double eps) {
  const std::int64_t m = L.set_size();
  for (std::int64_t q = blockIdx.x; q < L.sets(); q += gridDim.x) {
    double s = 0, unused = 0;
    for (std::int64_t e = threadIdx.x; e < m; e += blockDim.x) s += static_cast<double>(x[L.set_offset(q, e)]);
    block_sum2(s, unused);
    const double mu = m ? s / static_cast<double>(m) : 0.0;
    double d2 = 0;
    unused = 0;
    for (std::int64_t e = threadIdx.x; e < m; e += blockDim.x) {
      const double d = static_cast<double>(x[L.set_offset(q, e)]) - mu;
      d2 += d * d;
    }
    block_sum2(d2, unused);
    const double v = m ? d2 / static_cast<double>(m) : 0.0;
    if (threadIdx.x == 0) {
      mean[q] = static_cast<T>(mu);
      if (var) var[q] = static_cast<T>(v);
      if (rstd) rstd[q] = static_cast<T>(1.0 / ::sqrt(v + eps));
    }
  }
}

/// y = (x − μ_set)·r_set·γ_c + β_c over x's n contiguous elements.
template <class T, class Sets> __global__ void norm_apply_kernel(const T* x, T* y, Sets L, std::int64_t n,
                                                                 const T* mean, const T* rstd, const T* w, const T* b) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t q = L.set_of(i), c = L.channel_of(i);
    y[i] = (x[i] - mean[q]) * rstd[q] * w[c] + b[c];
  }
}

/// Per set, with ĝ = γ_c·g: s1 = Σ ĝ and s2 = Σ ĝ·x̂ (the means dx needs, times m).
template <class T, class Sets> __global__ void set_grad_sums_kernel(const T* x, const T* g, const T* w, Sets L,
                                                                    const T* mean, const T* rstd, double* s1,
                                                                    double* s2) {
  const std::int64_t m = L.set_size();
  for (std::int64_t q = blockIdx.x; q < L.sets(); q += gridDim.x) {
    const double mu = static_cast<double>(mean[q]), r = static_cast<double>(rstd[q]);
    double a = 0, b = 0;
    for (std::int64_t e = threadIdx.x; e < m; e += blockDim.x) {
      const std::int64_t off = L.set_offset(q, e);
      const double gh = static_cast<double>(g[off]) * static_cast<double>(w[L.channel_of(off)]);
      a += gh;
      b += gh * (static_cast<double>(x[off]) - mu) * r;
    }
    block_sum2(a, b);
    if (threadIdx.x == 0) {
      s1[q] = a;
      s2[q] = b;
    }
  }
}

/// dx = r·(ĝ − s1/m − x̂·s2/m) with batch statistics (training); dx = r·ĝ when μ and r
/// are constants (batch_norm in eval mode: s1, s2 null).
template <class T, class Sets> __global__ void norm_dx_kernel(const T* x, const T* g, const T* w, Sets L,
                                                              std::int64_t n, const T* mean, const T* rstd,
                                                              const double* s1, const double* s2, T* dx) {
  const double inv_m = 1.0 / static_cast<double>(L.set_size() > 0 ? L.set_size() : 1);
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t q = L.set_of(i), c = L.channel_of(i);
    const T r = rstd[q], gh = g[i] * w[c];
    if (s1) {
      const T mg = static_cast<T>(s1[q] * inv_m), mgx = static_cast<T>(s2[q] * inv_m);
      dx[i] = r * (gh - mg - (x[i] - mean[q]) * r * mgx);
    } else {
      dx[i] = r * gh;
    }
  }
}

/// Per affine channel: dγ_c = Σ g·x̂ and dβ_c = Σ g over the channel's elements.
template <class T, class Sets>
__global__ void channel_grad_kernel(const T* x, const T* g, Sets L, const T* mean, const T* rstd, T* dw, T* db) {
  const std::int64_t m = L.channel_size();
  for (std::int64_t c = blockIdx.x; c < L.channels(); c += gridDim.x) {
    double a = 0, b = 0;
    for (std::int64_t e = threadIdx.x; e < m; e += blockDim.x) {
      std::int64_t q = 0;
      const std::int64_t off = L.channel_element(c, e, q);
      const double gv = static_cast<double>(g[off]);
      a += gv * (static_cast<double>(x[off]) - static_cast<double>(mean[q])) * static_cast<double>(rstd[q]);
      b += gv;
    }
    block_sum2(a, b);
    if (threadIdx.x == 0) {
      if (dw) dw[c] = static_cast<T>(a);
      if (db) db[c] = static_cast<T>(b);
    }
  }
}

inline unsigned blocks_for_sets(std::int64_t sets) {
  return static_cast<unsigned>(std::clamp<std::int64_t>(sets, 1, std::int64_t(1) << 20));
}

template <class T, class Sets> void set_moments(const T* x, Sets L, T* mean, T* var, T* rstd, double eps) {
  if (L.sets() == 0) return;
  set_moments_kernel<<<blocks_for_sets(L.sets()), kThreads, 0, current_stream()>>>(x, L, mean, var, rstd, eps);
  check_launch("set_moments_kernel");
}

template <class T, class Sets> Tensor<T, Cuda> norm_apply(const Tensor<T, Cuda>& x, const Shape& shape, Sets L,
                                                          const Tensor<T, Cuda>& mean, const Tensor<T, Cuda>& rstd,
                                                          const Tensor<T, Cuda>& w, const Tensor<T, Cuda>& b) {
  auto y = Tensor<T, Cuda>::empty(shape);
  const std::int64_t n = shape.numel();
  if (n == 0) return y;
  norm_apply_kernel<<<blocks_for(n), kThreads, 0, current_stream()>>>(x.data(), y.data(), L, n, mean.data(),
                                                                      rstd.data(), w.data(), b.data());
  check_launch("norm_apply_kernel");
  return y;
}

/// The backward of either layout: dx needs per-set sums only with batch statistics.
template <class T, class Sets>
avgrad::detail::NormGrads<T, Cuda> norm_backward(const Tensor<T, Cuda>& x, const Tensor<T, Cuda>& g,
                                                 const Tensor<T, Cuda>& w, const Tensor<T, Cuda>& mean,
                                                 const Tensor<T, Cuda>& rstd, Sets L, bool batch_stats, bool need_dx,
                                                 bool need_dw, bool need_db) {
  avgrad::detail::NormGrads<T, Cuda> out;
  const std::int64_t n = x.numel();
  if (need_dx) {
    out.dx = Tensor<T, Cuda>::empty(x.shape());
    Tensor<double, Cuda> s1, s2;
    if (batch_stats && n > 0) {
      s1 = Tensor<double, Cuda>::empty(Shape{L.sets()});
      s2 = Tensor<double, Cuda>::empty(Shape{L.sets()});
      set_grad_sums_kernel<<<blocks_for_sets(L.sets()), kThreads, 0, current_stream()>>>(
          x.data(), g.data(), w.data(), L, mean.data(), rstd.data(), s1.data(), s2.data());
      check_launch("set_grad_sums_kernel");
    }
    if (n > 0) {
      norm_dx_kernel<<<blocks_for(n), kThreads, 0, current_stream()>>>(
          x.data(), g.data(), w.data(), L, n, mean.data(), rstd.data(), s1.defined() ? s1.data() : nullptr,
          s2.defined() ? s2.data() : nullptr, out.dx.data());
      check_launch("norm_dx_kernel");
    }
  }
  if (need_dw || need_db) {
    const std::int64_t C = L.channels();
    if (need_dw) out.dw = Tensor<T, Cuda>::empty(Shape{C});
    if (need_db) out.db = Tensor<T, Cuda>::empty(Shape{C});
    if (C > 0) {
      channel_grad_kernel<<<blocks_for_sets(C), kThreads, 0, current_stream()>>>(
          x.data(), g.data(), L, mean.data(), rstd.data(), need_dw ? out.dw.data() : nullptr,
          need_db ? out.db.data() : nullptr);
      check_launch("channel_grad_kernel");
    }
  }
  return out;
}

}  // namespace avgrad::cuda

namespace avgrad::backend {

template <> struct Norm<Cuda> {
  template <class T> static std::pair<Tensor<T, Cuda>, Tensor<T, Cuda>> batch_moments(const Tensor<T, Cuda>& x,
                                                                                      std::int64_t N, std::int64_t C,
                                                                                      std::int64_t S) {
    auto mean = Tensor<T, Cuda>::empty(Shape{C}), var = Tensor<T, Cuda>::empty(Shape{C});
    cuda::set_moments<T>(x.data(), cuda::ChannelSets{N, C, S}, mean.data(), var.data(), nullptr, 0.0);
    return {mean, var};
  }
  template <class T> static Tensor<T, Cuda> batch_apply(const Tensor<T, Cuda>& x, const Shape& shape,
                                                        const Tensor<T, Cuda>& mean, const Tensor<T, Cuda>& rstd,
                                                        const Tensor<T, Cuda>& w, const Tensor<T, Cuda>& b,
                                                        std::int64_t N, std::int64_t C, std::int64_t S) {
    return cuda::norm_apply(x, shape, cuda::ChannelSets{N, C, S}, mean, rstd, w, b);
  }
  template <class T>
  static avgrad::detail::NormGrads<T, Cuda> batch_backward(const Tensor<T, Cuda>& x, const Tensor<T, Cuda>& g,
                                                           const Tensor<T, Cuda>& w, const Tensor<T, Cuda>& mean,
                                                           const Tensor<T, Cuda>& rstd, std::int64_t N, std::int64_t C,
                                                           std::int64_t S, bool training, bool need_dx, bool need_dw,
                                                           bool need_db) {
    return cuda::norm_backward(x, g, w, mean, rstd, cuda::ChannelSets{N, C, S}, training, need_dx, need_dw, need_db);
  }
  template <class T> static avgrad::detail::RowNormForward<T, Cuda> row_forward(const Tensor<T, Cuda>& x,
                                                                                const avgrad::detail::RowNormLayout& L,
                                                                                const Tensor<T, Cuda>& w,
                                                                                const Tensor<T, Cuda>& b, double eps) {
    const cuda::RowSets sets{L.rows, L.groups, L.cg, L.inner};
    avgrad::detail::RowNormForward<T, Cuda> out;
    out.mean = Tensor<T, Cuda>::empty(Shape{L.rows});
    out.rstd = Tensor<T, Cuda>::empty(Shape{L.rows});
    cuda::set_moments<T>(x.data(), sets, out.mean.data(), nullptr, out.rstd.data(), eps);
    out.y = cuda::norm_apply(x, x.shape(), sets, out.mean, out.rstd, w, b);
    return out;
  }
  template <class T> static avgrad::detail::NormGrads<T, Cuda> row_backward(
      const Tensor<T, Cuda>& x, const Tensor<T, Cuda>& g, const Tensor<T, Cuda>& w, const Tensor<T, Cuda>& mean,
      const Tensor<T, Cuda>& rstd, const avgrad::detail::RowNormLayout& L, bool need_dx, bool need_dw, bool need_db) {
    return cuda::norm_backward(x, g, w, mean, rstd, cuda::RowSets{L.rows, L.groups, L.cg, L.inner}, true, need_dx,
                               need_dw, need_db);
  }
};

}  // namespace avgrad::backend
