// The audio front-end's pieces on their own: framing and its overlap-add gradient, the
// real DFT against a direct sum, filterbanks, decibels, Kaldi fbank end to end
// (gradcheck in double, silence), augmentation, statistics, normalisation and the two
// study recipes. Values against torchaudio are in test_torchaudio_fixtures.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "avgrad/audio/frontend.hpp"
#include "avgrad/autograd/engine.hpp"
#include "avgrad/autograd/gradcheck.hpp"
#include "support/expect_error.hpp"
#include "support/testing.hpp"

namespace {

using namespace avgrad;
using namespace avgrad::audio;
using namespace avgrad::testing;

TD signal(std::int64_t batch, std::int64_t samples, std::uint64_t seed) {
  return leaf(batch > 0 ? Shape{batch, samples} : Shape{samples}, seed);
}

// ---- framing ------------------------------------------------------------------------

TEST(Frames, KaldiSnipEdgesCutsWholeFrames) {
  auto x = arange<double>(10);
  const Framing f = kaldi_framing(10, 4, 3, true);
  EXPECT_EQ(f.count, 3);  // 1 + (10 - 4) / 3
  expect_close(frames(x, f), {0, 1, 2, 3, 3, 4, 5, 6, 6, 7, 8, 9});
  EXPECT_EQ(kaldi_framing(3, 4, 3, true).count, 0);
}

TEST(Frames, KaldiMirroredEdgesRepeatTheEdgeSample) {
  auto x = arange<double>(6);
  const Framing f = kaldi_framing(6, 4, 2, false);
  EXPECT_EQ(f.count, 3);       // (6 + 1) / 2
  EXPECT_EQ(f.offset, 1 - 2);  // centred on t·hop + hop/2
  expect_close(frames(x, f), {0, 0, 1, 2, 1, 2, 3, 4, 3, 4, 5, 5});
}

TEST(Frames, CentredReflectMatchesPaddingThenSlicing) {
  auto x = signal(2, 23, 1).detach();
  const Framing f = stft_framing(23, 8, 3, 8, true, PadMode::reflect);
  EXPECT_EQ(f.count, 1 + 23 / 3);
  auto padded = pad(x, {4, 4}, PadMode::reflect);
  auto fr = frames(x, f);
  for (std::int64_t t = 0; t < f.count; ++t)
    for (std::int64_t j = 0; j < 8; ++j) EXPECT_DOUBLE_EQ(fr.at({1, t, j}), padded.at({1, t * 3 + j}));
}

TEST(Frames, ProcessingOrderIsDitherDcPreemphasisWindow) {
  auto x = from_vector<double>({1, 2, 4, 8});
  FrameProcessing p;
  p.remove_dc = true;
  p.preemphasis = 0.5;
  auto w = from_vector<double>({1, 2, 3, 4});
  // mean 3.75 → [-2.75 -1.75 0.25 4.25] → pre-emphasis → [-1.375 -0.375 1.125 4.125] → ×w
  expect_close(frames(x, kaldi_framing(4, 4, 1, true), p, w), {-1.375, -0.75, 3.375, 16.5}, 1e-12);
}

TEST(Frames, GradcheckEveryProcessingStep) {
  FrameProcessing p;
  p.remove_dc = true;
  p.preemphasis = 0.97;
  p.dither = 0.1;
  p.dither_seed = 7;
  auto w = window<double>(Window::povey, 7, Symmetry::symmetric);
  for (bool snip : {true, false}) {
    Fn f = [&](const std::vector<TD>& in) { return frames(in[0], kaldi_framing(30, 7, 3, snip), p, w); };
    expect_gradcheck(f, {signal(2, 30, 2)});
  }
  Fn centred = [](const std::vector<TD>& in) {
    return frames(in[0], stft_framing(13, 8, 2, 6, true, PadMode::reflect));
  };
  expect_gradcheck(centred, {signal(0, 13, 3)});
}

TEST(Frames, DitherIsSeededAndReproducible) {
  auto x = zeros<double>(Shape{2, 50});
  FrameProcessing p;
  p.dither = 1.0;
  p.dither_seed = 3;
  const Framing f = kaldi_framing(50, 10, 5, true);
  auto a = frames(x, f, p).to_vector(), b = frames(x, f, p).to_vector();
  EXPECT_EQ(a, b);
  p.dither_seed = 4;
  EXPECT_NE(a, frames(x, f, p).to_vector());
  double s = 0, s2 = 0;
  for (double v : a) s += v, s2 += v * v;
  EXPECT_NEAR(s / static_cast<double>(a.size()), 0.0, 0.15);
  EXPECT_NEAR(s2 / static_cast<double>(a.size()), 1.0, 0.2);
}

TEST(Frames, Errors) {
  auto x = zeros<float>(Shape{2, 10});
  expect_error([&] { frames(x, Framing{0, 1, 0, 1}); }, {"frames", "invalid framing"});
  expect_error([&] { frames(x, kaldi_framing(10, 4, 2, true), {}, ones<float>(Shape{5})); },
               {"frames", "window", "(5)", "frame length 4"});
  auto bad = zeros<float>(Shape{2, 10});
  bad.set({1, 3}, std::nanf(""));
  expect_error([&] { frames(bad, kaldi_framing(10, 4, 2, true)); }, {"frames", "non-finite", "index 13"});
  expect_error([] { kaldi_framing(10, 0, 1, true); }, {"kaldi_framing", "positive"});
  expect_error([] { stft_framing(10, 16, 4, 16, false, PadMode::reflect); }, {"stft_framing", "shorter", "16"});
}

// ---- spectrum -----------------------------------------------------------------------

TEST(Spectrum, MatchesDirectDftWithPlacement) {
  auto x = signal(3, 10, 4).detach();
  const std::int64_t n = 16, off = 3;
  auto X = spectrum(x, n, SpectrumKind::complex, off);
  ASSERT_EQ(X.shape(), (Shape{3, 9, 2}));
  for (std::int64_t r = 0; r < 3; ++r)
    for (std::int64_t k = 0; k < 9; ++k) {
      double re = 0, im = 0;
      for (std::int64_t t = 0; t < 10; ++t) {
        const double a = -2 * std::numbers::pi * static_cast<double>(k * (t + off)) / static_cast<double>(n);
        re += x.at({r, t}) * std::cos(a);
        im += x.at({r, t}) * std::sin(a);
      }
      EXPECT_NEAR(X.at({r, k, 0}), re, 1e-12);
      EXPECT_NEAR(X.at({r, k, 1}), im, 1e-12);
      const double p = re * re + im * im;
      EXPECT_NEAR(spectrum(x, n, SpectrumKind::power, off).at({r, k}), p, 1e-11);
      EXPECT_NEAR(spectrum(x, n, SpectrumKind::magnitude, off).at({r, k}), std::sqrt(p), 1e-12);
    }
}

TEST(Spectrum, GradcheckEveryKindEvenAndOddSizes) {
  for (auto kind : {SpectrumKind::complex, SpectrumKind::power, SpectrumKind::magnitude})
    for (std::int64_t n : {12, 15}) {
      Fn f = [&](const std::vector<TD>& in) { return spectrum(in[0], n, kind, 2); };
      expect_gradcheck(f, {leaf({2, 3, 9}, 5)});
    }
  Fn strided = [](const std::vector<TD>& in) { return spectrum(in[0], 8, SpectrumKind::power); };
  expect_gradcheck(strided, {leaf_transposed({3, 8}, 6)});
}

TEST(Spectrum, MagnitudeOfSilenceHasZeroGradient) {
  auto x = zeros<double>(Shape{2, 8});
  x.requires_grad_();
  sum(spectrum(x, 8, SpectrumKind::magnitude)).backward();
  for (double g : x.grad().to_vector()) EXPECT_EQ(g, 0.0);
}

// The GEMM formulation every non-CPU device runs, checked here on the CPU against the FFT.
TEST(Spectrum, DftBasisGemmEqualsTheFft) {
  for (std::int64_t n : {12, 15, 512})
    for (auto kind : {SpectrumKind::complex, SpectrumKind::power, SpectrumKind::magnitude}) {
      const std::int64_t L = n == 512 ? 400 : 9, off = n == 512 ? 56 : 2;
      auto x = leaf({2, 3, L}, 30 + static_cast<std::uint64_t>(n));
      auto basis = audio::detail::dft_basis<double>(n, L, off);
      ASSERT_EQ(basis.shape(), (Shape{L, 2 * (n / 2 + 1)}));
      auto fft = spectrum(x, n, kind, off), gemm = audio::detail::dft_spectrum(x, basis, kind);
      ASSERT_EQ(gemm.shape(), fft.shape());
      const auto a = gemm.to_vector(), b = fft.to_vector();
      for (std::size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-9 * (1 + std::abs(b[i]))) << "n " << n;
      if (n == 512) continue;
      Fn f = [&](const std::vector<TD>& in) { return audio::detail::dft_spectrum(in[0], basis, kind); };
      expect_gradcheck(f, {x});
    }
  auto empty = zeros<double>(Shape{3, 0});
  for (auto kind : {SpectrumKind::complex, SpectrumKind::power}) {
    auto fft = spectrum(empty, 8, kind),
         gemm = audio::detail::dft_spectrum(empty, audio::detail::dft_basis<double>(8, 0, 0), kind);
    EXPECT_EQ(fft.shape(), gemm.shape()) << "frames of no samples";
    EXPECT_EQ(fft.to_vector(), std::vector<double>(static_cast<std::size_t>(fft.numel()), 0.0));
    EXPECT_EQ(gemm.to_vector(), fft.to_vector());
  }
  auto silence = zeros<double>(Shape{2, 8});
  silence.requires_grad_();
  sum(audio::detail::dft_spectrum(silence, audio::detail::dft_basis<double>(8, 8, 0), SpectrumKind::magnitude))
      .backward();
  for (double g : silence.grad().to_vector()) EXPECT_EQ(g, 0.0) << "|X| at X = 0 has gradient 0";
}

TEST(Spectrum, StftPlanEqualsTheOneShotFunctions) {
  StftOptions o;
  o.n_fft = 32;
  o.win_length = 20;
  o.hop = 8;
  const StftPlan<double> plan(o);
  auto x = signal(2, 101, 9).detach();
  EXPECT_EQ(plan.complex(x).to_vector(), stft(x, o).to_vector());
  EXPECT_EQ(plan.spectrogram(x, 1.0).to_vector(), spectrogram(x, o, 1.0).to_vector());
  EXPECT_EQ(plan.frames(x).shape(), (Shape{2, 1 + 101 / 8, 20}));
}

TEST(Spectrum, StftGradcheckWithShortWindowAndPadding) {
  StftOptions o;
  o.n_fft = 16;
  o.win_length = 10;
  o.hop = 4;
  o.normalized = true;
  Fn f = [&](const std::vector<TD>& in) { return stft(in[0], o); };
  expect_gradcheck(f, {signal(2, 37, 7)});
  o.pad_mode = PadMode::constant;
  Fn g = [&](const std::vector<TD>& in) { return spectrogram(in[0], o, 1.5); };
  expect_gradcheck(g, {signal(0, 37, 8)});
}

TEST(Spectrum, Errors) {
  auto x = zeros<float>(Shape{4, 10});
  expect_error([&] { spectrum(x, 8); }, {"spectrum", "10 samples", "n_fft of 8"});
  expect_error([&] { spectrogram(x, StftOptions{}, -1.0); }, {"spectrogram", "power"});
}

// ---- filterbanks --------------------------------------------------------------------

TEST(Filterbank, SparseApplicationEqualsMatmulAndGradchecks) {
  auto w = kaldi_mel_filterbank<double>(10, 64, 16000, 20, 0);
  Filterbank<double> bank(w);
  EXPECT_FALSE(bank.dense());
  const auto [b, e] = bank.support(4);
  EXPECT_LT(e - b, 12);
  auto s = rand<double>(Shape{3, 5, 33}, *std::make_unique<Generator>(9), 0, 2);
  auto y = bank(s), ref = matmul(s, w);
  const auto a = y.to_vector(), r = ref.to_vector();
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], r[i], 1e-12);
  Fn f = [&](const std::vector<TD>& in) { return bank(in[0]); };
  expect_gradcheck(f, {leaf({2, 33}, 10)});
  Filterbank<double> dense(rand<double>(Shape{33, 4}, *std::make_unique<Generator>(1), 0.1, 1));
  EXPECT_TRUE(dense.dense());
  expect_gradcheck([&](const std::vector<TD>& in) { return dense(in[0]); }, {leaf({2, 33}, 11)});
  expect_error([&] { bank(zeros<double>(Shape{2, 32})); }, {"Filterbank", "(2,32)", "33 bins"});
}

