// The study's reference models (../shared/PAPER.md: "what the reference code does") as
// factories over the composable templates: the CNN-Transformer audio model, the frame-feature
// transformer video model, and their early, mid, late and super-late fusions, plus attention-
// bottleneck fusion (MBT) as a further baseline — with the
// same encoders in every model, so uni-modal and fused models compare like for like.
//
//   auto late = models::study::late_fusion<float>();                 // full size, 527 classes
//   auto tiny = models::study::late_fusion<float, models::ClassifierHead<float>>(
//       models::study::StudyOptions::small(10));                      // trains on 2 cores
#pragma once

#include <memory>

#include "avgrad/models/audio_encoders.hpp"
#include "avgrad/models/classifier.hpp"
#include "avgrad/models/fusion.hpp"
#include "avgrad/models/heads.hpp"
#include "avgrad/models/video_encoders.hpp"

namespace avgrad::models::study {

/// Sizes of the study's models. Defaults: AudioSet features — 400 frames × 64 mel bins of
/// audio, 10 × 2048 video frame embeddings, 527 classes, a 1024-wide fused latent.
struct StudyOptions {
  std::int64_t num_classes = 527;
  std::int64_t audio_frames = 400;
  std::int64_t video_frames = 10, video_dim = 2048;
  CnnTransformerOptions audio{};          ///< audio.stem.num_bins is the audio's bin count
  FeatureSequenceEncoderOptions video{};  ///< video.input_dim must equal video_dim
  std::int64_t fused_dim = 1024;          ///< late fusion's common width; mid fusion's transformer width
  std::int64_t mid_heads = 8, mid_dim_feedforward = 1024, mid_layers = 2;
  double super_late_audio_weight = 0.6;  ///< P = w·P_audio + (1 − w)·P_video
  /// Attention-bottleneck fusion: the first layer that exchanges through the bottleneck (of
  /// mid_layers), and how many bottleneck tokens.
  std::int64_t bottleneck_fusion_layer = 1, bottleneck_tokens = 4;

