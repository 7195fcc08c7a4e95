// Strided reductions for the CPU backend. The input is split into kept dims
// (one output each) and reduced dims; outputs run in parallel when there are
// many, otherwise the reduced range is split across threads and partials merged
// in a fixed order, so a result does not depend on the thread count's timing.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include <omp.h>

#include "avgrad/backend/cpu/loops.hpp"

namespace avgrad::cpu {

/// For every output o (row-major over kept_shape), out[o] = fin(acc) where
/// acc folds comb(acc, load(x)) over the reduced sub-block, starting from init.
/// `comb` must be associative and commutative (sum, max, min).
template <class TI, class Acc, class TO, class Load, class Comb, class Fin>
void reduce(const TI* in, const Shape& kept_shape, const Strides& kept_strides, const Shape& red_shape,
            const Strides& red_strides, TO* out, Acc init, Load load, Comb comb, Fin fin) {
  const std::int64_t n_out = kept_shape.numel();
  const std::int64_t n_red = red_shape.numel();
  auto red = coalesce<1>(red_shape, {red_strides});
  auto fold = [&](const TI* base, std::int64_t b, std::int64_t e) {
    Acc acc = init;
    auto body = [&](const std::array<std::int64_t, 1>& off, std::int64_t n, const std::array<std::int64_t, 1>& st) {
      const TI* p = base + off[0];
      if (st[0] == 1) {
        for (std::int64_t i = 0; i < n; ++i) acc = comb(acc, load(p[i]));
      } else {
        for (std::int64_t i = 0; i < n; ++i) acc = comb(acc, load(p[i * st[0]]));
      }
    };
    for_each_run<1>(red, b, e, body);
    return acc;
  };
  auto kept_offset = [&](std::int64_t o) {
    std::int64_t off = 0;
    for (int d = kept_shape.rank() - 1; d >= 0; --d) {
      off += (o % kept_shape[d]) * kept_strides[d];
      o /= kept_shape[d];
    }
    return off;
  };
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (n_out >= threads || n_out * n_red < kParallelGrain) {
#pragma omp parallel for if (n_out * n_red >= kParallelGrain && n_out > 1)
    for (std::int64_t o = 0; o < n_out; ++o) out[o] = fin(n_red ? fold(in + kept_offset(o), 0, n_red) : init);
    return;
  }
  // Few outputs, long reductions: split each reduction over the threads.
  for (std::int64_t o = 0; o < n_out; ++o) {
    const TI* base = in + kept_offset(o);
    std::vector<Acc> partial(static_cast<std::size_t>(threads), init);
#pragma omp parallel num_threads(threads)
    {
      const std::int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
      const std::int64_t chunk = (n_red + nt - 1) / nt;
      const std::int64_t b = std::min(n_red, t * chunk), e = std::min(n_red, b + chunk);
      if (b < e) partial[static_cast<std::size_t>(t)] = fold(base, b, e);
    }
    Acc acc = init;
    for (Acc p : partial) acc = comb(acc, p);
    out[o] = fin(acc);
  }
}

}  // namespace avgrad::cpu