TEST(Filterbank, MelScalesRoundTripAndKnownPoints) {
  for (auto s : {MelScale::htk, MelScale::slaney, MelScale::kaldi})
    for (double hz : {0.0, 440.0, 999.0, 1000.0, 7999.0}) EXPECT_NEAR(mel_to_hz(hz_to_mel(hz, s), s), hz, 1e-9);
  EXPECT_NEAR(hz_to_mel(1000, MelScale::slaney), 15.0, 1e-12);
  EXPECT_NEAR(hz_to_mel(700, MelScale::htk), 2595 * std::log10(2.0), 1e-9);
  EXPECT_NEAR(hz_to_mel(700, MelScale::kaldi), 1127 * std::log(2.0), 1e-9);
  expect_error([] { kaldi_mel_filterbank<float>(3, 512, 16000, 20, 0); }, {"kaldi_mel_filterbank", "3"});
  expect_error([] { kaldi_mel_filterbank<float>(23, 512, 16000, 20, 9000); }, {"high_freq 9000", "Nyquist"});
  expect_error([] { mel_filterbank<float>(MelOptions{201, 16000, 40, 5000, 4000}); }, {"mel_filterbank", "f_min"});
}

// ---- decibels -------------------------------------------------------------------------

TEST(Decibel, ValuesFloorAndTopDbPerClip) {
  auto x = from_vector<double>({1, 100, 1e-20, 1e4, 1, 1e-3}, Shape{2, 1, 3});
  auto db = power_to_db(x, DbOptions{1e-10, 1.0, 30.0});
  // clip 0: [0, 20, -100] floored at 20-30 = -10; clip 1: [40, 0, -30] floored at 10
  expect_close(db, {0, 20, -10, 40, 10, 10}, 1e-9);
  expect_close(amplitude_to_db(from_vector<double>({10, 0.1}), DbOptions{1e-10, 10.0, std::nullopt}), {0, -40}, 1e-9);
  Fn f = [](const std::vector<TD>& in) { return power_to_db(exp(in[0]), DbOptions{1e-10, 2.0, 5.0}); };
  expect_gradcheck(f, {leaf({2, 3, 4}, 12)});
  expect_error([&] { power_to_db(x, DbOptions{0, 1, 80.0}); }, {"power_to_db", "amin"});
}