  /// A version that trains in seconds on 2 cores: 32 frames × 16 bins (audio latent 32),
  /// 4 × 32 video features (video latent 16), fused width 32.
  static StudyOptions small(std::int64_t num_classes = 10) {
    StudyOptions o;
    o.num_classes = num_classes;
    o.audio_frames = 32;
    o.video_frames = 4;
    o.video_dim = 32;
    o.audio = CnnTransformerOptions::small();
    o.video = FeatureSequenceEncoderOptions::small();
    o.video.num_frames = o.video_frames;
    o.fused_dim = 32;
    o.mid_heads = 4;
    o.mid_dim_feedforward = 64;
    return o;
  }
  std::int64_t num_bins() const { return audio.stem.num_bins; }
};

/// A head of type H reading a latent of width in_dim: ClassifierHead (single-label) or the
/// study's AttentionPoolHead (multi-label).
template <Head H> std::unique_ptr<H> make_head(std::int64_t in_dim, std::int64_t num_classes, Generator& gen) {
  using T = typename H::value_type;
  using D = typename H::device_type;
  if constexpr (std::same_as<H, AttentionPoolHead<T, D>>)
    return std::make_unique<H>(AttentionPoolHeadOptions{.in_dim = in_dim, .num_classes = num_classes}, gen);
  else
    return std::make_unique<H>(ClassifierHeadOptions{.in_dim = in_dim, .num_classes = num_classes}, gen);
}

/// The device of a model follows its head's: late_fusion<float, ClassifierHead<float, Cuda>>()
/// builds every part on the GPU.
template <class H> using device_of = typename H::device_type;

template <Floating T, class H = AttentionPoolHead<T>> using AudioModel =
    UniModalClassifier<CnnTransformer<T, device_of<H>>, H>;
template <Floating T, class H = AttentionPoolHead<T>> using VideoModel =
    UniModalClassifier<FeatureSequenceEncoder<T, device_of<H>>, H>;
template <Floating T, class H = AttentionPoolHead<T>> using LateFusionModel =
    AVClassifier<CnnTransformer<T, device_of<H>>, FeatureSequenceEncoder<T, device_of<H>>, LateFusion<T, device_of<H>>,
                 H>;
template <Floating T, class H = AttentionPoolHead<T>> using MidFusionModel =
    AVClassifier<CnnStem10C5P<T, device_of<H>>, InputPassthrough<T, device_of<H>>, MidFusion<T, device_of<H>>, H>;
template <Floating T, class H = AttentionPoolHead<T>> using EarlyFusionModel =
    AVClassifier<InputPassthrough<T, device_of<H>>, InputPassthrough<T, device_of<H>>,
                 EarlyFusion<CnnTransformer<T, device_of<H>>>, H>;
template <Floating T, class H = ClassifierHead<T>> using BottleneckModel =
    AVClassifier<CnnStem10C5P<T, device_of<H>>, InputPassthrough<T, device_of<H>>, BottleneckFusion<T, device_of<H>>,
                 H>;
template <Floating T, class H = AttentionPoolHead<T>> using SuperLateModel =
    SuperLateEnsemble<AudioModel<T, H>, VideoModel<T, H>>;

namespace detail {
inline void check(const StudyOptions& o) {
  AVGRAD_CHECK(o.video.input_dim == o.video_dim, "study models", "video.input_dim ", o.video.input_dim,
               " differs from video_dim ", o.video_dim);
  AVGRAD_CHECK(o.num_classes > 0 && o.audio_frames > 0 && o.video_frames > 0 && o.fused_dim > 0, "study models",
               "num_classes, frame counts and fused_dim must be positive");
}
}  // namespace detail

/// The audio model: CnnStem10C5P → shared post-norm transformer → head.
template <Floating T, class H = AttentionPoolHead<T>>
std::unique_ptr<AudioModel<T, H>> audio_model(const StudyOptions& o = {}, Generator& gen = default_generator()) {
  detail::check(o);
  auto enc = std::make_unique<CnnTransformer<T, device_of<H>>>(o.audio, gen);
  const std::int64_t d = enc->latent_dim();
  return std::make_unique<AudioModel<T, H>>(Modality::audio, std::move(enc), make_head<H>(d, o.num_classes, gen));
}

/// The video model: transformer over the frame features → Linear + ReLU → head.
template <Floating T, class H = AttentionPoolHead<T>>
std::unique_ptr<VideoModel<T, H>> video_model(const StudyOptions& o = {}, Generator& gen = default_generator()) {
  detail::check(o);
  auto enc = std::make_unique<FeatureSequenceEncoder<T, device_of<H>>>(o.video, gen);
  const std::int64_t d = enc->latent_dim();
  return std::make_unique<VideoModel<T, H>>(Modality::video, std::move(enc), make_head<H>(d, o.num_classes, gen));
}

/// The study's main model: z = Linear_a(audio latent on the video's time grid) +
/// Linear_v(video latent) → head, both encoders as in the uni-modal models.
template <Floating T, class H = AttentionPoolHead<T>>
std::unique_ptr<LateFusionModel<T, H>> late_fusion(const StudyOptions& o = {}, Generator& gen = default_generator()) {
  detail::check(o);
  auto a = std::make_unique<CnnTransformer<T, device_of<H>>>(o.audio, gen);
  auto v = std::make_unique<FeatureSequenceEncoder<T, device_of<H>>>(o.video, gen);
  auto f = std::make_unique<LateFusion<T, device_of<H>>>(
      LateFusionOptions{.audio_dim = a->latent_dim(), .video_dim = v->latent_dim(), .dim = o.fused_dim}, gen);
  return std::make_unique<LateFusionModel<T, H>>(std::move(a), std::move(v), std::move(f),
                                                 make_head<H>(o.fused_dim, o.num_classes, gen));
}

/// Mid fusion: the audio stem's frames and the raw video features, aligned in time and
/// concatenated → Linear → shared post-norm transformer → head.
template <Floating T, class H = AttentionPoolHead<T>>
std::unique_ptr<MidFusionModel<T, H>> mid_fusion(const StudyOptions& o = {}, Generator& gen = default_generator()) {
  detail::check(o);
  auto a = std::make_unique<CnnStem10C5P<T, device_of<H>>>(o.audio.stem, gen);
  auto v = std::make_unique<InputPassthrough<T, device_of<H>>>(o.video_dim);
  auto f = std::make_unique<MidFusion<T, device_of<H>>>(MidFusionOptions{.audio_dim = a->latent_dim(),
                                                                         .video_dim = o.video_dim,
                                                                         .dim = o.fused_dim,
                                                                         .num_heads = o.mid_heads,
                                                                         .dim_feedforward = o.mid_dim_feedforward,
                                                                         .layers = o.mid_layers,
                                                                         .dropout = o.audio.dropout},
                                                        gen);
  return std::make_unique<MidFusionModel<T, H>>(std::move(a), std::move(v), std::move(f),
                                                make_head<H>(o.fused_dim, o.num_classes, gen));
}

/// Early fusion as the study's code: the video features cut into rows of the audio's bins
/// and appended after the audio frames; one CNN-Transformer over the result → head.
template <Floating T, class H = AttentionPoolHead<T>>
std::unique_ptr<EarlyFusionModel<T, H>> early_fusion(const StudyOptions& o = {}, Generator& gen = default_generator()) {
  detail::check(o);
  auto stem = std::make_unique<CnnTransformer<T, device_of<H>>>(o.audio, gen);
  const std::int64_t d = stem->latent_dim();
  auto f =
      std::make_unique<EarlyFusion<CnnTransformer<T, device_of<H>>>>(EarlyFusionOptions{.audio_frames = o.audio_frames,
                                                                                        .num_bins = o.num_bins(),
                                                                                        .video_frames = o.video_frames,
                                                                                        .video_dim = o.video_dim},
                                                                     std::move(stem), gen);
  return std::make_unique<EarlyFusionModel<T, H>>(std::make_unique<InputPassthrough<T, device_of<H>>>(o.num_bins()),
                                                  std::make_unique<InputPassthrough<T, device_of<H>>>(o.video_dim),
                                                  std::move(f), make_head<H>(d, o.num_classes, gen));
}

/// Attention-bottleneck fusion (MBT; not in the reference code): the audio stem's frames and the
/// raw video features as two token streams, each through its own pre-norm transformer layers,
/// exchanging information only through a few shared bottleneck tokens from `bottleneck_fusion_layer`
/// on → a pooled (B, fused_dim) latent → head. Widths and heads as mid fusion's. The latent is
/// pooled, so the head must accept (B, D): ClassifierHead (the default here).
template <Floating T, class H = ClassifierHead<T>>
std::unique_ptr<BottleneckModel<T, H>> bottleneck_fusion(const StudyOptions& o = {},
                                                         Generator& gen = default_generator()) {
  detail::check(o);
  auto a = std::make_unique<CnnStem10C5P<T, device_of<H>>>(o.audio.stem, gen);
  auto v = std::make_unique<InputPassthrough<T, device_of<H>>>(o.video_dim);
  auto f = std::make_unique<BottleneckFusion<T, device_of<H>>>(
      BottleneckFusionOptions{.audio_dim = a->latent_dim(),
                              .video_dim = o.video_dim,
                              .dim = o.fused_dim,
                              .num_heads = o.mid_heads,
                              .dim_feedforward = o.mid_dim_feedforward,
                              .depth = o.mid_layers,
                              .fusion_layer = o.bottleneck_fusion_layer,
                              .bottleneck_tokens = o.bottleneck_tokens,
                              .dropout = o.audio.dropout},
      gen);
  return std::make_unique<BottleneckModel<T, H>>(std::move(a), std::move(v), std::move(f),
                                                 make_head<H>(o.fused_dim, o.num_classes, gen));
}

/// Super-late fusion: the audio and video models' probabilities averaged with weight w.
template <Floating T, class H = AttentionPoolHead<T>>
std::unique_ptr<SuperLateModel<T, H>> super_late(const StudyOptions& o = {}, Generator& gen = default_generator()) {
  return std::make_unique<SuperLateModel<T, H>>(audio_model<T, H>(o, gen), video_model<T, H>(o, gen),
                                                o.super_late_audio_weight);
}

}  // namespace avgrad::models::study
