// The 16-bit storage types: every bit pattern converts to float and back unchanged, float32
// values round as PyTorch rounds them (nearest even, subnormals, overflow), NaN stays NaN, and
// tensors of them cast to and from float and double.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "avgrad/avgrad.hpp"
#include "core/fixtures/half_reference.inc"

using namespace avgrad;

namespace {

bool is_nan_bf16(std::uint16_t b) { return (b & 0x7f80u) == 0x7f80u && (b & 0x7fu) != 0; }
bool is_nan_fp16(std::uint16_t b) { return (b & 0x7c00u) == 0x7c00u && (b & 0x3ffu) != 0; }

TEST(Half, EveryBitPatternRoundTripsThroughFloat) {
  for (std::uint32_t b = 0; b <= 0xffffu; ++b) {
    const auto h = static_cast<std::uint16_t>(b);
    const float fb = bfloat16::from_bits(h), fh = float16::from_bits(h);
    if (is_nan_bf16(h)) {
      EXPECT_TRUE(std::isnan(fb));
      EXPECT_EQ(bfloat16(fb).bits, 0x7fc0) << "NaN becomes the canonical quiet NaN";
    } else {
      ASSERT_EQ(bfloat16(fb).bits, h) << "bfloat16 0x" << std::hex << b;
      ASSERT_EQ(std::bit_cast<std::uint32_t>(fb) & 0xffffu, 0u) << "bfloat16 is the high half of a float";
    }
    if (is_nan_fp16(h)) {
      EXPECT_TRUE(std::isnan(fh));
      EXPECT_EQ(float16(fh).bits & 0x7fffu, 0x7e00);
    } else {
      ASSERT_EQ(float16(fh).bits, h) << "float16 0x" << std::hex << b;
    }
  }
}

TEST(Half, Float16DecodesKnownValues) {
  EXPECT_EQ(static_cast<float>(float16::from_bits(0x3c00)), 1.0f);
  EXPECT_EQ(static_cast<float>(float16::from_bits(0x7bff)), 65504.0f);
  EXPECT_EQ(static_cast<float>(float16::from_bits(0x0400)), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(static_cast<float>(float16::from_bits(0x0001)), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(static_cast<float>(float16::from_bits(0x83ff)), -std::ldexp(1023.0f, -24));
  EXPECT_EQ(static_cast<float>(float16::from_bits(0xfc00)), -std::numeric_limits<float>::infinity());
  EXPECT_EQ(static_cast<float>(bfloat16::from_bits(0x3f80)), 1.0f);
  EXPECT_EQ(static_cast<float>(bfloat16::from_bits(0xc0a0)), -5.0f);
}

TEST(Half, RoundsAsPyTorch) {
  ASSERT_EQ(kHalfInputBits.size(), kBfloat16Bits.size());
  ASSERT_EQ(kHalfInputBits.size(), kFloat16Bits.size());
  for (std::size_t i = 0; i < kHalfInputBits.size(); ++i) {
    const float x = std::bit_cast<float>(kHalfInputBits[i]);
    EXPECT_EQ(bfloat16(x).bits, kBfloat16Bits[i])
        << "bfloat16(" << x << ") [input 0x" << std::hex << kHalfInputBits[i] << "]";
    EXPECT_EQ(float16(x).bits, kFloat16Bits[i])
        << "float16(" << x << ") [input 0x" << std::hex << kHalfInputBits[i] << "]";
  }
}

TEST(Half, TiesGoToEven) {
  // 1 + 2^-8 lies halfway between bfloat16's 1 and 1 + 2^-7: even (1) wins; 1 + 3·2^-8 goes up.
  EXPECT_EQ(static_cast<float>(bfloat16(1.0f + std::ldexp(1.0f, -8))), 1.0f);
  EXPECT_EQ(static_cast<float>(bfloat16(1.0f + 3 * std::ldexp(1.0f, -8))), 1.0f + std::ldexp(1.0f, -6));
  EXPECT_EQ(static_cast<float>(float16(1.0f + std::ldexp(1.0f, -11))), 1.0f);
  EXPECT_EQ(static_cast<float>(float16(std::ldexp(1.0f, -25))), 0.0f) << "half the smallest subnormal ties to 0";
  EXPECT_EQ(static_cast<float>(float16(std::ldexp(1.5f, -25))), std::ldexp(1.0f, -24));
  EXPECT_EQ(static_cast<float>(float16(65519.0f)), 65504.0f);
  EXPECT_TRUE(std::isinf(static_cast<float>(float16(65520.0f)))) << "the halfway point to 2^16 overflows";
  EXPECT_TRUE(std::isinf(static_cast<float>(bfloat16(std::numeric_limits<float>::max()))));
  EXPECT_EQ(float16(-0.0f).bits, 0x8000) << "the sign of zero is kept";
}

TEST(Half, TensorsCastBetweenTypes) {
  Generator g(5);
  const auto x = randn<float>({3, 4}, g, 0.0, 100.0);
  const auto b = cast<bfloat16>(x);
  const auto h = cast<float16>(x);
  EXPECT_EQ(b.dtype(), "bfloat16");
  EXPECT_EQ(h.dtype(), "float16");
  EXPECT_EQ(b.shape(), x.shape());
  const auto back_b = cast<float>(b), back_h = cast<float>(h);
  const auto as_double = cast<double>(b);
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    EXPECT_EQ(back_b.data()[i], static_cast<float>(bfloat16(x.data()[i])));
    EXPECT_EQ(back_h.data()[i], static_cast<float>(float16(x.data()[i])));
    EXPECT_EQ(as_double.data()[i], static_cast<double>(back_b.data()[i]));
    EXPECT_LE(std::abs(back_b.data()[i] - x.data()[i]), std::ldexp(std::abs(x.data()[i]), -8));
  }
  // A strided view casts by its logical order.
  const auto t = cast<float16>(x.transpose(0, 1));
  EXPECT_EQ(t.shape(), (Shape{4, 3}));
  EXPECT_EQ(static_cast<float>(t.data()[1]), back_h.data()[4]);
  // Casting a tensor that requires grad would cut it from its graph: refused.
  auto p = x.clone();
  p.requires_grad_();
  EXPECT_THROW(cast<bfloat16>(p), Error);
  EXPECT_NO_THROW(cast<bfloat16>(p.detach()));
}

}  // namespace