TEST(Decibel, VectorisedFloatLogIsWithinTwoUlp) {
  float worst = 0;
  for (float x = 1.1920929e-7f; x < 3e38f; x *= 1.0009765f) {
    const float want = std::log(x), got = fn::log_normal_float(x);
    const float ulp = std::nextafter(std::abs(want), INFINITY) - std::abs(want);
    worst = std::max(worst, std::abs(got - want) / ulp);
  }
  EXPECT_LE(worst, 2.0f);
  auto y = log_floor(from_vector<float>({0.f, -1.f, 1.f, INFINITY, NAN, 1e-3f}));
  const auto v = y.to_vector();
  EXPECT_FLOAT_EQ(v[0], std::log(1.1920929e-7f));
  EXPECT_FLOAT_EQ(v[1], v[0]);
  EXPECT_EQ(v[2], 0.0f);
  EXPECT_TRUE(std::isnan(v[3]));  // documented: non-finite input gives NaN in float
  EXPECT_TRUE(std::isnan(v[4]));
  EXPECT_NEAR(v[5], std::log(1e-3f), 1e-6);
  Fn f = [](const std::vector<TD>& in) { return log_floor(in[0], 0.3); };
  expect_gradcheck(f, {leaf({3, 5}, 19, 0.05, 2.0)});
}

