// Pooling kernels for the CPU backend: max and average pooling over 1 to 3
// trailing spatial dims of a (B, C, ...) tensor, written once for three dims
// (a 1-d or 2-d pool is a 3-d pool whose leading spatial dims have extent 1 and
// a 1-tap window). Window rules (strided with padding and dilation, or adaptive
// bins) live in PoolGeometry + pool_taps, which hold no CPU specifics, so a CUDA
// kernel can share them.
//
// Invariants: outputs and gradients are contiguous (B, C, out...) / (B, C, in...);
// the input may have any strides. Work is split by (b, c) plane, each plane
// written by one thread, so results never depend on the thread count. Backward
// kernels accumulate (+=) into a zero-initialised input gradient. The innermost
// loops run over a row of outputs per input tap row (not over one window at a
// time), so they are free of data-dependent branches and vectorise.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include <omp.h>

#include "avgrad/backend/cpu/loops.hpp"
#include "avgrad/core/device.hpp"

namespace avgrad::cpu {

/// Window layout of a pool over 3 spatial dims (unused leading dims: in = out =
/// kernel = stride = dilation = 1, pad = 0). Strided windows of output o along
/// dim d cover input positions o·stride − pad + j·dilation, j ∈ [0, kernel);
/// adaptive bins cover [⌊o·in/out⌋, ⌈(o+1)·in/out⌉) (PyTorch's rule).
struct PoolGeometry {
  bool adaptive = false;
  bool count_include_pad = true;  ///< average divisor counts padded taps (strided windows only)
  std::int64_t in[3] = {1, 1, 1};
  std::int64_t out[3] = {1, 1, 1};
  std::int64_t kernel[3] = {1, 1, 1};
  std::int64_t stride[3] = {1, 1, 1};
  std::int64_t pad[3] = {0, 0, 0};
  std::int64_t dilation[3] = {1, 1, 1};

  AVGRAD_HOST_DEVICE std::int64_t in_plane() const { return in[0] * in[1] * in[2]; }
  AVGRAD_HOST_DEVICE std::int64_t out_plane() const { return out[0] * out[1] * out[2]; }
  AVGRAD_HOST_DEVICE std::int64_t step(int d) const { return adaptive ? 1 : dilation[d]; }
};

/// The taps of one window along one dim: `count` in-bounds input positions
/// first, first + step, …; `span` is the window length clipped to the padded
/// input (the count_include_pad divisor factor, as PyTorch's avg_pool).
struct PoolTaps {
  std::int64_t first = 0;
  std::int64_t count = 0;
  std::int64_t span = 0;
};

AVGRAD_HOST_DEVICE inline PoolTaps pool_taps(const PoolGeometry& g, int d, std::int64_t o) {
  const std::int64_t in = g.in[d];
  PoolTaps t;
  if (g.adaptive) {
    const std::int64_t out = g.out[d];
    const std::int64_t s = (o * in) / out, e = ((o + 1) * in + out - 1) / out;
    t.first = s;
    t.count = e - s;
    t.span = e - s;
    return t;
  }
  const std::int64_t k = g.kernel[d], dil = g.dilation[d];
  const std::int64_t start = o * g.stride[d] - g.pad[d];
  // first tap j0 with start + j0·dil ≥ 0, one past the last with start + j·dil < in
  const std::int64_t jbegin = start < 0 ? (-start + dil - 1) / dil : 0;
  const std::int64_t jlimit = in - start <= 0 ? 0 : (in - start + dil - 1) / dil;
  const std::int64_t jend = jlimit < k ? jlimit : k;
  t.first = start + jbegin * dil;
  t.count = jend > jbegin ? jend - jbegin : 0;
  // span: [start, min(start + k, in + pad)), meaningful for dil = 1 (average pool)
  const std::int64_t end = start + k < in + g.pad[d] ? start + k : in + g.pad[d];
  t.span = end - start;
  return t;
}

/// Divisor factor of one window along one dim: the clipped window length
/// (count_include_pad, strided windows) or the number of in-bounds taps.
AVGRAD_HOST_DEVICE inline std::int64_t pool_divisor(const PoolGeometry& g, const PoolTaps& t) {
  return (!g.adaptive && g.count_include_pad) ? t.span : t.count;
}

namespace detail {

/// The taps of every output along dims 0 and 1, and along the last dim the same
/// in the form the row loops read: output w's tap j (j < max_count) sits at
/// pos[w] + j·step and counts only when j < cnt[w] (otherwise the loop reads the
/// in-bounds pos[w] and ignores it), so a row of outputs runs as one branch-free
/// loop over w per tap, whatever the window.
struct PoolTables {
  std::vector<PoolTaps> outer[2];
  std::vector<std::int64_t> pos, cnt, div;
  std::int64_t max_count = 0;
  /// Along the last dim the windows tile the row: output w's taps are w·k … w·k + k − 1,
  /// all in bounds (stride = kernel, no padding or dilation). The common pool (2×2, 2×2×2)
  /// then runs as fixed-stride loads instead of gathers.
  bool tiled = false;

