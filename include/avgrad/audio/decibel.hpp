// Logarithmic compression of spectra: decibels as librosa.power_to_db /
// torchaudio AmplitudeToDB (amin, ref, top_db), and the natural log with a floor
// that Kaldi uses. All differentiable.
#pragma once

#include <cmath>
#include <limits>
#include <numbers>
#include <optional>

#include "avgrad/ops/reduce.hpp"
#include "avgrad/ops/unary.hpp"

namespace avgrad::audio {

struct DbOptions {
  double amin = 1e-10;                ///< values below amin are raised to it before the log
  double ref = 1.0;                   ///< 0 dB reference: subtract 10·log10(max(amin, ref))
  std::optional<double> top_db = 80;  ///< floor each spectrogram at its maximum − top_db; nullopt: no floor
};

namespace detail {

/// multiplier·log10(max(x, amin)) − multiplier·log10(max(amin, ref)), floored at the
/// maximum − top_db of each spectrogram: the last two dims (time, frequency) form one
/// spectrogram, every leading dim is a batch dim (librosa floors a whole array; a
/// batch must not let one loud clip raise another's floor).
template <Floating T, Device D>
Tensor<T, D> to_db(const char* op, const Tensor<T, D>& x, double multiplier, const DbOptions& o) {
  avgrad::detail::check_defined(x, op);
  AVGRAD_CHECK(o.amin > 0 && std::isfinite(o.amin), op, "amin must be positive and finite, got ", o.amin);
  AVGRAD_CHECK(o.ref > 0 && std::isfinite(o.ref), op, "ref must be positive and finite, got ", o.ref);
  AVGRAD_CHECK(!o.top_db || *o.top_db >= 0, op, "top_db must be non-negative, got ", o.top_db.value_or(0));
  const double scale = multiplier / std::numbers::ln10;
  Tensor<T, D> db = log(clamp(x, o.amin, std::numeric_limits<double>::infinity())) * static_cast<T>(scale);
  const double shift = multiplier * std::log10(std::max(o.amin, o.ref));
  if (shift != 0) db = db - static_cast<T>(shift);
  if (!o.top_db || x.numel() == 0) return db;
  Axes last2 = x.dim() >= 2 ? Axes{-2, -1} : Axes{-1};
  if (x.dim() == 0) last2 = Axes{};
  return maximum(db, amax(db, last2, true) - static_cast<T>(*o.top_db));
}

}  // namespace detail

/// 10·log10 of a power spectrogram (..., T, F), as librosa.power_to_db.
template <Floating T, Device D> Tensor<T, D> power_to_db(const Tensor<T, D>& x, const DbOptions& o = {}) {
  return detail::to_db("power_to_db", x, 10.0, o);
}

/// 20·log10 of a magnitude spectrogram (..., T, F), as librosa.amplitude_to_db
/// (with amin applied to the magnitude).
template <Floating T, Device D> Tensor<T, D> amplitude_to_db(const Tensor<T, D>& x, const DbOptions& o = {}) {
  return detail::to_db("amplitude_to_db", x, 20.0, o);
}

/// The single-precision machine epsilon: Kaldi's floor before every log.
inline constexpr double kKaldiLogFloor = std::numeric_limits<float>::epsilon();

/// ln(max(x, floor)): finite everywhere, gradient 0 below the floor (so silence
/// gives a finite, zero gradient).
template <Floating T, Device D> Tensor<T, D> log_floor(const Tensor<T, D>& x, double floor = kKaldiLogFloor) {
  avgrad::detail::check_defined(x, "log_floor");
  AVGRAD_CHECK(floor > 0, "log_floor", "the floor must be positive, got ", floor);
  return log(clamp(x, floor, std::numeric_limits<double>::infinity()));
}

}  // namespace avgrad::audio