// ---- Kaldi fbank end to end -------------------------------------------------------------

kaldi::FbankOptions tiny_fbank() {
  kaldi::FbankOptions o;
  o.sample_frequency = 800;
  o.frame_length_ms = 20;  // 16 samples
  o.frame_shift_ms = 10;   // 8
  o.num_mel_bins = 5;
  o.low_freq = 20;
  return o;
}

TEST(KaldiFbank, GradcheckWholeFrontEndInDouble) {
  auto o = tiny_fbank();
  o.use_energy = true;
  o.raw_energy = false;
  o.subtract_mean = true;
  for (bool snip : {true, false}) {
    o.snip_edges = snip;
    Fn f = [&](const std::vector<TD>& in) { return kaldi::fbank(in[0], o); };
    expect_gradcheck(f, {signal(2, 60, 13)});
  }
  kaldi::MfccOptions m;
  m.fbank = tiny_fbank();
  m.num_ceps = 4;
  m.fbank.use_energy = true;
  m.fbank.htk_compat = true;
  Fn g = [&](const std::vector<TD>& in) { return kaldi::mfcc(in[0], m); };
  expect_gradcheck(g, {signal(0, 50, 14)});
}

TEST(KaldiFbank, SilenceGivesTheLogFloorAndAFiniteGradient) {
  auto o = tiny_fbank();
  o.use_energy = true;
  auto x = zeros<double>(Shape{2, 64});
  x.requires_grad_();
  auto y = kaldi::fbank(x, o);
  for (double v : y.to_vector()) EXPECT_TRUE(v == std::log(kKaldiLogFloor) || v == 0.0) << v;
  sum(y).backward();
  for (double g : x.grad().to_vector()) EXPECT_TRUE(std::isfinite(g));
}

