// Pooling over the trailing 1, 2 or 3 spatial dims of a (B, C, ...) tensor: max and
// average pooling with kernel, stride, padding (and dilation for max), ceil_mode and
// count_include_pad as PyTorch; adaptive average/max pooling with PyTorch's bins;
// global average/max pooling to (B, C). Every variant is one 3-d kernel
// (backend/cpu/pool.hpp) driven by a PoolGeometry built and checked here.
//
// Invariants: outputs are fresh contiguous tensors; the input may have any strides.
// Max pooling saves the argmax of each window (int64) in the forward, so its backward
// reads neither x nor y; gradients scatter (+=) into a zeroed input gradient.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <utility>
#include <vector>

#include "avgrad/backend/cpu/pool.hpp"
#include "avgrad/ops/reduce.hpp"

namespace avgrad {

/// A per-spatial-dim pooling argument (kernel size, stride, padding, dilation,
/// output size): one value for every spatial dim (`2`) or one per dim (`{1, 2}`).
/// Default-constructed (`{}`) means unset: a stride left unset equals the kernel.
class PoolSize {
 public:
  PoolSize() = default;
  PoolSize(std::int64_t v) : v_{v} {}  // NOLINT: implicit, so max_pool2d(x, 2) reads naturally
  PoolSize(std::initializer_list<std::int64_t> v) : v_(v) {}
  PoolSize(std::vector<std::int64_t> v) : v_(std::move(v)) {}  // NOLINT

  bool empty() const noexcept { return v_.empty(); }
  const std::vector<std::int64_t>& values() const noexcept { return v_; }

