// Exact k-nearest neighbours (L2 or cosine) on plain CPU tensors, computed blockwise with GEMM and a bounded heap.
//
// Distances of a block of queries to a block of base rows come from one GEMM tile (‖q‖² + ‖b‖² − 2 q·b, or
// 1 − q̂·b̂ for cosine), so memory stays O(block²) per thread instead of O(Q·N). Each query keeps a bounded max-heap
// of its k best (distance, index) pairs; because that order is total, the selected set does not depend on the order
// in which tiles arrive, which makes the result identical for every thread count. When queries and base are the
// same tensor the distance matrix is symmetric, so only tiles on and above the block diagonal are computed and each
// off-diagonal tile feeds both its rows and its columns (half the GEMM work).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <vector>

#include <omp.h>

#include "avgrad/backend/cpu/gemm.hpp"
#include "avgrad/core/tensor.hpp"
#include "avgrad/ops/view.hpp"

namespace avgrad::metrics {

enum class KnnMetric { l2, cosine };

struct KnnOptions {
  KnnMetric metric = KnnMetric::l2;
  bool exclude_self = false;  ///< queries are the base: never return a point as its own neighbour
  std::int64_t block = 1024;  ///< rows of queries and of base per GEMM tile (bounds the memory)
};

template <Floating T> struct KnnResult {
  Tensor<std::int64_t, Cpu> indices;  ///< (Q, k) base rows, nearest first
  Tensor<T, Cpu> distances;           ///< (Q, k) ascending; ties ordered by lower index
};

namespace detail {

template <class T> struct Neighbour {
  T d;
  std::int64_t i;
  // The total order that defines "better": smaller distance, then lower index.
  friend bool operator<(const Neighbour& a, const Neighbour& b) { return a.d < b.d || (a.d == b.d && a.i < b.i); }
};

/// The k best candidates of one query: a max-heap (worst on top) once full.
template <class T> class TopK {
 public:
  TopK(Neighbour<T>* slots, std::int64_t k) : h_(slots), k_(k) {}
  void offer(T d, std::int64_t i) {
    const Neighbour<T> c{d, i};
    if (n_ < k_) {
      h_[n_++] = c;
      std::push_heap(h_, h_ + n_);
    } else if (c < h_[0]) {
      std::pop_heap(h_, h_ + k_);
      h_[k_ - 1] = c;
      std::push_heap(h_, h_ + k_);
    }
  }
  void sort() { std::sort_heap(h_, h_ + n_); }

 private:
  Neighbour<T>* h_;
  std::int64_t k_;
  std::int64_t n_ = 0;
};

template <class T> void check_finite(const char* who, const char* name, const T* x, std::int64_t rows, std::int64_t D) {
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < D; ++c)
      AVGRAD_CHECK(std::isfinite(x[r * D + c]), who, name, " has a non-finite value ", x[r * D + c], " at row ", r,
                   ", column ", c);
}

/// Squared row norms (accumulated in double so large D does not lose the small rows), or, for cosine, the rows
/// scaled to unit norm in place of x (norms then not needed).
template <class T> std::vector<T> prepare_rows(const char* who, const char* name, T* x, std::int64_t rows,
                                               std::int64_t D, KnnMetric metric) {
  std::vector<T> sq(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) {
    double s = 0;
    for (std::int64_t c = 0; c < D; ++c) s += static_cast<double>(x[r * D + c]) * x[r * D + c];
    if (metric == KnnMetric::cosine) {
      AVGRAD_CHECK(s > 0, who, name, " row ", r, " has zero norm (cosine distance is undefined)");
      const double inv = 1.0 / std::sqrt(s);
      for (std::int64_t c = 0; c < D; ++c) x[r * D + c] = static_cast<T>(x[r * D + c] * inv);
    }
    sq[static_cast<std::size_t>(r)] = static_cast<T>(s);
  }
  return sq;
}

/// Turns a GEMM tile of dot products (m×n, row-major) into distances in place.
template <class T>
void tile_distances(T* g, std::int64_t m, std::int64_t n, const T* qsq, const T* bsq, KnnMetric metric) {
  for (std::int64_t r = 0; r < m; ++r) {
    T* row = g + r * n;
    if (metric == KnnMetric::cosine) {
      for (std::int64_t c = 0; c < n; ++c) row[c] = T(1) - row[c];
    } else {
      const T a = qsq[r];
      // Rounding can make ‖q‖² + ‖b‖² − 2 q·b slightly negative for (near-)identical rows; clamp before the sqrt.
      for (std::int64_t c = 0; c < n; ++c) row[c] = std::sqrt(std::max(a + bsq[c] - T(2) * row[c], T(0)));
    }
  }
}

/// The shapes, k and options of a knn call, on any device: errors name what is wrong.
template <class Tn> void check_knn_args(const Tn& queries, const Tn& base, std::int64_t k, const KnnOptions& opt) {
  constexpr const char* who = "knn";
  AVGRAD_CHECK(queries.defined() && queries.dim() == 2, who, "expected queries (Q, D), got ",
               queries.defined() ? queries.shape().str() : std::string("an undefined tensor"));
  AVGRAD_CHECK(base.defined() && base.dim() == 2, who, "expected base (N, D), got ",
               base.defined() ? base.shape().str() : std::string("an undefined tensor"));
  const std::int64_t Q = queries.size(0), N = base.size(0), D = queries.size(1);
  AVGRAD_CHECK(base.size(1) == D, who, "queries have ", D, " columns but base rows have ", base.size(1));
  AVGRAD_CHECK(D > 0 && N > 0, who, "expected D > 0 and N > 0, got D = ", D, ", N = ", N);
  AVGRAD_CHECK(!opt.exclude_self || Q == N, who, "exclude_self needs the queries to be the base, got Q = ", Q,
               " and N = ", N);
  const std::int64_t kmax = opt.exclude_self ? N - 1 : N;
  AVGRAD_CHECK(k >= 1 && k <= kmax, who, "k = ", k, " is outside [1, ", kmax, "]");
  AVGRAD_CHECK(opt.block >= 1, who, "block must be >= 1, got ", opt.block);
}

}  // namespace detail

