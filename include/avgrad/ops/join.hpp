// Joining and rearranging: concat/stack (any number of inputs, one gradient
// each), split/chunk (views into the input), pad (constant, reflect, replicate),
// repeat, flip and roll.
//
// pad, repeat, flip and roll (and index_select in ops/index.hpp) are all one
// kernel: out[o_0..o_n] = x[m_0(o_0), .., m_n(o_n)] with a source map m_d per
// dim (-1 reads a fill value). Their backward is the adjoint of that gather: a
// scatter-add of g through the same maps, done one mapped dim at a time, which
// is deterministic (every output element sums its sources in a fixed order).
// Integer and bool tensors work everywhere; only floating tensors record.
#pragma once

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <vector>

#include <omp.h>

#include "avgrad/core/device.hpp"
#include "avgrad/ops/view.hpp"

namespace avgrad {

/// How pad() fills the border (as torch.nn.functional.pad's `mode`).
enum class PadMode {
  constant,   ///< a fixed value; negative pads crop
  reflect,    ///< mirror without repeating the edge: [1 2 3] pad 2 → [3 2 1 2 3 2 1]; pad < size
  replicate,  ///< repeat the edge element: [1 2 3] pad 2 → [1 1 1 2 3 3 3]
  symmetric,  ///< mirror repeating the edge (numpy's "symmetric", Kaldi): [1 2 3] pad 2 → [2 1 1 2 3 3 2]; pad <= size
};

/// Where padded position i (any integer) of an extent-n dim reads from, for the
/// mirroring and replicating modes; -1 for constant padding outside [0, n).
/// Mirrors repeat as often as needed (Kaldi's frame extraction relies on this).
/// Host and device: the GPU framing kernels read through it.
AVGRAD_HOST_DEVICE inline std::int64_t padded_source_index(std::int64_t i, std::int64_t n, PadMode mode) {
  if (i >= 0 && i < n) return i;
  if (n <= 0) return -1;  // nothing to mirror or repeat
  switch (mode) {
    case PadMode::constant:
      return -1;
    case PadMode::replicate:
      return i < 0 ? 0 : n - 1;
    case PadMode::reflect:
      if (n == 1) return 0;
      while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;  // -1 → 1, n → n-2
      return i;
    case PadMode::symmetric:
      while (i < 0 || i >= n) i = i < 0 ? -i - 1 : 2 * n - 1 - i;  // -1 → 0, n → n-1
      return i;
  }
  return -1;
}

inline const char* pad_mode_name(PadMode mode) {
  switch (mode) {
    case PadMode::constant:
      return "constant";
    case PadMode::reflect:
      return "reflect";
    case PadMode::replicate:
      return "replicate";
    case PadMode::symmetric:
      return "symmetric";
  }
  return "?";
}

namespace detail {

/// True when a loop over n elements should fork (never inside a parallel region).
inline bool join_worth_parallel(std::int64_t n) {
  return n >= cpu::kParallelGrain && omp_get_max_threads() > 1 && !omp_in_parallel();
}

/// One source map per dim: maps[d][o] is the input index read at output index o
/// of dim d, or -1 for the fill value. An empty map is the identity (a dim whose
/// output extent is 0 has no elements, so it never needs a map).
using IndexMaps = std::vector<std::vector<std::int64_t>>;

/// out[o] = x[maps(o)] (fill where any map gives -1): a fresh contiguous tensor of
/// `out_shape`. Every non-negative map entry must be < x's extent (callers check).
template <Element T>
Tensor<T, Cpu> gather_by_maps(const Tensor<T, Cpu>& x, const Shape& out_shape, const IndexMaps& maps, T fill) {
  auto out = Tensor<T, Cpu>::empty(out_shape);
  const std::int64_t total = out_shape.numel();
  if (total == 0) return out;
  const int r = out_shape.rank();
  const T* src = x.data();
  T* dst = out.data();
  if (r == 0) {
    dst[0] = src[0];
    return out;
  }
  const Strides xs = x.strides();
  const std::int64_t inner = out_shape[r - 1];
  const std::int64_t rows = total / inner;
  const std::int64_t* last =
      maps[static_cast<std::size_t>(r - 1)].empty() ? nullptr : maps[static_cast<std::size_t>(r - 1)].data();
  const std::int64_t ls = xs[r - 1];
  // One output row (the last dim) per iteration: rows are disjoint, so any split is race-free.
#pragma omp parallel for schedule(static) if (join_worth_parallel(total))
  for (std::int64_t row = 0; row < rows; ++row) {
    T* o = dst + row * inner;
    std::int64_t off = 0, rem = row;
    bool is_fill = false;
    for (int d = r - 2; d >= 0; --d) {
      const std::int64_t c = rem % out_shape[d];
      rem /= out_shape[d];
      const auto& m = maps[static_cast<std::size_t>(d)];
      const std::int64_t s = m.empty() ? c : m[static_cast<std::size_t>(c)];
      if (s < 0) {
        is_fill = true;
        break;
      }
      off += s * xs[d];
    }
    if (is_fill) {
      std::fill(o, o + inner, fill);
      continue;
    }
    const T* p = src + off;
    if (!last) {
      if (ls == 1)
        std::copy(p, p + inner, o);
      else
        for (std::int64_t j = 0; j < inner; ++j) o[j] = p[j * ls];
    } else {
      for (std::int64_t j = 0; j < inner; ++j) o[j] = last[j] < 0 ? fill : p[last[j] * ls];
    }
  }
  return out;
}

/// Adjoint of a gather along dim a: out[.., i, ..] = Σ_{o : map[o] = i} g[.., o, ..]
/// with out's extent n along a. Each output element sums over o in increasing
/// order, and work is split over (outer index, block of inner indices), which
/// own disjoint outputs: deterministic for any thread count.
template <Floating T>
Tensor<T, Cpu> scatter_map_dim(const Tensor<T, Cpu>& g, int a, const std::vector<std::int64_t>& map, std::int64_t n) {
  Shape rs = g.shape();
  rs[a] = n;
  auto res = zeros<T, Cpu>(rs);
  if (res.numel() == 0 || g.numel() == 0) return res;
  const Tensor<T, Cpu> gc = g.contiguous();
  std::int64_t outer = 1, inner = 1;
  for (int d = 0; d < a; ++d) outer *= rs[d];
  for (int d = a + 1; d < rs.rank(); ++d) inner *= rs[d];
  const std::int64_t m = g.shape()[a];
  constexpr std::int64_t kBlock = 4096;
  const std::int64_t nb = (inner + kBlock - 1) / kBlock;
  const std::int64_t tasks = outer * nb;
  const T* gp = gc.data();
  T* rp = res.data();
  const std::int64_t* mp = map.data();
#pragma omp parallel for schedule(static) if (tasks > 1 && join_worth_parallel(gc.numel()))
  for (std::int64_t t = 0; t < tasks; ++t) {
    const std::int64_t ob = t / nb, j0 = (t % nb) * kBlock, j1 = std::min(inner, j0 + kBlock);
    for (std::int64_t o = 0; o < m; ++o) {
      const std::int64_t i = mp[o];
      if (i < 0) continue;  // a fill position: no input receives its gradient
      T* dst = rp + (ob * n + i) * inner;
      const T* s = gp + (ob * m + o) * inner;
      for (std::int64_t j = j0; j < j1; ++j) dst[j] += s[j];
    }
  }
  return res;
}

/// Adjoint of gather_by_maps: g (out shape) scattered back to `in_shape`.
/// The gather is separable (a product of per-dim maps), so its adjoint is the
/// product of the per-dim adjoints, applied one mapped dim after another.
template <Floating T>
Tensor<T, Cpu> scatter_by_maps(const Tensor<T, Cpu>& g, const Shape& in_shape, const IndexMaps& maps) {
  if (g.numel() == 0) return zeros<T, Cpu>(in_shape);
  Tensor<T, Cpu> r = g;
  for (int d = 0; d < g.dim(); ++d)
    if (!maps[static_cast<std::size_t>(d)].empty())
      r = scatter_map_dim(r, d, maps[static_cast<std::size_t>(d)], in_shape[d]);
  return r;
}

/// The gather-by-maps op with its recorded backward (pad, repeat, flip, roll, index_select).
}  // namespace detail

namespace backend {
/// The device seam of index-map gathers (pad, repeat, flip, roll, index_select):
/// gather(x, out_shape, maps, fill) and its adjoint scatter(g, in_shape, maps), with the
/// detail:: kernels' signatures on Tensor<T, D>. MapGather<Cuda>: cuda/avgrad/cuda/gather.cuh.
template <Device D> struct MapGather;
template <> struct MapGather<Cpu> {
  template <class T, class... A> static auto gather(const Tensor<T, Cpu>& x, const A&... a) {
    return detail::gather_by_maps(x, a...);
  }
  template <class T, class... A> static auto scatter(const Tensor<T, Cpu>& g, const A&... a) {
    return detail::scatter_by_maps(g, a...);
  }
};
}  // namespace backend

namespace detail {

template <Element T, Device D> Tensor<T, D> mapped_gather_op(const char* name, const Tensor<T, D>& x,
                                                             const Shape& out_shape, IndexMaps maps, T fill = T(0)) {
  auto y = backend::MapGather<D>::gather(x, out_shape, maps, fill);
  if constexpr (Floating<T>) {
    if (!autograd::any_requires_grad<T, D>({&x})) return y;
    auto m = std::make_shared<const IndexMaps>(std::move(maps));
    Shape in = x.shape();
    // dx = Mᵀg: every input element collects the gradients of the outputs that read it
    return autograd::record<T, D>(name, y, {x}, [m, in](const Tensor<T, D>& g, const std::vector<bool>&) {
      return autograd::Grads<T, D>{backend::MapGather<D>::scatter(g, in, *m)};
    });
  }
  return y;
}

/// Rank of x, which must be at least 1 for an op along an axis.
template <Element T, Device D> int checked_axis(const Tensor<T, D>& x, std::int64_t axis, const char* op) {
  check_defined(x, op);
  AVGRAD_CHECK(x.dim() >= 1, op, "expects a tensor with at least 1 dim, got shape ", x.shape());
  return normalize_axis(axis, x.dim(), op);
}

/// Distinct normalised axes, in the order given.
inline std::vector<int> distinct_axes(const std::vector<std::int64_t>& axes, int rank, const char* op) {
  std::vector<int> out;
  for (auto a : axes) {
    const int n = normalize_axis(a, rank, op);
    AVGRAD_CHECK(std::find(out.begin(), out.end(), n) == out.end(), op, "axis ", a, " repeated in the axis list");
    out.push_back(n);
  }
  return out;
}

}  // namespace detail

/// Joins xs along `axis` (negative counts from the end). All inputs have the same
/// rank (>= 1) and equal extents except along `axis`. Out: fresh contiguous.
/// Gradient: input i receives g narrowed to its slab; inputs that need no grad are skipped.
template <Element T, Device D> Tensor<T, D> concat(const std::vector<Tensor<T, D>>& xs, std::int64_t axis = 0) {
  AVGRAD_CHECK(!xs.empty(), "concat", "expects at least one tensor");
  for (std::size_t i = 0; i < xs.size(); ++i) AVGRAD_CHECK(xs[i].defined(), "concat", "input ", i, " is undefined");
  const Shape& s0 = xs[0].shape();
  AVGRAD_CHECK(s0.rank() >= 1, "concat", "input 0 is 0-dimensional (shape ", s0, "); use stack");
  const int a = normalize_axis(axis, s0.rank(), "concat");
  Shape out = s0;
  out[a] = 0;
  std::vector<std::int64_t> starts, sizes;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const Shape& s = xs[i].shape();
    bool match = s.rank() == s0.rank();
    for (int d = 0; match && d < s0.rank(); ++d) match = d == a || s[d] == s0[d];
    AVGRAD_CHECK(match, "concat", "input ", i, " has shape ", s, " but input 0 has shape ", s0,
                 "; shapes must match in every dim except dim ", a);
    starts.push_back(out[a]);
    sizes.push_back(s[a]);
    out[a] += s[a];
  }
  auto y = Tensor<T, D>::empty(out);
  for (std::size_t i = 0; i < xs.size(); ++i) {
    auto slab = y.narrow(a, starts[i], sizes[i]);
    detail::map_into(slab, xs[i], detail::Identity{}, "concat");
  }
  if constexpr (Floating<T>) {
    // y = [x_0 | x_1 | …] along a, so dx_i = g[.., starts_i : starts_i + sizes_i, ..]
    return autograd::record<T, D>("concat", y, xs,
                                  [a, starts, sizes](const Tensor<T, D>& g, const std::vector<bool>& need) {
                                    autograd::Grads<T, D> gs(starts.size());
                                    for (std::size_t i = 0; i < gs.size(); ++i)
                                      if (need[i]) gs[i] = g.narrow(a, starts[i], sizes[i]);
                                    return gs;
                                  });
  }
  return y;
}

