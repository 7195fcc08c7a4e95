// Dense matrix products for the CPU backend: C = alpha·op(A)·op(B) + beta·C on
// raw row-major pointers with leading dimensions (the BLAS convention, row-major),
// computed by Eigen's blocked GEMM (its packing routines and register kernels).
//
// With Eigen 3.4 we drive that GEMM ourselves instead of going through
// `C.noalias() = A * B`, for two reasons measured on this code base:
//  * Eigen allocates its packing buffers on the heap for every product; with
//    many mid-sized products (conv chunks) the page faults cost up to 5× (a
//    3×3 conv layer ran at 20 instead of 100 GFLOP/s on one core). Here the
//    buffers are per thread and reused.
//  * Eigen's own OpenMP split picks different block sizes for each thread count,
//    so results changed in the last bits with OMP_NUM_THREADS. Here the block
//    sizes are computed once for the whole product and the split follows block
//    boundaries, so every thread count gives bit-identical results.
// A large product is split over the OpenMP threads by rows of C (or by Eigen's
// row blocks when C has few rows); inside a parallel region products run
// serially, so nothing nests. Other Eigen versions fall back to Eigen::Map
// products (Eigen's own threading).
//
// Every matrix product is counted (gemm_stats): tests use the counters to prove
// that a backward computes exactly the products it needs (e.g. no weight
// gradients through a frozen model).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <type_traits>

#include <omp.h>

// GCC 12's AVX-512 intrinsics header (pulled in by Eigen under -march=native)
// trips -W(maybe-)uninitialized on its own _mm512_undefined_* idiom (GCC PR
// 105593, fixed in 13). The state at those header lines is set here, where the
// header is first parsed, so the warnings stay on for everything else.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <Eigen/Core>
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic pop
#endif

// The direct path uses Eigen 3.4's internal GEMM entry points (stable within 3.4);
// define AVGRAD_EIGEN_PRODUCT_ONLY to use Eigen's public product instead.
#if EIGEN_WORLD_VERSION == 3 && EIGEN_MAJOR_VERSION == 4 && !defined(AVGRAD_EIGEN_PRODUCT_ONLY)
#define AVGRAD_EIGEN_DIRECT_GEMM 1
#endif

#include "avgrad/backend/cpu/loops.hpp"

