// dropout: gradcheck with a fixed mask, mask statistics and scaling, seed
// reproducibility across calls, thread counts and layouts, the identity and
// all-drop edge cases, the regenerated-mask backward, and error paths.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "avgrad/ops/dropout.hpp"
#include "avgrad/ops/reduce.hpp"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::testing;

namespace {

TEST(Dropout, GradcheckWithFixedSeed) {
  // the generator is made inside f, so every evaluation draws the same mask
  Fn f = [](const std::vector<TD>& a) {
    Generator gen(42);
    return dropout(a[0], 0.3, true, gen);
  };
  expect_gradcheck(f, {leaf({4, 5}, 1)});
  expect_gradcheck(f, {leaf_transposed({3, 4, 5}, 2)});
}

TEST(Dropout, MaskFractionAndScale) {
  for (double p : {0.1, 0.5, 0.8}) {
    Generator gen(7);
    TF x = ones<float>({100000});
    TF y = dropout(x, p, true, gen);
    const float scale = static_cast<float>(1.0 / (1.0 - p));
    std::int64_t kept = 0, bad = 0;
    for (float v : y.to_vector()) {
      if (v != 0.0f) ++kept;
      if (v != 0.0f && v != scale) ++bad;
    }
    const double frac = static_cast<double>(kept) / 100000.0;
    // σ of the kept fraction is √(p(1−p)/n) ≤ 0.0016: 0.01 is over 6σ
    EXPECT_NEAR(frac, 1.0 - p, 0.01) << "p = " << p;
    EXPECT_EQ(bad, 0) << "kept elements must be exactly 1/(1-p)";
    EXPECT_NEAR(mean(y).item(), 1.0, 0.02) << "inverted dropout keeps E[y] = x";
    EXPECT_EQ(gen.offset(), 100000u);  // one counter per element
  }
}

TEST(Dropout, SameSeedSameMaskNextCallNewMask) {
  Generator gx(3);
  TD x = randn<double>({50, 40}, gx);
  Generator g1(11), g2(11);
  TD a = dropout(x, 0.4, true, g1), b = dropout(x, 0.4, true, g2);
  EXPECT_EQ(a.to_vector(), b.to_vector());
  TD c = dropout(x, 0.4, true, g1);  // the stream moved on
  EXPECT_NE(a.to_vector(), c.to_vector());
  Generator g3(12);
  EXPECT_NE(a.to_vector(), dropout(x, 0.4, true, g3).to_vector());
}

TEST(Dropout, MaskIndependentOfThreadCount) {
  const int saved = omp_get_max_threads();
  TF x = ones<float>({3 * cpu::kParallelGrain + 17});  // large enough to run in parallel
  omp_set_num_threads(1);
  Generator g1(5);
  auto one = dropout(x, 0.25, true, g1).to_vector();
  omp_set_num_threads(std::max(4, saved));
  Generator g2(5);
  auto many = dropout(x, 0.25, true, g2).to_vector();
  omp_set_num_threads(saved);
  EXPECT_EQ(one, many);
}

TEST(Dropout, MaskFollowsLogicalIndexNotLayout) {
  Generator gx(8);
  TD base = randn<double>({6, 7}, gx);
  TD t = base.transpose(0, 1);  // (7, 6), non-contiguous
  Generator g1(9), g2(9);
  expect_close(dropout(t, 0.5, true, g1), dropout(t.contiguous(), 0.5, true, g2).to_vector(), 0.0);
}

TEST(Dropout, IdentityCasesReturnInputAndDrawNothing) {
  TD x = leaf({3, 4}, 10);
  Generator gen(1);
  EXPECT_TRUE(dropout(x, 0.0, true, gen).is_same(x));
  EXPECT_TRUE(dropout(x, 0.7, false, gen).is_same(x));
  EXPECT_EQ(gen.offset(), 0u);
}

TEST(Dropout, AllDroppedGivesZerosAndZeroGradient) {
  TD x = leaf({3, 4}, 11);
  Generator gen(1);
  TD y = dropout(x, 1.0, true, gen);
  expect_close(y, std::vector<double>(12, 0.0), 0.0);
  sum(y).backward();
  expect_close(x.grad(), std::vector<double>(12, 0.0), 0.0);
  EXPECT_EQ(gen.offset(), 0u);
}

TEST(Dropout, BackwardIsMaskTimesScale) {
  // with x = 1, y itself is mask·scale: d Σ(y ⊙ v)/dx must be v ⊙ y
  TD x = ones<double>({40, 30});
  x.requires_grad_();
  Generator gen(13);
  TD y = dropout(x, 0.35, true, gen);
  TD v = randn<double>({40, 30}, gen);
  sum(y * v).backward();
  auto yv = y.to_vector(), vv = v.to_vector();
  std::vector<double> expect(yv.size());
  for (std::size_t i = 0; i < yv.size(); ++i) expect[i] = yv[i] * vv[i];
  expect_close(x.grad(), expect, 1e-15);
}

TEST(Dropout, Errors) {
  TD x = zeros<double>({2, 3});
  Generator gen(1);
  expect_error([&] { dropout(x, -0.1, true, gen); }, {"dropout", "[0, 1]", "-0.1", "(2,3)"});
  expect_error([&] { dropout(x, 1.5, true, gen); }, {"dropout", "1.5"});
  expect_error([&] { dropout(x, std::numeric_limits<double>::quiet_NaN(), false, gen); }, {"dropout", "nan"});
}

}  // namespace