/// concat({a, b, c}, axis): the same with a braced list of tensors.
template <Element T, Device D> Tensor<T, D> concat(std::initializer_list<Tensor<T, D>> xs, std::int64_t axis = 0) {
  return concat(std::vector<Tensor<T, D>>(xs), axis);
}

/// Stacks equally shaped xs along a new dim at `axis` (in [-(rank+1), rank]).
/// Out: shape of x_i with xs.size() inserted at `axis`. Gradient: dx_i = g.select(axis, i).
template <Element T, Device D> Tensor<T, D> stack(const std::vector<Tensor<T, D>>& xs, std::int64_t axis = 0) {
  AVGRAD_CHECK(!xs.empty(), "stack", "expects at least one tensor");
  for (std::size_t i = 0; i < xs.size(); ++i) AVGRAD_CHECK(xs[i].defined(), "stack", "input ", i, " is undefined");
  const Shape& s0 = xs[0].shape();
  for (std::size_t i = 1; i < xs.size(); ++i)
    AVGRAD_CHECK(xs[i].shape() == s0, "stack", "input ", i, " has shape ", xs[i].shape(), " but input 0 has shape ", s0,
                 "; stack needs equal shapes");
  const int a = normalize_axis(axis, s0.rank() + 1, "stack");
  Shape out = s0;
  out.insert(a, static_cast<std::int64_t>(xs.size()));
  auto y = Tensor<T, D>::empty(out);
  for (std::size_t i = 0; i < xs.size(); ++i) {
    auto slot = y.select(a, static_cast<std::int64_t>(i));
    detail::map_into(slot, xs[i], detail::Identity{}, "stack");
  }
  if constexpr (Floating<T>) {
    // y[.., i, ..] = x_i, so dx_i = g[.., i, ..]
    return autograd::record<T, D>("stack", y, xs, [a](const Tensor<T, D>& g, const std::vector<bool>& need) {
      autograd::Grads<T, D> gs(need.size());
      for (std::size_t i = 0; i < gs.size(); ++i)
        if (need[i]) gs[i] = g.select(a, static_cast<std::int64_t>(i));
      return gs;
    });
  }
  return y;
}