namespace avgrad::cpu {

/// Totals since the last reset_gemm_stats(): `calls` counts matrix products (a
/// batched call of B products adds B), `flops` adds 2·m·n·k per product.
struct GemmStats {
  std::uint64_t calls = 0;
  std::uint64_t flops = 0;
};

namespace detail {
inline std::atomic<std::uint64_t> gemm_calls{0};
inline std::atomic<std::uint64_t> gemm_flops{0};

inline void count_gemm(std::int64_t products, std::int64_t m, std::int64_t n, std::int64_t k) {
  gemm_calls.fetch_add(static_cast<std::uint64_t>(products), std::memory_order_relaxed);
  gemm_flops.fetch_add(static_cast<std::uint64_t>(products) * 2u * static_cast<std::uint64_t>(m) *
                           static_cast<std::uint64_t>(n) * static_cast<std::uint64_t>(k),
                       std::memory_order_relaxed);
}

/// Eigen's thread setup, done once before the first product (little more than a
/// no-op in Eigen 3.4 with C++11, but documented as required when several
/// threads call into Eigen, as the conv and batched paths do).
inline void init_eigen_once() {
  static const bool done = [] {
    Eigen::initParallel();
    return true;
  }();
  (void)done;
}

}  // namespace detail

inline GemmStats gemm_stats() {
  return {detail::gemm_calls.load(std::memory_order_relaxed), detail::gemm_flops.load(std::memory_order_relaxed)};
}
inline void reset_gemm_stats() {
  detail::gemm_calls.store(0, std::memory_order_relaxed);
  detail::gemm_flops.store(0, std::memory_order_relaxed);
}

namespace detail {

/// Rows of C (or columns, in Eigen's row blocks) that one thread gets at least.
inline constexpr std::int64_t kSplitAlign = 16;
/// Products below this many multiply-adds run on one thread.
inline constexpr std::int64_t kSplitWork = std::int64_t(1) << 20;

/// C (m×n) = beta·C, writing zeros (not 0·C, which keeps NaN) when beta == 0.
template <class T> void scale_c(T* c, std::int64_t m, std::int64_t n, std::int64_t ldc, T beta) {
  if (beta == T(1)) return;
  for (std::int64_t i = 0; i < m; ++i) {
    T* row = c + i * ldc;
    if (beta == T(0))
      std::fill(row, row + n, T(0));
    else
      for (std::int64_t j = 0; j < n; ++j) row[j] *= beta;
  }
}

#ifdef AVGRAD_EIGEN_DIRECT_GEMM

/// A thread's packing buffers, grown on demand and kept for the thread's life.
template <class T> class PackBuffers {
 public:
  ~PackBuffers() {
    std::free(a_);
    std::free(b_);
  }
  T* a(std::size_t n) { return grow(a_, cap_a_, n); }
  T* b(std::size_t n) { return grow(b_, cap_b_, n); }
  static PackBuffers& local() {
    thread_local PackBuffers buffers;
    return buffers;
  }

 private:
  static T* grow(T*& p, std::size_t& cap, std::size_t n) {
    if (n > cap) {
      std::free(p);
      const std::size_t bytes = (std::max<std::size_t>(n, 16) * sizeof(T) + 63) / 64 * 64;
      p = static_cast<T*>(std::aligned_alloc(64, bytes));  // Eigen stores packed panels aligned
      if (!p) throw std::bad_alloc();
      cap = bytes / sizeof(T);
    }
    return p;
  }
  T* a_ = nullptr;
  T* b_ = nullptr;
  std::size_t cap_a_ = 0, cap_b_ = 0;
};

/// Eigen's cache blocking (kc, mc, nc) for a column-major rows×cols×depth
/// product, computed once for a whole product and shared by all of its parts.
template <class T> class Blocking : public Eigen::internal::level3_blocking<T, T> {
 public:
  Blocking(Eigen::Index rows, Eigen::Index cols, Eigen::Index depth) {
    this->m_mc = rows;
    this->m_nc = cols;
    this->m_kc = depth;
    Eigen::internal::computeProductBlockingSizes<T, T, 1>(this->m_kc, this->m_mc, this->m_nc, Eigen::Index(1));
  }
  /// Points the packing buffers at this thread's (grown to this blocking's sizes).
  void bind() {
    auto& buf = PackBuffers<T>::local();
    this->m_blockA = buf.a(static_cast<std::size_t>(this->m_kc * this->m_mc));
    this->m_blockB = buf.b(static_cast<std::size_t>(this->m_kc * this->m_nc));
  }
};

/// C (m×n, row-major) += alpha·op(A)·op(B) on this thread. Eigen sees the
/// column-major product Cᵀ (n×m), so `blk` must be Blocking(n_total, m_total, k).
template <class T, int LhsOrder, int RhsOrder> void gemm_serial(const Blocking<T>& blk, std::int64_t m, std::int64_t n,
                                                                std::int64_t k, T alpha, const T* a, std::int64_t lda,
                                                                const T* b, std::int64_t ldb, T* c, std::int64_t ldc) {
  Blocking<T> local = blk;
  local.bind();
  Eigen::internal::general_matrix_matrix_product<Eigen::Index, T, LhsOrder, false, T, RhsOrder, false, Eigen::RowMajor,
                                                 1>::run(m, n, k, a, lda, b, ldb, c, 1, ldc, alpha, local, nullptr);
}

/// Runs the product on this thread or split over the threads. Splits follow
/// Eigen's blocks (rows of C in multiples of kSplitAlign map to whole nr-column
/// groups of Cᵀ; columns of C in multiples of mc are whole row blocks), so
/// every element is computed by the same kernel sequence for any split.
template <class T, int LhsOrder, int RhsOrder>
void gemm_run(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
              std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  const Blocking<T> blk(n, m, k);
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const bool big = threads > 1 && m * n * k >= kSplitWork;
  const std::int64_t row_parts = big ? std::min<std::int64_t>(threads, m / kSplitAlign) : 1;
  const std::int64_t mc = blk.mc();
  const std::int64_t col_parts = big && row_parts < 2 ? std::min<std::int64_t>(threads, n / mc) : 1;
  if (row_parts >= 2) {
    // rows [i0, i1) of C: A's rows, C's rows
    const std::int64_t per = (m / row_parts + kSplitAlign - 1) / kSplitAlign * kSplitAlign;
#pragma omp parallel for schedule(static) num_threads(static_cast <int>(row_parts))
    for (std::int64_t p = 0; p < row_parts; ++p) {
      const std::int64_t i0 = std::min(m, p * per), i1 = p + 1 == row_parts ? m : std::min(m, i0 + per);
      if (i1 <= i0) continue;
      scale_c(c + i0 * ldc, i1 - i0, n, ldc, beta);
      gemm_serial<T, LhsOrder, RhsOrder>(blk, i1 - i0, n, k, alpha, trans_a ? a + i0 : a + i0 * lda, lda, b, ldb,
                                         c + i0 * ldc, ldc);
    }
  } else if (col_parts >= 2) {
    // columns [j0, j1) of C in whole blocks of mc: B's columns, C's columns
    const std::int64_t blocks = (n + mc - 1) / mc, per = (blocks + col_parts - 1) / col_parts * mc;
#pragma omp parallel for schedule(static) num_threads(static_cast <int>(col_parts))
    for (std::int64_t p = 0; p < col_parts; ++p) {
      const std::int64_t j0 = std::min(n, p * per), j1 = std::min(n, j0 + per);
      if (j1 <= j0) continue;
      scale_c(c + j0, m, j1 - j0, ldc, beta);
      gemm_serial<T, LhsOrder, RhsOrder>(blk, m, j1 - j0, k, alpha, a, lda, trans_b ? b + j0 * ldb : b + j0, ldb,
                                         c + j0, ldc);
    }
  } else {
    scale_c(c, m, n, ldc, beta);
    gemm_serial<T, LhsOrder, RhsOrder>(blk, m, n, k, alpha, a, lda, b, ldb, c, ldc);
  }
}
#else  // other Eigen versions: Eigen's own product and threading

template <class T> using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T> using ConstMap = Eigen::Map<const RowMat<T>, Eigen::Unaligned, Eigen::OuterStride<> >;
template <class T> using MutMap = Eigen::Map<RowMat<T>, Eigen::Unaligned, Eigen::OuterStride<> >;

/// C (m×n) += alpha·opA·opB for already-mapped operands (C already scaled by beta).
template <class T, class A, class B> void gemm_eval(const A& a, const B& b, T alpha, MutMap<T>& c) {
  c.noalias() += alpha * (a * b);
}
#endif

}  // namespace detail

/// C = alpha·op(A)·op(B) + beta·C, all row-major. op(A) is m×k: A is stored
/// m×k with leading dimension lda >= k, or k×m with lda >= m when trans_a
/// (a row-major k×m matrix read as its transpose). Likewise op(B) is k×n from
/// B (k×n, ldb >= n) or Bᵀ (B stored n×k, ldb >= k). C is m×n, ldc >= n and
/// must not overlap A or B. beta == 0 overwrites C without reading it.
/// Large products use every OpenMP thread (none inside a parallel region);
/// the result is the same for every thread count.
template <class T>
requires std::is_same_v<T, float> || std::is_same_v<T, double>
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
          std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  detail::count_gemm(1, m, n, k);
  if (k <= 0) {  // empty sum: C = beta·C
    detail::scale_c(c, m, n, ldc, beta);
    return;
  }
  detail::init_eigen_once();
#ifdef AVGRAD_EIGEN_DIRECT_GEMM
  constexpr int R = Eigen::RowMajor, C = Eigen::ColMajor;
  // A stored m×k row-major is a RowMajor lhs; stored k×m (trans_a) it is op(A) in ColMajor.
  if (!trans_a && !trans_b)
    detail::gemm_run<T, R, R>(false, false, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  else if (trans_a && !trans_b)
    detail::gemm_run<T, C, R>(true, false, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  else if (!trans_a && trans_b)
    detail::gemm_run<T, R, C>(false, true, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  else
    detail::gemm_run<T, C, C>(true, true, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#else
  using Index = Eigen::Index;
  detail::scale_c(c, m, n, ldc, beta);
  detail::MutMap<T> cm(c, m, n, Eigen::OuterStride<>(ldc));
  // A row-major r×c map; op() = transpose when the storage holds the transpose.
  detail::ConstMap<T> am(a, trans_a ? k : m, trans_a ? m : k, Eigen::OuterStride<>(static_cast<Index>(lda)));
  detail::ConstMap<T> bm(b, trans_b ? n : k, trans_b ? k : n, Eigen::OuterStride<>(static_cast<Index>(ldb)));
  if (!trans_a && !trans_b)
    detail::gemm_eval(am, bm, alpha, cm);
  else if (trans_a && !trans_b)
    detail::gemm_eval(am.transpose(), bm, alpha, cm);
  else if (!trans_a && trans_b)
    detail::gemm_eval(am, bm.transpose(), alpha, cm);
  else
    detail::gemm_eval(am.transpose(), bm.transpose(), alpha, cm);
#endif
}

/// Below this many multiply-adds per product, a batch of products runs one
/// product per thread (serial GEMMs) instead of one parallel GEMM at a time.
inline constexpr std::int64_t kSmallGemmWork = std::int64_t(96) * 96 * 96;

/// C[i] = alpha·op(A[i])·op(B[i]) + beta·C[i] for i < batch, with per-product
/// pointers (any layout of the batch; A or B pointers may repeat, C pointers
/// must be distinct). Many small products are spread over the threads with one
/// serial GEMM each; otherwise products run in order, each split over the threads.
template <class T>
requires std::is_same_v<T, float> || std::is_same_v<T, double>
void gemm_batched(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
                  const T* const* a, std::int64_t lda, const T* const* b, std::int64_t ldb, T beta, T* const* c,
                  std::int64_t ldc, std::int64_t batch) {
  if (batch <= 0) return;
  const bool spread = batch > 1 && m * n * k < kSmallGemmWork && !omp_in_parallel() && omp_get_max_threads() > 1 &&
                      batch * m * n * std::max<std::int64_t>(k, 1) >= kParallelGrain;
  if (spread) {
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < batch; ++i)
      gemm(trans_a, trans_b, m, n, k, alpha, a[i], lda, b[i], ldb, beta, c[i], ldc);
  } else {
    for (std::int64_t i = 0; i < batch; ++i)
      gemm(trans_a, trans_b, m, n, k, alpha, a[i], lda, b[i], ldb, beta, c[i], ldc);
  }
}

/// The uniformly strided batch: A[i] = a + i·stride_a (stride 0 repeats one matrix), etc.
template <class T>
requires std::is_same_v<T, float> || std::is_same_v<T, double>
void gemm_strided_batched(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
                          const T* a, std::int64_t lda, std::int64_t stride_a, const T* b, std::int64_t ldb,
                          std::int64_t stride_b, T beta, T* c, std::int64_t ldc, std::int64_t stride_c,
                          std::int64_t batch) {
  if (batch <= 0) return;
  const bool spread = batch > 1 && m * n * k < kSmallGemmWork && !omp_in_parallel() && omp_get_max_threads() > 1 &&
                      batch * m * n * std::max<std::int64_t>(k, 1) >= kParallelGrain;
  if (spread) {
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < batch; ++i)
      gemm(trans_a, trans_b, m, n, k, alpha, a + i * stride_a, lda, b + i * stride_b, ldb, beta, c + i * stride_c, ldc);
  } else {
    for (std::int64_t i = 0; i < batch; ++i)
      gemm(trans_a, trans_b, m, n, k, alpha, a + i * stride_a, lda, b + i * stride_b, ldb, beta, c + i * stride_c, ldc);
  }
}

}  // namespace avgrad::cpu
