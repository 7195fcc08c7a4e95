// The study's models by name: the uni-modal models and every fusion, built with identical encoders
// (models/study.hpp) at sizes fitted to a FeatureSet, and handed to generic code as their concrete
// types — one pipeline template serves every model without a virtual forward.
//
//   study::with_model(study::ModelKind::mid, options, gen, [&](auto& model) { train(model); });
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

using Head = models::ClassifierHead<float>;  // AV-Digits is single-label: softmax head, cross entropy
using AudioModel = models::study::AudioModel<float, Head>;
using VideoModel = models::study::VideoModel<float, Head>;
using EarlyModel = models::study::EarlyFusionModel<float, Head>;
using MidModel = models::study::MidFusionModel<float, Head>;
using LateModel = models::study::LateFusionModel<float, Head>;
using SuperLateModel = models::study::SuperLateModel<float, Head>;
using BottleneckModel = models::study::BottleneckModel<float, Head>;

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

/// Builds the model of kind `k` (parameters drawn from `gen`) and returns f(model); f must return
/// the same type for every model.
template <class F> decltype(auto) with_model(ModelKind k, const models::study::StudyOptions& o, Generator& gen, F&& f) {
  namespace ms = models::study;
  switch (k) {
    case ModelKind::audio:
      return f(*ms::audio_model<float, Head>(o, gen));
    case ModelKind::video:
      return f(*ms::video_model<float, Head>(o, gen));
    case ModelKind::early:
      return f(*ms::early_fusion<float, Head>(o, gen));
    case ModelKind::mid:
      return f(*ms::mid_fusion<float, Head>(o, gen));
    case ModelKind::late:
      return f(*ms::late_fusion<float, Head>(o, gen));
    case ModelKind::bottleneck:
      return f(*ms::bottleneck_fusion<float, Head>(o, gen));
    case ModelKind::super_late:
      break;
  }
  return f(*ms::super_late<float, Head>(o, gen));
}

}  // namespace avgrad::study