/// stack({a, b, c}, axis): the same with a braced list of tensors.
template <Element T, Device D> Tensor<T, D> stack(std::initializer_list<Tensor<T, D>> xs, std::int64_t axis = 0) {
  return stack(std::vector<Tensor<T, D>>(xs), axis);
}

/// Splits x along `axis` into views of the given extents (they must sum to x's
/// extent). Note: split(x, {n}) picks the single-size overload below; pass
/// std::vector<std::int64_t>{n} for an explicit list of one.
template <Element T, Device D>
std::vector<Tensor<T, D>> split(const Tensor<T, D>& x, const std::vector<std::int64_t>& sizes, std::int64_t axis = 0) {
  const int a = detail::checked_axis(x, axis, "split");
  const std::int64_t n = x.shape()[a];
  std::int64_t total = 0;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    AVGRAD_CHECK(sizes[i] >= 0, "split", "negative size ", sizes[i], " at position ", i);
    total += sizes[i];
  }
  AVGRAD_CHECK(total == n, "split", "sizes sum to ", total, " but dim ", a, " of shape ", x.shape(), " has extent ", n);
  std::vector<Tensor<T, D>> out;
  std::int64_t start = 0;
  for (auto s : sizes) {
    out.push_back(x.narrow(a, start, s));
    start += s;
  }
  return out;
}

