// The precision of float GEMMs (matmul, bmm, linear, attention's products), as PyTorch's
// autocast for matrix products: operands are
// rounded to a 16-bit storage type at each product — forward and backward — and the products
// accumulate in float into a float result. Parameters, activations and optimizer state stay
// float32. Thread-local, like autocast: a guard around training or an attack covers every GEMM
// that thread runs, and a backward pass uses the precision its forward pass recorded. The CPU
// rounds the operands and runs its float GEMM (the GPU's twin); CUDA runs cublasGemmEx on 16-bit
// operands (tensor cores). Double GEMMs are never lowered. Convolutions and the audio front-end
// (its spectra are features, computed exactly on either device) are not affected.
//
//   avgrad::MatmulPrecisionGuard bf16(avgrad::MatmulPrecision::bfloat16);
//   trainer.fit(batches);                        // every float GEMM with bfloat16 operands
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "avgrad/core/error.hpp"
#include "avgrad/core/half.hpp"

namespace avgrad {

enum class MatmulPrecision : std::uint8_t {
  float32,   ///< exact float GEMM (TF32 on the GPU only when cuda::set_allow_tf32(true))
  bfloat16,  ///< operands rounded to bfloat16, float accumulation
  float16,   ///< operands rounded to IEEE float16 (overflow beyond ±65504 gives ±Inf), float accumulation
};

inline const char* matmul_precision_name(MatmulPrecision p) {
  return p == MatmulPrecision::float32 ? "float32" : p == MatmulPrecision::bfloat16 ? "bfloat16" : "float16";
}

/// "float32" (or "fp32"), "bfloat16" ("bf16"), "float16" ("fp16"); anything else throws.
inline MatmulPrecision parse_matmul_precision(std::string_view s) {
  if (s == "float32" || s == "fp32") return MatmulPrecision::float32;
  if (s == "bfloat16" || s == "bf16") return MatmulPrecision::bfloat16;
  if (s == "float16" || s == "fp16") return MatmulPrecision::float16;
  throw Error("matmul precision", detail::concat("unknown precision '", s, "'; expected float32, bfloat16 or float16"));
}

namespace detail {
inline MatmulPrecision& matmul_precision_slot() {
  thread_local MatmulPrecision p = MatmulPrecision::float32;
  return p;
}
}  // namespace detail

/// This thread's precision of float GEMMs.
inline MatmulPrecision matmul_precision() { return detail::matmul_precision_slot(); }
inline void set_matmul_precision(MatmulPrecision p) { detail::matmul_precision_slot() = p; }

/// Sets this thread's GEMM precision for the guard's lifetime, then restores the previous one.
class MatmulPrecisionGuard {
 public:
  explicit MatmulPrecisionGuard(MatmulPrecision p) : prev_(matmul_precision()) { set_matmul_precision(p); }
  ~MatmulPrecisionGuard() { set_matmul_precision(prev_); }
  MatmulPrecisionGuard(const MatmulPrecisionGuard&) = delete;
  MatmulPrecisionGuard& operator=(const MatmulPrecisionGuard&) = delete;

 private:
  MatmulPrecision prev_;
};

/// A float rounded to the precision's storage type and back (identity for float32).
AVGRAD_HOST_DEVICE inline float round_to(MatmulPrecision p, float v) {
  return p == MatmulPrecision::bfloat16  ? static_cast<float>(bfloat16(v))
         : p == MatmulPrecision::float16 ? static_cast<float>(float16(v))
                                         : v;
}

/// Elements a GEMM reads of op(X) (rows × cols, row-major storage with leading dimension ld;
/// stored transposed when trans): from the first element to the last one read.
inline std::int64_t gemm_extent(bool trans, std::int64_t rows, std::int64_t cols, std::int64_t ld) {
  const std::int64_t sr = trans ? cols : rows, sc = trans ? rows : cols;
  return sr <= 0 || sc <= 0 ? 0 : (sr - 1) * ld + sc;
}

}  // namespace avgrad
