// cpu::RealFft: forward and inverse against a naive long-double DFT for every length 1..64 and
// larger smooth, mixed and prime lengths; round trip, ignored imaginary parts of bin 0/Nyquist,
// linearity, a pure cosine, the plan cache under OpenMP threads, and the length check.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <random>
#include <utility>
#include <vector>

#include "avgrad/backend/cpu/fft.hpp"
#include "support/expect_error.hpp"

using namespace avgrad;
using avgrad::cpu::RealFft;

namespace {

using LD = long double;
constexpr LD kTwoPi = 2 * std::numbers::pi_v<LD>;

template <class T> std::vector<T> random_vector(std::size_t n, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(dist(gen));
  return v;
}

/// cos and sin of 2π·i/n for i < n (the naive DFTs index them with k·t mod n).
std::pair<std::vector<LD>, std::vector<LD>> unit_circle(std::int64_t n) {
  std::vector<LD> cs(static_cast<std::size_t>(n)), sn(cs.size());
  for (std::int64_t i = 0; i < n; ++i) {
    const LD a = kTwoPi * static_cast<LD>(i) / static_cast<LD>(n);
    cs[static_cast<std::size_t>(i)] = std::cos(a);
    sn[static_cast<std::size_t>(i)] = std::sin(a);
  }
  return {cs, sn};
}

/// Naive forward DFT in long double: 2·(n/2+1) interleaved values.
template <class T> std::vector<LD> naive_forward(const std::vector<T>& x) {
  const std::int64_t n = static_cast<std::int64_t>(x.size()), bins = n / 2 + 1;
  const auto [cs, sn] = unit_circle(n);
  std::vector<LD> out(static_cast<std::size_t>(2 * bins));
  for (std::int64_t k = 0; k < bins; ++k) {
    LD re = 0, im = 0;
    for (std::int64_t t = 0; t < n; ++t) {
      const auto i = static_cast<std::size_t>((k * t) % n);
      re += static_cast<LD>(x[t]) * cs[i];
      im -= static_cast<LD>(x[t]) * sn[i];
    }
    out[2 * k] = re;
    out[2 * k + 1] = im;
  }
  return out;
}

/// Naive unnormalised inverse over the Hermitian extension; imaginary parts of bin 0 and of
/// bin n/2 (even n) are treated as 0, as the contract says.
template <class T> std::vector<LD> naive_inverse(const std::vector<T>& X, std::int64_t n) {
  const std::int64_t bins = n / 2 + 1;
  const auto [cs, sn] = unit_circle(n);
  std::vector<LD> out(static_cast<std::size_t>(n));
  for (std::int64_t t = 0; t < n; ++t) {
    LD s = 0;
    for (std::int64_t k = 0; k < n; ++k) {
      LD re, im;
      if (k < bins) {
        re = X[2 * k];
        im = (k == 0 || 2 * k == n) ? 0 : X[2 * k + 1];
      } else {
        re = X[2 * (n - k)];
        im = -static_cast<LD>(X[2 * (n - k) + 1]);
      }
      const auto i = static_cast<std::size_t>((k * t) % n);
      s += re * cs[i] - im * sn[i];  // Re((re + i·im)·exp(+i·a))
    }
    out[t] = s;
  }
  return out;
}

/// max |got - want| / max |want| (relative to the largest magnitude, as FFT errors scale).
template <class T> double rel_error(const std::vector<T>& got, const std::vector<LD>& want) {
  EXPECT_EQ(got.size(), want.size());
  LD err = 0, mag = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    err = std::max(err, std::fabs(static_cast<LD>(got[i]) - want[i]));
    mag = std::max(mag, std::fabs(want[i]));
  }
  return static_cast<double>(err / std::max(mag, LD(1e-30)));
}

template <class T> std::vector<T> run_forward(const RealFft<T>& plan, const std::vector<T>& x) {
  std::vector<T> out(static_cast<std::size_t>(2 * plan.bins())), scratch(plan.scratch_size());
  plan.forward(x.data(), out.data(), scratch.data());
  return out;
}

template <class T> std::vector<T> run_inverse(const RealFft<T>& plan, const std::vector<T>& X) {
  std::vector<T> out(static_cast<std::size_t>(plan.size())), scratch(plan.scratch_size());
  plan.inverse(X.data(), out.data(), scratch.data());
  return out;
}