/// Splits x along `axis` into views of extent `size` (the last one may be
/// smaller), as torch.split with an int. An empty dim gives one empty view.
template <Element T, Device D>
std::vector<Tensor<T, D>> split(const Tensor<T, D>& x, std::int64_t size, std::int64_t axis = 0) {
  const int a = detail::checked_axis(x, axis, "split");
  const std::int64_t n = x.shape()[a];
  AVGRAD_CHECK(size > 0 || (size == 0 && n == 0), "split", "split size must be positive, got ", size, " for dim ", a,
               " of shape ", x.shape());
  std::vector<Tensor<T, D>> out;
  if (n == 0) {
    out.push_back(x.narrow(a, 0, 0));
    return out;
  }
  for (std::int64_t start = 0; start < n; start += size) out.push_back(x.narrow(a, start, std::min(size, n - start)));
  return out;
}

/// As torch.chunk: views of extent ceil(n / chunks) along `axis`, so there may be
/// fewer than `chunks` pieces (7 → 3 chunks: 3,3,1; 5 → 4 chunks: 2,2,1).
template <Element T, Device D>
std::vector<Tensor<T, D>> chunk(const Tensor<T, D>& x, std::int64_t chunks, std::int64_t axis = 0) {
  const int a = detail::checked_axis(x, axis, "chunk");
  AVGRAD_CHECK(chunks > 0, "chunk", "number of chunks must be positive, got ", chunks);
  const std::int64_t n = x.shape()[a];
  if (n == 0) return std::vector<Tensor<T, D>>(static_cast<std::size_t>(chunks), x.narrow(a, 0, 0));
  return split(x, (n + chunks - 1) / chunks, a);
}

