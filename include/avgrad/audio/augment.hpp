// Data augmentation for audio, usable inside training and differentiable where it
// touches the signal: SpecAugment time/frequency masking, random time shift, random
// gain, and mixing noise at a given SNR. Randomness comes from an explicit Generator.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "avgrad/core/philox.hpp"
#include "avgrad/ops/join.hpp"
#include "avgrad/ops/reduce.hpp"
#include "avgrad/ops/unary.hpp"

namespace avgrad::audio {

/// SpecAugment masking (Park et al. 2019, torchaudio's TimeMasking/FrequencyMasking):
/// each mask has width ⌊u·param⌋ (u uniform in [0, 1)) and starts at ⌊u'·(size − width)⌋.
struct SpecAugmentOptions {
  std::int64_t freq_masks = 2;
  std::int64_t freq_mask_param = 27;  ///< maximum frequency-mask width (exclusive)
  std::int64_t time_masks = 2;
  std::int64_t time_mask_param = 100;  ///< maximum time-mask width (exclusive)
  double mask_value = 0.0;             ///< what masked cells become
};

/// Masks of x (..., T, F): every leading index (clip) draws its own masks. Masked
/// cells take mask_value and pass no gradient; the rest pass x and its gradient.
template <Floating T, Device D>
Tensor<T, D> spec_augment(const Tensor<T, D>& x, const SpecAugmentOptions& o, Generator& gen) {
  avgrad::detail::check_defined(x, "spec_augment");
  AVGRAD_CHECK(x.dim() >= 2, "spec_augment", "expected features (..., T, F), got shape ", x.shape());
  AVGRAD_CHECK(o.freq_masks >= 0 && o.time_masks >= 0 && o.freq_mask_param >= 0 && o.time_mask_param >= 0,
               "spec_augment", "mask counts and widths must be non-negative");
  const std::int64_t Tn = x.shape()[x.dim() - 2], F = x.shape()[x.dim() - 1];
  const std::int64_t clips = Tn * F > 0 ? x.numel() / (Tn * F) : 0;
  std::vector<T> keep(static_cast<std::size_t>(x.numel()), T(1));
  auto draw = [&](std::int64_t size, std::int64_t param, std::int64_t& start, std::int64_t& width) {
    width = static_cast<std::int64_t>(gen.next_uniform() * static_cast<double>(param));
    width = std::min(width, size);
    start = static_cast<std::int64_t>(gen.next_uniform() * static_cast<double>(size - width));
  };
  for (std::int64_t c = 0; c < clips; ++c) {
    T* k = keep.data() + c * Tn * F;
    std::int64_t s = 0, w = 0;
    for (std::int64_t m = 0; m < o.freq_masks; ++m) {
      draw(F, o.freq_mask_param, s, w);
      for (std::int64_t t = 0; t < Tn; ++t)
        for (std::int64_t f = s; f < s + w; ++f) k[t * F + f] = T(0);
    }
    for (std::int64_t m = 0; m < o.time_masks; ++m) {
      draw(Tn, o.time_mask_param, s, w);
      for (std::int64_t t = s; t < s + w; ++t)
        for (std::int64_t f = 0; f < F; ++f) k[t * F + f] = T(0);
    }
  }
  const Tensor<T, D> mask = from_vector<T, D>(keep, x.shape());
  Tensor<T, D> y = x * mask;
  if (o.mask_value != 0) y = y + (1.0 - mask) * o.mask_value;
  return y;
}

/// Shifts each clip of x (..., S) in time by its own integer shift drawn uniformly
/// from [−max_shift, max_shift]: rotated (wrap) or filled with zeros. Differentiable.
template <Floating T, Device D>
Tensor<T, D> random_time_shift(const Tensor<T, D>& x, std::int64_t max_shift, Generator& gen, bool wrap = true) {
  avgrad::detail::check_defined(x, "random_time_shift");
  AVGRAD_CHECK(x.dim() >= 1 && max_shift >= 0, "random_time_shift",
               "expected a signal (..., S) and max_shift >= 0, got shape ", x.shape(), " and max_shift ", max_shift);
  const std::int64_t S = x.shape()[x.dim() - 1];
  const std::int64_t clips = S > 0 ? x.numel() / S : 0;
  if (clips == 0) return x;
  const Tensor<T, D> flat = x.reshape(Shape{clips, S});
  std::vector<Tensor<T, D>> rows;
  rows.reserve(static_cast<std::size_t>(clips));
  for (std::int64_t c = 0; c < clips; ++c) {
    const auto s = static_cast<std::int64_t>(gen.next_below(static_cast<std::uint64_t>(2 * max_shift + 1))) - max_shift;
    Tensor<T, D> row = flat.narrow(0, c, 1);
    const std::int64_t k = std::min<std::int64_t>(std::abs(s), S);
    if (s == 0 || k == 0) {
      rows.push_back(row);
    } else if (wrap) {
      rows.push_back(roll(row, {s}, {1}));
    } else {  // zero fill: drop k samples at one end, pad k zeros at the other
      rows.push_back(s > 0 ? pad(row, {k, -k}) : pad(row, {-k, k}));
    }
  }
  return concat(rows, 0).reshape(x.shape());
}

/// Multiplies each clip of x (..., S) by its own gain, uniform in [min_db, max_db] dB.
template <Floating T, Device D>
Tensor<T, D> random_gain(const Tensor<T, D>& x, double min_db, double max_db, Generator& gen) {
  avgrad::detail::check_defined(x, "random_gain");
  AVGRAD_CHECK(x.dim() >= 1 && min_db <= max_db && std::isfinite(min_db) && std::isfinite(max_db), "random_gain",
               "expected a signal (..., S) and finite min_db <= max_db, got shape ", x.shape(), ", [", min_db, ", ",
               max_db, "]");
  Shape gs = x.shape();
  gs[gs.rank() - 1] = 1;
  std::vector<T> g(static_cast<std::size_t>(gs.numel()));
  for (auto& v : g) v = static_cast<T>(std::pow(10.0, (min_db + (max_db - min_db) * gen.next_uniform()) / 20.0));
  return x * from_vector<T, D>(g, gs);
}

/// x + s·noise with s chosen per clip so that 10·log10(‖x‖²/‖s·noise‖²) = snr_db, as
/// torchaudio.functional.add_noise. x, noise: (..., S); snr_db: one value or one per
/// clip (shape (...)). Differentiable with respect to x (s depends on ‖x‖; a silent
/// clip gets s = 0 and a zero gradient through s) and to noise.
template <Floating T, Device D>
Tensor<T, D> add_noise(const Tensor<T, D>& x, const Tensor<T, D>& noise, const Tensor<T, D>& snr_db) {
  avgrad::detail::check_defined(x, "add_noise");
  AVGRAD_CHECK(noise.defined() && noise.shape() == x.shape(), "add_noise", "noise of shape ",
               noise.defined() ? noise.shape() : Shape{}, " does not match the signal's shape ", x.shape());
  AVGRAD_CHECK(x.dim() >= 1, "add_noise", "expected signals (..., S), got a scalar");
  Shape per_clip = x.shape();
  per_clip[per_clip.rank() - 1] = 1;
  const Tensor<T, D> en = sum(square(noise), {-1}, true);
  AVGRAD_CHECK(amin(en.detach()).item() > 0, "add_noise", "a noise clip is silent: no gain reaches a finite SNR");
  const Tensor<T, D> es = clamp(sum(square(x), {-1}, true), 1e-30, std::numeric_limits<double>::infinity());
  const Tensor<T, D> snr = snr_db.numel() == 1 ? snr_db.reshape(Shape{}) : snr_db.reshape(per_clip);
  AVGRAD_CHECK(snr_db.numel() == 1 || snr_db.numel() == per_clip.numel(), "add_noise", "snr_db of shape ",
               snr_db.shape(), " needs one value or one per clip (", per_clip.numel(), ")");
  const Tensor<T, D> scale = sqrt(es / en) * exp(snr * static_cast<T>(-std::log(10.0) / 20.0));
  return x + scale * noise;
}

/// add_noise with one SNR for every clip.
template <Floating T, Device D>
Tensor<T, D> add_noise(const Tensor<T, D>& x, const Tensor<T, D>& noise, double snr_db) {
  return add_noise(x, noise, scalar<T, D>(static_cast<T>(snr_db)));
}

}  // namespace avgrad::audio
