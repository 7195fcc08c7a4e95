// bench-av-small, the reference benchmark model of the design (workloads W2 and W4): audio
// fbank (B, 1, 128, 100) → four conv3×3 + BN + ReLU + 2×2 max-pool blocks (32, 64, 128, 128) →
// global average → Linear 128 → 10; video (B, 3, 8, 32, 32) → three conv3d 3×3×3 + BN + ReLU +
// max-pool3d blocks (32, 64, 128) → global average → Linear 128 → 10 without bias; the logits
// are the sum. Built from the composable parts: the two encoders, a LateFusion that pools
// both sequences and projects each to the 10 logits, and an IdentityHead.
#pragma once

#include <memory>

#include "avgrad/models/audio_encoders.hpp"
#include "avgrad/models/classifier.hpp"
#include "avgrad/models/fusion.hpp"
#include "avgrad/models/heads.hpp"
#include "avgrad/models/video_encoders.hpp"

namespace avgrad::models {

template <Floating T, Device D = Cpu> using BenchAvSmall =
    AVClassifier<ConvStackEncoder<T, D>, Conv3dEncoder<T, D>, LateFusion<T, D>, IdentityHead<T, D>>;

/// The model of W2/W4 with `num_classes` outputs (10 in the workloads). Parameter names:
/// audio.blocks.i.{conv,bn}, video.blocks.i.{conv,bn}, fusion.audio_proj.{weight,bias},
/// fusion.video_proj.weight.
template <Floating T, Device D = Cpu>
std::unique_ptr<BenchAvSmall<T, D>> bench_av_small(std::int64_t num_classes = 10,
                                                   Generator& gen = default_generator()) {
  auto audio = std::make_unique<ConvStackEncoder<T, D>>(ConvStackOptions{}, gen);
  auto video = std::make_unique<Conv3dEncoder<T, D>>(Conv3dEncoderOptions{}, gen);
  auto fusion = std::make_unique<LateFusion<T, D>>(LateFusionOptions{.audio_dim = audio->latent_dim(),
                                                                     .video_dim = video->latent_dim(),
                                                                     .dim = num_classes,
                                                                     .align = TimeAlign::pool,
                                                                     .video_bias = false},
                                                   gen);
  return std::make_unique<BenchAvSmall<T, D>>(std::move(audio), std::move(video), std::move(fusion),
                                              std::make_unique<IdentityHead<T, D>>(num_classes));
}

}  // namespace avgrad::models