std::vector<std::int64_t> test_lengths() {
  std::vector<std::int64_t> ns;
  for (std::int64_t n = 1; n <= 64; ++n) ns.push_back(n);
  for (std::int64_t n : {96, 100, 128, 210, 256, 384, 397, 400, 512, 1000, 1024, 2048, 4096, 4099}) ns.push_back(n);
  // even lengths whose packed half is a prime past the generic butterfly (Bluestein inside)
  for (std::int64_t n : {106, 794}) ns.push_back(n);
  return ns;
}

template <class T> void check_against_naive(double tol) {
  for (std::int64_t n : test_lengths()) {
    SCOPED_TRACE(::testing::Message() << "n = " << n);
    RealFft<T> plan(n);
    ASSERT_EQ(plan.size(), n);
    ASSERT_EQ(plan.bins(), n / 2 + 1);
    const auto x = random_vector<T>(static_cast<std::size_t>(n), static_cast<std::uint32_t>(1000 + n));
    EXPECT_LT(rel_error(run_forward(plan, x), naive_forward(x)), tol);
    // a random half spectrum, including nonzero imaginary parts at bin 0 and Nyquist
    const auto X = random_vector<T>(static_cast<std::size_t>(2 * plan.bins()), static_cast<std::uint32_t>(7 + n));
    EXPECT_LT(rel_error(run_inverse(plan, X), naive_inverse(X, n)), tol);
  }
}

TEST(RealFft, FloatMatchesNaiveDft) { check_against_naive<float>(1e-5); }
TEST(RealFft, DoubleMatchesNaiveDft) { check_against_naive<double>(1e-12); }

template <class T> void check_round_trip(double tol) {
  for (std::int64_t n : test_lengths()) {
    SCOPED_TRACE(::testing::Message() << "n = " << n);
    RealFft<T> plan(n);
    const auto x = random_vector<T>(static_cast<std::size_t>(n), static_cast<std::uint32_t>(n));
    const auto y = run_inverse(plan, run_forward(plan, x));
    std::vector<LD> want(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) want[i] = static_cast<LD>(n) * static_cast<LD>(x[i]);
    EXPECT_LT(rel_error(y, want), tol);
  }
}

TEST(RealFft, RoundTripIsNTimesInput) {
  check_round_trip<float>(1e-5);
  check_round_trip<double>(1e-13);
}

TEST(RealFft, InverseIgnoresImaginaryPartsOfDcAndNyquist) {
  for (std::int64_t n : {1, 2, 7, 8, 30, 61, 400, 512, 397}) {
    SCOPED_TRACE(::testing::Message() << "n = " << n);
    RealFft<double> plan(n);
    auto X = random_vector<double>(static_cast<std::size_t>(2 * plan.bins()), 3);
    X[1] = 0;
    if (n % 2 == 0) X[static_cast<std::size_t>(n + 1)] = 0;
    const auto clean = run_inverse(plan, X);
    X[1] = 1234.5;
    if (n % 2 == 0) X[static_cast<std::size_t>(n + 1)] = -987.25;
    const auto garbage = run_inverse(plan, X);
    ASSERT_EQ(clean.size(), garbage.size());
    for (std::size_t i = 0; i < clean.size(); ++i) EXPECT_EQ(clean[i], garbage[i]) << "sample " << i;
    // and the forward transform writes exact zeros there
    const auto F = run_forward(plan, clean);
    EXPECT_EQ(F[1], 0.0);
    if (n % 2 == 0) {
      EXPECT_EQ(F[static_cast<std::size_t>(n + 1)], 0.0);
    }
  }
}

TEST(RealFft, IsLinear) {
  for (std::int64_t n : {12, 45, 400, 512, 4099}) {
    SCOPED_TRACE(::testing::Message() << "n = " << n);
    RealFft<double> plan(n);
    const auto a = random_vector<double>(static_cast<std::size_t>(n), 11);
    const auto b = random_vector<double>(static_cast<std::size_t>(n), 12);
    const double alpha = 0.75, beta = -2.5;
    std::vector<double> mix(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) mix[i] = alpha * a[i] + beta * b[i];
    const auto fa = run_forward(plan, a), fb = run_forward(plan, b), fm = run_forward(plan, mix);
    std::vector<LD> want(fa.size());
    for (std::size_t i = 0; i < fa.size(); ++i) want[i] = alpha * fa[i] + beta * fb[i];
    EXPECT_LT(rel_error(fm, want), 1e-13);
  }
}

