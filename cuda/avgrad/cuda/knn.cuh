// metrics::knn on the GPU: exact k nearest neighbours (L2 or cosine) of device rows. As on
// the CPU, distances come blockwise from GEMM tiles (cuBLAS), ‖q‖² + ‖b‖² − 2 q·b or 1 − q̂·b̂,
// so memory stays O(block²); each query keeps its k best (distance, index) pairs in a sorted
// list that one thread updates tile by tile. The pair order is total (ties go to the lower
// index), so the result does not depend on the tiling. The result is small and returned on
// the host, where the latent metrics read it.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <limits>

#include "avgrad/cuda/blas.cuh"
#include "avgrad/cuda/elementwise.cuh"
#include "avgrad/metrics/knn.hpp"

namespace avgrad::cuda {

/// Squared row norms of x (rows, D) in double, and for cosine the rows scaled to unit norm in place.
template <class T>
__global__ void knn_prepare_kernel(T* x, std::int64_t rows, std::int64_t D, bool cosine, T* sq, int* zero_row) {
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    double s = 0, unused = 0;
    for (std::int64_t c = threadIdx.x; c < D; c += blockDim.x) s += static_cast<double>(x[r * D + c]) * x[r * D + c];
    block_sum2(s, unused);
    if (cosine) {
      if (s > 0) {
        const double inv = 1.0 / ::sqrt(s);
        for (std::int64_t c = threadIdx.x; c < D; c += blockDim.x) x[r * D + c] = static_cast<T>(x[r * D + c] * inv);
      } else if (threadIdx.x == 0) {
        atomicMin(zero_row, static_cast<int>(r < 0x7fffffff ? r : 0x7fffffff));
      }
    }
    if (threadIdx.x == 0) sq[r] = static_cast<T>(s);
  }
}

/// Offers tile (m × n) of dot products g to the queries' sorted lists (dist, idx), k long each.
template <class T> __global__ void knn_offer_kernel(const T* g, std::int64_t m, std::int64_t n, std::int64_t q0,
                                                    std::int64_t b0, const T* qsq, const T* bsq, bool cosine,
                                                    bool exclude_self, std::int64_t k, T* dist, std::int64_t* idx) {
  for (std::int64_t r = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; r < m;
       r += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t q = q0 + r;
    T* dl = dist + q * k;
    std::int64_t* il = idx + q * k;
    for (std::int64_t c = 0; c < n; ++c) {
      const std::int64_t b = b0 + c;
      if (exclude_self && b == q) continue;
      const T dot = g[r * n + c];
      T d;
      if (cosine) {
        d = T(1) - dot;
      } else {
        const T s = qsq[q] + bsq[b] - T(2) * dot;  // rounding may make it slightly negative
        d = ::sqrt(s > T(0) ? s : T(0));
      }
      // the list is sorted by (distance, index); the last entry is the worst kept
      if (!(d < dl[k - 1] || (d == dl[k - 1] && b < il[k - 1]))) continue;
      std::int64_t j = k - 1;
      while (j > 0 && (d < dl[j - 1] || (d == dl[j - 1] && b < il[j - 1]))) {
        dl[j] = dl[j - 1];
        il[j] = il[j - 1];
        --j;
      }
      dl[j] = d;
      il[j] = b;
    }
  }
}

}  // namespace avgrad::cuda

namespace avgrad::metrics {

/// The k nearest base rows (N, D) of every query (Q, D), both on the GPU; the same contract
/// and checks as the CPU knn, the result on the host.
template <Floating T>
KnnResult<T> knn(const Tensor<T, Cuda>& queries, const Tensor<T, Cuda>& base, std::int64_t k, KnnOptions opt = {}) {
  constexpr const char* who = "knn";
  detail::check_knn_args(queries, base, k, opt);
  const std::int64_t Q = queries.size(0), N = base.size(0), D = queries.size(1);
  NoGradGuard no_grad;
  check_finite(queries, "knn: queries");
  check_finite(base, "knn: base");
  const bool cosine = opt.metric == KnnMetric::cosine;
  // private contiguous copies: cosine normalises them in place
  auto qx = queries.detach().contiguous().clone(), bx = base.detach().contiguous().clone();
  auto qsq = Tensor<T, Cuda>::empty(Shape{Q}), bsq = Tensor<T, Cuda>::empty(Shape{N});
  auto zero_row = from_vector<std::int32_t>({0x7fffffff}).to<Cuda>();
  auto prepare = [&](Tensor<T, Cuda>& x, Tensor<T, Cuda>& sq, const char* name) {
    const std::int64_t rows = x.size(0);
    cuda::knn_prepare_kernel<<<static_cast<unsigned>(std::min<std::int64_t>(rows, 1 << 20)), cuda::kThreads, 0,
                               cuda::current_stream()>>>(x.data(), rows, D, cosine, sq.data(), zero_row.data());
    cuda::check_launch("knn_prepare_kernel");
    const auto z = zero_row.to<Cpu>().item();
    AVGRAD_CHECK(z == 0x7fffffff, who, name, " row ", z, " has zero norm (cosine distance is undefined)");
  };
  prepare(qx, qsq, "queries");
  prepare(bx, bsq, "base");

  auto dist = full<T, Cuda>(Shape{Q, k}, std::numeric_limits<T>::infinity());
  auto idx = full<std::int64_t, Cuda>(Shape{Q, k}, std::numeric_limits<std::int64_t>::max());
  const std::int64_t bs = opt.block;
  auto tile = Tensor<T, Cuda>::empty(Shape{std::min(bs, Q), std::min(bs, N)});
  for (std::int64_t q0 = 0; q0 < Q; q0 += bs) {
    const std::int64_t m = std::min(bs, Q - q0);
    for (std::int64_t b0 = 0; b0 < N; b0 += bs) {
      const std::int64_t n = std::min(bs, N - b0);
      // tile (m × n) = queries[q0:q0+m] · base[b0:b0+n]ᵀ
      backend::Blas<Cuda>::gemm(false, true, m, n, D, T(1), qx.data() + q0 * D, D, bx.data() + b0 * D, D, T(0),
                                tile.data(), n);
      cuda::knn_offer_kernel<<<cuda::blocks_for(m), cuda::kThreads, 0, cuda::current_stream()>>>(
          tile.data(), m, n, q0, b0, qsq.data(), bsq.data(), cosine, opt.exclude_self, k, dist.data(), idx.data());
      cuda::check_launch("knn_offer_kernel");
    }
  }
  return KnnResult<T>{idx.to<Cpu>(), dist.template to<Cpu>()};
}

}  // namespace avgrad::metrics