  explicit PoolTables(const PoolGeometry& g) {
    for (int d = 0; d < 2; ++d)
      for (std::int64_t o = 0; o < g.out[d]; ++o) outer[d].push_back(pool_taps(g, d, o));
    tiled = !g.adaptive && g.out[2] > 0;
    for (std::int64_t o = 0; o < g.out[2]; ++o) {
      const PoolTaps t = pool_taps(g, 2, o);
      pos.push_back(t.count > 0 ? t.first : 0);  // an empty window reads (and ignores) position 0
      cnt.push_back(t.count);
      div.push_back(pool_divisor(g, t));
      max_count = t.count > max_count ? t.count : max_count;
      tiled = tiled && t.count == g.kernel[2] && t.first == o * g.kernel[2] && (g.kernel[2] == 1 || g.dilation[2] == 1);
    }
  }
};

/// Whether `planes` planes of `per_plane` work items are worth an OpenMP region.
inline bool pool_parallel(std::int64_t planes, std::int64_t per_plane) {
  return planes > 1 && planes * per_plane >= kParallelGrain && omp_get_max_threads() > 1 && !omp_in_parallel();
}

/// Work per output plane of a forward or backward pass: outputs × taps per window.
inline std::int64_t pool_plane_work(const PoolGeometry& g, const PoolTables& t) {
  std::int64_t taps = t.max_count;
  for (int d = 0; d < 2; ++d) taps *= g.adaptive ? (g.in[d] + g.out[d] - 1) / g.out[d] + 1 : g.kernel[d];
  return g.out_plane() * taps;
}

// Row loops: one row of outputs along the last dim, one (t, h) tap row of input.
// Iterations over w are independent and branch-free (masked by j < cnt[w]), so they
// vectorise as gathers; __restrict tells the compiler the buffers do not overlap.

/// best[w], arg[w] ← the first max (NaN first) of best[w] and the row's taps of w.
template <class T> [[gnu::noinline]] void max_pool_row(const T* __restrict row, std::int64_t stride, std::int64_t base,
                                                       const PoolTables& tab, std::int64_t step, T* __restrict best,
                                                       std::int64_t* __restrict arg) {
  const std::int64_t n = static_cast<std::int64_t>(tab.pos.size());
  const std::int64_t* __restrict pos = tab.pos.data();
  const std::int64_t* __restrict cnt = tab.cnt.data();
  for (std::int64_t j = 0; j < tab.max_count; ++j)
    for (std::int64_t w = 0; w < n; ++w) {
      const bool valid = j < cnt[w];
      const std::int64_t i = pos[w] + (valid ? j : 0) * step;
      const T v = row[i * stride];
      const T b = best[w];
      const bool take = valid && (v > b || (v != v && b == b));  // v != v: NaN
      best[w] = take ? v : b;
      arg[w] = take ? base + i : arg[w];
    }
}

/// A whole row of tiled 2-wide windows at once: R tap rows r0… (the window's rows along dims 0
/// and 1, in (t, h) order) × 2 taps each. Max and the winning tap (code 2r + j) stay in
/// registers; the code is 32-bit like the value, so the compare-select loop vectorises, and
/// the flat argmax is formed afterwards. The rule is max_pool_row's: the first maximum in
/// (t, h, w) order wins, a NaN beats any number.
template <class T, int R> [[gnu::noinline]] void max_pool_windows_k2(const T* __restrict r0, const T* __restrict r1,
                                                                     const T* __restrict r2, const T* __restrict r3,
                                                                     std::int64_t n, T* __restrict best,
                                                                     std::int32_t* __restrict code) {
  for (std::int64_t w = 0; w < n; ++w) {
    T b = r0[2 * w];
    std::int32_t c = 0;
    auto tap = [&](const T* __restrict row, std::int32_t k) {
      const T v = row[2 * w + (k & 1)];
      const bool take = v > b || (v != v && b == b);
      b = take ? v : b;
      c = take ? k : c;
    };
    tap(r0, 1);
    if constexpr (R > 1) {
      tap(r1, 2);
      tap(r1, 3);
    }
    if constexpr (R > 2) {
      tap(r2, 4);
      tap(r2, 5);
      tap(r3, 6);
      tap(r3, 7);
    }
    best[w] = b;
    code[w] = c;
  }
}

/// acc[w] += Σ of the row's taps of w.
template <class T, class A> [[gnu::noinline]] void sum_pool_row(const T* __restrict row, std::int64_t stride,
                                                                const PoolTables& tab, std::int64_t step,
                                                                A* __restrict acc) {
  const std::int64_t n = static_cast<std::int64_t>(tab.pos.size());
  const std::int64_t* __restrict pos = tab.pos.data();
  const std::int64_t* __restrict cnt = tab.cnt.data();
  for (std::int64_t j = 0; j < tab.max_count; ++j)
    for (std::int64_t w = 0; w < n; ++w) {
      const bool valid = j < cnt[w];
      const T v = row[(pos[w] + (valid ? j : 0) * step) * stride];
      acc[w] += valid ? static_cast<A>(v) : A(0);
    }
}

/// row[tap] += share[w] for every tap of every w (taps of neighbouring w may coincide).
template <class T> [[gnu::noinline]] void spread_pool_row(T* __restrict row, const PoolTables& tab, std::int64_t step,
                                                          const T* __restrict share) {
  const std::int64_t n = static_cast<std::int64_t>(tab.pos.size());
  for (std::int64_t j = 0; j < tab.max_count; ++j)
    for (std::int64_t w = 0; w < n; ++w) {
      const bool valid = j < tab.cnt[w];
      row[tab.pos[w] + (valid ? j : 0) * step] += valid ? share[w] : T(0);
    }
}

template <class T> using pool_acc_t = std::conditional_t<std::is_same_v<T, float>, double, T>;

}  // namespace detail

/// y[b, c, o] = max over the window of o of x[b, c, ·]; padding counts as −inf and
/// the first NaN wins; ties go to the first maximum in (t, h, w) order. idx (nullable)
/// gets the argmax as a flat index into the input plane (t·H·W + h·W + w); a window
/// with no in-bounds tap gives −inf and index −1.
/// x: (B, C, in...) with strides xs = (b, c, d0, d1, d2); y, idx: contiguous (B, C, out...).
template <class T> void max_pool_forward(const T* x, const std::int64_t (&xs)[5], std::int64_t batch,
                                         std::int64_t channels, const PoolGeometry& g, T* y, std::int64_t* idx) {
  const detail::PoolTables tab(g);
  const std::int64_t planes = batch * channels, n_out = g.out_plane(), out2 = g.out[2];
  const std::int64_t in1 = g.in[1], in2 = g.in[2], st0 = g.step(0), st1 = g.step(1), st2 = g.step(2);
  const std::int64_t *pos = tab.pos.data(), *cnt = tab.cnt.data();
  const bool par = detail::pool_parallel(planes, detail::pool_plane_work(g, tab));
  // every window 2 wide along a contiguous last dim, tiling it: whole windows in registers
  const bool fast = tab.tiled && tab.max_count == 2 && xs[4] == 1;
#pragma omp parallel for schedule(static) if (par)
  for (std::int64_t p = 0; p < planes; ++p) {
    const T* xp = x + (p / channels) * xs[0] + (p % channels) * xs[1];
    std::vector<std::int64_t> scratch(idx ? 0 : static_cast<std::size_t>(out2));
    std::vector<std::int32_t> codes(fast ? static_cast<std::size_t>(out2) : 0);  // winning tap per window
    T* best = y + p * n_out;
    std::int64_t* arg = idx ? idx + p * n_out : scratch.data();
    for (const PoolTaps& t0 : tab.outer[0])
      for (const PoolTaps& t1 : tab.outer[1]) {
        const std::int64_t rows = t0.count * t1.count;
        if (fast && (rows == 1 || rows == 2 || rows == 4)) {
          const T* row[4];
          std::int64_t base[4];
          for (std::int64_t j0 = 0, r = 0; j0 < t0.count; ++j0)
            for (std::int64_t j1 = 0; j1 < t1.count; ++j1, ++r) {
              const std::int64_t i0 = t0.first + j0 * st0, i1 = t1.first + j1 * st1;
              row[r] = xp + i0 * xs[2] + i1 * xs[3];
              base[r] = (i0 * in1 + i1) * in2;
            }
          std::int32_t* c = codes.data();
          if (rows == 1) detail::max_pool_windows_k2<T, 1>(row[0], row[0], row[0], row[0], out2, best, c);
          if (rows == 2) detail::max_pool_windows_k2<T, 2>(row[0], row[1], row[1], row[1], out2, best, c);
          if (rows == 4) detail::max_pool_windows_k2<T, 4>(row[0], row[1], row[2], row[3], out2, best, c);
          if (idx)
            for (std::int64_t w = 0; w < out2; ++w) arg[w] = base[c[w] >> 1] + 2 * w + (c[w] & 1);
          best += out2;
          arg += idx ? out2 : 0;
          continue;
        }
        // start from −inf at the window's first in-bounds tap (−1: no tap at all)
        const bool live = t0.count > 0 && t1.count > 0;
        const std::int64_t first = (t0.first * in1 + t1.first) * in2;
        for (std::int64_t w = 0; w < out2; ++w) {
          best[w] = -std::numeric_limits<T>::infinity();
          arg[w] = live && cnt[w] > 0 ? first + pos[w] : -1;
        }
        for (std::int64_t j0 = 0; j0 < t0.count; ++j0)
          for (std::int64_t j1 = 0; j1 < t1.count; ++j1) {
            const std::int64_t i0 = t0.first + j0 * st0, i1 = t1.first + j1 * st1;
            const T* row = xp + i0 * xs[2] + i1 * xs[3];
            const std::int64_t base = (i0 * in1 + i1) * in2;
            detail::max_pool_row(row, xs[4], base, tab, st2, best, arg);
          }
        best += out2;
        arg += idx ? out2 : 0;
      }
  }
}

/// dx[b, c, idx[b, c, o]] += g[b, c, o] for every output o with idx ≥ 0.
/// g, idx: contiguous (B, C, out...); dx: contiguous (B, C, in...), zeroed by the caller.
template <class T>
void max_pool_backward(const T* g, const std::int64_t* idx, std::int64_t planes, const PoolGeometry& geo, T* dx) {
  const std::int64_t n_out = geo.out_plane(), n_in = geo.in_plane();
  const bool par = detail::pool_parallel(planes, n_out);
#pragma omp parallel for schedule(static) if (par)
  for (std::int64_t p = 0; p < planes; ++p) {
    const T* gp = g + p * n_out;
    const std::int64_t* ip = idx + p * n_out;
    T* dp = dx + p * n_in;
    for (std::int64_t o = 0; o < n_out; ++o)
      if (ip[o] >= 0) dp[ip[o]] += gp[o];
  }
}

/// y[b, c, o] = (Σ over the in-bounds taps of o of x[b, c, ·]) / divisor, the divisor
/// the product over dims of pool_divisor (sums of float accumulate in double; an
/// empty window gives 0). Strided windows use dilation 1.
/// x: (B, C, in...) with strides xs; y: contiguous (B, C, out...).
template <class T> void avg_pool_forward(const T* x, const std::int64_t (&xs)[5], std::int64_t batch,
                                         std::int64_t channels, const PoolGeometry& g, T* y) {
  using A = detail::pool_acc_t<T>;
  const detail::PoolTables tab(g);
  const std::int64_t planes = batch * channels, n_out = g.out_plane(), out2 = g.out[2];
  const std::int64_t st0 = g.step(0), st1 = g.step(1), st2 = g.step(2);
  const std::int64_t* div = tab.div.data();
  const bool par = detail::pool_parallel(planes, detail::pool_plane_work(g, tab));
#pragma omp parallel for schedule(static) if (par)
  for (std::int64_t p = 0; p < planes; ++p) {
    const T* xp = x + (p / channels) * xs[0] + (p % channels) * xs[1];
    std::vector<A> acc(static_cast<std::size_t>(out2));
    T* yp = y + p * n_out;
    for (const PoolTaps& t0 : tab.outer[0])
      for (const PoolTaps& t1 : tab.outer[1]) {
        std::fill(acc.begin(), acc.end(), A(0));
        for (std::int64_t i0 = t0.first; i0 < t0.first + t0.count * st0; i0 += st0)
          for (std::int64_t i1 = t1.first; i1 < t1.first + t1.count * st1; i1 += st1) {
            const T* row = xp + i0 * xs[2] + i1 * xs[3];
            detail::sum_pool_row(row, xs[4], tab, st2, acc.data());
          }
        const std::int64_t d01 = pool_divisor(g, t0) * pool_divisor(g, t1);
        for (std::int64_t w = 0; w < out2; ++w) {
          const std::int64_t d = d01 * div[w];
          yp[w] = d > 0 ? static_cast<T>(acc[static_cast<std::size_t>(w)] / static_cast<A>(d)) : T(0);
        }
        yp += out2;
      }
  }
}

/// dx[b, c, i] += Σ over the outputs o whose window holds i of g[b, c, o] / divisor(o).
/// g: contiguous (B, C, out...); dx: contiguous (B, C, in...), zeroed by the caller.
template <class T> void avg_pool_backward(const T* g, std::int64_t planes, const PoolGeometry& geo, T* dx) {
  const detail::PoolTables tab(geo);
  const std::int64_t n_out = geo.out_plane(), n_in = geo.in_plane(), out2 = geo.out[2];
  const std::int64_t in1 = geo.in[1], in2 = geo.in[2], st0 = geo.step(0), st1 = geo.step(1), st2 = geo.step(2);
  const std::int64_t* div = tab.div.data();
  const bool par = detail::pool_parallel(planes, detail::pool_plane_work(geo, tab));
#pragma omp parallel for schedule(static) if (par)
  for (std::int64_t p = 0; p < planes; ++p) {
    const T* gp = g + p * n_out;
    T* dp = dx + p * n_in;
    std::vector<T> share(static_cast<std::size_t>(out2));  // g[o] / divisor(o) for one row of outputs
    for (const PoolTaps& t0 : tab.outer[0])
      for (const PoolTaps& t1 : tab.outer[1]) {
        const std::int64_t d01 = pool_divisor(geo, t0) * pool_divisor(geo, t1);
        for (std::int64_t w = 0; w < out2; ++w) {
          const std::int64_t d = d01 * div[w];
          share[static_cast<std::size_t>(w)] = d > 0 ? gp[w] / static_cast<T>(d) : T(0);
        }
        for (std::int64_t i0 = t0.first; i0 < t0.first + t0.count * st0; i0 += st0)
          for (std::int64_t i1 = t1.first; i1 < t1.first + t1.count * st1; i1 += st1) {
            T* row = dp + (i0 * in1 + i1) * in2;
            detail::spread_pool_row(row, tab, st2, share.data());
          }
        gp += out2;
      }
  }
}

}  // namespace avgrad::cpu
