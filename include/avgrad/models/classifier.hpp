// Whole models: the composition AVClassifier<AudioEncoder, VideoEncoder, Fusion, Head>,
// its one-branch twin UniModalClassifier<Encoder, Head> (the same encoder and head
// templates, so uni-modal and multi-modal models compare like for like), and the
// super-late SuperLateEnsemble of two classifiers. All three satisfy models::AVModel:
// attacks, metrics and trainers treat them alike.
//
//   auto model = models::AVClassifier(
//       std::make_unique<models::CnnTransformer<float>>(audio_options),
//       std::make_unique<models::FeatureSequenceEncoder<float>>(video_options),
//       std::make_unique<models::LateFusion<float>>(fusion_options),
//       std::make_unique<models::AttentionPoolHead<float>>(head_options));
//   auto out = model.forward({.audio = fbank, .video = features});  // out.logits, out.fused_latent, …
#pragma once

#include <cmath>
#include <memory>
#include <utility>

#include "avgrad/models/concepts.hpp"
#include "avgrad/ops/softmax.hpp"
#include "avgrad/ops/unary.hpp"

namespace avgrad::models {

/// Branch and fusion modules of one model agree on T and Device.
template <class A, class B>
concept SameTensorType = std::same_as<typename A::value_type, typename B::value_type> &&
    std::same_as<typename A::device_type, typename B::device_type>;

template <Encoder AudioEncoder, Encoder VideoEncoder, Fusion FusionT, Head HeadT>
requires SameTensorType<AudioEncoder, VideoEncoder> && SameTensorType<AudioEncoder, FusionT> &&
    SameTensorType<AudioEncoder, HeadT>
class AVClassifier : public nn::Module<typename HeadT::value_type, typename HeadT::device_type> {
 public:
  using T = typename HeadT::value_type;
  using D = typename HeadT::device_type;
  using Tensor_ = Tensor<T, D>;

  /// Takes ownership of the four parts, registered as "audio", "video", "fusion", "head";
  /// checks that the widths chain (encoder latents → fusion inputs, fusion → head).
  AVClassifier(std::unique_ptr<AudioEncoder> audio, std::unique_ptr<VideoEncoder> video,
               std::unique_ptr<FusionT> fusion, std::unique_ptr<HeadT> head)
      : audio_(std::move(audio)), video_(std::move(video)), fusion_(std::move(fusion)), head_(std::move(head)) {
    AVGRAD_CHECK(audio_ && video_ && fusion_ && head_, "AVClassifier", "a part is null (audio ", audio_ != nullptr,
                 ", video ", video_ != nullptr, ", fusion ", fusion_ != nullptr, ", head ", head_ != nullptr, ")");
    if constexpr (requires {
                    fusion_->audio_dim();
                    fusion_->video_dim();
                  }) {
      AVGRAD_CHECK(fusion_->audio_dim() == audio_->latent_dim() && fusion_->video_dim() == video_->latent_dim(),
                   "AVClassifier", "the encoders produce latents of width audio ", audio_->latent_dim(), ", video ",
                   video_->latent_dim(), " but the fusion expects audio ", fusion_->audio_dim(), ", video ",
                   fusion_->video_dim());
    }
    if constexpr (requires { head_->in_dim(); })
      AVGRAD_CHECK(head_->in_dim() == fusion_->latent_dim(), "AVClassifier", "the fusion produces width ",
                   fusion_->latent_dim(), " but the head expects ", head_->in_dim());
    this->register_module("audio", *audio_);
    this->register_module("video", *video_);
    this->register_module("fusion", *fusion_);
    this->register_module("head", *head_);
  }

  /// Any subset of the modalities (an undefined input is missing: the fusion's
  /// MissingModality applies). With branch_logits, also each present branch's logits:
  /// the head on the fusion of that branch alone (see branch_head_logits).
  AVOutput<T, D> forward(const AVInput<T, D>& in, bool branch_logits = false) {
    AVGRAD_CHECK(in.audio.defined() || in.video.defined(), "AVClassifier", "no input: both modalities are missing");
    AVOutput<T, D> out;
    if (in.audio.defined()) out.audio_latent = audio_->forward(in.audio);
    if (in.video.defined()) out.video_latent = video_->forward(in.video);
    out.fused_latent = fusion_->fuse(out.audio_latent, out.video_latent);
    out.logits = head_->forward(out.fused_latent);
    if (branch_logits) {
      if (out.audio_latent.defined()) out.audio_logits = branch_head_logits(Modality::audio, out.audio_latent);
      if (out.video_latent.defined()) out.video_logits = branch_head_logits(Modality::video, out.video_latent);
    }
    return out;
  }
  /// Logits only.
  Tensor_ logits(const Tensor_& audio, const Tensor_& video) { return forward({audio, video}).logits; }

