// The study's models by name: the uni-modal models and every fusion, built with identical encoders
// (models/study.hpp) at sizes fitted to a FeatureSet, and handed to generic code as their concrete
// types — one pipeline template serves every model without a virtual forward.
//
//   study::with_model(study::ModelKind::mid, options, gen, [&](auto& model) { train(model); });
//   study::with_model<Cuda>(study::ModelKind::mid, options, gen, ...);   // the same on the GPU
#pragma once

#include <array>
#include <memory>
#include <string>
#include <string_view>

#include "avgrad/models/study.hpp"
#include "avgrad/study/features.hpp"

namespace avgrad::study {

enum class ModelKind { audio, video, early, mid, late, super_late, bottleneck };

/// Every model of the study, uni-modal first, in the order tables list them; attention-bottleneck
/// fusion (not in the reference code) last.
inline constexpr std::array<ModelKind, 7> kAllModels = {ModelKind::audio,     ModelKind::video, ModelKind::early,
                                                        ModelKind::mid,       ModelKind::late,  ModelKind::super_late,
                                                        ModelKind::bottleneck};

inline std::string_view model_name(ModelKind k) {
  switch (k) {
    case ModelKind::audio:
      return "audio-only";
    case ModelKind::video:
      return "video-only";
    case ModelKind::early:
      return "early";
    case ModelKind::mid:
      return "mid";
    case ModelKind::late:
      return "late";
    case ModelKind::super_late:
      return "super-late";
    case ModelKind::bottleneck:
      return "bottleneck";
  }
  return "?";
}

/// "audio-only" (or "audio"), "video-only" ("video"), "early", "mid", "late", "super-late",
/// "bottleneck"; anything else throws listing the names.
inline ModelKind parse_model_kind(std::string_view s) {
  if (s == "audio") return ModelKind::audio;
  if (s == "video") return ModelKind::video;
  for (ModelKind k : kAllModels)
    if (model_name(k) == s) return k;
  throw Error("study", avgrad::detail::concat(
                           "unknown model '", s,
                           "'; expected one of audio-only, video-only, early, mid, late, super-late, bottleneck"));
}

inline bool is_fused(ModelKind k) { return k != ModelKind::audio && k != ModelKind::video; }

/// Which inputs a model reads: uni-modal models are attacked on their own modality only.
inline bool reads_audio(ModelKind k) { return k != ModelKind::video; }
inline bool reads_video(ModelKind k) { return k != ModelKind::audio; }

/// The super-late model is not trained: it averages the trained audio-only and video-only models.
inline bool is_trained(ModelKind k) { return k != ModelKind::super_late; }

/// The study's models on device D (their head decides: models/study.hpp); AV-Digits is
/// single-label, so every model ends in a softmax head trained with cross entropy.
template <Device D> using HeadOn = models::ClassifierHead<float, D>;
template <Device D> using AudioModelOn = models::study::AudioModel<float, HeadOn<D>>;
template <Device D> using VideoModelOn = models::study::VideoModel<float, HeadOn<D>>;
template <Device D> using EarlyModelOn = models::study::EarlyFusionModel<float, HeadOn<D>>;
template <Device D> using MidModelOn = models::study::MidFusionModel<float, HeadOn<D>>;
template <Device D> using LateModelOn = models::study::LateFusionModel<float, HeadOn<D>>;
template <Device D> using SuperLateModelOn = models::study::SuperLateModel<float, HeadOn<D>>;
template <Device D> using BottleneckModelOn = models::study::BottleneckModel<float, HeadOn<D>>;

using Head = HeadOn<Cpu>;
using AudioModel = AudioModelOn<Cpu>;
using VideoModel = VideoModelOn<Cpu>;
using EarlyModel = EarlyModelOn<Cpu>;
using MidModel = MidModelOn<Cpu>;
using LateModel = LateModelOn<Cpu>;
using SuperLateModel = SuperLateModelOn<Cpu>;
using BottleneckModel = BottleneckModelOn<Cpu>;

/// Whether M is the (untrained) super-late ensemble, on whichever device.
template <class M> inline constexpr bool is_super_late_model =
    std::same_as<M, SuperLateModelOn<typename M::device_type>>;

/// The small study sizes (StudyOptions::small) with the input geometry of `fs`.
inline models::study::StudyOptions model_options(const FeatureSet& fs) {
  auto so = models::study::StudyOptions::small(fs.num_classes);
  so.audio_frames = fs.audio_frames();
  so.audio.stem.num_bins = fs.mel_bins();
  so.video_frames = fs.video_frames();
  so.video_dim = fs.video_dim();
  so.video.input_dim = so.video_dim;
  so.video.num_frames = so.video_frames;
  return so;
}

/// Builds the model of kind `k` on device D (parameters drawn from `gen`) and returns f(model); f
/// must return the same type for every model.
template <Device D = Cpu, class F>
decltype(auto) with_model(ModelKind k, const models::study::StudyOptions& o, Generator& gen, F&& f) {
  namespace ms = models::study;
  using H = HeadOn<D>;
  switch (k) {
    case ModelKind::audio:
      return f(*ms::audio_model<float, H>(o, gen));
    case ModelKind::video:
      return f(*ms::video_model<float, H>(o, gen));
    case ModelKind::early:
      return f(*ms::early_fusion<float, H>(o, gen));
    case ModelKind::mid:
      return f(*ms::mid_fusion<float, H>(o, gen));
    case ModelKind::late:
      return f(*ms::late_fusion<float, H>(o, gen));
    case ModelKind::bottleneck:
      return f(*ms::bottleneck_fusion<float, H>(o, gen));
    case ModelKind::super_late:
      break;
  }
  return f(*ms::super_late<float, H>(o, gen));
}

}  // namespace avgrad::study
