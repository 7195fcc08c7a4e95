// What the slots of an audio-visual model must provide, stated as C++20 concepts, and
// the types every model speaks: which modalities it has, what it is given, what it returns.
//
// Layouts shared by every model in avgrad::models:
//   audio features  (B, T, F)        time-major spectrogram (FeatureLayout::time_freq)
//   video clips     (B, C, T, H, W)  channels first, as conv3d and torchvision's video models
//   video features  (B, T, D)        precomputed per-frame embeddings (the study's 10×2048)
//   latents         (B, D) pooled or (B, L, D) a sequence (over time, or tokens)
//   logits          (B, K)           every head returns logits; a multi-label head's
//                                    probabilities are sigmoid(logits), a single-label head's softmax(logits)
#pragma once

#include <concepts>
#include <cstdint>
#include <string>

#include "avgrad/nn/module.hpp"

namespace avgrad::models {

/// The two input modalities of the study.
enum class Modality { audio, video };
inline const char* modality_name(Modality m) { return m == Modality::audio ? "audio" : "video"; }

/// Which branches a model has, or which inputs a call provides.
struct Modalities {
  bool audio = true, video = true;
  static constexpr Modalities both() { return {true, true}; }
  static constexpr Modalities audio_only() { return {true, false}; }
  static constexpr Modalities video_only() { return {false, true}; }
  bool has(Modality m) const { return m == Modality::audio ? audio : video; }
  bool operator==(const Modalities&) const = default;
  std::string str() const { return audio && video ? "audio+video" : audio ? "audio" : video ? "video" : "none"; }
};

/// What a fusion does with a modality the call does not provide (an undefined tensor):
///   zeros         — the missing latent (or input, for early fusion) is all zeros;
///   learned_token — a learned vector per modality stands in for it (trained when the
///                   model is trained with modality dropout);
///   skip          — the fusion uses the present modality alone (late and gated fusion
///                   drop the missing term; fusions that cannot, say so in an error).
enum class MissingModality { zeros, learned_token, skip };
inline const char* missing_modality_name(MissingModality m) {
  return m == MissingModality::zeros ? "zeros" : m == MissingModality::learned_token ? "learned_token" : "skip";
}

/// The inputs of one call; an undefined tensor is a missing modality.
template <Floating T, Device D = Cpu> struct AVInput {
  Tensor<T, D> audio, video;
  Modalities present() const { return {audio.defined(), video.defined()}; }
  std::int64_t batch() const { return audio.defined() ? audio.size(0) : video.defined() ? video.size(0) : 0; }
};

/// x on device D: shallow copies when it is there already, else each defined part moved.
template <Device D, Floating T, Device E> AVInput<T, D> to_device(const AVInput<T, E>& x) {
  if constexpr (std::same_as<D, E>)
    return x;
  else
    return {x.audio.defined() ? x.audio.template to<D>() : Tensor<T, D>(),
            x.video.defined() ? x.video.template to<D>() : Tensor<T, D>()};
}

/// Everything a model computes on one call. Undefined where the model or the call has
/// no such thing (a uni-modal model's other latent, an ensemble's fused latent).
template <Floating T, Device D = Cpu> struct AVOutput {
  Tensor<T, D> audio_latent, video_latent;  ///< each branch's encoder output
  Tensor<T, D> fused_latent;                ///< the fusion's output, what the head sees
  Tensor<T, D> logits;                      ///< (B, K), the model's prediction
  Tensor<T, D> audio_logits, video_logits;  ///< per-modality logits where the architecture has them
  const Tensor<T, D>& latent(Modality m) const { return m == Modality::audio ? audio_latent : video_latent; }
};

/// A module of one tensor type: T and D as the module declares them.
template <class M> using module_tensor_t = Tensor<typename M::value_type, typename M::device_type>;

/// An encoder maps one modality's input to its latent, (B, D) or (B, L, D) with D = latent_dim().
template <class E>
concept Encoder = std::derived_from<E, nn::Module<typename E::value_type, typename E::device_type>> &&
    requires(E& e, const E& ce, const module_tensor_t<E>& x) {
  { e.forward(x) } -> std::same_as<module_tensor_t<E>>;
  { ce.latent_dim() } -> std::convertible_to<std::int64_t>;
};

/// A head maps a latent to logits (B, K). Heads are callable on latents alone, which is
/// what the convexity metric does with interpolated latents.
template <class H>
concept Head = std::derived_from<H, nn::Module<typename H::value_type, typename H::device_type>> &&
    requires(H& h, const H& ch, const module_tensor_t<H>& z) {
  { h.forward(z) } -> std::same_as<module_tensor_t<H>>;
  { ch.num_classes() } -> std::convertible_to<std::int64_t>;
  { ch.multi_label() } -> std::convertible_to<bool>;
};

/// A fusion combines the two branches' latents (either may be undefined: missing) into
/// the fused latent of dimension latent_dim().
template <class F>
concept Fusion = std::derived_from<F, nn::Module<typename F::value_type, typename F::device_type>> &&
    requires(F& f, const F& cf, const module_tensor_t<F>& za, const module_tensor_t<F>& zv) {
  { f.fuse(za, zv) } -> std::same_as<module_tensor_t<F>>;
  { cf.latent_dim() } -> std::convertible_to<std::int64_t>;
  { cf.missing() } -> std::same_as<MissingModality>;
};

/// What attacks, metrics and trainers need of any audio-visual model: one call on any
/// subset of its modalities returning every latent and logit, and the head for each
/// latent space (fused, or a branch's own) applicable to latents alone.
template <class M>
concept AVModel = std::derived_from<M, nn::Module<typename M::value_type, typename M::device_type>> &&
    requires(M& m, const M& cm, const AVInput<typename M::value_type, typename M::device_type>& in,
             const module_tensor_t<M>& z, Modality mod) {
  { m.forward(in) } -> std::same_as<AVOutput<typename M::value_type, typename M::device_type>>;
  { cm.modalities() } -> std::same_as<Modalities>;
  { cm.num_classes() } -> std::convertible_to<std::int64_t>;
  { cm.multi_label() } -> std::convertible_to<bool>;
  { m.fused_head_logits(z) } -> std::same_as<module_tensor_t<M>>;
  { m.branch_head_logits(mod, z) } -> std::same_as<module_tensor_t<M>>;
};

/// Input check shared by encoders, fusions and heads: throws "who: expected <expected>,
/// got <shape>" unless x is defined and ok(x) holds (ok is not called on an undefined x).
template <Floating T, Device D, class Pred>
void check_input(const char* who, const Tensor<T, D>& x, Pred&& ok, const std::string& expected) {
  AVGRAD_CHECK(x.defined() && ok(x), who, "expected ", expected, ", got ",
               x.defined() ? x.shape().str() : std::string("an undefined tensor"));
}

}  // namespace avgrad::models