/// Pads x as torch.nn.functional.pad: pads = {left, right} of the last dim, then
/// {top, bottom} of the one before, and so on (at most 2·rank entries; dims not
/// named are untouched). constant fills `value` and accepts negative pads (a
/// crop); reflect needs 0 <= pad < extent, symmetric 0 <= pad <= extent;
/// replicate needs a non-empty dim.
/// Unlike PyTorch, reflect/replicate/symmetric work on any number of dims.
/// Gradient: each input element collects g from every output position that reads it.
template <Element T, Device D> Tensor<T, D> pad(const Tensor<T, D>& x, const std::vector<std::int64_t>& pads,
                                                PadMode mode = PadMode::constant, double value = 0.0) {
  detail::check_defined(x, "pad");
  const int r = x.dim();
  AVGRAD_CHECK(pads.size() % 2 == 0, "pad", "pads must come in (before, after) pairs, got ", pads.size(), " values");
  AVGRAD_CHECK(static_cast<int>(pads.size() / 2) <= r, "pad", pads.size(), " pad values for ", pads.size() / 2,
               " dims, but the input of shape ", x.shape(), " has ", r);
  const char* mode_name = pad_mode_name(mode);
  Shape out = x.shape();
  detail::IndexMaps maps(static_cast<std::size_t>(r));
  for (std::size_t k = 0; k < pads.size() / 2; ++k) {
    const int d = r - 1 - static_cast<int>(k);
    const std::int64_t lo = pads[2 * k], hi = pads[2 * k + 1], n = x.shape()[d];
    if (lo == 0 && hi == 0) continue;
    if (mode == PadMode::constant) {
      AVGRAD_CHECK(n + lo + hi >= 0, "pad", "padding (", lo, ", ", hi, ") of dim ", d,
                   " leaves a negative extent for input shape ", x.shape());
    } else {
      AVGRAD_CHECK(lo >= 0 && hi >= 0, "pad", mode_name, " padding (", lo, ", ", hi, ") of dim ", d,
                   " must be non-negative");
      if (mode == PadMode::reflect)
        AVGRAD_CHECK(lo < n && hi < n, "pad", "reflect padding (", lo, ", ", hi, ") of dim ", d,
                     " must be smaller than its extent ", n, " (input shape ", x.shape(), ")");
      else if (mode == PadMode::symmetric)
        AVGRAD_CHECK(lo <= n && hi <= n, "pad", "symmetric padding (", lo, ", ", hi, ") of dim ", d,
                     " must not exceed its extent ", n, " (input shape ", x.shape(), ")");
      else
        AVGRAD_CHECK(n > 0, "pad", "replicate padding of dim ", d, " needs a non-empty dim (input shape ", x.shape(),
                     ")");
    }
    out[d] = n + lo + hi;
    auto& m = maps[static_cast<std::size_t>(d)];
    m.resize(static_cast<std::size_t>(out[d]));
    for (std::int64_t o = 0; o < out[d]; ++o) {
      const std::int64_t i = padded_source_index(o - lo, n, mode);
      m[static_cast<std::size_t>(o)] = i;
    }
  }
  return detail::mapped_gather_op("pad", x, out, std::move(maps), static_cast<T>(value));
}