/// The k nearest base rows (N, D) of every query (Q, D). Float or double, no autograd. Throws on k outside
/// [1, N] (N − 1 with exclude_self), mismatched dimensions, non-finite values, zero-norm rows for cosine.
template <Floating T>
KnnResult<T> knn(const Tensor<T, Cpu>& queries, const Tensor<T, Cpu>& base, std::int64_t k, KnnOptions opt = {}) {
  constexpr const char* who = "knn";
  detail::check_knn_args(queries, base, k, opt);
  const std::int64_t Q = queries.size(0), N = base.size(0), D = queries.size(1);

  // The symmetric shortcut needs both sides to be literally the same rows.
  const bool same = queries.shape() == base.shape() && queries.is_contiguous() && base.is_contiguous() &&
                    queries.data() == base.data();
  // Private copies: cosine normalises them in place, and the GEMM wants contiguous rows.
  std::vector<T> qv(queries.contiguous().to_vector());
  detail::check_finite(who, "queries", qv.data(), Q, D);
  std::vector<T> bv_storage;
  if (!same) {
    bv_storage = base.contiguous().to_vector();
    detail::check_finite(who, "base", bv_storage.data(), N, D);
  }
  const std::vector<T> qsq = detail::prepare_rows(who, "queries", qv.data(), Q, D, opt.metric);
  const std::vector<T> bsq = same ? qsq : detail::prepare_rows(who, "base", bv_storage.data(), N, D, opt.metric);
  const T* qx = qv.data();
  const T* bx = same ? qv.data() : bv_storage.data();

  std::vector<detail::Neighbour<T>> slots(static_cast<std::size_t>(Q * k));
  std::vector<detail::TopK<T>> tops;
  tops.reserve(static_cast<std::size_t>(Q));
  for (std::int64_t q = 0; q < Q; ++q) tops.emplace_back(slots.data() + q * k, k);
  auto offer = [&](std::int64_t q, T d, std::int64_t b) {
    if (!(opt.exclude_self && q == b)) tops[static_cast<std::size_t>(q)].offer(d, b);
  };

  const std::int64_t bs = opt.block;
  const std::int64_t nq = (Q + bs - 1) / bs, nb = (N + bs - 1) / bs;
  // One tile = queries[q0, q0+m) × base[b0, b0+n); computed serially (gemm does not split inside a parallel region)
  // so its values depend on the block sizes only, never on the thread count.
  auto tile = [&](std::vector<T>& g, std::int64_t q0, std::int64_t m, std::int64_t b0, std::int64_t n) {
    g.resize(static_cast<std::size_t>(m * n));
    cpu::gemm<T>(false, true, m, n, D, T(1), qx + q0 * D, D, bx + b0 * D, D, T(0), g.data(), n);
    detail::tile_distances(g.data(), m, n, qsq.data() + q0, bsq.data() + b0, opt.metric);
  };

  if (same && nq > 1) {
    // Tiles (i, j) with i <= j; tile (i, j) serves queries of block i (its rows) and of block j (its columns).
    std::vector<std::pair<std::int64_t, std::int64_t>> pairs;
    for (std::int64_t i = 0; i < nq; ++i)
      for (std::int64_t j = i; j < nq; ++j) pairs.emplace_back(i, j);
    std::vector<std::mutex> locks(static_cast<std::size_t>(nq));
    const auto np = static_cast<std::int64_t>(pairs.size());
#pragma omp parallel
    {
      std::vector<T> g;
#pragma omp for schedule(dynamic, 1)
      for (std::int64_t p = 0; p < np; ++p) {
        const auto [i, j] = pairs[static_cast<std::size_t>(p)];
        const std::int64_t r0 = i * bs, m = std::min(bs, N - r0), c0 = j * bs, n = std::min(bs, N - c0);
        tile(g, r0, m, c0, n);
        {
          std::lock_guard lock(locks[static_cast<std::size_t>(i)]);
          for (std::int64_t r = 0; r < m; ++r)
            for (std::int64_t c = 0; c < n; ++c) offer(r0 + r, g[static_cast<std::size_t>(r * n + c)], c0 + c);
        }
        if (i != j) {
          std::lock_guard lock(locks[static_cast<std::size_t>(j)]);
          // Row-major walk (cache-friendly on the tile); each element is a candidate for query c0 + c.
          for (std::int64_t r = 0; r < m; ++r)
            for (std::int64_t c = 0; c < n; ++c) offer(c0 + c, g[static_cast<std::size_t>(r * n + c)], r0 + r);
        }
      }
    }
  } else {
#pragma omp parallel
    {
      std::vector<T> g;
#pragma omp for schedule(dynamic, 1)
      for (std::int64_t i = 0; i < nq; ++i) {
        const std::int64_t q0 = i * bs, m = std::min(bs, Q - q0);
        for (std::int64_t j = 0; j < nb; ++j) {
          const std::int64_t b0 = j * bs, n = std::min(bs, N - b0);
          tile(g, q0, m, b0, n);
          for (std::int64_t r = 0; r < m; ++r)
            for (std::int64_t c = 0; c < n; ++c) offer(q0 + r, g[static_cast<std::size_t>(r * n + c)], b0 + c);
        }
      }
    }
  }

  KnnResult<T> out{empty<std::int64_t>(Shape{Q, k}), empty<T>(Shape{Q, k})};
  std::int64_t* oi = out.indices.data();
  T* od = out.distances.data();
  for (std::int64_t q = 0; q < Q; ++q) {
    tops[static_cast<std::size_t>(q)].sort();
    for (std::int64_t t = 0; t < k; ++t) {
      const auto& nb_ = slots[static_cast<std::size_t>(q * k + t)];
      oi[q * k + t] = nb_.i;
      od[q * k + t] = nb_.d;
    }
  }
  return out;
}

}  // namespace avgrad::metrics
