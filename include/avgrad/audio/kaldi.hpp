// Kaldi-compatible features: fbank and MFCC with Kaldi's options and defaults
// (torchaudio.compliance.kaldi's names), batched and differentiable with respect to
// the waveform.
//
// Layout: waveforms (..., S) → (..., T, M) (plus one energy column when use_energy:
// first, or last with htk_compat). Frames: T = 1 + (S − L)/shift with snip_edges, so a
// clip shorter than one frame gives T = 0 (Kaldi skips it; torchaudio raises).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <string>

#include "avgrad/audio/decibel.hpp"
#include "avgrad/audio/filterbank.hpp"
#include "avgrad/audio/mel.hpp"
#include "avgrad/audio/spectrum.hpp"
#include "avgrad/ops/join.hpp"

namespace avgrad::audio::kaldi {

/// Kaldi's FbankOptions (FrameExtractionOptions + MelBanksOptions), with the defaults
/// of torchaudio.compliance.kaldi.fbank. Kaldi's binaries dither by 1.0 by default;
/// here dither is 0 so features are reproducible unless asked otherwise.
struct FbankOptions {
  double sample_frequency = 16000;
  double frame_length_ms = 25.0;
  double frame_shift_ms = 10.0;
  bool snip_edges = true;
  bool round_to_power_of_two = true;  ///< FFT size: next power of two ≥ the frame length
  double dither = 0.0;
  bool remove_dc_offset = true;
  double preemphasis_coefficient = 0.97;
  Window window_type = Window::povey;
  double blackman_coeff = 0.42;
  std::int64_t num_mel_bins = 23;
  double low_freq = 20.0;
  double high_freq = 0.0;  ///< ≤ 0: offset from the Nyquist frequency
  bool use_power = true;   ///< power spectrum (else magnitude)
  bool use_log_fbank = true;
  bool use_energy = false;  ///< add the log frame energy as a column
  bool raw_energy = true;   ///< energy before pre-emphasis and window (after DC removal)
  double energy_floor = 1.0;
  bool htk_compat = false;     ///< energy column last instead of first
  bool subtract_mean = false;  ///< subtract each clip's mean over time (per column)