  /// The head on a fused latent (real or interpolated).
  Tensor_ fused_head_logits(const Tensor_& z) { return head_->forward(z); }
  /// The model's prediction from one branch's latent alone: the fusion with the other
  /// modality missing, then the head — what the model predicts when it sees only that branch.
  Tensor_ branch_head_logits(Modality m, const Tensor_& z) {
    return head_->forward(m == Modality::audio ? fusion_->fuse(z, Tensor_{}) : fusion_->fuse(Tensor_{}, z));
  }

  Modalities modalities() const { return Modalities::both(); }
  std::int64_t num_classes() const { return head_->num_classes(); }
  bool multi_label() const { return head_->multi_label(); }

  AudioEncoder& audio() { return *audio_; }
  VideoEncoder& video() { return *video_; }
  FusionT& fusion() { return *fusion_; }
  HeadT& head() { return *head_; }
  std::string describe() const override {
    return detail::concat("AVClassifier(", audio_->describe(), ", ", video_->describe(), ", ", fusion_->describe(),
                          ", ", head_->describe(), ")");
  }

 private:
  std::unique_ptr<AudioEncoder> audio_;
  std::unique_ptr<VideoEncoder> video_;
  std::unique_ptr<FusionT> fusion_;
  std::unique_ptr<HeadT> head_;
};

/// One encoder and a head: the audio-only or video-only model. Registered as "audio" or
/// "video" (by its modality) and "head", so its encoder's state dict keys match the
/// corresponding branch of an AVClassifier.
template <Encoder EncoderT, Head HeadT>
requires SameTensorType<EncoderT, HeadT>
class UniModalClassifier : public nn::Module<typename HeadT::value_type, typename HeadT::device_type> {
 public:
  using T = typename HeadT::value_type;
  using D = typename HeadT::device_type;
  using Tensor_ = Tensor<T, D>;

  UniModalClassifier(Modality modality, std::unique_ptr<EncoderT> encoder, std::unique_ptr<HeadT> head)
      : modality_(modality), encoder_(std::move(encoder)), head_(std::move(head)) {
    AVGRAD_CHECK(encoder_ && head_, "UniModalClassifier", "the encoder or the head is null");
    if constexpr (requires { head_->in_dim(); })
      AVGRAD_CHECK(head_->in_dim() == encoder_->latent_dim(), "UniModalClassifier", "the encoder produces width ",
                   encoder_->latent_dim(), " but the head expects ", head_->in_dim());
    this->register_module(modality_name(modality), *encoder_);
    this->register_module("head", *head_);
  }

  /// Uses the input of its own modality; the other one is ignored. The branch latent is
  /// also the fused latent, and the branch logits are the logits.
  AVOutput<T, D> forward(const AVInput<T, D>& in, bool /*branch_logits*/ = false) {
    const Tensor_& x = modality_ == Modality::audio ? in.audio : in.video;
    AVGRAD_CHECK(x.defined(), "UniModalClassifier", "this is a ", modality_name(modality_), "-only model and the ",
                 modality_name(modality_), " input is missing");
    AVOutput<T, D> out;
    auto z = encoder_->forward(x);
    (modality_ == Modality::audio ? out.audio_latent : out.video_latent) = z;
    out.fused_latent = z;
    out.logits = head_->forward(z);
    (modality_ == Modality::audio ? out.audio_logits : out.video_logits) = out.logits;
    return out;
  }
  Tensor_ logits(const Tensor_& x) {
    return forward(modality_ == Modality::audio ? AVInput<T, D>{x, {}} : AVInput<T, D>{{}, x}).logits;
  }
  Tensor_ fused_head_logits(const Tensor_& z) { return head_->forward(z); }
  Tensor_ branch_head_logits(Modality m, const Tensor_& z) {
    AVGRAD_CHECK(m == modality_, "UniModalClassifier", "a ", modality_name(modality_), "-only model has no ",
                 modality_name(m), " branch");
    return head_->forward(z);
  }

  Modalities modalities() const {
    return modality_ == Modality::audio ? Modalities::audio_only() : Modalities::video_only();
  }
  Modality modality() const { return modality_; }
  std::int64_t num_classes() const { return head_->num_classes(); }
  bool multi_label() const { return head_->multi_label(); }
  EncoderT& encoder() { return *encoder_; }
  HeadT& head() { return *head_; }
  std::string describe() const override {
    return detail::concat("UniModalClassifier(", modality_name(modality_), ": ", encoder_->describe(), ", ",
                          head_->describe(), ")");
  }

