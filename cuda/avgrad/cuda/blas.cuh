// Blas<Cuda>: row-major GEMM through cuBLAS. A row-major (r, c) buffer is the column-major
// (c, r) matrix, so C = op(A)·op(B) runs as Cᵀ = op(B)ᵀ·op(A)ᵀ with the operands swapped
// and no copies. One handle per thread, set to the current stream before each call;
// TF32 tensor-core math stays off unless set_allow_tf32(true) (FP32 results then match
// the CPU to ~1e-6 relative, as the tests require). A lowered MatmulPrecision rounds the
// operands into 16-bit scratch buffers (the CPU's rounding, bit for bit) and runs
// cublasGemmEx with float accumulation into the float result: the tensor-core path.
#pragma once

#include <cublas_v2.h>

#include <atomic>
#include <cstdint>
#include <limits>
#include <vector>

#include "avgrad/cuda/allocator.cuh"
#include "avgrad/cuda/runtime.cuh"
#include "avgrad/ops/linalg.hpp"

namespace avgrad::cuda {

inline const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS:
      return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "invalid value";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "architecture mismatch";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "execution failed";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "internal error";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "not supported";
    default:
      return "unknown status";
  }
}

#define AVGRAD_CUBLAS_CHECK(call)                                                                                 \
  do {                                                                                                            \
    const cublasStatus_t avgrad_cublas_status_ = (call);                                                          \
    if (avgrad_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                                           \
      throw ::avgrad::Error(                                                                                      \
          "cublas",                                                                                               \
          ::avgrad::detail::concat(#call, " failed: ", ::avgrad::cuda::cublas_status_name(avgrad_cublas_status_), \
                                   " (", __FILE__, ":", __LINE__, ")"));                                          \
  } while (0)

namespace detail {
inline std::atomic<bool>& allow_tf32_flag() {
  static std::atomic<bool> on{false};
  return on;
}
}  // namespace detail

/// Opt in to TF32 tensor cores for FP32 GEMM (about 10 significant bits; off by default).
inline void set_allow_tf32(bool on) { detail::allow_tf32_flag() = on; }
inline bool allow_tf32() { return detail::allow_tf32_flag(); }

/// This thread's cuBLAS handle, bound to the current stream and math mode.
inline cublasHandle_t blas_handle() {
  struct Owner {
    cublasHandle_t h = nullptr;
    ~Owner() {
      if (h) cublasDestroy(h);
    }
  };
  thread_local Owner owner;
  if (!owner.h) AVGRAD_CUBLAS_CHECK(cublasCreate(&owner.h));
  AVGRAD_CUBLAS_CHECK(cublasSetStream(owner.h, current_stream()));
  AVGRAD_CUBLAS_CHECK(cublasSetMathMode(owner.h, allow_tf32() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  return owner.h;
}

/// cuBLAS takes 32-bit dimensions; larger ones are a clear error, not a wrapped value.
inline int blas_dim(std::int64_t v, const char* what) {
  AVGRAD_CHECK(v >= 0 && v <= std::numeric_limits<int>::max(), "cublas", what, " = ", v,
               " exceeds cuBLAS's 32-bit range; split the product");
  return static_cast<int>(v);
}

/// out[i] = H(in[i]) (round to nearest even) over a contiguous run.
template <class H> __global__ void to_16bit_kernel(const float* in, H* out, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x)
    out[i] = H(in[i]);
}

/// A GEMM operand rounded to 16 bits: the n elements from x on, in a scratch buffer from the
/// caching allocator (freed in stream order when the product is queued).
struct Operand16 {
  Tensor<bfloat16, Cuda> bf;
  Tensor<float16, Cuda> fp;
  const void* ptr = nullptr;
  cudaDataType_t type = CUDA_R_16BF;
};
inline Operand16 operand_16bit(const float* x, std::int64_t n, MatmulPrecision p) {
  Operand16 o;
  const std::int64_t len = std::max<std::int64_t>(n, 1);
  if (p == MatmulPrecision::bfloat16) {
    o.bf = Tensor<bfloat16, Cuda>::empty(Shape{len});
    o.ptr = o.bf.data();
    if (n > 0) to_16bit_kernel<<<blocks_for(n), 256, 0, current_stream()>>>(x, o.bf.data(), n);
  } else {
    o.fp = Tensor<float16, Cuda>::empty(Shape{len});
    o.ptr = o.fp.data();
    o.type = CUDA_R_16F;
    if (n > 0) to_16bit_kernel<<<blocks_for(n), 256, 0, current_stream()>>>(x, o.fp.data(), n);
  }
  if (n > 0) check_launch("to_16bit_kernel");
  return o;
}

/// Row-major C (m, n) = alpha·op(A)·op(B) + beta·C on the current stream.
template <class T> void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
                             const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc,
                             MatmulPrecision precision = MatmulPrecision::float32) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "cuBLAS GEMM is float or double");
  if (m <= 0 || n <= 0) return;
  const cublasOperation_t opa = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, opb = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int M = blas_dim(m, "m"), N = blas_dim(n, "n"), K = blas_dim(k, "k");
  // a k of 0 is legal for cuBLAS (C = beta·C); leading dimensions must still be >= 1
  const int la = blas_dim(std::max<std::int64_t>(lda, 1), "lda"), lb = blas_dim(std::max<std::int64_t>(ldb, 1), "ldb"),
            lc = blas_dim(ldc, "ldc");
  cublasHandle_t h = blas_handle();
  if constexpr (std::is_same_v<T, float>) {
    if (precision != MatmulPrecision::float32) {
      const auto a16 = operand_16bit(a, gemm_extent(trans_a, m, k, lda), precision);
      const auto b16 = operand_16bit(b, gemm_extent(trans_b, k, n, ldb), precision);
      AVGRAD_CUBLAS_CHECK(cublasGemmEx(h, opb, opa, N, M, K, &alpha, b16.ptr, b16.type, lb, a16.ptr, a16.type, la,
                                       &beta, c, CUDA_R_32F, lc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      return;
    }
    AVGRAD_CUBLAS_CHECK(cublasSgemm(h, opb, opa, N, M, K, &alpha, b, lb, a, la, &beta, c, lc));
  } else
    AVGRAD_CUBLAS_CHECK(cublasDgemm(h, opb, opa, N, M, K, &alpha, b, lb, a, la, &beta, c, lc));
}

/// `count` products; pointers evenly spaced (the common case: a contiguous batch) run as
/// one strided-batched call, others one call each.
template <class T> void gemm_batched(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                                     T alpha, const T* const* a, std::int64_t lda, const T* const* b, std::int64_t ldb,
                                     T beta, T* const* c, std::int64_t ldc, std::int64_t count,
                                     MatmulPrecision precision = MatmulPrecision::float32) {
  if (count <= 0 || m <= 0 || n <= 0) return;
  auto even = [count](auto* const* p, std::int64_t& stride) {
    stride = count > 1 ? p[1] - p[0] : 0;
    for (std::int64_t i = 1; i < count; ++i)
      if (p[i] - p[i - 1] != stride) return false;
    return true;
  };
  std::int64_t sa = 0, sb = 0, sc = 0;
  if (!(even(a, sa) && even(b, sb) && even(c, sc) && sa >= 0 && sb >= 0 && sc >= m * n &&
        count <= std::numeric_limits<int>::max())) {
    for (std::int64_t i = 0; i < count; ++i)
      gemm(trans_a, trans_b, m, n, k, alpha, a[i], lda, b[i], ldb, beta, c[i], ldc, precision);
    return;
  }
  const cublasOperation_t opa = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, opb = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int M = blas_dim(m, "m"), N = blas_dim(n, "n"), K = blas_dim(k, "k");
  const int la = blas_dim(std::max<std::int64_t>(lda, 1), "lda"), lb = blas_dim(std::max<std::int64_t>(ldb, 1), "ldb"),
            lc = blas_dim(ldc, "ldc");
  cublasHandle_t h = blas_handle();
  const int batch = static_cast<int>(count);
  if constexpr (std::is_same_v<T, float>) {
    if (precision != MatmulPrecision::float32) {
      // The 16-bit copy spans every product's operand, so the strides carry over.
      const auto a16 = operand_16bit(a[0], (count - 1) * sa + gemm_extent(trans_a, m, k, lda), precision);
      const auto b16 = operand_16bit(b[0], (count - 1) * sb + gemm_extent(trans_b, k, n, ldb), precision);
      AVGRAD_CUBLAS_CHECK(cublasGemmStridedBatchedEx(h, opb, opa, N, M, K, &alpha, b16.ptr, b16.type, lb, sb, a16.ptr,
                                                     a16.type, la, sa, &beta, c[0], CUDA_R_32F, lc, sc, batch,
                                                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      return;
    }
    AVGRAD_CUBLAS_CHECK(cublasSgemmStridedBatched(h, opb, opa, N, M, K, &alpha, b[0], lb, sb, a[0], la, sa, &beta, c[0],
                                                  lc, sc, batch));
  } else
    AVGRAD_CUBLAS_CHECK(cublasDgemmStridedBatched(h, opb, opa, N, M, K, &alpha, b[0], lb, sb, a[0], la, sa, &beta, c[0],
                                                  lc, sc, batch));
}

}  // namespace avgrad::cuda

namespace avgrad::backend {

template <> struct Blas<Cuda> {
  template <class T> static void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                                      T alpha, const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c,
                                      std::int64_t ldc, MatmulPrecision precision = MatmulPrecision::float32) {
    cuda::gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, precision);
  }
  template <class T> static void gemm_batched(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n,
                                              std::int64_t k, T alpha, const T* const* a, std::int64_t lda,
                                              const T* const* b, std::int64_t ldb, T beta, T* const* c,
                                              std::int64_t ldc, std::int64_t count,
                                              MatmulPrecision precision = MatmulPrecision::float32) {
    cuda::gemm_batched(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, count, precision);
  }
};

}  // namespace avgrad::backend
