// Indexing with integer tensors, with PyTorch semantics: index_select, gather,
// scatter_add, one_hot, and masked_fill with a bool mask.
//
// Indices are int64 and must lie in [0, extent). As in PyTorch's index_select,
// gather and scatter_add, negative indices are rejected, not wrapped. Every
// index is checked before any element is read; a bad one throws avgrad::Error
// naming the op, the index value and its position in the index tensor.
// Index and mask tensors carry no gradient; they are copied into the backward
// closure (indices) or saved with a version check (masks).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

#include "avgrad/ops/join.hpp"

namespace avgrad {

namespace detail {

/// The multi-index of flat (row-major) position `flat` in `shape`, printable as (i,j,…).
inline Shape index_position(const Shape& shape, std::int64_t flat) {
  Shape pos = Shape::filled(shape.rank(), 0);
  for (int d = shape.rank() - 1; d >= 0; --d) {
    pos[d] = flat % shape[d];
    flat /= shape[d];
  }
  return pos;
}

/// The values of idx in row-major order, each checked to lie in [0, n).
/// `where()` describes the indexed dim for the error message (built only on failure).
/// Device indices are copied to the host for the check (one synchronisation).
template <Device D, class Where> std::vector<std::int64_t> checked_indices(const Tensor<std::int64_t, D>& idx,
                                                                           std::int64_t n, const char* op,
                                                                           Where where) {
  std::vector<std::int64_t> v = idx.template to<Cpu>().to_vector();
  for (std::size_t k = 0; k < v.size(); ++k)
    AVGRAD_CHECK(v[k] >= 0 && v[k] < n, op, "index ", v[k], " at position ",
                 index_position(idx.shape(), static_cast<std::int64_t>(k)), " is out of range for ", where(),
                 " (valid: 0 to ", n - 1, "; negative indices are not wrapped)");
  return v;
}

/// Calls f(offsets) once per line of `ishape` along dim a (all positions that
/// differ only in coordinate a), with offsets[k] = Σ_{d≠a} p_d·strides[k][d].
/// Lines run in parallel when the index is large: callers must only write
/// elements that belong to their own line.
template <int N, class F>
void for_each_index_line(const Shape& ishape, int a, const std::array<Strides, N>& strides, F f) {
  const std::int64_t total = ishape.numel();
  if (total == 0) return;
  const std::int64_t lines = total / ishape[a];
  Shape rest;
  std::array<Strides, N> rs;
  for (int d = 0; d < ishape.rank(); ++d) {
    if (d == a) continue;
    rest.push_back(ishape[d]);
    for (int k = 0; k < N; ++k) rs[k].push_back(strides[k][d]);
  }
#pragma omp parallel for schedule(static) if (join_worth_parallel(total))
  for (std::int64_t l = 0; l < lines; ++l) {
    std::array<std::int64_t, N> off{};
    std::int64_t rem = l;
    for (int d = rest.rank() - 1; d >= 0; --d) {
      const std::int64_t c = rem % rest[d];
      rem /= rest[d];
      for (int k = 0; k < N; ++k) off[k] += c * rs[k][d];
    }
    f(off);
  }
}

/// out[p] = x[p with p_a replaced by idx[p]] for every p in ishape; fresh contiguous.
/// idx: the checked values of the index tensor, row-major over ishape.
template <Element T>
Tensor<T, Cpu> gather_along(const Tensor<T, Cpu>& x, int a, const std::vector<std::int64_t>& idx, const Shape& ishape) {
  auto out = Tensor<T, Cpu>::empty(ishape);
  const Strides ic = contiguous_strides(ishape);
  const std::int64_t ka = ishape[a], ia = ic[a], xa = x.strides()[a];
  const T* xp = x.data();
  T* op = out.data();
  const std::int64_t* iv = idx.data();
  for_each_index_line<2>(ishape, a, {ic, x.strides()}, [=](const std::array<std::int64_t, 2>& off) {
    for (std::int64_t k = 0; k < ka; ++k) op[off[0] + k * ia] = xp[off[1] + iv[off[0] + k * ia] * xa];
  });
  return out;
}

/// dst[p with p_a replaced by idx[p]] += src[p] for every p in ishape, in place
/// (dst: a fresh tensor, any strides; src: any strides, extents >= ishape).
/// Deterministic: positions of one line share their non-a coordinates, so lines
/// write disjoint dst elements, and a line adds its terms in increasing p_a.
template <Element T> void scatter_add_along(Tensor<T, Cpu>& dst, int a, const std::vector<std::int64_t>& idx,
                                            const Shape& ishape, const Tensor<T, Cpu>& src) {
  const Strides ic = contiguous_strides(ishape);
  const std::int64_t ka = ishape[a], ia = ic[a], da = dst.strides()[a], sa = src.strides()[a];
  T* dp = dst.data();
  const T* sp = src.data();
  const std::int64_t* iv = idx.data();
  for_each_index_line<3>(ishape, a, {ic, dst.strides(), src.strides()}, [=](const std::array<std::int64_t, 3>& off) {
    for (std::int64_t k = 0; k < ka; ++k) dp[off[1] + iv[off[0] + k * ia] * da] += sp[off[2] + k * sa];
  });
}

}  // namespace detail

namespace backend {
/// The device seam of per-element gathers along one axis (gather, scatter_add):
/// gather(x, a, idx, ishape) and scatter_add(dst, a, idx, ishape, src), with the detail::
/// kernels' signatures on Tensor<T, D>. AxisGather<Cuda>: cuda/avgrad/cuda/gather.cuh.
template <Device D> struct AxisGather;
template <> struct AxisGather<Cpu> {
  template <class T, class... A> static auto gather(const Tensor<T, Cpu>& x, const A&... a) {
    return detail::gather_along(x, a...);
  }
  template <class T, class... A> static void scatter_add(Tensor<T, Cpu>& dst, const A&... a) {
    detail::scatter_add_along(dst, a...);
  }
};
}  // namespace backend

/// Rows of x along `axis` picked by idx (0-D or 1-D, entries in [0, extent),
/// repeats allowed): out extent along axis = idx.numel(), other dims as x.
/// Gradient: scatter-add of g back to the picked positions (repeats accumulate).
template <Element T, Device D>
Tensor<T, D> index_select(const Tensor<T, D>& x, std::int64_t axis, const Tensor<std::int64_t, D>& idx) {
  const int a = detail::checked_axis(x, axis, "index_select");
  detail::check_defined(idx, "index_select");
  AVGRAD_CHECK(idx.dim() <= 1, "index_select", "index must be 0-D or 1-D, got shape ", idx.shape());
  auto v = detail::checked_indices(idx, x.shape()[a], "index_select",
                                   [&] { return detail::concat("dim ", a, " of input shape ", x.shape()); });
  Shape out = x.shape();
  out[a] = static_cast<std::int64_t>(v.size());
  // out = x[.., v[o], ..] is a gather with source map v along a; its adjoint
  // dx[.., i, ..] = Σ_{o : v[o] = i} g[.., o, ..] is the scatter-add in join.hpp.
  detail::IndexMaps maps(static_cast<std::size_t>(x.dim()));
  maps[static_cast<std::size_t>(a)] = std::move(v);
  return detail::mapped_gather_op("index_select", x, out, std::move(maps));
}

/// torch.gather: out[p] = x[p with p_axis replaced by idx[p]]. idx has x's rank
/// and extents <= x's in every dim but axis; out has idx's shape.
/// Gradient: dx = zeros(x) with dx[p with p_axis → idx[p]] += g[p].
template <Element T, Device D>
Tensor<T, D> gather(const Tensor<T, D>& x, std::int64_t axis, const Tensor<std::int64_t, D>& idx) {
  const int a = detail::checked_axis(x, axis, "gather");
  detail::check_defined(idx, "gather");
  AVGRAD_CHECK(idx.dim() == x.dim(), "gather", "index shape ", idx.shape(), " and input shape ", x.shape(),
               " differ in rank");
  for (int d = 0; d < x.dim(); ++d)
    AVGRAD_CHECK(d == a || idx.shape()[d] <= x.shape()[d], "gather", "index shape ", idx.shape(),
                 " exceeds input shape ", x.shape(), " in dim ", d);
  auto v = std::make_shared<const std::vector<std::int64_t>>(detail::checked_indices(
      idx, x.shape()[a], "gather", [&] { return detail::concat("dim ", a, " of input shape ", x.shape()); }));
  const Shape is = idx.shape();
  auto y = backend::AxisGather<D>::gather(x, a, *v, is);
  if constexpr (Floating<T>) {
    Shape in = x.shape();
    // y[p] = x[p|a←idx[p]] → ∂y[p]/∂x[q] = [q = p|a←idx[p]], so dx[q] = Σ_{p ↦ q} g[p]
    return autograd::record<T, D>("gather", y, {x}, [=](const Tensor<T, D>& g, const std::vector<bool>&) {
      auto dx = zeros<T, D>(in);
      backend::AxisGather<D>::scatter_add(dx, a, *v, is, g);
      return autograd::Grads<T, D>{dx};
    });
  }
  return y;
}

/// torch.scatter_add (out of place): out = x, then out[p with p_axis → idx[p]] += src[p]
/// for every p in idx's shape. x, idx, src have one rank; idx extents <= src's in
/// every dim and <= x's in every dim but axis; src entries outside idx's shape are unused.
/// Gradient: dx = g; dsrc[p] = g[p with p_axis → idx[p]] inside idx's shape, 0 outside.
template <Element T, Device D>
requires(!std::same_as<T, bool>) Tensor<T, D> scatter_add(const Tensor<T, D>& x, std::int64_t axis,
                                                          const Tensor<std::int64_t, D>& idx, const Tensor<T, D>& src) {
  const int a = detail::checked_axis(x, axis, "scatter_add");
  detail::check_defined(idx, "scatter_add");
  detail::check_defined(src, "scatter_add");
  AVGRAD_CHECK(idx.dim() == x.dim() && src.dim() == x.dim(), "scatter_add", "input ", x.shape(), ", index ",
               idx.shape(), " and src ", src.shape(), " must have the same rank");
  for (int d = 0; d < x.dim(); ++d) {
    AVGRAD_CHECK(idx.shape()[d] <= src.shape()[d], "scatter_add", "index shape ", idx.shape(), " exceeds src shape ",
                 src.shape(), " in dim ", d);
    AVGRAD_CHECK(d == a || idx.shape()[d] <= x.shape()[d], "scatter_add", "index shape ", idx.shape(),
                 " exceeds input shape ", x.shape(), " in dim ", d);
  }
  auto v = std::make_shared<const std::vector<std::int64_t>>(detail::checked_indices(
      idx, x.shape()[a], "scatter_add", [&] { return detail::concat("dim ", a, " of input shape ", x.shape()); }));
  const Shape is = idx.shape();
  auto y = detail::copy_contiguous(x);
  backend::AxisGather<D>::scatter_add(y, a, *v, is, src);
  if constexpr (Floating<T>) {
    Shape src_shape = src.shape();
    return autograd::record<T, D>("scatter_add", y, {x, src},
                                  [=](const Tensor<T, D>& g, const std::vector<bool>& need) {
                                    autograd::Grads<T, D> gs(2);
                                    if (need[0]) gs[0] = g;  // y = x + (scattered src): ∂y/∂x = I
                                    if (need[1]) {
                                      // y[p|a←idx[p]] gets src[p]: dsrc[p] = g[p|a←idx[p]], a gather of g
                                      auto picked = backend::AxisGather<D>::gather(g, a, *v, is);
                                      if (is == src_shape) {
                                        gs[1] = picked;
                                      } else {
                                        auto z = zeros<T, D>(src_shape);
                                        auto region = Tensor<T, D>::from_storage(z.storage(), is, z.strides(), 0);
                                        detail::map_into(region, picked, detail::Identity{}, "scatter_add backward");
                                        gs[1] = z;
                                      }
                                    }
                                    return gs;
                                  });
  }
  return y;
}

/// Labels (any shape, entries in [0, num_classes)) → one-hot of shape labels.shape + (K,)
/// with element type T (float unless given). num_classes = -1 uses max label + 1.
template <Element T = float, Device D = Cpu>
Tensor<T, D> one_hot(const Tensor<std::int64_t, D>& labels, std::int64_t num_classes = -1) {
  detail::check_defined(labels, "one_hot");
  AVGRAD_CHECK(num_classes > 0 || num_classes == -1, "one_hot", "num_classes must be positive or -1, got ",
               num_classes);
  if constexpr (!std::same_as<D, Cpu>) {  // built on the host, moved once
    return one_hot<T, Cpu>(labels.template to<Cpu>(), num_classes).template to<D>();
  } else {
    std::int64_t k = num_classes;
    if (k == -1) {
      AVGRAD_CHECK(labels.numel() > 0, "one_hot", "cannot infer num_classes from empty labels of shape ",
                   labels.shape());
      k = 0;
      for (auto l : labels.to_vector()) k = std::max(k, l + 1);
      k = std::max<std::int64_t>(k, 1);
    }
    auto v = detail::checked_indices(labels, k, "one_hot", [&] { return detail::concat(k, " classes"); });
    Shape out = labels.shape();
    AVGRAD_CHECK(out.rank() < kMaxRank, "one_hot", "labels of shape ", out, " leave no room for a class dim");
    out.push_back(k);
    auto y = zeros<T, D>(out);
    T* p = y.data();
    for (std::size_t i = 0; i < v.size(); ++i) p[static_cast<std::int64_t>(i) * k + v[i]] = T(1);
    return y;
  }
}

/// out = mask ? value : x, with mask broadcast to x's shape (out has x's shape).
/// Gradient: g with the masked positions zeroed (they no longer depend on x).
template <Element T, Device D>
Tensor<T, D> masked_fill(const Tensor<T, D>& x, const Tensor<bool, D>& mask, std::type_identity_t<T> value) {
  detail::check_defined(x, "masked_fill");
  detail::check_defined(mask, "masked_fill");
  AVGRAD_CHECK(mask.dim() <= x.dim() && broadcast_shapes(mask.shape(), x.shape(), "masked_fill") == x.shape(),
               "masked_fill", "mask of shape ", mask.shape(), " does not broadcast to input shape ", x.shape());
  auto y = detail::map<T>(
      x, mask, [value] AVGRAD_HOST_DEVICE(T e, bool m) { return m ? value : e; }, "masked_fill");
  if constexpr (Floating<T>) {
    if (!autograd::any_requires_grad<T, D>({&x})) return y;
    autograd::Saved<bool, D> sm(mask);
    // y = x where !mask, constant where mask: dy/dx = [!mask]
    return autograd::record<T, D>("masked_fill", y, {x}, [sm](const Tensor<T, D>& g, const std::vector<bool>&) {
      return autograd::Grads<T, D>{detail::map<T>(
          g, sm.get("masked_fill"), [] AVGRAD_HOST_DEVICE(T e, bool m) { return m ? T(0) : e; }, "masked_fill")};
    });
  }
  return y;
}

}  // namespace avgrad
