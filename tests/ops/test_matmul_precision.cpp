// Reduced-precision GEMMs (core/precision.hpp): under a bfloat16 or float16 guard every float
// matmul, bmm and linear — forward and backward — equals the exact product of the rounded
// operands (up to float accumulation), differs from the float32 product, and leaves double
// tensors, convolutions and the audio front-end exact; the guard is thread-local and a backward
// pass keeps the precision its forward pass ran at.
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "avgrad/avgrad.hpp"

using namespace avgrad;

namespace {

constexpr MatmulPrecision kLowered[] = {MatmulPrecision::bfloat16, MatmulPrecision::float16};

/// x rounded elementwise to p's storage type, in double.
Tensor<double> rounded(const Tensor<float>& x, MatmulPrecision p) {
  auto c = x.detach().contiguous();
  auto out = Tensor<double>::empty(c.shape());
  for (std::int64_t i = 0; i < c.numel(); ++i) out.data()[i] = round_to(p, c.data()[i]);
  return out;
}

/// max |a − b| / (|b| + scale), the error of a float accumulation relative to the result's size.
double rel_error(const Tensor<float>& a, const Tensor<double>& b) {
  const auto ac = a.detach().contiguous();
  const auto bc = b.contiguous();
  double scale = 0, worst = 0;
  for (std::int64_t i = 0; i < bc.numel(); ++i) scale = std::max(scale, std::abs(bc.data()[i]));
  for (std::int64_t i = 0; i < bc.numel(); ++i)
    worst = std::max(worst, std::abs(ac.data()[i] - bc.data()[i]) / (std::abs(bc.data()[i]) + scale));
  return worst;
}

double max_abs_diff(const Tensor<float>& a, const Tensor<float>& b) {
  double d = 0;
  const auto ac = a.detach().contiguous(), bc = b.detach().contiguous();
  for (std::int64_t i = 0; i < ac.numel(); ++i) d = std::max(d, std::abs(double(ac.data()[i]) - bc.data()[i]));
  return d;
}

TEST(MatmulPrecision, NamesParseAndTheGuardRestores) {
  EXPECT_EQ(parse_matmul_precision("bf16"), MatmulPrecision::bfloat16);
  EXPECT_EQ(parse_matmul_precision("float16"), MatmulPrecision::float16);
  EXPECT_EQ(parse_matmul_precision("fp32"), MatmulPrecision::float32);
  EXPECT_THROW(parse_matmul_precision("int8"), Error);
  EXPECT_STREQ(matmul_precision_name(MatmulPrecision::bfloat16), "bfloat16");
  EXPECT_EQ(matmul_precision(), MatmulPrecision::float32);
  {
    MatmulPrecisionGuard g(MatmulPrecision::float16);
    EXPECT_EQ(matmul_precision(), MatmulPrecision::float16);
    MatmulPrecision other = MatmulPrecision::bfloat16;
    std::thread([&] { other = matmul_precision(); }).join();
    EXPECT_EQ(other, MatmulPrecision::float32) << "another thread keeps its own precision";
  }
  EXPECT_EQ(matmul_precision(), MatmulPrecision::float32);
  EXPECT_EQ(gemm_extent(false, 3, 4, 10), 24);
  EXPECT_EQ(gemm_extent(true, 3, 4, 10), 33);
  EXPECT_EQ(gemm_extent(true, 0, 4, 10), 0);
}

TEST(MatmulPrecision, MatmulUsesRoundedOperandsWithFloatAccumulation) {
  Generator g(11);
  // plain, transposed (read in place), batched with broadcasting
  const auto a = randn<float>({5, 64}, g), b = randn<float>({64, 7}, g);
  const auto ab = randn<float>({3, 5, 64}, g), bb = randn<float>({64, 7}, g), bc = randn<float>({3, 64, 7}, g);
  const auto exact = matmul(a, b);
  for (MatmulPrecision p : kLowered) {
    SCOPED_TRACE(matmul_precision_name(p));
    MatmulPrecisionGuard guard(p);
    EXPECT_LT(rel_error(matmul(a, b), matmul(rounded(a, p), rounded(b, p))), 1e-6);
    EXPECT_GT(max_abs_diff(matmul(a, b), exact), 1e-4) << "the guard changes the product";
    const auto bt = b.transpose(0, 1).contiguous().transpose(0, 1);
    EXPECT_LT(rel_error(matmul(a, bt), matmul(rounded(a, p), rounded(b, p))), 1e-6);
    EXPECT_LT(rel_error(matmul(ab, bb), matmul(rounded(ab, p), rounded(bb, p))), 1e-6);
    EXPECT_LT(rel_error(bmm(ab, bc), bmm(rounded(ab, p), rounded(bc, p))), 1e-6);
    EXPECT_LT(
        rel_error(matmul(ab.transpose(1, 2).contiguous().transpose(1, 2), bc), matmul(rounded(ab, p), rounded(bc, p))),
        1e-6)
        << "a transposed batch read in place";
  }
}

TEST(MatmulPrecision, LinearForwardAndBackwardAreLowered) {
  Generator g(12);
  auto x = randn<float>({6, 48}, g), w = randn<float>({9, 48}, g), bias = randn<float>({9}, g);
  const auto gy = randn<float>({6, 9}, g);
  for (MatmulPrecision p : kLowered) {
    SCOPED_TRACE(matmul_precision_name(p));
    auto xl = x.clone(), wl = w.clone(), bl = bias.clone();
    xl.requires_grad_();
    wl.requires_grad_();
    bl.requires_grad_();
    Tensor<float> y;
    {
      MatmulPrecisionGuard guard(p);
      y = linear(xl, wl, bl);
    }
    // The guard is gone; the backward still runs at the forward's precision.
    sum(y * gy).backward();
    const auto xr = rounded(x, p), wr = rounded(w, p), gr = rounded(gy, p);
    Tensor<double> bd = Tensor<double>::empty({9});
    for (int i = 0; i < 9; ++i) bd.data()[i] = bias.data()[i];
    EXPECT_LT(rel_error(y, linear(xr, wr, bd)), 1e-6);
    EXPECT_LT(rel_error(xl.grad(), matmul(gr, wr)), 1e-6) << "dx = g·w from rounded operands";
    EXPECT_LT(rel_error(wl.grad(), matmul(gr.transpose(0, 1), xr)), 1e-6) << "dw = gᵀ·x from rounded operands";
    auto xe = x.clone();
    xe.requires_grad_();
    sum(linear(xe, w, bias) * gy).backward();
    EXPECT_GT(max_abs_diff(xl.grad(), xe.grad()), 1e-5) << "the lowered backward differs from the exact one";
  }
}

TEST(MatmulPrecision, BroadcastBackwardSumsLoweredProducts) {
  // b (2, 1, K, N) broadcast over a's (2, 3) batch: db sums three products per output entry (the
  // GEMMs accumulate into one float result), each from rounded operands.
  Generator g(15);
  const auto a = randn<float>({2, 3, 5, 16}, g), gy = randn<float>({2, 3, 5, 4}, g);
  auto b = randn<float>({2, 1, 16, 4}, g);
  b.requires_grad_();
  const auto p = MatmulPrecision::float16;
  {
    MatmulPrecisionGuard guard(p);
    sum(matmul(a, b) * gy).backward();
  }
  const auto ref = sum(matmul(rounded(a, p).transpose(-1, -2), rounded(gy, p)), {1}, true);
  EXPECT_LT(rel_error(b.grad(), ref), 1e-6);
}

TEST(MatmulPrecision, MatmulBackwardKeepsTheForwardsPrecision) {
  Generator g(13);
  auto a = randn<float>({4, 40}, g), b = randn<float>({40, 3}, g);
  a.requires_grad_();
  Tensor<float> y;
  {
    MatmulPrecisionGuard guard(MatmulPrecision::bfloat16);
    y = matmul(a, b);
  }
  const auto gy = randn<float>({4, 3}, g);
  sum(y * gy).backward();
  const auto p = MatmulPrecision::bfloat16;
  EXPECT_LT(rel_error(a.grad(), matmul(rounded(gy, p), rounded(b, p).transpose(0, 1))), 1e-6);
}

TEST(MatmulPrecision, DoubleConvolutionAndFrontEndStayExact) {
  Generator g(14);
  const auto a = randn<double>({5, 30}, g), b = randn<double>({30, 4}, g);
  const auto exact = matmul(a, b);
  const auto x = randn<float>({2, 3, 9, 9}, g), k = randn<float>({4, 3, 3, 3}, g);
  const auto conv_exact = conv2d(x, k);
  const auto wave = randn<float>({1, 4000}, g, 0.0, 0.1);
  const audio::kaldi::Mfcc<float> mfcc;  // its DCT is a matmul
  const auto feats = mfcc(wave);
  MatmulPrecisionGuard guard(MatmulPrecision::bfloat16);
  const auto lowered = matmul(a, b);
  for (std::int64_t i = 0; i < exact.numel(); ++i) EXPECT_EQ(lowered.data()[i], exact.data()[i]);
  EXPECT_EQ(max_abs_diff(conv2d(x, k), conv_exact), 0.0);
  EXPECT_EQ(max_abs_diff(mfcc(wave), feats), 0.0);
}

TEST(MatmulPrecision, Float16OverflowsWhereBfloat16DoesNot) {
  // 70000 is beyond float16's range (±65504): its product is infinite; bfloat16 keeps float's range.
  auto a = full<float>({1, 2}, 70000.0f), b = full<float>({2, 1}, 1.0f);
  {
    MatmulPrecisionGuard guard(MatmulPrecision::float16);
    EXPECT_TRUE(std::isinf(matmul(a, b).data()[0]));
  }
  MatmulPrecisionGuard guard(MatmulPrecision::bfloat16);
  EXPECT_NEAR(matmul(a, b).data()[0], 140000.0f, 140000.0f / 128);
}

}  // namespace
