// Complete audio front-ends as modules: waveform → features → fixed number of
// frames → normalisation → model layout, with SpecAugment in training mode. The two
// recipes of the study are one object each (recipes::reference_logmel, recipes::ast_fbank).
//
// Layout: waveforms (B, S) → (B, T, F) (FeatureLayout::time_freq) or (B, 1, F, T)
// (FeatureLayout::image, for 2-D CNN stems).
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>

#include "avgrad/audio/augment.hpp"
#include "avgrad/audio/kaldi.hpp"
#include "avgrad/audio/mel.hpp"
#include "avgrad/nn/module.hpp"

namespace avgrad::audio {

enum class FeatureLayout {
  time_freq,  ///< (B, T, F)
  image,      ///< (B, 1, F, T)
};

/// Pads with pad_value or truncates x (..., T, F) along time to exactly `frames`
/// (the reference code's fixed 400 / 1024 frames). Differentiable.
template <Floating T, Device D>
Tensor<T, D> fit_frames(const Tensor<T, D>& x, std::int64_t frames, double pad_value = 0.0) {
  avgrad::detail::check_defined(x, "fit_frames");
  AVGRAD_CHECK(x.dim() >= 2 && frames >= 0, "fit_frames", "expected features (..., T, F) and frames >= 0, got shape ",
               x.shape(), " and frames ", frames);
  const std::int64_t have = x.shape()[x.dim() - 2];
  if (have == frames) return x;
  return pad(x, {0, 0, 0, frames - have}, PadMode::constant, pad_value);
}

/// Running per-bin statistics of features (..., T, F) over a dataset, merged batch by
/// batch with Chan et al.'s parallel update (stable for long runs). std() is the
/// population standard deviation (numpy's default, what AST's statistics use).
class FeatureStatistics {
 public:
  template <Floating T, Device D> void add(const Tensor<T, D>& x) {
    AVGRAD_CHECK(x.dim() >= 1, "FeatureStatistics", "expected features (..., F), got a scalar");
    const std::int64_t F = x.shape()[x.dim() - 1];
    if (mean_.empty()) {
      mean_.assign(static_cast<std::size_t>(F), 0.0);
      m2_.assign(static_cast<std::size_t>(F), 0.0);
    }
    AVGRAD_CHECK(static_cast<std::int64_t>(mean_.size()) == F, "FeatureStatistics", "features of ", F, " bins after ",
                 mean_.size(), " bins (shape ", x.shape(), ")");
    const auto v = x.detach().contiguous().to_vector();
    const std::int64_t rows = F > 0 ? static_cast<std::int64_t>(v.size()) / F : 0;
    if (rows == 0) return;
    for (std::int64_t f = 0; f < F; ++f) {
      double s = 0;
      for (std::int64_t r = 0; r < rows; ++r) s += v[static_cast<std::size_t>(r * F + f)];
      const double bm = s / static_cast<double>(rows);
      double bm2 = 0;
      for (std::int64_t r = 0; r < rows; ++r) {
        const double d = v[static_cast<std::size_t>(r * F + f)] - bm;
        bm2 += d * d;
      }
      AVGRAD_CHECK(std::isfinite(bm) && std::isfinite(bm2), "FeatureStatistics", "non-finite feature in bin ", f);
      const auto i = static_cast<std::size_t>(f);
      const double n = static_cast<double>(count_), nb = static_cast<double>(rows), delta = bm - mean_[i];
      mean_[i] += delta * nb / (n + nb);
      m2_[i] += bm2 + delta * delta * n * nb / (n + nb);
    }
    count_ += rows;
  }

  std::int64_t count() const { return count_; }
  std::int64_t bins() const { return static_cast<std::int64_t>(mean_.size()); }
  /// Per-bin mean, or the mean over all bins when global.
  std::vector<double> mean(bool global = false) const {
    check_nonempty();
    if (!global) return mean_;
    double s = 0;
    for (double m : mean_) s += m;
    return {s / static_cast<double>(mean_.size())};
  }
  std::vector<double> std_dev(bool global = false) const {
    check_nonempty();
    std::vector<double> out;
    if (!global) {
      for (double m2 : m2_) out.push_back(std::sqrt(m2 / static_cast<double>(count_)));
      return out;
    }
    // pooled over bins: E[x²] − E[x]² with each bin's own spread
    const double mu = mean(true)[0];
    double s = 0;
    for (std::size_t i = 0; i < mean_.size(); ++i)
      s += m2_[i] / static_cast<double>(count_) + (mean_[i] - mu) * (mean_[i] - mu);
    return {std::sqrt(s / static_cast<double>(mean_.size()))};
  }

