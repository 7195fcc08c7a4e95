// 16-bit floating-point storage types: bfloat16 (8-bit exponent, 7-bit mantissa: float's range)
// and float16 (IEEE binary16: 5-bit exponent, 10-bit mantissa). They are storage only — values
// convert to float for arithmetic — used for reduced-precision GEMM operands and to read F16/BF16
// safetensors.
// Conversions round to nearest even on the host and in CUDA kernels alike, bit for bit as
// PyTorch's (NaN becomes the canonical quiet NaN: bfloat16 0x7FC0, float16 ±0x7E00).
#pragma once

#include <bit>
#include <cstdint>

#include "avgrad/core/device.hpp"

namespace avgrad {

namespace half_detail {

AVGRAD_HOST_DEVICE inline std::uint32_t bits_of(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  return std::bit_cast<std::uint32_t>(f);
#endif
}
AVGRAD_HOST_DEVICE inline float float_of(std::uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  return std::bit_cast<float>(u);
#endif
}

/// binary32 → bfloat16 bits, round to nearest even; overflow rounds to ±Inf.
AVGRAD_HOST_DEVICE inline std::uint16_t float_to_bf16_bits(float f) {
  const std::uint32_t x = bits_of(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN
  const std::uint32_t bias = 0x7fffu + ((x >> 16) & 1u);
  return static_cast<std::uint16_t>((x + bias) >> 16);
}
/// bfloat16 bits → binary32: exact (the high half of a float).
AVGRAD_HOST_DEVICE inline float bf16_bits_to_float(std::uint16_t h) {
  return float_of(static_cast<std::uint32_t>(h) << 16);
}

/// binary32 → binary16 bits, round to nearest even, with subnormals; |f| ≥ 65520 gives ±Inf.
AVGRAD_HOST_DEVICE inline std::uint16_t float_to_half_bits(float f) {
  const std::uint32_t x = bits_of(f);
  const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  const std::uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u);   // NaN
  if (ax >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // Inf, or rounds to it
  if (ax < 0x38800000u) {
    // |f| < 2^-14: a subnormal half, counted in units of 2^-24; 2^-25 itself ties to 0 (even).
    if (ax <= 0x33000000u) return sign;
    const std::uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
    const std::uint32_t shift = 126u - e;  // 14 … 24
    std::uint32_t r = m >> shift;
    const std::uint32_t rem = m & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
    if (rem > halfway || (rem == halfway && (r & 1u))) ++r;
    return static_cast<std::uint16_t>(sign | r);  // r = 0x400 is the smallest normal: still right
  }
  std::uint32_t h = (ax >> 13) - (112u << 10);  // rebias the exponent 127 → 15, keep 10 mantissa bits
  const std::uint32_t rem = ax & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry moves into the exponent, as it should
  return static_cast<std::uint16_t>(sign | h);
}
/// binary16 bits → binary32: exact.
AVGRAD_HOST_DEVICE inline float half_bits_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0x1f) return float_of(sign | 0x7f800000u | (m << 13));
  if (e == 0) {
    const float v = static_cast<float>(m) * 5.9604644775390625e-8f;  // m · 2^-24, exact
    return sign ? -v : v;
  }
  return float_of(sign | ((e + 112u) << 23) | (m << 13));
}

/// The two formats' codecs, for Storage16.
struct BrainFormat {
  AVGRAD_HOST_DEVICE static std::uint16_t encode(float f) { return float_to_bf16_bits(f); }
  AVGRAD_HOST_DEVICE static float decode(std::uint16_t h) { return bf16_bits_to_float(h); }
};
struct IeeeHalfFormat {
  AVGRAD_HOST_DEVICE static std::uint16_t encode(float f) { return float_to_half_bits(f); }
  AVGRAD_HOST_DEVICE static float decode(std::uint16_t h) { return half_bits_to_float(h); }
};

/// A 16-bit float of one format: explicit from float (rounding), implicit to float (exact).
template <class Format> struct Storage16 {
  std::uint16_t bits;  // no initialiser: the type stays trivial, as tensor storage needs
  Storage16() = default;
  AVGRAD_HOST_DEVICE explicit Storage16(float f) : bits(Format::encode(f)) {}
  AVGRAD_HOST_DEVICE operator float() const { return Format::decode(bits); }
  static constexpr Storage16 from_bits(std::uint16_t b) {
    Storage16 v{};
    v.bits = b;
    return v;
  }
};

}  // namespace half_detail

/// Brain floating point: float's exponent range with 8 significant bits.
using bfloat16 = half_detail::Storage16<half_detail::BrainFormat>;
/// IEEE 754 binary16: 11 significant bits, largest finite value 65504.
using float16 = half_detail::Storage16<half_detail::IeeeHalfFormat>;

static_assert(sizeof(bfloat16) == 2 && sizeof(float16) == 2, "16-bit storage types must be 2 bytes");

}  // namespace avgrad