TEST(KaldiFbank, BatchEqualsClipByClipAndShortClipsGiveNoFrames) {
  auto x = signal(3, 200, 15).detach().to<float>();
  const auto o = tiny_fbank();
  auto batch = kaldi::fbank(x, o);
  for (std::int64_t b = 0; b < 3; ++b) {
    auto one = kaldi::fbank(x.select(0, b), o).to_vector(), part = batch.select(0, b).contiguous().to_vector();
    EXPECT_EQ(one, part);
  }
  EXPECT_EQ(kaldi::fbank(zeros<float>(Shape{2, 10}), o).shape(), (Shape{2, 0, 5}));
}

TEST(KaldiFbank, DitherNeedsAGeneratorAndIsReproducible) {
  auto o = tiny_fbank();
  o.dither = 1.0;
  auto x = zeros<float>(Shape{1, 100});
  expect_error([&] { kaldi::fbank(x, o); }, {"kaldi::fbank", "dither", "Generator"});
  Generator g1(5), g2(5);
  const auto first = kaldi::fbank(x, o, &g1).to_vector();
  EXPECT_EQ(first, kaldi::fbank(x, o, &g2).to_vector());
  EXPECT_NE(first, kaldi::fbank(x, o, &g1).to_vector());  // the generator moved on: fresh noise
}

TEST(KaldiFbank, OptionErrors) {
  auto o = tiny_fbank();
  o.frame_length_ms = 1;
  expect_error([&] { kaldi::Fbank<float> f(o); }, {"kaldi::fbank", "at least 2"});
  o = tiny_fbank();
  o.preemphasis_coefficient = 1.5;
  expect_error([&] { kaldi::Fbank<float> f(o); }, {"preemphasis_coefficient", "1.5"});
  o = tiny_fbank();
  o.round_to_power_of_two = false;
  o.frame_length_ms = 18.75;  // 15 samples
  expect_error([&] { kaldi::Fbank<float> f(o); }, {"15", "even"});
}

// ---- augmentation -----------------------------------------------------------------------