 private:
  std::vector<std::int64_t> v_;
};

namespace detail {

inline const char* pool_layout(int nd) { return nd == 1 ? "(B, C, T)" : nd == 2 ? "(B, C, H, W)" : "(B, C, T, H, W)"; }

inline void check_pool_rank(const char* op, const Shape& s, int nd) {
  AVGRAD_CHECK(s.rank() == nd + 2, op, "expected a ", nd + 2, "-D input ", pool_layout(nd), ", got shape ", s);
}

/// `v` as nd values (one value repeats), placed in the last nd of 3 geometry slots.
inline void pool_expand(const char* op, const char* what, const PoolSize& v, int nd, std::int64_t (&dst)[3]) {
  const auto& vals = v.values();
  const auto n = static_cast<int>(vals.size());
  AVGRAD_CHECK(n == 1 || n == nd, op, what, " must have 1 or ", nd, " values, got ", n);
  for (int i = 0; i < nd; ++i) dst[3 - nd + i] = vals[static_cast<std::size_t>(n == 1 ? 0 : i)];
}

/// Geometry of a strided pool (max or average) of an (B, C, in...) input, with
/// PyTorch's output size: ⌊(in + 2p − d(k−1) − 1)/s⌋ + 1 (⌈·⌉ with ceil_mode, minus
/// one when the last window would start past the input and right padding).
inline cpu::PoolGeometry pool_window_geometry(const char* op, const Shape& s, int nd, const PoolSize& kernel_size,
                                              const PoolSize& stride, const PoolSize& padding, const PoolSize& dilation,
                                              bool ceil_mode, bool count_include_pad) {
  check_pool_rank(op, s, nd);
  cpu::PoolGeometry g;
  g.count_include_pad = count_include_pad;
  pool_expand(op, "kernel_size", kernel_size, nd, g.kernel);
  pool_expand(op, "stride", stride.empty() ? kernel_size : stride, nd, g.stride);
  pool_expand(op, "padding", padding, nd, g.pad);
  pool_expand(op, "dilation", dilation, nd, g.dilation);
  for (int i = 0; i < nd; ++i) {
    const int d = 3 - nd + i;
    const std::int64_t in = s[2 + i], k = g.kernel[d], st = g.stride[d], p = g.pad[d], dil = g.dilation[d];
    AVGRAD_CHECK(k > 0, op, "kernel_size must be positive, got ", k, " in spatial dim ", i);
    AVGRAD_CHECK(st > 0, op, "stride must be positive, got ", st, " in spatial dim ", i);
    AVGRAD_CHECK(dil > 0, op, "dilation must be positive, got ", dil, " in spatial dim ", i);
    AVGRAD_CHECK(p >= 0 && p <= k / 2, op, "padding must be in [0, kernel_size/2], got padding ", p,
                 " for kernel_size ", k, " in spatial dim ", i);
    const std::int64_t span = dil * (k - 1) + 1;
    AVGRAD_CHECK(span <= in + 2 * p, op, "kernel of extent ", span, " (kernel_size ", k, ", dilation ", dil,
                 ") is larger than the padded input ", in, " + 2*", p, " in spatial dim ", i, " of input shape ", s);
    const std::int64_t room = in + 2 * p - span;
    std::int64_t out = (ceil_mode ? (room + st - 1) / st : room / st) + 1;
    if (ceil_mode && (out - 1) * st >= in + p) --out;  // the last window must start inside input or left pad
    AVGRAD_CHECK(out > 0, op, "output size ", out, " is not positive in spatial dim ", i, " for input shape ", s);
    g.in[d] = in;
    g.out[d] = out;
  }
  return g;
}

/// Geometry of an adaptive pool: output extents `output_size`, PyTorch's bins.
inline cpu::PoolGeometry pool_adaptive_geometry(const char* op, const Shape& s, int nd, const PoolSize& output_size) {
  check_pool_rank(op, s, nd);
  cpu::PoolGeometry g;
  g.adaptive = true;
  pool_expand(op, "output_size", output_size, nd, g.out);
  for (int i = 0; i < nd; ++i) {
    const int d = 3 - nd + i;
    AVGRAD_CHECK(g.out[d] > 0, op, "output size must be positive, got ", g.out[d], " in spatial dim ", i);
    AVGRAD_CHECK(s[2 + i] > 0, op, "empty spatial dim ", i, " in input shape ", s);
    g.in[d] = s[2 + i];
  }
  return g;
}

/// (B, C, out...) of a pool with geometry g over nd spatial dims.
inline Shape pool_out_shape(const Shape& in, const cpu::PoolGeometry& g) {
  const int nd = in.rank() - 2;
  Shape out{in[0], in[1]};
  for (int i = 0; i < nd; ++i) out.push_back(g.out[3 - nd + i]);
  return out;
}

/// x's strides as (b, c, d0, d1, d2), stride 0 for the unused leading spatial slots.
template <Element T> void pool_strides(const Tensor<T, Cpu>& x, std::int64_t (&xs)[5]) {
  const int nd = x.dim() - 2;
  xs[0] = x.strides()[0];
  xs[1] = x.strides()[1];
  for (int d = 0; d < 3; ++d) xs[2 + d] = d < 3 - nd ? 0 : x.strides()[2 + d - (3 - nd)];
}

/// Max pool forward: y (and the argmax indices when idx is non-null).
template <Floating T>
Tensor<T, Cpu> max_pool_kernel(const Tensor<T, Cpu>& x, const cpu::PoolGeometry& g, Tensor<std::int64_t, Cpu>* idx) {
  const Shape out = pool_out_shape(x.shape(), g);
  auto y = Tensor<T, Cpu>::empty(out);
  if (idx) *idx = Tensor<std::int64_t, Cpu>::empty(out);
  std::int64_t xs[5];
  pool_strides(x, xs);
  cpu::max_pool_forward(x.data(), xs, x.shape()[0], x.shape()[1], g, y.data(), idx ? idx->data() : nullptr);
  return y;
}

template <Floating T> Tensor<T, Cpu> max_pool_backward_kernel(const Tensor<T, Cpu>& g,
                                                              const Tensor<std::int64_t, Cpu>& idx,
                                                              const Shape& in_shape, const cpu::PoolGeometry& geo) {
  auto gc = g.contiguous();
  auto dx = zeros<T>(in_shape);
  cpu::max_pool_backward(gc.data(), idx.data(), in_shape[0] * in_shape[1], geo, dx.data());
  return dx;
}

template <Floating T> Tensor<T, Cpu> avg_pool_kernel(const Tensor<T, Cpu>& x, const cpu::PoolGeometry& g) {
  auto y = Tensor<T, Cpu>::empty(pool_out_shape(x.shape(), g));
  std::int64_t xs[5];
  pool_strides(x, xs);
  cpu::avg_pool_forward(x.data(), xs, x.shape()[0], x.shape()[1], g, y.data());
  return y;
}

template <Floating T>
Tensor<T, Cpu> avg_pool_backward_kernel(const Tensor<T, Cpu>& g, const Shape& in_shape, const cpu::PoolGeometry& geo) {
  auto gc = g.contiguous();
  auto dx = zeros<T>(in_shape);
  cpu::avg_pool_backward(gc.data(), in_shape[0] * in_shape[1], geo, dx.data());
  return dx;
}

}  // namespace detail

namespace backend {
/// The device seam of pooling: max_forward(x, geo, idx*), max_backward(g, idx, in_shape,
/// geo), avg_forward(x, geo), avg_backward(g, in_shape, geo), with the detail:: kernels'
/// signatures on Tensor<T, D>. Pool<Cuda> lives in cuda/avgrad/cuda/pool.cuh.
template <Device D> struct Pool;
template <> struct Pool<Cpu> {
  template <class T, class... A> static auto max_forward(const Tensor<T, Cpu>& x, A... a) {
    return detail::max_pool_kernel(x, a...);
  }
  template <class T, class... A> static auto max_backward(const Tensor<T, Cpu>& g, const A&... a) {
    return detail::max_pool_backward_kernel(g, a...);
  }
  template <class T, class... A> static auto avg_forward(const Tensor<T, Cpu>& x, const A&... a) {
    return detail::avg_pool_kernel(x, a...);
  }
  template <class T, class... A> static auto avg_backward(const Tensor<T, Cpu>& g, const A&... a) {
    return detail::avg_pool_backward_kernel(g, a...);
  }
};
}  // namespace backend

namespace detail {

/// Max pool (strided or adaptive, per geometry) with its argmax-routing backward.
template <Floating T, Device D>
Tensor<T, D> max_pool_nd(const char* op, const Tensor<T, D>& x, const cpu::PoolGeometry& geo) {
  const bool grad = autograd::any_requires_grad<T, D>({&x});
  Tensor<std::int64_t, D> idx;
  auto y = backend::Pool<D>::max_forward(x, geo, grad ? &idx : nullptr);
  if (!grad) return y;
  Shape in = x.shape();
  // y_o = x_{a(o)}, a(o) the argmax of window o (fixed near x: no ties)
  //   ⇒ dx_i = Σ_{o : a(o) = i} g_o — a scatter-add along the saved indices
  return autograd::record<T, D>(op, y, {x}, [=](const Tensor<T, D>& g, const std::vector<bool>&) {
    return autograd::Grads<T, D>{backend::Pool<D>::max_backward(g, idx, in, geo)};
  });
}

/// Average pool (strided or adaptive, per geometry) with its spreading backward.
template <Floating T, Device D>
Tensor<T, D> avg_pool_nd(const char* op, const Tensor<T, D>& x, const cpu::PoolGeometry& geo) {
  auto y = backend::Pool<D>::avg_forward(x, geo);
  Shape in = x.shape();
  // y_o = (1/n_o) Σ_{i ∈ W(o)} x_i  ⇒  dx_i = Σ_{o : i ∈ W(o)} g_o / n_o
  // (n_o the window's divisor; padded taps take their share of g_o and drop it)
  return autograd::record<T, D>(op, y, {x}, [=](const Tensor<T, D>& g, const std::vector<bool>&) {
    return autograd::Grads<T, D>{backend::Pool<D>::avg_backward(g, in, geo)};
  });
}

template <Floating T, Device D>
Tensor<T, D> max_pool_op(const char* op, int nd, const Tensor<T, D>& x, const PoolSize& kernel_size,
                         const PoolSize& stride, const PoolSize& padding, const PoolSize& dilation, bool ceil_mode) {
  check_defined(x, op);
  return max_pool_nd(op, x,
                     pool_window_geometry(op, x.shape(), nd, kernel_size, stride, padding, dilation, ceil_mode, true));
}

template <Floating T, Device D>
Tensor<T, D> avg_pool_op(const char* op, int nd, const Tensor<T, D>& x, const PoolSize& kernel_size,
                         const PoolSize& stride, const PoolSize& padding, bool ceil_mode, bool count_include_pad) {
  check_defined(x, op);
  return avg_pool_nd(
      op, x, pool_window_geometry(op, x.shape(), nd, kernel_size, stride, padding, 1, ceil_mode, count_include_pad));
}

}  // namespace detail

// ---- max pooling -----------------------------------------------------------------
/// y[b, c, o] = max of x[b, c, ·] over window o: taps o·stride − padding + j·dilation,
/// j < kernel_size, per spatial dim; padding counts as −inf; NaN propagates.
/// x: (B, C, T) / (B, C, H, W) / (B, C, T, H, W), any strides; y: (B, C, out...),
/// out = ⌊(in + 2·padding − dilation·(kernel_size − 1) − 1) / stride⌋ + 1 (⌈·⌉ with ceil_mode).
/// stride defaults to kernel_size. Checks: rank, kernel_size/stride/dilation > 0,
/// 0 ≤ padding ≤ kernel_size/2, dilated kernel ≤ padded input, out > 0.
/// Backward: dx[argmax of window o] += g[o].
template <Floating T, Device D> Tensor<T, D> max_pool1d(const Tensor<T, D>& x, const PoolSize& kernel_size,
                                                        const PoolSize& stride = {}, const PoolSize& padding = 0,
                                                        const PoolSize& dilation = 1, bool ceil_mode = false) {
  return detail::max_pool_op("max_pool1d", 1, x, kernel_size, stride, padding, dilation, ceil_mode);
}
template <Floating T, Device D> Tensor<T, D> max_pool2d(const Tensor<T, D>& x, const PoolSize& kernel_size,
                                                        const PoolSize& stride = {}, const PoolSize& padding = 0,
                                                        const PoolSize& dilation = 1, bool ceil_mode = false) {
  return detail::max_pool_op("max_pool2d", 2, x, kernel_size, stride, padding, dilation, ceil_mode);
}
template <Floating T, Device D> Tensor<T, D> max_pool3d(const Tensor<T, D>& x, const PoolSize& kernel_size,
                                                        const PoolSize& stride = {}, const PoolSize& padding = 0,
                                                        const PoolSize& dilation = 1, bool ceil_mode = false) {
  return detail::max_pool_op("max_pool3d", 3, x, kernel_size, stride, padding, dilation, ceil_mode);
}

// ---- average pooling ---------------------------------------------------------------
/// y[b, c, o] = Σ over window o (taps o·stride − padding + j, j < kernel_size, per dim)
/// of the in-bounds x[b, c, ·], divided by the window size clipped to the padded input
/// (count_include_pad, PyTorch's default) or by the number of in-bounds taps.
/// Shapes, defaults and checks as max_pool (no dilation).
/// Backward: dx[i] += g[o] / divisor(o) for every window o holding i.
template <Floating T, Device D> Tensor<T, D> avg_pool1d(const Tensor<T, D>& x, const PoolSize& kernel_size,
                                                        const PoolSize& stride = {}, const PoolSize& padding = 0,
                                                        bool ceil_mode = false, bool count_include_pad = true) {
  return detail::avg_pool_op("avg_pool1d", 1, x, kernel_size, stride, padding, ceil_mode, count_include_pad);
}
template <Floating T, Device D> Tensor<T, D> avg_pool2d(const Tensor<T, D>& x, const PoolSize& kernel_size,
                                                        const PoolSize& stride = {}, const PoolSize& padding = 0,
                                                        bool ceil_mode = false, bool count_include_pad = true) {
  return detail::avg_pool_op("avg_pool2d", 2, x, kernel_size, stride, padding, ceil_mode, count_include_pad);
}
template <Floating T, Device D> Tensor<T, D> avg_pool3d(const Tensor<T, D>& x, const PoolSize& kernel_size,
                                                        const PoolSize& stride = {}, const PoolSize& padding = 0,
                                                        bool ceil_mode = false, bool count_include_pad = true) {
  return detail::avg_pool_op("avg_pool3d", 3, x, kernel_size, stride, padding, ceil_mode, count_include_pad);
}

// ---- adaptive pooling --------------------------------------------------------------
/// Output o along a spatial dim of extent in pools input bin [⌊o·in/out⌋, ⌈(o+1)·in/out⌉)
/// (PyTorch's bins; out may exceed in, bins then repeat). x: (B, C, in...), any strides;
/// y: (B, C, output_size...). Checks: rank, output_size > 0, in > 0.
template <Floating T, Device D> Tensor<T, D> adaptive_avg_pool1d(const Tensor<T, D>& x, const PoolSize& output_size) {
  detail::check_defined(x, "adaptive_avg_pool1d");
  return detail::avg_pool_nd("adaptive_avg_pool1d", x,
                             detail::pool_adaptive_geometry("adaptive_avg_pool1d", x.shape(), 1, output_size));
}
template <Floating T, Device D> Tensor<T, D> adaptive_avg_pool2d(const Tensor<T, D>& x, const PoolSize& output_size) {
  detail::check_defined(x, "adaptive_avg_pool2d");
  return detail::avg_pool_nd("adaptive_avg_pool2d", x,
                             detail::pool_adaptive_geometry("adaptive_avg_pool2d", x.shape(), 2, output_size));
}
template <Floating T, Device D> Tensor<T, D> adaptive_avg_pool3d(const Tensor<T, D>& x, const PoolSize& output_size) {
  detail::check_defined(x, "adaptive_avg_pool3d");
  return detail::avg_pool_nd("adaptive_avg_pool3d", x,
                             detail::pool_adaptive_geometry("adaptive_avg_pool3d", x.shape(), 3, output_size));
}
/// As adaptive_avg_pool, with the max of each bin; backward routes g to the bin's argmax.
template <Floating T, Device D> Tensor<T, D> adaptive_max_pool1d(const Tensor<T, D>& x, const PoolSize& output_size) {
  detail::check_defined(x, "adaptive_max_pool1d");
  return detail::max_pool_nd("adaptive_max_pool1d", x,
                             detail::pool_adaptive_geometry("adaptive_max_pool1d", x.shape(), 1, output_size));
}
template <Floating T, Device D> Tensor<T, D> adaptive_max_pool2d(const Tensor<T, D>& x, const PoolSize& output_size) {
  detail::check_defined(x, "adaptive_max_pool2d");
  return detail::max_pool_nd("adaptive_max_pool2d", x,
                             detail::pool_adaptive_geometry("adaptive_max_pool2d", x.shape(), 2, output_size));
}
template <Floating T, Device D> Tensor<T, D> adaptive_max_pool3d(const Tensor<T, D>& x, const PoolSize& output_size) {
  detail::check_defined(x, "adaptive_max_pool3d");
  return detail::max_pool_nd("adaptive_max_pool3d", x,
                             detail::pool_adaptive_geometry("adaptive_max_pool3d", x.shape(), 3, output_size));
}

// ---- global pooling ----------------------------------------------------------------
/// Mean over every spatial dim. x: (B, C, ...) with at least one non-empty spatial
/// dim, any strides; y: (B, C). Backward: dx = g / (spatial size), broadcast.
template <Floating T, Device D> Tensor<T, D> global_avg_pool(const Tensor<T, D>& x) {
  detail::check_defined(x, "global_avg_pool");
  AVGRAD_CHECK(x.dim() >= 3, "global_avg_pool", "expected an input (B, C, ...) with spatial dims, got shape ",
               x.shape());
  Axes spatial;
  for (int d = 2; d < x.dim(); ++d) {
    AVGRAD_CHECK(x.shape()[d] > 0, "global_avg_pool", "empty spatial dim ", d, " in input shape ", x.shape());
    spatial.push_back(d);
  }
  return mean(x, spatial);
}

/// Max over every spatial dim. x: (B, C, ...) with non-empty spatial dims, any
/// strides; y: (B, C). Backward: g goes to the first maximum of each (b, c) plane.
template <Floating T, Device D> Tensor<T, D> global_max_pool(const Tensor<T, D>& x) {
  const char* op = "global_max_pool";
  detail::check_defined(x, op);
  AVGRAD_CHECK(x.dim() >= 3, op, "expected an input (B, C, ...) with spatial dims, got shape ", x.shape());
  for (int d = 2; d < x.dim(); ++d)
    AVGRAD_CHECK(x.shape()[d] > 0, op, "empty spatial dim ", d, " in input shape ", x.shape());
  // up to 3 spatial dims pool directly; more are flattened into one first
  const Tensor<T, D> v = x.dim() <= 5 ? x : x.flatten(2);
  const int nd = v.dim() - 2;
  auto y = detail::max_pool_nd(op, v, detail::pool_adaptive_geometry(op, v.shape(), nd, 1));
  return y.reshape(Shape{x.shape()[0], x.shape()[1]});
}

}  // namespace avgrad
