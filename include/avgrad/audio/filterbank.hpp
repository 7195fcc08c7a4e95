// Mel filterbanks (HTK and Slaney scales as torchaudio/librosa, Kaldi's own bank) and
// their differentiable application to spectra, which exploits that each triangular
// filter covers only a few frequency bins.
//
// Layout: a filterbank's weights are (F, M) — F frequency bins by M filters, as
// torchaudio.functional.melscale_fbanks — so spectra (..., F) map to (..., M).
#pragma once

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "avgrad/audio/frame.hpp"
#include "avgrad/ops/linalg.hpp"

namespace avgrad::audio {

enum class MelScale {
  htk,     ///< 2595·log10(1 + f/700)
  slaney,  ///< linear below 1 kHz (3 mel per 200 Hz), logarithmic above (librosa's default)
  kaldi,   ///< 1127·ln(1 + f/700) — the HTK scale in natural log, as Kaldi writes it
};

inline double hz_to_mel(double hz, MelScale scale) {
  switch (scale) {
    case MelScale::htk:
      return 2595.0 * std::log10(1.0 + hz / 700.0);
    case MelScale::kaldi:
      return 1127.0 * std::log(1.0 + hz / 700.0);
    case MelScale::slaney: {
      constexpr double f_sp = 200.0 / 3.0, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
      const double logstep = std::log(6.4) / 27.0;
      return hz >= min_log_hz ? min_log_mel + std::log(hz / min_log_hz) / logstep : hz / f_sp;
    }
  }
  return 0.0;
}

inline double mel_to_hz(double mel, MelScale scale) {
  switch (scale) {
    case MelScale::htk:
      return 700.0 * (std::pow(10.0, mel / 2595.0) - 1.0);
    case MelScale::kaldi:
      return 700.0 * (std::exp(mel / 1127.0) - 1.0);
    case MelScale::slaney: {
      constexpr double f_sp = 200.0 / 3.0, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
      const double logstep = std::log(6.4) / 27.0;
      return mel >= min_log_mel ? min_log_hz * std::exp(logstep * (mel - min_log_mel)) : f_sp * mel;
    }
  }
  return 0.0;
}

/// A mel filterbank as torchaudio.functional.melscale_fbanks (and librosa.filters.mel
/// with htk / norm chosen to match).
struct MelOptions {
  std::int64_t n_freqs = 201;  ///< bins of the spectrum: n_fft/2 + 1
  double sample_rate = 16000;
  std::int64_t n_mels = 128;
  double f_min = 0.0;
  double f_max = -1.0;  ///< ≤ 0: sample_rate / 2
  MelScale scale = MelScale::htk;
  bool slaney_norm = false;  ///< scale each triangle by 2/(f_right − f_left) (constant area)
};

/// Weights (n_freqs, n_mels): triangles whose corners are n_mels + 2 points evenly
/// spaced on the mel scale between f_min and f_max, evaluated at the bin frequencies
/// linspace(0, ⌊sample_rate/2⌋, n_freqs) (torchaudio's grid). Computed in double.
template <Floating T> Tensor<T, Cpu> mel_filterbank(const MelOptions& o) {
  const double f_max = o.f_max > 0 ? o.f_max : o.sample_rate / 2;
  AVGRAD_CHECK(o.n_freqs >= 2 && o.n_mels >= 1, "mel_filterbank", "need n_freqs >= 2 and n_mels >= 1, got n_freqs ",
               o.n_freqs, " and n_mels ", o.n_mels);
  AVGRAD_CHECK(o.sample_rate > 0 && o.f_min >= 0 && o.f_min < f_max, "mel_filterbank",
               "need sample_rate > 0 and 0 <= f_min < f_max, got sample_rate ", o.sample_rate, ", f_min ", o.f_min,
               ", f_max ", f_max);
  AVGRAD_CHECK(o.scale != MelScale::kaldi, "mel_filterbank",
               "the Kaldi bank has its own grid: use kaldi_mel_filterbank");
  const std::int64_t F = o.n_freqs, M = o.n_mels;
  const double m_min = hz_to_mel(o.f_min, o.scale), m_max = hz_to_mel(f_max, o.scale);
  std::vector<double> f_pts(static_cast<std::size_t>(M + 2));
  for (std::int64_t i = 0; i < M + 2; ++i)
    f_pts[static_cast<std::size_t>(i)] =
        mel_to_hz(m_min + (m_max - m_min) * static_cast<double>(i) / static_cast<double>(M + 1), o.scale);
  const double top = std::floor(o.sample_rate / 2);
  auto fb = Tensor<T, Cpu>::empty(Shape{F, M});
  for (std::int64_t f = 0; f < F; ++f) {
    const double hz = top * static_cast<double>(f) / static_cast<double>(F - 1);
    for (std::int64_t m = 0; m < M; ++m) {
      const auto i = static_cast<std::size_t>(m);
      const double down = (hz - f_pts[i]) / (f_pts[i + 1] - f_pts[i]);
      const double up = (f_pts[i + 2] - hz) / (f_pts[i + 2] - f_pts[i + 1]);
      double w = std::max(0.0, std::min(down, up));
      if (o.slaney_norm) w *= 2.0 / (f_pts[i + 2] - f_pts[i]);
      fb.data()[f * M + m] = static_cast<T>(w);
    }
  }
  return fb;
}

/// Kaldi's mel bank (MelBanks, as torchaudio.compliance.kaldi.get_mel_banks without
/// VTLN) for an FFT of `padded_window` samples: num_bins triangles evenly spaced on
/// the 1127·ln(1 + f/700) scale between low_freq and high_freq (high_freq ≤ 0 means
/// Nyquist + high_freq), triangular in mel, over bins k·sample_rate/padded_window.
/// Returns (padded_window/2 + 1, num_bins); the Nyquist row is zero as in Kaldi.
template <Floating T> Tensor<T, Cpu> kaldi_mel_filterbank(std::int64_t num_bins, std::int64_t padded_window,
                                                          double sample_rate, double low_freq, double high_freq) {
  const double nyquist = 0.5 * sample_rate;
  if (high_freq <= 0) high_freq += nyquist;
  AVGRAD_CHECK(num_bins > 3, "kaldi_mel_filterbank", "Kaldi needs more than 3 mel bins, got ", num_bins);
  AVGRAD_CHECK(padded_window >= 2 && padded_window % 2 == 0, "kaldi_mel_filterbank",
               "the padded window must be even and >= 2, got ", padded_window);
  AVGRAD_CHECK(low_freq >= 0 && low_freq < nyquist && high_freq > 0 && high_freq <= nyquist && low_freq < high_freq,
               "kaldi_mel_filterbank", "bad frequency range: low_freq ", low_freq, " and high_freq ", high_freq,
               " must satisfy 0 <= low < high <= Nyquist (", nyquist, ")");
  const std::int64_t F = padded_window / 2 + 1, M = num_bins;
  const double bin_width = sample_rate / static_cast<double>(padded_window);
  const double mel_low = hz_to_mel(low_freq, MelScale::kaldi), mel_high = hz_to_mel(high_freq, MelScale::kaldi);
  const double delta = (mel_high - mel_low) / static_cast<double>(M + 1);
  auto fb = zeros<T, Cpu>(Shape{F, M});
  for (std::int64_t f = 0; f + 1 < F; ++f) {
    const double mel = hz_to_mel(bin_width * static_cast<double>(f), MelScale::kaldi);
    for (std::int64_t m = 0; m < M; ++m) {
      const double left = mel_low + static_cast<double>(m) * delta, center = left + delta, right = center + delta;
      const double w = std::max(0.0, std::min((mel - left) / (center - left), (right - mel) / (right - center)));
      fb.data()[f * M + m] = static_cast<T>(w);
    }
  }
  return fb;
}

/// A fixed filterbank (F, M) applied to spectra (..., F) → (..., M). Each filter's
/// nonzero support [begin, end) is found once; application then costs the number of
/// nonzeros per frame (about 2F for triangular banks) instead of F·M. Banks denser
/// than a quarter fall back to a GEMM. Differentiable with respect to the spectrum
/// (the weights are constants). On devices other than the CPU, a GEMM with the weights
/// kept there: a dense (F, M) GEMM is what accelerators run best.
template <Floating T, Device D = Cpu> class Filterbank {
 public:
  Filterbank() = default;
  explicit Filterbank(const Tensor<T, Cpu>& weights) : weights_(weights.contiguous()) {
    AVGRAD_CHECK(weights_.dim() == 2, "Filterbank", "weights must be (F, M), got shape ", weights_.shape());
    const std::int64_t F = n_freqs(), M = n_filters();
    const T* w = weights_.data();
    std::int64_t nonzeros = 0;
    begin_.assign(static_cast<std::size_t>(M), 0);
    end_.assign(static_cast<std::size_t>(M), 0);
    start_.assign(static_cast<std::size_t>(M) + 1, 0);
    for (std::int64_t m = 0; m < M; ++m) {
      std::int64_t b = F, e = 0;
      for (std::int64_t f = 0; f < F; ++f)
        if (w[f * M + m] != T(0)) {
          b = std::min(b, f);
          e = f + 1;
        }
      if (b >= e) b = e = 0;  // an all-zero filter
      begin_[static_cast<std::size_t>(m)] = b;
      end_[static_cast<std::size_t>(m)] = e;
      nonzeros += e - b;
      start_[static_cast<std::size_t>(m) + 1] = nonzeros;
    }
    dense_ = nonzeros * 4 > F * M;
    packed_.resize(static_cast<std::size_t>(nonzeros));
    for (std::int64_t m = 0; m < M; ++m)
      for (std::int64_t f = begin_[static_cast<std::size_t>(m)]; f < end_[static_cast<std::size_t>(m)]; ++f)
        packed_[static_cast<std::size_t>(start_[static_cast<std::size_t>(m)] + f -
                                         begin_[static_cast<std::size_t>(m)])] = w[f * M + m];
    if constexpr (!std::is_same_v<D, Cpu>) device_weights_ = weights_.template to<D>();
  }

  const Tensor<T, Cpu>& weights() const { return weights_; }
  std::int64_t n_freqs() const { return weights_.shape()[0]; }
  std::int64_t n_filters() const { return weights_.shape()[1]; }
  /// Filter m's nonzero bins [begin, end) (empty for an all-zero filter).
  std::pair<std::int64_t, std::int64_t> support(std::int64_t m) const {
    return {begin_[static_cast<std::size_t>(m)], end_[static_cast<std::size_t>(m)]};
  }
  bool dense() const { return dense_; }

  /// spec (..., F) → (..., M): out[m] = Σ_f spec[f]·W[f, m].
  Tensor<T, D> operator()(const Tensor<T, D>& spec) const {
    avgrad::detail::check_defined(spec, "Filterbank");
    AVGRAD_CHECK(weights_.defined(), "Filterbank", "applied before being given weights");
    const std::int64_t F = n_freqs();
    AVGRAD_CHECK(spec.dim() >= 1 && spec.shape()[spec.dim() - 1] == F, "Filterbank", "expected spectra (..., ", F,
                 ") for a bank of ", F, " bins, got shape ", spec.shape());
    if constexpr (!std::is_same_v<D, Cpu>)
      return matmul(spec, device_weights_, MatmulPrecision::float32);
    else
      return apply_sparse(spec);
  }

 private:
  Tensor<T, Cpu> apply_sparse(const Tensor<T, Cpu>& spec) const {
    const std::int64_t F = n_freqs(), M = n_filters();
    if (dense_) return matmul(spec, weights_, MatmulPrecision::float32);
    const Tensor<T, Cpu> s = spec.contiguous();
    const std::int64_t rows = s.numel() / F;
    Shape out_shape = s.shape();
    out_shape[out_shape.rank() - 1] = M;
    auto y = Tensor<T, Cpu>::empty(out_shape);
    const T* sp = s.data();
    T* yp = y.data();
    apply_rows(sp, yp, rows);
    if (!autograd::any_requires_grad<T, Cpu>({&spec})) return y;
    // the closure keeps its own copy of the (small) packed weights: the bank may die first
    auto bank = std::make_shared<const Filterbank>(*this);
    return autograd::record<T, Cpu>("Filterbank", y, {spec},
                                    [bank, rows](const Tensor<T, Cpu>& g_any, const std::vector<bool>&) {
                                      const Tensor<T, Cpu> g = g_any.contiguous();
                                      const std::int64_t F = bank->n_freqs();
                                      Shape ds_shape = g.shape();
                                      ds_shape[ds_shape.rank() - 1] = F;
                                      auto ds = Tensor<T, Cpu>::empty(ds_shape);
                                      bank->apply_rows_transposed(g.data(), ds.data(), rows);
                                      return autograd::Grads<T, Cpu>{ds};
                                    });
  }

  // Rows are processed kBlock at a time, transposed to (F, kBlock) so the inner loop runs
  // across rows in SIMD lanes: each filter's few weights are then applied to kBlock
  // frames at once instead of in a short scalar loop per frame.
  static constexpr std::int64_t kBlock = 8;

  void apply_rows(const T* s, T* y, std::int64_t rows) const {
    const std::int64_t F = n_freqs(), M = n_filters(), blocks = (rows + kBlock - 1) / kBlock;
#pragma omp parallel if (detail::frames_worth_parallel(rows * 2 * F))
    {
      std::vector<T> st(static_cast<std::size_t>(F * kBlock));
#pragma omp for
      for (std::int64_t blk = 0; blk < blocks; ++blk) {
        const std::int64_t r0 = blk * kBlock, nb = std::min(kBlock, rows - r0);
        for (std::int64_t r = 0; r < kBlock; ++r)
          for (std::int64_t f = 0; f < F; ++f)
            st[static_cast<std::size_t>(f * kBlock + r)] = r < nb ? s[(r0 + r) * F + f] : T(0);
        for (std::int64_t m = 0; m < M; ++m) {
          const auto mi = static_cast<std::size_t>(m);
          const T* w = packed_.data() + start_[mi];
          T acc[kBlock] = {};
          for (std::int64_t f = begin_[mi]; f < end_[mi]; ++f) {
            const T wf = w[f - begin_[mi]];
            const T* col = st.data() + f * kBlock;
            for (std::int64_t r = 0; r < kBlock; ++r) acc[r] += wf * col[r];
          }
          for (std::int64_t r = 0; r < nb; ++r) y[(r0 + r) * M + m] = acc[r];
        }
      }
    }
  }

  void apply_rows_transposed(const T* g, T* ds, std::int64_t rows) const {
    const std::int64_t F = n_freqs(), M = n_filters(), blocks = (rows + kBlock - 1) / kBlock;
#pragma omp parallel if (detail::frames_worth_parallel(rows * 2 * F))
    {
      std::vector<T> dt(static_cast<std::size_t>(F * kBlock));
#pragma omp for
      for (std::int64_t blk = 0; blk < blocks; ++blk) {
        const std::int64_t r0 = blk * kBlock, nb = std::min(kBlock, rows - r0);
        std::fill(dt.begin(), dt.end(), T(0));
        for (std::int64_t m = 0; m < M; ++m) {
          const auto mi = static_cast<std::size_t>(m);
          const T* w = packed_.data() + start_[mi];
          T gm[kBlock] = {};
          for (std::int64_t r = 0; r < nb; ++r) gm[r] = g[(r0 + r) * M + m];
          for (std::int64_t f = begin_[mi]; f < end_[mi]; ++f) {
            const T wf = w[f - begin_[mi]];
            T* col = dt.data() + f * kBlock;
            for (std::int64_t r = 0; r < kBlock; ++r) col[r] += wf * gm[r];
          }
        }
        for (std::int64_t r = 0; r < nb; ++r)
          for (std::int64_t f = 0; f < F; ++f) ds[(r0 + r) * F + f] = dt[static_cast<std::size_t>(f * kBlock + r)];
      }
    }
  }

  Tensor<T, Cpu> weights_;
  Tensor<T, D> device_weights_;  ///< a copy of weights_ on D (D ≠ Cpu)
  std::vector<std::int64_t> begin_, end_, start_;
  std::vector<T> packed_;
  bool dense_ = false;
};

}  // namespace avgrad::audio
