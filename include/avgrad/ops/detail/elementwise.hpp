// The elementwise and reduction machinery every op family builds on: map a
// functor over one to three (broadcast) operands into a fresh contiguous tensor,
// reduce over a set of axes, and sum a broadcast gradient back to an input's
// shape. This is the device seam for these kernels: backend::Loops<D> runs them,
// Loops<Cpu> below on backend/cpu, Loops<Cuda> in cuda/avgrad/cuda/elementwise.cuh
// with the same functors (host/device lambdas and fn:: functors).
#pragma once

#include <algorithm>
#include <array>
#include <type_traits>
#include <utility>
#include <vector>

#include "avgrad/autograd/node.hpp"
#include "avgrad/backend/cpu/loops.hpp"
#include "avgrad/backend/cpu/reduce.hpp"
#include "avgrad/core/tensor.hpp"

namespace avgrad {

/// Accumulator type of sums: float sums accumulate in double.
template <class T> using acc_t =
    std::conditional_t<std::is_same_v<T, float>, double, std::conditional_t<std::is_same_v<T, bool>, std::int64_t, T>>;

namespace backend {

/// The loops of one device: map1/map2/map3 write f of up to three strided operands into a
/// strided output of `shape`; map_indexed writes out[i] = f(in[i], i) over n contiguous
/// elements (counter-based streams: dropout); reduce folds the reduced sub-block of
/// every kept index.
template <Device D> struct Loops;

template <> struct Loops<Cpu> {
  template <class TO, class TI, class F>
  static void map1(TO* out, const Strides& so, const TI* in, const Strides& si, const Shape& shape, F f) {
    cpu::map1(out, so, in, si, shape, f);
  }
  template <class TO, class TA, class TB, class F> static void map2(TO* out, const Strides& so, const TA* a,
                                                                    const Strides& sa, const TB* b, const Strides& sb,
                                                                    const Shape& shape, F f) {
    cpu::map2(out, so, a, sa, b, sb, shape, f);
  }
  template <class TO, class TA, class TB, class TC, class F>
  static void map3(TO* out, const Strides& so, const TA* a, const Strides& sa, const TB* b, const Strides& sb,
                   const TC* c, const Strides& sc, const Shape& shape, F f) {
    cpu::map3(out, so, a, sa, b, sb, c, sc, shape, f);
  }
  /// out = f(in₀, …, in_{K−1}) over `shape`, inputs of one element type with their own strides.
  template <class T, class F, std::size_t K> static void map_n(T* out, const Strides& so, const Shape& shape, F f,
                                                               const std::array<const T*, K>& in,
                                                               const std::array<Strides, K>& si) {
    constexpr int N = 1 + static_cast<int>(K);
    std::array<Strides, N> all;
    all[0] = so;
    for (std::size_t k = 0; k < K; ++k) all[k + 1] = si[k];
    auto layout = cpu::coalesce<N>(shape, all);
    cpu::parallel_runs<N>(
        layout, [=](const std::array<std::int64_t, N>& off, std::int64_t n, const std::array<std::int64_t, N>& st) {
          [&]<std::size_t... J>(std::index_sequence<J...>) {
            for (std::int64_t i = 0; i < n; ++i) out[off[0] + i * st[0]] = f(in[J][off[J + 1] + i * st[J + 1]]...);
          }
          (std::make_index_sequence<K>{});
        });
  }
  template <class TO, class TI, class F> static void map_indexed(TO* out, const TI* in, std::int64_t n, F f) {
#pragma omp parallel for if (n >= cpu::kParallelGrain && !omp_in_parallel())
    for (std::int64_t i = 0; i < n; ++i) out[i] = f(in[i], static_cast<std::uint64_t>(i));
  }
  template <class TI, class Acc, class TO, class Load, class Comb, class Fin>
  static void reduce(const TI* in, const Shape& kept_shape, const Strides& kept_strides, const Shape& red_shape,
                     const Strides& red_strides, TO* out, Acc init, Load load, Comb comb, Fin fin) {
    cpu::reduce(in, kept_shape, kept_strides, red_shape, red_strides, out, init, load, comb, fin);
  }
};

}  // namespace backend

namespace detail {

/// x ↦ x as a named host/device functor: usable in kernels launched from templates whose
/// parameters are lambdas, where nvcc forbids an extended lambda.
struct Identity {
  template <class T> AVGRAD_HOST_DEVICE T operator()(T v) const { return v; }
};

template <class T> void check_defined(const T& x, const char* op) {
  AVGRAD_CHECK(x.defined(), op, "undefined tensor argument");
}

/// out = f(x) elementwise, contiguous output of x's shape.
template <Element TO, Element TI, Device D, class F> Tensor<TO, D> map(const Tensor<TI, D>& x, F f) {
  auto out = Tensor<TO, D>::empty(x.shape());
  backend::Loops<D>::map1(out.data(), out.strides(), x.data(), x.strides(), x.shape(), f);
  return out;
}

/// out = f(a, b) with NumPy broadcasting.
template <Element TO, Element TA, Element TB, Device D, class F>
Tensor<TO, D> map(const Tensor<TA, D>& a, const Tensor<TB, D>& b, F f, const char* op) {
  Shape s = broadcast_shapes(a.shape(), b.shape(), op);
  auto out = Tensor<TO, D>::empty(s);
  backend::Loops<D>::map2(out.data(), out.strides(), a.data(), broadcast_strides(a.shape(), a.strides(), s), b.data(),
                          broadcast_strides(b.shape(), b.strides(), s), s, f);
  return out;
}

/// out = f(a, b, c) with NumPy broadcasting.
template <Element TO, Element TA, Element TB, Element TC, Device D, class F>
Tensor<TO, D> map(const Tensor<TA, D>& a, const Tensor<TB, D>& b, const Tensor<TC, D>& c, F f, const char* op) {
  Shape s = broadcast_shapes(broadcast_shapes(a.shape(), b.shape(), op), c.shape(), op);
  auto out = Tensor<TO, D>::empty(s);
  backend::Loops<D>::map3(out.data(), out.strides(), a.data(), broadcast_strides(a.shape(), a.strides(), s), b.data(),
                          broadcast_strides(b.shape(), b.strides(), s), c.data(),
                          broadcast_strides(c.shape(), c.strides(), s), s, f);
  return out;
}

/// Writes f(x) into an existing tensor `out` (any strides) of x's broadcast shape.
template <Element TO, Element TI, Device D, class F>
void map_into(Tensor<TO, D>& out, const Tensor<TI, D>& x, F f, const char* op) {
  AVGRAD_CHECK(broadcast_shapes(x.shape(), out.shape(), op) == out.shape(), op, "cannot write shape ", x.shape(),
               " into ", out.shape());
  backend::Loops<D>::map1(out.data(), out.strides(), x.data(), broadcast_strides(x.shape(), x.strides(), out.shape()),
                          out.shape(), f);
  out.storage()->bump_version();
}

/// Sorted, unique, normalised axes; empty input means "all axes".
inline std::vector<int> normalize_axes(const std::vector<std::int64_t>& axes, int rank, const char* op) {
  std::vector<int> out;
  if (axes.empty()) {
    for (int i = 0; i < rank; ++i) out.push_back(i);
    return out;
  }
  for (auto a : axes) out.push_back(normalize_axis(a, rank, op));
  std::sort(out.begin(), out.end());
  AVGRAD_CHECK(std::adjacent_find(out.begin(), out.end()) == out.end(), op, "repeated axis in reduction");
  return out;
}

/// Output shape of a reduction over `axes` (keepdim keeps them as extent 1).
inline Shape reduced_shape(const Shape& s, const std::vector<int>& axes, bool keepdim) {
  Shape out;
  for (int d = 0; d < s.rank(); ++d) {
    bool red = std::find(axes.begin(), axes.end(), d) != axes.end();
    if (!red)
      out.push_back(s[d]);
    else if (keepdim)
      out.push_back(1);
  }
  return out;
}

/// Generic reduction of x over `axes` into a fresh tensor of element type TO.
template <Element TO, class Acc, Element TI, Device D, class Load, class Comb, class Fin>
Tensor<TO, D> reduce(const Tensor<TI, D>& x, const std::vector<int>& axes, bool keepdim, Acc init, Load load, Comb comb,
                     Fin fin) {
  Shape kept, kept_st, red, red_st;
  for (int d = 0; d < x.dim(); ++d) {
    bool r = std::find(axes.begin(), axes.end(), d) != axes.end();
    (r ? red : kept).push_back(x.shape()[d]);
    (r ? red_st : kept_st).push_back(x.strides()[d]);
  }
  auto out = Tensor<TO, D>::empty(reduced_shape(x.shape(), axes, keepdim));
  backend::Loops<D>::reduce(x.data(), kept, kept_st, red, red_st, out.data(), init, load, comb, fin);
  return out;
}

/// Sum of g over the dims that broadcasting added or stretched, giving `shape`.
/// The backward of every broadcasting op ends here.
template <Floating T, Device D> Tensor<T, D> sum_to(const Tensor<T, D>& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  const int lead = g.dim() - shape.rank();
  AVGRAD_CHECK(lead >= 0, "sum_to", "cannot reduce shape ", g.shape(), " to ", shape);
  std::vector<int> axes;
  for (int d = 0; d < g.dim(); ++d)
    if (d < lead || (shape[d - lead] == 1 && g.shape()[d] != 1)) axes.push_back(d);
  auto r = reduce<T, acc_t<T>>(
      g, axes, /*keepdim=*/true, acc_t<T>(0), [] AVGRAD_HOST_DEVICE(T v) { return static_cast<acc_t<T>>(v); },
      [] AVGRAD_HOST_DEVICE(acc_t<T> a, acc_t<T> b) { return a + b; },
      [] AVGRAD_HOST_DEVICE(acc_t<T> a) { return static_cast<T>(a); });
  // drop the leading dims (kept as 1s): a contiguous tensor reshapes for free
  return Tensor<T, D>::from_storage(r.storage(), shape, contiguous_strides(shape), 0);
}

/// a + b without recording (gradient accumulation). Shapes must match.
template <Element T, Device D> Tensor<T, D> add_into(const Tensor<T, D>& a, const Tensor<T, D>& b) {
  return map<T>(
      a, b, [] AVGRAD_HOST_DEVICE(T x, T y) { return x + y; }, "accumulate");
}

/// The unary-op pattern: y = F(x); dx = F.grad(x, y, g). F is a host/device
/// functor (see ops/unary.hpp), so the CUDA backend reuses it as is.
template <Floating T, Device D, class F> Tensor<T, D> unary_op(const char* name, const Tensor<T, D>& x, F f) {
  check_defined(x, name);
  auto y = map<T>(x, [f] AVGRAD_HOST_DEVICE(T v) { return f(v); });
  if (!autograd::any_requires_grad<T, D>({&x})) return y;
  autograd::Saved<T, D> sx(x), sy(y);
  return autograd::record<T, D>(name, y, {x}, [=](const Tensor<T, D>& g, const std::vector<bool>&) {
    const auto& xv = sx.get(name);
    const auto& yv = sy.get(name);
    return autograd::Grads<T, D>{map<T>(
        g, xv, yv, [f] AVGRAD_HOST_DEVICE(T gg, T xx, T yy) { return f.grad(xx, yy, gg); }, name)};
  });
}

}  // namespace detail
}  // namespace avgrad
