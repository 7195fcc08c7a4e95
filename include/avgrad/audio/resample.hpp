// Sample-rate conversion of (channels, frames) audio tensors through libsoxr's one-shot resampler.
//
// Optional component: include only when linking avgrad::audio_io (defines AVGRAD_WITH_AUDIO_IO).
// resample() is preprocessing, not an op: it is not differentiable, records nothing for
// autograd, and its result never requires grad.
//
// Length: the output has exactly round(frames * out_rate / in_rate) frames (halves round up).
// That is what soxr's one-shot conversion produces by itself for a whole signal; the length is
// computed here and passed to soxr as the output capacity so that it never depends on soxr's
// internals, and if soxr ever delivered fewer frames the tail would be zero-filled.
// The filter delay is compensated by soxr (output frame k is the input at time k / out_rate).
// Determinism: soxr runs single-threaded here, so equal inputs give bitwise equal outputs on
// a given machine and libsoxr build (SIMD code paths may differ between CPUs).
#pragma once

#include <soxr.h>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <string_view>
#include <vector>

#include "avgrad/core/error.hpp"
#include "avgrad/core/tensor.hpp"

namespace avgrad::audio {

/// libsoxr's recipes: quick = cubic interpolation (no real anti-aliasing), low/medium = 16-bit
/// with large/medium roll-off, high = 20-bit (SOXR_HQ), very_high = 28-bit (SOXR_VHQ).
enum class ResampleQuality { quick, low, medium, high, very_high };

namespace detail {

inline unsigned long soxr_recipe(ResampleQuality q) {
  switch (q) {
    case ResampleQuality::quick:
      return SOXR_QQ;
    case ResampleQuality::low:
      return SOXR_LQ;
    case ResampleQuality::medium:
      return SOXR_MQ;
    case ResampleQuality::high:
      return SOXR_HQ;
    case ResampleQuality::very_high:
      return SOXR_VHQ;
  }
  return SOXR_HQ;
}

}  // namespace detail

/// Resamples x ((C, frames), or (frames) for mono; the output has the same rank) from
/// in_rate to out_rate Hz, each channel independently. Checks: x defined with rank 1 or 2,
/// both rates finite and > 0, every sample finite. Equal rates return a copy.
/// Output frames = round(frames * out_rate / in_rate); see the header comment.
template <class T>
requires std::same_as<T, float> || std::same_as<T, double> Tensor<T, Cpu> resample(
    const Tensor<T, Cpu>& x, double in_rate, double out_rate, ResampleQuality quality = ResampleQuality::high) {
  constexpr std::string_view op = "resample";
  AVGRAD_CHECK(x.defined(), op, "input tensor is undefined");
  AVGRAD_CHECK(x.dim() == 1 || x.dim() == 2, op, "input must be (channels, frames) or (frames), got ", x.shape());
  AVGRAD_CHECK(std::isfinite(in_rate) && in_rate > 0 && std::isfinite(out_rate) && out_rate > 0, op,
               "rates must be finite and > 0, got in_rate ", in_rate, ", out_rate ", out_rate);
  const std::int64_t channels = x.dim() == 2 ? x.size(0) : 1;
  const std::int64_t frames = x.dim() == 2 ? x.size(1) : x.size(0);

  // Row-major (C, frames): channel c starts at c * frames, which is soxr's split layout.
  std::vector<T> copy;
  const T* in = x.data();
  if (!x.is_contiguous()) {
    copy = x.to_vector();
    in = copy.data();
  }
  for (std::int64_t i = 0; i < channels * frames; ++i)
    AVGRAD_CHECK(std::isfinite(in[i]), op, "non-finite sample ", in[i], " at channel ", i / frames, ", frame ",
                 i % frames);

  const double target = std::round(static_cast<double>(frames) * (out_rate / in_rate));
  AVGRAD_CHECK(target < 9.0e15 / static_cast<double>(std::max<std::int64_t>(channels, 1)), op, "output of ", target,
               " frames per channel for ", frames, " input frames at ", in_rate, " -> ", out_rate, " Hz is too large");
  const auto out_frames = static_cast<std::int64_t>(target);
  Shape out_shape = x.dim() == 2 ? Shape{channels, out_frames} : Shape{out_frames};
  auto y = Tensor<T, Cpu>::empty(out_shape);
  T* out = y.data();
  if (in_rate == out_rate) {
    std::copy(in, in + channels * frames, out);
    return y;
  }
  if (channels == 0 || frames == 0 || out_frames == 0) return y;

  std::vector<const T*> in_ptrs(static_cast<std::size_t>(channels));
  std::vector<T*> out_ptrs(static_cast<std::size_t>(channels));
  for (std::int64_t c = 0; c < channels; ++c) {
    in_ptrs[static_cast<std::size_t>(c)] = in + c * frames;
    out_ptrs[static_cast<std::size_t>(c)] = out + c * out_frames;
  }
  const soxr_datatype_t type = std::same_as<T, float> ? SOXR_FLOAT32_S : SOXR_FLOAT64_S;
  const soxr_io_spec_t io = soxr_io_spec(type, type);
  const soxr_quality_spec_t q = soxr_quality_spec(detail::soxr_recipe(quality), 0);
  const soxr_runtime_spec_t rt = soxr_runtime_spec(1);
  std::size_t done = 0;
  const soxr_error_t err =
      soxr_oneshot(in_rate, out_rate, static_cast<unsigned>(channels), in_ptrs.data(), static_cast<std::size_t>(frames),
                   nullptr, out_ptrs.data(), static_cast<std::size_t>(out_frames), &done, &io, &q, &rt);
  AVGRAD_CHECK(!err, op, "libsoxr failed for ", channels, " channel(s), ", frames, " frames at ", in_rate, " -> ",
               out_rate, " Hz: ", err ? err : "");
  for (std::int64_t c = 0; c < channels; ++c)
    std::fill(out + c * out_frames + static_cast<std::int64_t>(done), out + (c + 1) * out_frames, T(0));
  return y;
}

}  // namespace avgrad::audio