/// Tiles x as torch.Tensor.repeat: repeats has at least rank entries; extra
/// leading entries add new leading dims. Out extent d = x extent d · repeats[d].
/// Gradient: each input element sums g over all its copies.
template <Element T, Device D> Tensor<T, D> repeat(const Tensor<T, D>& x, const std::vector<std::int64_t>& repeats) {
  detail::check_defined(x, "repeat");
  const int r = static_cast<int>(repeats.size());
  AVGRAD_CHECK(r >= x.dim(), "repeat", "number of repeats (", r,
               ") cannot be smaller than the number of dims of shape ", x.shape());
  AVGRAD_CHECK(r <= kMaxRank, "repeat", r, " repeats exceed the maximum rank ", kMaxRank);
  Shape padded = Shape::filled(r - x.dim(), 1);
  for (auto e : x.shape()) padded.push_back(e);
  Tensor<T, D> xr = r == x.dim() ? x : x.reshape(padded);
  Shape out = padded;
  detail::IndexMaps maps(static_cast<std::size_t>(r));
  for (int d = 0; d < r; ++d) {
    const std::int64_t k = repeats[static_cast<std::size_t>(d)], n = padded[d];
    AVGRAD_CHECK(k >= 0, "repeat", "negative repeat count ", k, " for dim ", d);
    out[d] = n * k;
    if (k == 1) continue;
    auto& m = maps[static_cast<std::size_t>(d)];
    m.resize(static_cast<std::size_t>(out[d]));
    for (std::int64_t o = 0; o < out[d]; ++o) m[static_cast<std::size_t>(o)] = o % n;
  }
  return detail::mapped_gather_op("repeat", xr, out, std::move(maps));
}

/// Reverses x along each of `axes` (distinct; negative allowed). Fresh copy.
/// Gradient: g flipped back.
template <Element T, Device D> Tensor<T, D> flip(const Tensor<T, D>& x, const std::vector<std::int64_t>& axes) {
  detail::check_defined(x, "flip");
  AVGRAD_CHECK(x.dim() >= 1 || axes.empty(), "flip", "cannot flip a 0-dimensional tensor along an axis");
  detail::IndexMaps maps(static_cast<std::size_t>(x.dim()));
  for (int a : detail::distinct_axes(axes, x.dim(), "flip")) {
    const std::int64_t n = x.shape()[a];
    auto& m = maps[static_cast<std::size_t>(a)];
    m.resize(static_cast<std::size_t>(n));
    for (std::int64_t o = 0; o < n; ++o) m[static_cast<std::size_t>(o)] = n - 1 - o;
  }
  return detail::mapped_gather_op("flip", x, x.shape(), std::move(maps));
}

/// Rotates x by shifts[k] along axes[k], as torch.roll: out[(i + s) mod n] = x[i].
/// Empty axes: x is flattened, rolled by the single shift, and reshaped back.
/// Repeated axes add their shifts. Gradient: g rolled back.
template <Element T, Device D> Tensor<T, D> roll(const Tensor<T, D>& x, const std::vector<std::int64_t>& shifts,
                                                 const std::vector<std::int64_t>& axes = {}) {
  detail::check_defined(x, "roll");
  if (axes.empty()) {
    AVGRAD_CHECK(shifts.size() == 1, "roll", "without axes expects exactly one shift, got ", shifts.size());
    return roll(x.reshape(Shape{x.numel()}), shifts, {0}).reshape(x.shape());
  }
  AVGRAD_CHECK(shifts.size() == axes.size(), "roll", shifts.size(), " shifts for ", axes.size(), " axes");
  AVGRAD_CHECK(x.dim() >= 1, "roll", "cannot roll a 0-dimensional tensor along an axis");
  std::vector<std::int64_t> total(static_cast<std::size_t>(x.dim()), 0);
  for (std::size_t k = 0; k < axes.size(); ++k)
    total[static_cast<std::size_t>(normalize_axis(axes[k], x.dim(), "roll"))] += shifts[k];
  detail::IndexMaps maps(static_cast<std::size_t>(x.dim()));
  for (int d = 0; d < x.dim(); ++d) {
    const std::int64_t n = x.shape()[d];
    if (n == 0) continue;
    const std::int64_t s = ((total[static_cast<std::size_t>(d)] % n) + n) % n;
    if (s == 0) continue;
    auto& m = maps[static_cast<std::size_t>(d)];
    m.resize(static_cast<std::size_t>(n));
    for (std::int64_t o = 0; o < n; ++o) m[static_cast<std::size_t>(o)] = (o - s + n) % n;
  }
  return detail::mapped_gather_op("roll", x, x.shape(), std::move(maps));
}

}  // namespace avgrad
