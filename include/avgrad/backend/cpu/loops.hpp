// Strided N-operand loops for the CPU backend: the one place elementwise kernels
// iterate. Dimensions are coalesced first, so contiguous (and most transposed or
// broadcast) operands run as long unit-stride inner loops the compiler vectorises;
// work is split over OpenMP threads by flat index, so results never depend on
// the thread count.
#pragma once

#include <array>
#include <cstdint>

#include <omp.h>

#include "avgrad/core/shape.hpp"

namespace avgrad::cpu {

/// Below this many elements a loop runs on one thread (fork/join costs ~µs).
inline constexpr std::int64_t kParallelGrain = 32768;

/// Operand layout of a loop over `shape`: strides[k] are operand k's strides.
template <int N> struct LoopLayout {
  Shape shape;
  std::array<Strides, N> strides;
};

/// Merges adjacent dims that every operand walks as one (stride[i] == stride[i+1]*n[i+1]),
/// and drops extent-1 dims. The result has rank >= 1.
template <int N> LoopLayout<N> coalesce(const Shape& shape, const std::array<Strides, N>& strides) {
  LoopLayout<N> out;
  for (int d = 0; d < shape.rank(); ++d) {
    if (shape[d] == 1) continue;
    int r = out.shape.rank();
    bool merge = r > 0;
    for (int k = 0; k < N && merge; ++k) merge = out.strides[k][r - 1] == strides[k][d] * shape[d];
    if (merge) {
      out.shape[r - 1] *= shape[d];
      for (int k = 0; k < N; ++k) out.strides[k][r - 1] = strides[k][d];
    } else {
      out.shape.push_back(shape[d]);
      for (int k = 0; k < N; ++k) out.strides[k].push_back(strides[k][d]);
    }
  }
  if (out.shape.rank() == 0) {
    out.shape.push_back(1);
    for (int k = 0; k < N; ++k) out.strides[k].push_back(0);
  }
  return out;
}

/// Calls body(offsets, n, inner_strides) for runs of `n` elements along the last
/// coalesced dim, covering flat indices [begin, end) of `layout.shape`.
template <int N, class Body>
void for_each_run(const LoopLayout<N>& layout, std::int64_t begin, std::int64_t end, Body& body) {
  const Shape& s = layout.shape;
  const int r = s.rank();
  const std::int64_t inner = s[r - 1];
  std::array<std::int64_t, kMaxRank> idx{};
  std::int64_t rem = begin;
  for (int d = r - 1; d >= 0; --d) {
    idx[d] = rem % s[d];
    rem /= s[d];
  }
  std::array<std::int64_t, N> off{};
  for (int k = 0; k < N; ++k)
    for (int d = 0; d < r; ++d) off[k] += idx[d] * layout.strides[k][d];
  std::array<std::int64_t, N> inner_stride;
  for (int k = 0; k < N; ++k) inner_stride[k] = layout.strides[k][r - 1];
  std::int64_t pos = begin;
  while (pos < end) {
    std::int64_t n = std::min(inner - idx[r - 1], end - pos);
    body(off, n, inner_stride);
    pos += n;
    // advance the multi-index by n (n either finishes the row or ends the range)
    idx[r - 1] += n;
    for (int k = 0; k < N; ++k) off[k] += n * inner_stride[k];
    for (int d = r - 1; d > 0 && idx[d] == s[d]; --d) {
      idx[d] = 0;
      ++idx[d - 1];
      for (int k = 0; k < N; ++k) off[k] += layout.strides[k][d - 1] - s[d] * layout.strides[k][d];
    }
  }
}

/// Runs body over all runs of the layout, in parallel chunks when large.
template <int N, class Body> void parallel_runs(const LoopLayout<N>& layout, Body body) {
  const std::int64_t total = layout.shape.numel();
  if (total == 0) return;
  if (total < kParallelGrain || omp_get_max_threads() == 1 || omp_in_parallel()) {
    for_each_run<N>(layout, 0, total, body);
    return;
  }
#pragma omp parallel
  {
    const std::int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    const std::int64_t chunk = (total + nt - 1) / nt;
    const std::int64_t b = std::min(total, t * chunk), e = std::min(total, b + chunk);
    Body local = body;
    if (b < e) for_each_run<N>(layout, b, e, local);
  }
}

/// out[i] = f(in[i]) over `shape`; out and in are strided views of that shape.
template <class TO, class TI, class F>
void map1(TO* out, const Strides& so, const TI* in, const Strides& si, const Shape& shape, F f) {
  auto layout = coalesce<2>(shape, {so, si});
  parallel_runs<2>(layout,
                   [=](const std::array<std::int64_t, 2>& off, std::int64_t n, const std::array<std::int64_t, 2>& st) {
                     TO* o = out + off[0];
                     const TI* a = in + off[1];
                     if (st[0] == 1 && st[1] == 1) {
#pragma omp simd
                       for (std::int64_t i = 0; i < n; ++i) o[i] = f(a[i]);
                     } else {
                       for (std::int64_t i = 0; i < n; ++i) o[i * st[0]] = f(a[i * st[1]]);
                     }
                   });
}

/// out[i] = f(a[i], b[i]) over `shape`; a and b are read with (broadcast) strides.
template <class TO, class TA, class TB, class F> void map2(TO* out, const Strides& so, const TA* a, const Strides& sa,
                                                           const TB* b, const Strides& sb, const Shape& shape, F f) {
  auto layout = coalesce<3>(shape, {so, sa, sb});
  parallel_runs<3>(layout,
                   [=](const std::array<std::int64_t, 3>& off, std::int64_t n, const std::array<std::int64_t, 3>& st) {
                     TO* o = out + off[0];
                     const TA* x = a + off[1];
                     const TB* y = b + off[2];
                     if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
#pragma omp simd
                       for (std::int64_t i = 0; i < n; ++i) o[i] = f(x[i], y[i]);
                     } else if (st[0] == 1 && st[1] == 1 && st[2] == 0) {
                       const TB yv = *y;
#pragma omp simd
                       for (std::int64_t i = 0; i < n; ++i) o[i] = f(x[i], yv);
                     } else if (st[0] == 1 && st[1] == 0 && st[2] == 1) {
                       const TA xv = *x;
#pragma omp simd
                       for (std::int64_t i = 0; i < n; ++i) o[i] = f(xv, y[i]);
                     } else {
                       for (std::int64_t i = 0; i < n; ++i) o[i * st[0]] = f(x[i * st[1]], y[i * st[2]]);
                     }
                   });
}

/// out[i] = f(a[i], b[i], c[i]) with strided/broadcast operands.
template <class TO, class TA, class TB, class TC, class F>
void map3(TO* out, const Strides& so, const TA* a, const Strides& sa, const TB* b, const Strides& sb, const TC* c,
          const Strides& sc, const Shape& shape, F f) {
  auto layout = coalesce<4>(shape, {so, sa, sb, sc});
  parallel_runs<4>(layout,
                   [=](const std::array<std::int64_t, 4>& off, std::int64_t n, const std::array<std::int64_t, 4>& st) {
                     TO* o = out + off[0];
                     const TA* x = a + off[1];
                     const TB* y = b + off[2];
                     const TC* z = c + off[3];
                     if (st[0] == 1 && st[1] == 1 && st[2] == 1 && st[3] == 1) {
#pragma omp simd
                       for (std::int64_t i = 0; i < n; ++i) o[i] = f(x[i], y[i], z[i]);
                     } else {
                       for (std::int64_t i = 0; i < n; ++i) o[i * st[0]] = f(x[i * st[1]], y[i * st[2]], z[i * st[3]]);
                     }
                   });
}

}  // namespace avgrad::cpu
