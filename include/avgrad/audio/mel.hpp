// Mel spectrograms and cepstra: torchaudio's MelSpectrogram and MFCC, the DCT-II
// matrix and cepstral liftering, all differentiable with respect to the waveform.
//
// Layout: waveforms (..., S) → (..., T, M) mel spectrograms → (..., T, C) cepstra.
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>

#include "avgrad/audio/decibel.hpp"
#include "avgrad/audio/filterbank.hpp"
#include "avgrad/audio/spectrum.hpp"

namespace avgrad::audio {

struct MelSpectrogramOptions {
  double sample_rate = 16000;
  StftOptions stft{};  ///< n_fft 400, hop win/4, periodic Hann, centred with reflection
  double power = 2.0;  ///< 1: magnitude, 2: power
  std::int64_t n_mels = 128;
  double f_min = 0.0;
  double f_max = -1.0;  ///< ≤ 0: sample_rate / 2
  MelScale scale = MelScale::htk;
  bool slaney_norm = false;
};

/// |STFT|^power → mel filterbank, as torchaudio.transforms.MelSpectrogram (time-major
/// output). Holds its STFT plan and filterbank on device D; thread-compatible (const
/// calls only).
template <Floating T, Device D = Cpu> class MelSpectrogram {
 public:
  explicit MelSpectrogram(const MelSpectrogramOptions& o = {})
      : o_(o),
        stft_(o.stft),
        bank_(mel_filterbank<T>(
            MelOptions{o.stft.bins(), o.sample_rate, o.n_mels, o.f_min, o.f_max, o.scale, o.slaney_norm})) {}

  const MelSpectrogramOptions& options() const { return o_; }
  const Filterbank<T, D>& filterbank() const { return bank_; }

  /// x (..., S) → (..., T, n_mels).
  Tensor<T, D> operator()(const Tensor<T, D>& x) const {
    avgrad::detail::check_defined(x, "MelSpectrogram");
    return bank_(stft_.spectrogram(x, o_.power));
  }

 private:
  MelSpectrogramOptions o_;
  StftPlan<T, D> stft_;
  Filterbank<T, D> bank_;
};

/// DCT-II as a (n_in, n_out) matrix for right-multiplication (torchaudio's
/// create_dct): D[n, k] = cos(π/n_in·(n + ½)·k), times √(2/n_in) and 1/√2 for k = 0
/// when ortho, else times 2.
template <Floating T> Tensor<T, Cpu> dct_matrix(std::int64_t n_out, std::int64_t n_in, bool ortho = true) {
  AVGRAD_CHECK(n_in >= 1 && n_out >= 1 && n_out <= n_in, "dct_matrix", "need 1 <= n_out <= n_in, got n_out ", n_out,
               " and n_in ", n_in);
  auto d = Tensor<T, Cpu>::empty(Shape{n_in, n_out});
  for (std::int64_t n = 0; n < n_in; ++n)
    for (std::int64_t k = 0; k < n_out; ++k) {
      double v = std::cos(std::numbers::pi / static_cast<double>(n_in) * (static_cast<double>(n) + 0.5) *
                          static_cast<double>(k));
      if (ortho)
        v *= std::sqrt(2.0 / static_cast<double>(n_in)) * (k == 0 ? 1.0 / std::numbers::sqrt2 : 1.0);
      else
        v *= 2.0;
      d.data()[n * n_out + k] = static_cast<T>(v);
    }
  return d;
}

/// Kaldi/HTK cepstral lifter weights 1 + (L/2)·sin(π·i/L), i < n (all ones when L = 0).
template <Floating T> Tensor<T, Cpu> lifter_weights(std::int64_t n, double lifter) {
  auto w = Tensor<T, Cpu>::empty(Shape{n});
  for (std::int64_t i = 0; i < n; ++i)
    w.data()[i] = static_cast<T>(
        lifter == 0 ? 1.0 : 1.0 + 0.5 * lifter * std::sin(std::numbers::pi * static_cast<double>(i) / lifter));
  return w;
}

struct MfccOptions {
  std::int64_t n_mfcc = 40;
  bool log_mels = false;  ///< ln(mel + 1e-6) instead of decibels (AmplitudeToDB power, top_db 80)
  bool ortho = true;      ///< orthonormal DCT-II
  MelSpectrogramOptions mel{};
};

/// MFCC as torchaudio.transforms.MFCC: mel spectrogram → dB (or log) → DCT-II,
/// (..., S) → (..., T, n_mfcc).
template <Floating T, Device D = Cpu> class Mfcc {
 public:
  explicit Mfcc(const MfccOptions& o = {})
      : o_(o), mel_(o.mel), dct_(dct_matrix<T>(o.n_mfcc, o.mel.n_mels, o.ortho).template to<D>()) {}

  Tensor<T, D> operator()(const Tensor<T, D>& x) const {
    Tensor<T, D> m = mel_(x);
    m = o_.log_mels ? log(m + 1e-6) : power_to_db(m, DbOptions{1e-10, 1.0, 80.0});
    return matmul(m, dct_, MatmulPrecision::float32);
  }

 private:
  MfccOptions o_;
  MelSpectrogram<T, D> mel_;
  Tensor<T, D> dct_;
};

}  // namespace avgrad::audio