  /// Samples per frame and per shift: int(sample_frequency · ms / 1000), as Kaldi.
  std::int64_t window_size() const { return static_cast<std::int64_t>(sample_frequency * frame_length_ms * 0.001); }
  std::int64_t window_shift() const { return static_cast<std::int64_t>(sample_frequency * frame_shift_ms * 0.001); }
  std::int64_t padded_window_size() const {
    const std::int64_t n = window_size();
    if (!round_to_power_of_two) return n;
    std::int64_t p = 1;
    while (p < n) p *= 2;
    return p;
  }
  std::int64_t num_columns() const { return num_mel_bins + (use_energy ? 1 : 0); }
};

/// Kaldi fbank as an object: validates the options once and keeps the window and the
/// mel bank on device D. x (..., S) → (..., T, num_columns()).
template <Floating T, Device D = Cpu> class Fbank {
 public:
  explicit Fbank(const FbankOptions& o = {}) : o_(o) {
    const std::int64_t L = o.window_size(), hop = o.window_shift(), N = o.padded_window_size();
    AVGRAD_CHECK(o.sample_frequency > 0, "kaldi::fbank", "sample_frequency must be positive, got ", o.sample_frequency);
    AVGRAD_CHECK(L >= 2, "kaldi::fbank", "frame_length ", o.frame_length_ms, " ms at ", o.sample_frequency,
                 " Hz gives ", L, " samples per frame; at least 2 are needed");
    AVGRAD_CHECK(hop >= 1, "kaldi::fbank", "frame_shift ", o.frame_shift_ms, " ms at ", o.sample_frequency,
                 " Hz gives a shift of ", hop, " samples; it must be at least 1");
    AVGRAD_CHECK(N % 2 == 0, "kaldi::fbank", "the padded frame of ", N,
                 " samples must be even: use round_to_power_of_two or change frame_length");
    AVGRAD_CHECK(o.preemphasis_coefficient >= 0 && o.preemphasis_coefficient <= 1, "kaldi::fbank",
                 "preemphasis_coefficient must be in [0, 1], got ", o.preemphasis_coefficient);
    AVGRAD_CHECK(o.dither >= 0 && std::isfinite(o.dither), "kaldi::fbank", "dither must be >= 0, got ", o.dither);
    AVGRAD_CHECK(o.energy_floor >= 0, "kaldi::fbank", "energy_floor must be >= 0, got ", o.energy_floor);
    window_ = audio::window<T>(o.window_type, L, Symmetry::symmetric, o.blackman_coeff).template to<D>();
    spectrum_ = audio::detail::SpectrumPlan<T, D>(N, L, 0);
    bank_ = Filterbank<T, D>(kaldi_mel_filterbank<T>(o.num_mel_bins, N, o.sample_frequency, o.low_freq, o.high_freq));
  }

  const FbankOptions& options() const { return o_; }
  const Filterbank<T, D>& filterbank() const { return bank_; }
  const Tensor<T, D>& window() const { return window_; }

  /// Features of x (..., S). `gen` supplies the dither noise; it is required when
  /// dither > 0 and advanced by the number of frame samples drawn.
  Tensor<T, D> operator()(const Tensor<T, D>& x, Generator* gen = nullptr) const {
    avgrad::detail::check_defined(x, "kaldi::fbank");
    AVGRAD_CHECK(x.dim() >= 1, "kaldi::fbank", "expected a waveform of shape (..., samples), got a scalar");
    const std::int64_t S = x.shape()[x.dim() - 1];
    const Framing f = kaldi_framing(S, o_.window_size(), o_.window_shift(), o_.snip_edges);
    FrameProcessing proc{o_.dither, 0, 0, o_.remove_dc_offset, o_.preemphasis_coefficient};
    if (o_.dither > 0) {
      AVGRAD_CHECK(gen != nullptr, "kaldi::fbank", "dither ", o_.dither, " needs a Generator (or set dither = 0)");
      proc.dither_seed = gen->seed();
      proc.dither_offset = gen->advance(static_cast<std::uint64_t>(x.numel() / std::max<std::int64_t>(S, 1)) *
                                        static_cast<std::uint64_t>(f.count * f.length));
    }
    const Tensor<T, D> fr = frames(x, f, proc, window_);
    const Tensor<T, D> spec = spectrum_(fr, o_.use_power ? SpectrumKind::power : SpectrumKind::magnitude);
    Tensor<T, D> mel = bank_(spec);
    if (o_.use_log_fbank) mel = log_floor(mel);
    if (o_.use_energy) {
      // raw energy: the same frames (same dither draws) before pre-emphasis and window
      FrameProcessing raw = proc;
      raw.preemphasis = 0;
      const Tensor<T, D> e_frames = o_.raw_energy ? frames(x, f, raw) : fr;
      Tensor<T, D> energy = log_floor(sum(square(e_frames), {-1}, true));
      if (o_.energy_floor > 0)
        energy = clamp(energy, std::log(o_.energy_floor), std::numeric_limits<double>::infinity());
      mel = o_.htk_compat ? concat({mel, energy}, -1) : concat({energy, mel}, -1);
    }
    if (o_.subtract_mean && f.count > 0) mel = mel - mean(mel, {-2}, true);
    return mel;
  }

 private:
  FbankOptions o_;
  Tensor<T, D> window_;
  audio::detail::SpectrumPlan<T, D> spectrum_;
  Filterbank<T, D> bank_;
};

/// Kaldi fbank features of x (..., S) → (..., T, M [+1]); see Fbank.
template <Floating T, Device D>
Tensor<T, D> fbank(const Tensor<T, D>& x, const FbankOptions& o = {}, Generator* gen = nullptr) {
  return Fbank<T, D>(o)(x, gen);
}

/// Kaldi's MfccOptions: fbank options (use_power, use_log_fbank forced on) plus
/// the cepstra. Defaults as torchaudio.compliance.kaldi.mfcc.
struct MfccOptions {
  FbankOptions fbank{};
  std::int64_t num_ceps = 13;
  double cepstral_lifter = 22.0;
};

/// Kaldi MFCC of x (..., S) → (..., T, num_ceps): log mel energies → orthonormal
/// DCT-II (C0 scaled by √(1/M)) → lifter; with use_energy C0 is replaced by the log
/// energy; htk_compat moves C0 last (scaled by √2 when it is not the energy).
template <Floating T, Device D = Cpu> class Mfcc {
 public:
  explicit Mfcc(const MfccOptions& o = {}) : o_(o), fbank_(forced(o)) {
    const std::int64_t M = o.fbank.num_mel_bins;
    AVGRAD_CHECK(o.num_ceps >= 1 && o.num_ceps <= M, "kaldi::mfcc", "num_ceps must be in [1, num_mel_bins = ", M,
                 "], got ", o.num_ceps);
    dct_ = dct_matrix<T>(o.num_ceps, M, true).template to<D>();
    lifter_ = lifter_weights<T>(o.num_ceps, o.cepstral_lifter).template to<D>();
  }

  Tensor<T, D> operator()(const Tensor<T, D>& x, Generator* gen = nullptr) const {
    const FbankOptions& fo = o_.fbank;
    const std::int64_t M = fo.num_mel_bins, C = o_.num_ceps;
    Tensor<T, D> feat = fbank_(x, gen), energy;
    if (fo.use_energy) {
      const std::int64_t e = fo.htk_compat ? M : 0;
      energy = feat.narrow(-1, e, 1);
      feat = feat.narrow(-1, fo.htk_compat ? 0 : 1, M);
    }
    Tensor<T, D> c = matmul(feat, dct_, MatmulPrecision::float32);
    if (o_.cepstral_lifter != 0) c = c * lifter_;
    Tensor<T, D> c0 = fo.use_energy ? energy : c.narrow(-1, 0, 1);
    Tensor<T, D> rest = c.narrow(-1, 1, C - 1);
    if (fo.htk_compat) {
      if (!fo.use_energy) c0 = c0 * std::numbers::sqrt2;
      c = concat({rest, c0}, -1);
    } else if (fo.use_energy) {
      c = concat({c0, rest}, -1);
    }
    if (fo.subtract_mean && c.shape()[c.dim() - 2] > 0) c = c - mean(c, {-2}, true);
    return c;
  }

 private:
  static FbankOptions forced(const MfccOptions& o) {
    FbankOptions f = o.fbank;
    f.use_power = true;
    f.use_log_fbank = true;
    f.subtract_mean = false;  // applied to the cepstra instead
    return f;
  }

  MfccOptions o_;
  Fbank<T, D> fbank_;
  Tensor<T, D> dct_, lifter_;
};

/// Kaldi MFCC of x (..., S); see Mfcc.
template <Floating T, Device D>
Tensor<T, D> mfcc(const Tensor<T, D>& x, const MfccOptions& o = {}, Generator* gen = nullptr) {
  return Mfcc<T, D>(o)(x, gen);
}

}  // namespace avgrad::audio::kaldi