 private:
  void check_nonempty() const { AVGRAD_CHECK(count_ > 0, "FeatureStatistics", "no features were added"); }
  std::int64_t count_ = 0;
  std::vector<double> mean_, m2_;
};

/// (x − mean) / (divisor · std) with mean and std buffers of one value per bin (F)
/// or one value overall (1): per-bin z-score (divisor 1) or AST's (x − μ)/(2σ).
/// The buffers are part of the state dict, so fitted statistics travel with a model.
template <Floating T> class FeatureNormalizer : public nn::UnaryModule<T, Cpu> {
 public:
  FeatureNormalizer(std::vector<double> mean, std::vector<double> std_dev, double divisor = 1.0) : divisor_(divisor) {
    AVGRAD_CHECK(!mean.empty() && mean.size() == std_dev.size(), "FeatureNormalizer", "mean (", mean.size(),
                 " values) and std (", std_dev.size(), " values) must be non-empty and of equal length");
    AVGRAD_CHECK(divisor > 0, "FeatureNormalizer", "divisor must be positive, got ", divisor);
    for (std::size_t i = 0; i < std_dev.size(); ++i)
      AVGRAD_CHECK(std_dev[i] > 0 && std::isfinite(std_dev[i]) && std::isfinite(mean[i]), "FeatureNormalizer", "bin ",
                   i, " has mean ", mean[i], " and std ", std_dev[i], "; std must be positive and finite");
    const auto n = static_cast<std::int64_t>(mean.size());
    mean_ = from_vector<T, Cpu>(std::vector<T>(mean.begin(), mean.end()), Shape{n});
    std_ = from_vector<T, Cpu>(std::vector<T>(std_dev.begin(), std_dev.end()), Shape{n});
    this->register_buffer("mean", mean_);
    this->register_buffer("std", std_);
  }
  /// Statistics fitted on a dataset: per bin, or one global pair.
  FeatureNormalizer(const FeatureStatistics& s, bool global, double divisor = 1.0)
      : FeatureNormalizer(s.mean(global), s.std_dev(global), divisor) {}

  std::string describe() const override {
    return avgrad::detail::concat("FeatureNormalizer(bins=", mean_.numel(), ", divisor=", divisor_, ")");
  }

  /// x (..., F) → (x − mean) / (divisor · std).
  Tensor<T, Cpu> forward(const Tensor<T, Cpu>& x) override {
    const std::int64_t n = mean_.numel();
    AVGRAD_CHECK(x.dim() >= 1 && (n == 1 || x.shape()[x.dim() - 1] == n), "FeatureNormalizer", "features of shape ",
                 x.shape(), " do not have the ", n, " bins the statistics were fitted on");
    return (x - mean_) / (std_ * divisor_);
  }

 private:
  double divisor_;
  Tensor<T, Cpu> mean_, std_;
};

/// |STFT|^power → mel → decibels: the reference code's log-mel features.
struct LogMelOptions {
  MelSpectrogramOptions mel{};
  DbOptions db{};
};

template <Floating T> class LogMel {
 public:
  explicit LogMel(const LogMelOptions& o = {}) : o_(o), mel_(o.mel) {}
  Tensor<T, Cpu> operator()(const Tensor<T, Cpu>& x, Generator* = nullptr) const { return power_to_db(mel_(x), o_.db); }
  std::int64_t bins() const { return o_.mel.n_mels; }

 private:
  LogMelOptions o_;
  MelSpectrogram<T> mel_;
};

struct FrontEndOptions {
  std::variant<LogMelOptions, kaldi::FbankOptions> features = LogMelOptions{};
  std::int64_t frames = 0;  ///< pad/truncate to this many frames; 0 keeps what the clip gives
  double pad_value = 0.0;   ///< what padded frames hold (before normalisation)
  FeatureLayout layout = FeatureLayout::time_freq;
  std::optional<SpecAugmentOptions> spec_augment;  ///< applied in training mode only
  std::uint64_t augment_seed = 0x5eed;
};

/// Waveform (B, S) → features, as one module: extraction, fixed length, optional
/// normalisation (a child module "normalizer", set by set_normalizer or fit), layout,
/// and SpecAugment while training. Differentiable with respect to the waveform.
template <Floating T> class FrontEnd : public nn::UnaryModule<T, Cpu> {
 public:
  explicit FrontEnd(const FrontEndOptions& o = {}) : o_(o), gen_(o.augment_seed) {
    if (std::holds_alternative<LogMelOptions>(o.features))
      extract_.template emplace<LogMel<T>>(std::get<LogMelOptions>(o.features));
    else
      extract_.template emplace<kaldi::Fbank<T>>(std::get<kaldi::FbankOptions>(o.features));
  }

  const FrontEndOptions& options() const { return o_; }
  std::int64_t bins() const {
    if (auto* f = std::get_if<kaldi::Fbank<T>>(&extract_)) return f->options().num_columns();
    return std::get<LogMel<T>>(extract_).bins();
  }

  /// Uses fixed statistics (e.g. AST's published μ = −4.27, σ = 4.57 with divisor 2).
  void set_normalizer(std::vector<double> mean, std::vector<double> std_dev, double divisor = 1.0) {
    AVGRAD_CHECK(!normalizer_, "FrontEnd", "the normalizer is already set");
    normalizer_ = std::make_unique<FeatureNormalizer<T>>(std::move(mean), std::move(std_dev), divisor);
    this->register_module("normalizer", *normalizer_);
  }
  /// Fits the normalizer on un-normalised features of a dataset (per bin or global).
  void set_normalizer(const FeatureStatistics& s, bool global, double divisor = 1.0) {
    set_normalizer(s.mean(global), s.std_dev(global), divisor);
  }
  bool has_normalizer() const { return normalizer_ != nullptr; }

  /// Features before normalisation and layout: (B, T, F), fixed to `frames` when set.
  Tensor<T, Cpu> features(const Tensor<T, Cpu>& x) {
    Tensor<T, Cpu> f = std::visit([&](const auto& e) { return e(x, &gen_); }, extract_);
    return o_.frames > 0 ? fit_frames(f, o_.frames, o_.pad_value) : f;
  }

  Tensor<T, Cpu> forward(const Tensor<T, Cpu>& x) override {
    Tensor<T, Cpu> f = features(x);
    if (normalizer_) f = (*normalizer_)(f);
    if (this->is_training() && o_.spec_augment) f = spec_augment(f, *o_.spec_augment, gen_);
    if (o_.layout == FeatureLayout::image) f = f.transpose(-1, -2).unsqueeze(-3);
    return f;
  }

  std::string describe() const override {
    return avgrad::detail::concat("FrontEnd(",
                                  std::holds_alternative<LogMelOptions>(o_.features) ? "log-mel" : "kaldi-fbank",
                                  ", bins=", bins(), ", frames=", o_.frames, ")");
  }

 private:
  FrontEndOptions o_;
  Generator gen_;
  std::variant<LogMel<T>, kaldi::Fbank<T>> extract_;
  std::unique_ptr<FeatureNormalizer<T>> normalizer_;
};

namespace recipes {

/// The reference code's features: 16 kHz, |STFT| with n_fft 4096, a 1024-sample
/// periodic Hann window, hop 400 (40 frames/s), centred → 64 Slaney mel bands (Slaney
/// area normalisation) up to 8 kHz → power_to_db (amin 1e-10, top_db 80) → 400 frames
/// → per-bin z-score (fit the statistics with FrontEnd::set_normalizer).
inline FrontEndOptions reference_logmel() {
  LogMelOptions lm;
  lm.mel.sample_rate = 16000;
  lm.mel.stft.n_fft = 4096;
  lm.mel.stft.win_length = 1024;
  lm.mel.stft.hop = 400;
  lm.mel.stft.center = true;
  lm.mel.stft.pad_mode = PadMode::reflect;  // torchaudio's and librosa < 0.10's default
  lm.mel.power = 1.0;
  lm.mel.n_mels = 64;
  lm.mel.f_min = 0;
  lm.mel.f_max = 8000;
  lm.mel.scale = MelScale::slaney;
  lm.mel.slaney_norm = true;
  lm.db = DbOptions{1e-10, 1.0, 80.0};
  FrontEndOptions o;
  o.features = lm;
  o.frames = 400;
  return o;
}

/// The later recipes' (AST-style) features: Kaldi fbank with 128 bins, 25 ms Hann
/// frames every 10 ms, no dither, energy off → 1024 frames (zero-padded, as AST) →
/// (x + 4.27) / (2 · 4.57) (set by this recipe's caller with
/// set_normalizer({-4.27}, {4.57}, 2.0); see ast_normalizer()).
inline FrontEndOptions ast_fbank() {
  kaldi::FbankOptions fb;
  fb.sample_frequency = 16000;
  fb.num_mel_bins = 128;
  fb.frame_length_ms = 25;
  fb.frame_shift_ms = 10;
  fb.window_type = Window::hann;
  fb.htk_compat = true;
  fb.use_energy = false;
  fb.dither = 0.0;
  FrontEndOptions o;
  o.features = fb;
  o.frames = 1024;
  return o;
}

/// The statistics the study uses with ast_fbank: mean −4.27, std 4.57, divisor 2.
struct NormalizerStats {
  std::vector<double> mean, std_dev;
  double divisor;
};
inline NormalizerStats ast_normalizer() { return {{-4.27}, {4.57}, 2.0}; }

}  // namespace recipes

}  // namespace avgrad::audio