 private:
  Modality modality_;
  std::unique_ptr<EncoderT> encoder_;
  std::unique_ptr<HeadT> head_;
};

/// Super-late fusion: a weighted average of two uni-modal classifiers' probabilities,
/// P = w·P_audio + (1 − w)·P_video (the study: w = 0.6). Its logits are the log of P
/// for single-label models (softmax(logits) = P, so cross entropy on them is the mixture's
/// NLL) and logit(P) for multi-label ones (sigmoid(logits) = P). There is no fused latent;
/// each branch's latent goes through its own model's head. A missing modality gets weight 0.
template <AVModel AudioModel, AVModel VideoModel>
requires SameTensorType<AudioModel, VideoModel>
class SuperLateEnsemble : public nn::Module<typename AudioModel::value_type, typename AudioModel::device_type> {
 public:
  using T = typename AudioModel::value_type;
  using D = typename AudioModel::device_type;
  using Tensor_ = Tensor<T, D>;

  SuperLateEnsemble(std::unique_ptr<AudioModel> audio, std::unique_ptr<VideoModel> video, double audio_weight = 0.6,
                    double clamp_eps = 1e-7)
      : audio_(std::move(audio)), video_(std::move(video)), w_(audio_weight), eps_(clamp_eps) {
    AVGRAD_CHECK(audio_ && video_, "SuperLateEnsemble", "a member model is null");
    AVGRAD_CHECK(audio_->modalities() == Modalities::audio_only() && video_->modalities() == Modalities::video_only(),
                 "SuperLateEnsemble", "needs an audio-only and a video-only model, got ", audio_->modalities().str(),
                 " and ", video_->modalities().str());
    AVGRAD_CHECK(audio_->num_classes() == video_->num_classes() && audio_->multi_label() == video_->multi_label(),
                 "SuperLateEnsemble", "the two models predict different label sets (", audio_->num_classes(), " vs ",
                 video_->num_classes(), " classes)");
    AVGRAD_CHECK(w_ >= 0 && w_ <= 1, "SuperLateEnsemble", "audio_weight must be in [0, 1], got ", w_);
    AVGRAD_CHECK(eps_ > 0 && eps_ < 0.5, "SuperLateEnsemble", "clamp_eps must be in (0, 0.5), got ", eps_);
    this->register_module("audio_model", *audio_);
    this->register_module("video_model", *video_);
  }

  AVOutput<T, D> forward(const AVInput<T, D>& in, bool /*branch_logits*/ = false) {
    AVGRAD_CHECK(in.audio.defined() || in.video.defined(), "SuperLateEnsemble", "both modalities are missing");
    AVOutput<T, D> out;
    if (in.audio.defined()) {
      auto a = audio_->forward({in.audio, {}});
      out.audio_latent = a.audio_latent;
      out.audio_logits = a.logits;
    }
    if (in.video.defined()) {
      auto v = video_->forward({{}, in.video});
      out.video_latent = v.video_latent;
      out.video_logits = v.logits;
    }
    out.logits = combine(out.audio_logits, out.video_logits);
    return out;
  }
  /// The ensemble's logits from the two branches' logits (either may be undefined).
  Tensor_ combine(const Tensor_& la, const Tensor_& lv) const {
    const double wa = lv.defined() ? (la.defined() ? w_ : 0.0) : 1.0;
    auto prob = [&](const Tensor_& l) { return multi_label() ? sigmoid(l) : softmax(l, 1); };
    Tensor_ p = !la.defined() ? prob(lv) : !lv.defined() ? prob(la) : prob(la) * wa + prob(lv) * (1.0 - wa);
    p = clamp(p, eps_, 1.0 - eps_);
    return multi_label() ? log(p) - log1p(-p) : log(p);
  }
  Tensor_ fused_head_logits(const Tensor_&) {
    AVGRAD_CHECK(false, "SuperLateEnsemble", "a super-late ensemble has no fused latent; use branch_head_logits");
    return {};
  }
  Tensor_ branch_head_logits(Modality m, const Tensor_& z) {
    return m == Modality::audio ? audio_->branch_head_logits(m, z) : video_->branch_head_logits(m, z);
  }

  Modalities modalities() const { return Modalities::both(); }
  std::int64_t num_classes() const { return audio_->num_classes(); }
  bool multi_label() const { return audio_->multi_label(); }
  double audio_weight() const { return w_; }
  AudioModel& audio_model() { return *audio_; }
  VideoModel& video_model() { return *video_; }
  std::string describe() const override { return detail::concat("SuperLateEnsemble(audio weight ", w_, ")"); }

 private:
  std::unique_ptr<AudioModel> audio_;
  std::unique_ptr<VideoModel> video_;
  double w_, eps_;
};

}  // namespace avgrad::models