TEST(RealFft, PureCosineLandsInItsBin) {
  for (std::int64_t n : {16, 400, 512, 1000}) {
    for (std::int64_t bin : {std::int64_t(1), std::int64_t(5), n / 2 - 1}) {
      SCOPED_TRACE(::testing::Message() << "n = " << n << ", bin = " << bin);
      RealFft<double> plan(n);
      std::vector<double> x(static_cast<std::size_t>(n));
      for (std::int64_t t = 0; t < n; ++t)
        x[t] = static_cast<double>(std::cos(kTwoPi * static_cast<LD>((bin * t) % n) / static_cast<LD>(n)));
      const auto F = run_forward(plan, x);
      for (std::int64_t k = 0; k < plan.bins(); ++k) {
        const double want = k == bin ? static_cast<double>(n) / 2 : 0.0;
        EXPECT_NEAR(F[2 * k], want, 1e-11 * n) << "bin " << k << " re";
        EXPECT_NEAR(F[2 * k + 1], 0.0, 1e-11 * n) << "bin " << k << " im";
      }
    }
  }
}

TEST(RealFft, PlanCacheSharesPlansAcrossThreads) {
  const auto p512 = cpu::real_fft_plan<float>(512);
  EXPECT_EQ(p512.get(), cpu::real_fft_plan<float>(512).get());
  EXPECT_NE(static_cast<const void*>(p512.get()), static_cast<const void*>(cpu::real_fft_plan<double>(512).get()));
  EXPECT_NE(p512.get(), cpu::real_fft_plan<float>(400).get());
  EXPECT_EQ(cpu::real_fft_plan<float>(400)->size(), 400);

  // every thread asks the cache for plans (some new) and transforms its own frames
  const std::vector<std::int64_t> lengths = {400, 512, 97, 1000, 4099, 2048};
  const int frames = 48;
  std::vector<std::vector<float>> inputs(frames), serial(frames), parallel(frames);
  for (int f = 0; f < frames; ++f) {
    const auto n = lengths[static_cast<std::size_t>(f) % lengths.size()];
    inputs[f] = random_vector<float>(static_cast<std::size_t>(n), static_cast<std::uint32_t>(500 + f));
    serial[f] = run_forward(RealFft<float>(n), inputs[f]);
  }
  const std::int64_t fresh = 1536;  // not requested above: built concurrently by the threads
  std::vector<const RealFft<float>*> seen(frames);
#pragma omp parallel for schedule(dynamic, 1) num_threads(4)
  for (int f = 0; f < frames; ++f) {
    const auto n = lengths[static_cast<std::size_t>(f) % lengths.size()];
    seen[f] = cpu::real_fft_plan<float>(fresh).get();
    const auto plan = cpu::real_fft_plan<float>(n);
    std::vector<float> out(static_cast<std::size_t>(2 * plan->bins())), scratch(plan->scratch_size());
    plan->forward(inputs[f].data(), out.data(), scratch.data());
    std::vector<float> back(static_cast<std::size_t>(n));
    plan->inverse(out.data(), back.data(), scratch.data());
    parallel[f] = out;
    for (std::size_t i = 0; i < back.size(); ++i)
      if (std::fabs(back[i] - static_cast<float>(n) * inputs[f][i]) > 1e-3f * static_cast<float>(n)) {
        parallel[f].clear();  // flags a wrong round trip to the checks below
        break;
      }
  }
  for (int f = 0; f < frames; ++f) {
    EXPECT_EQ(parallel[f], serial[f]) << "frame " << f;  // same plan code: bit-identical
    EXPECT_EQ(seen[f], seen[0]);
  }
}

TEST(RealFft, RejectsNonPositiveLength) {
  avgrad::testing::expect_error([] { RealFft<float> plan(0); }, {"RealFft", "0"});
  avgrad::testing::expect_error([] { RealFft<double> plan(-7); }, {"RealFft", "-7"});
  avgrad::testing::expect_error([] { (void)cpu::real_fft_plan<float>(-3); }, {"RealFft", "-3"});
}

}  // namespace