TEST(Augment, SpecAugmentMasksWithinLimitsAndBlocksGradient) {
  Generator g(3);
  auto x = ones<double>(Shape{4, 50, 20});
  x.requires_grad_();
  SpecAugmentOptions o{1, 6, 1, 11, 0.0};
  auto y = spec_augment(x, o, g);
  sum(y).backward();
  const auto v = y.to_vector(), gr = x.grad().to_vector();
  for (std::size_t i = 0; i < v.size(); ++i) EXPECT_EQ(v[i], gr[i]);  // kept cells pass x and g
  for (std::int64_t c = 0; c < 4; ++c) {
    std::int64_t masked_freqs = 0, masked_times = 0;
    for (std::int64_t f = 0; f < 20; ++f) {
      bool all = true;
      for (std::int64_t t = 0; t < 50; ++t) all = all && y.at({c, t, f}) == 0;
      masked_freqs += all;
    }
    for (std::int64_t t = 0; t < 50; ++t) {
      bool all = true;
      for (std::int64_t f = 0; f < 20; ++f) all = all && y.at({c, t, f}) == 0;
      masked_times += all;
    }
    EXPECT_LE(masked_freqs, 5);
    EXPECT_LE(masked_times, 10);
  }
  Generator a(9), b(9);
  EXPECT_EQ(spec_augment(x, o, a).to_vector(), spec_augment(x, o, b).to_vector());
}

TEST(Augment, NoiseReachesTheRequestedSnrAndGradchecks) {
  Generator g(4);
  auto x = randn<double>(Shape{3, 400}, g), n = randn<double>(Shape{3, 400}, g) * 0.3;
  auto snr = from_vector<double>({0, 10, 20}, Shape{3});
  auto y = add_noise(x, n, snr);
  for (std::int64_t c = 0; c < 3; ++c) {
    double es = 0, en = 0;
    for (std::int64_t i = 0; i < 400; ++i) {
      es += x.at({c, i}) * x.at({c, i});
      const double d = y.at({c, i}) - x.at({c, i});
      en += d * d;
    }
    EXPECT_NEAR(10 * std::log10(es / en), snr.at({c}), 1e-9);
  }
  Fn f = [&](const std::vector<TD>& in) { return add_noise(in[0], in[1], 5.0); };
  expect_gradcheck(f, {leaf({2, 30}, 16), leaf({2, 30}, 17)});
  expect_error([&] { add_noise(x, zeros<double>(Shape{3, 400}), 3.0); }, {"add_noise", "silent"});
  expect_error([&] { add_noise(x, n.narrow(1, 0, 10), 3.0); }, {"add_noise", "(3,10)", "(3,400)"});
}

TEST(Augment, TimeShiftAndGain) {
  Generator g(6);
  auto x = arange<double>(1, 11).reshape(Shape{1, 10});
  auto wrapped = random_time_shift(x, 3, g, true).to_vector();
  double s = 0;
  for (double v : wrapped) s += v;
  EXPECT_EQ(s, 55);  // a rotation keeps every sample
  Generator g2(6);
  auto zero_filled = random_time_shift(x, 3, g2, false).to_vector();
  Fn f = [](const std::vector<TD>& in) {
    Generator gg(1);
    return random_time_shift(in[0], 4, gg, false);
  };
  expect_gradcheck(f, {leaf({3, 12}, 18)});
  Generator g3(7);
  auto y = random_gain(ones<double>(Shape{50, 2}), -6, 6, g3).to_vector();
  for (double v : y) EXPECT_TRUE(v >= std::pow(10, -0.3) - 1e-12 && v <= std::pow(10, 0.3) + 1e-12);
  (void)zero_filled;
}

// ---- statistics, normalisation, recipes ----------------------------------------------

