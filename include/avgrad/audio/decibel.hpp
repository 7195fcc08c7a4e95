// Logarithmic compression of spectra: decibels as librosa.power_to_db /
// torchaudio AmplitudeToDB (amin, ref, top_db), and the natural log with a floor
// that Kaldi uses. All differentiable.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <optional>

#include "avgrad/ops/reduce.hpp"
#include "avgrad/ops/unary.hpp"

namespace avgrad::fn {

/// ln x for a finite normal float, written so that loops over it vectorise (glibc's
/// logf is a scalar call): x = m·2^e with m in [√½, √2), then
/// ln m = 2·atanh(s), s = (m − 1)/(m + 1), |s| ≤ 0.172, summed to s⁹ (next term < 4e−10),
/// and e·ln 2 added in two parts. Relative error ≤ 2 ulp against std::log (tested).
/// +∞ and NaN give NaN through the added (x − x): a select would keep GCC from
/// vectorising under its default -ftrapping-math.
AVGRAD_HOST_DEVICE inline float log_normal_float(float x) {
  const auto bits = std::bit_cast<std::uint32_t>(x);
  int e = static_cast<int>((bits >> 23) & 0xffu) - 127;
  float m = std::bit_cast<float>((bits & 0x007fffffu) | 0x3f800000u);  // [1, 2)
  const bool high = m > 1.41421356f;
  m = high ? m * 0.5f : m;
  e = high ? e + 1 : e;
  const float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
  const float series = 1.0f + s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7 + s2 * (1.0f / 9))));
  const float fe = static_cast<float>(e);
  constexpr float ln2_hi = 0.693145752f, ln2_lo = 1.42860682e-06f;  // ln2_hi has 8 trailing zero bits
  return fe * ln2_hi + (fe * ln2_lo + 2.0f * s * series) + (x - x);
}

/// y = scale·ln(max(x, floor)) − shift in one pass (Kaldi's log floor, decibels); the
/// gradient is g·scale/x above the floor (boundary included, as clamp) and 0 below.
/// floor must be a positive normal number. In float, +∞ and NaN give NaN (std::log
/// gives +∞ for +∞); non-finite features are a bug upstream, and NaN keeps it visible.
struct ScaledLogFloor {
  double floor, scale, shift;
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x) const {
    const T v = x < T(floor) ? T(floor) : x;
    if constexpr (sizeof(T) == 4)
      return T(scale) * log_normal_float(v) - T(shift);
    else
      return T(scale) * std::log(v) - T(shift);
  }
  template <class T> AVGRAD_HOST_DEVICE T grad(T x, T, T g) const { return x >= T(floor) ? g * T(scale) / x : T(0); }
};

}  // namespace avgrad::fn

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
  AVGRAD_CHECK(o.amin >= std::numeric_limits<float>::min() && std::isfinite(o.amin), op,
               "amin must be a positive normal number, got ", o.amin);
  AVGRAD_CHECK(o.ref > 0 && std::isfinite(o.ref), op, "ref must be positive and finite, got ", o.ref);
  AVGRAD_CHECK(!o.top_db || *o.top_db >= 0, op, "top_db must be non-negative, got ", o.top_db.value_or(0));
  const double scale = multiplier / std::numbers::ln10, shift = multiplier * std::log10(std::max(o.amin, o.ref));
  Tensor<T, D> db = avgrad::detail::unary_op(op, x, fn::ScaledLogFloor{o.amin, scale, shift});
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
  AVGRAD_CHECK(floor >= std::numeric_limits<float>::min(), "log_floor",
               "the floor must be a positive normal number, got ", floor);
  return avgrad::detail::unary_op("log_floor", x, fn::ScaledLogFloor{floor, 1.0, 0.0});
}

}  // namespace avgrad::audio