TEST(Normalization, StatisticsMergeBatchesExactly) {
  Generator g(8);
  auto a = randn<double>(Shape{2, 7, 3}, g) * 3.0 + 5.0, b = randn<double>(Shape{11, 3}, g) - 2.0;
  FeatureStatistics s;
  s.add(a);
  s.add(b);
  auto all = concat({a.reshape(Shape{14, 3}), b}, 0);
  auto mu = mean(all, {0}), sd = sqrt(mean(square(all - mu), {0}));
  for (std::int64_t f = 0; f < 3; ++f) {
    EXPECT_NEAR(s.mean()[static_cast<std::size_t>(f)], mu.at({f}), 1e-12);
    EXPECT_NEAR(s.std_dev()[static_cast<std::size_t>(f)], sd.at({f}), 1e-12);
  }
  EXPECT_NEAR(s.mean(true)[0], mean(all).item(), 1e-12);
  EXPECT_NEAR(s.std_dev(true)[0], std::sqrt(mean(square(all - mean(all))).item()), 1e-12);
  FeatureStatistics empty;
  expect_error([&] { empty.mean(); }, {"FeatureStatistics", "no features"});
}

TEST(Normalization, NormalizerAppliesAndTravelsInTheStateDict) {
  FeatureNormalizer<double> n({1, 2}, {2, 4}, 2.0);
  expect_close(n(from_vector<double>({5, 10}, Shape{1, 2})), {1, 1});
  auto sd = n.state_dict();
  EXPECT_EQ(sd.count("mean"), 1u);
  EXPECT_EQ(sd.count("std"), 1u);
  FeatureNormalizer<double> m({0, 0}, {1, 1});
  EXPECT_TRUE(m.load_state_dict(sd).ok());
  expect_close(m(from_vector<double>({5, 10}, Shape{1, 2})), {2, 2});  // divisor is configuration, not state
  expect_error([] { FeatureNormalizer<float>({0}, {0}); }, {"FeatureNormalizer", "std"});
  expect_error([&] { n(zeros<double>(Shape{2, 3})); }, {"FeatureNormalizer", "(2,3)", "2 bins"});
}

TEST(Recipes, ReferenceLogMelShapeLayoutAndGradient) {
  FrontEnd<float> fe(recipes::reference_logmel());
  auto x = randn<float>(Shape{2, 16000 * 2}, *std::make_unique<Generator>(1)) * 0.1;
  x.requires_grad_();
  auto y = fe(x);
  EXPECT_EQ(y.shape(), (Shape{2, 400, 64}));  // 81 frames padded to 400
  sum(y.narrow(1, 0, 81)).backward();
  double norm = 0;
  for (float g : x.grad().to_vector()) {
    ASSERT_TRUE(std::isfinite(g));
    norm += static_cast<double>(g) * g;
  }
  EXPECT_GT(norm, 0);
  FeatureStatistics s;
  s.add(fe.features(x.detach()));
  fe.set_normalizer(s, false);
  auto z = fe(x.detach());
  EXPECT_NEAR(mean(z).item(), 0.0, 1e-3);
}

TEST(Recipes, AstFbankImageLayoutAndSpecAugmentOnlyWhileTraining) {
  auto o = recipes::ast_fbank();
  o.layout = FeatureLayout::image;
  o.spec_augment = SpecAugmentOptions{2, 24, 2, 96, 0.0};
  FrontEnd<float> fe(o);
  const auto st = recipes::ast_normalizer();
  fe.set_normalizer(st.mean, st.std_dev, st.divisor);
  auto x = randn<float>(Shape{2, 16000}, *std::make_unique<Generator>(2)) * 0.1;
  fe.eval();
  auto a = fe(x), b = fe(x);
  EXPECT_EQ(a.shape(), (Shape{2, 1, 128, 1024}));
  EXPECT_EQ(a.to_vector(), b.to_vector());
  // features are (fbank + 4.27) / 9.14 and padded frames hold (0 + 4.27) / 9.14
  EXPECT_NEAR(a.at({0, 0, 5, 1000}), 4.27 / 9.14, 1e-6);
  auto raw = kaldi::fbank(x, std::get<kaldi::FbankOptions>(o.features));
  EXPECT_NEAR(a.at({1, 0, 7, 3}), (raw.at({1, 3, 7}) + 4.27) / 9.14, 1e-5);
  fe.train();
  EXPECT_NE(fe(x).to_vector(), a.to_vector());
}

}  // namespace
