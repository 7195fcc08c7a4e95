// The mix-up family: input mix-up (one λ for both modalities, a λ per modality, one modality only),
// cross-modal mix-up (the audio of one example with the video of its partner) and latent (manifold)
// mix-up at the encoders' outputs or at the fused latent. Every variant is a MixPlan — a partner
// and weights per example — applied by one function, so guided mix-up reuses the same arithmetic.
//
// Keeps true: for example i with partner j, each mixed modality is λ_m·x_i + (1 − λ_m)·x_j and the
// soft target is λ_y·t_i + (1 − λ_y)·t_j with λ_y = s·λ_audio + (1 − s)·λ_video (s = the audio's
// share of the label, default ½); an unmixed modality has λ_m = 1. With one λ for both, λ_y = λ.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "avgrad/ops/binary.hpp"
#include "avgrad/train/defense.hpp"

namespace avgrad::train {

// ---- sampling ----------------------------------------------------------------------------------

/// A standard normal draw (Box–Muller on the generator's uniforms).
inline double normal_draw(Generator& gen) {
  const double u1 = std::max(gen.next_uniform(), 1e-300), u2 = gen.next_uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

/// Gamma(shape, 1) by Marsaglia & Tsang (2000); shape < 1 through Gamma(shape + 1)·U^(1/shape).
inline double gamma_draw(double shape, Generator& gen) {
  AVGRAD_CHECK(shape > 0 && std::isfinite(shape), "gamma_draw", "shape must be finite and > 0, got ", shape);
  if (shape < 1) {
    const double u = std::max(gen.next_uniform(), 1e-300);
    return gamma_draw(shape + 1, gen) * std::pow(u, 1.0 / shape);
  }
  const double d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double x, v;
    do {
      x = normal_draw(gen);
      v = 1.0 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const double u = gen.next_uniform();
    if (u < 1 - 0.0331 * x * x * x * x || std::log(std::max(u, 1e-300)) < 0.5 * x * x + d * (1 - v + std::log(v)))
      return d * v;
  }
}

/// λ ~ Beta(a, b) as X / (X + Y), X ~ Gamma(a), Y ~ Gamma(b).
inline double beta_draw(double a, double b, Generator& gen) {
  AVGRAD_CHECK(a > 0 && b > 0 && std::isfinite(a) && std::isfinite(b), "beta_draw",
               "Beta parameters must be finite and > 0, got ", a, " and ", b);
  const double x = gamma_draw(a, gen), y = gamma_draw(b, gen);
  return x + y > 0 ? x / (x + y) : 0.5;
}

/// A uniformly random permutation of 0..n−1 (Fisher–Yates).
inline std::vector<std::int64_t> random_permutation(std::int64_t n, Generator& gen) {
  std::vector<std::int64_t> p(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) p[static_cast<std::size_t>(i)] = i;
  for (std::size_t k = p.size(); k > 1; --k) std::swap(p[k - 1], p[gen.next_below(k)]);
  return p;
}

// ---- the plan and its application --------------------------------------------------------------

/// Per example i: its partner j and the weight of i itself in each modality and in the label.
struct MixPlan {
  std::vector<std::int64_t> partner{};
  std::vector<double> lam_audio{}, lam_video{}, lam_label{};

  std::int64_t size() const { return static_cast<std::int64_t>(partner.size()); }
  /// No mixing: everyone its own partner with weight 1.
  static MixPlan identity(std::int64_t n) {
    MixPlan p;
    for (std::int64_t i = 0; i < n; ++i) p.partner.push_back(i);
    p.lam_audio.assign(static_cast<std::size_t>(n), 1.0);
    p.lam_video = p.lam_label = p.lam_audio;
    return p;
  }
  void check(std::int64_t batch) const {
    AVGRAD_CHECK(size() == batch && static_cast<std::int64_t>(lam_audio.size()) == batch &&
                     static_cast<std::int64_t>(lam_video.size()) == batch &&
                     static_cast<std::int64_t>(lam_label.size()) == batch,
                 "MixPlan", "a plan for ", size(), " examples applied to a batch of ", batch);
    for (std::size_t i = 0; i < partner.size(); ++i) {
      AVGRAD_CHECK(partner[i] >= 0 && partner[i] < batch, "MixPlan", "partner ", partner[i], " of example ", i,
                   " is outside the batch [0, ", batch, ")");
      for (double l : {lam_audio[i], lam_video[i], lam_label[i]})
        AVGRAD_CHECK(l >= 0 && l <= 1, "MixPlan", "weight ", l, " of example ", i, " is outside [0, 1]");
    }
  }
};

/// The label weight of a pair of modality weights: s·λ_audio + (1 − s)·λ_video.
inline double label_weight(double lam_audio, double lam_video, double audio_share) {
  return audio_share * lam_audio + (1 - audio_share) * lam_video;
}

/// A batch after mixing: inputs (no gradient) and soft targets (B, K).
template <Floating T, Device D = Cpu> struct MixedBatch {
  AVInput<T, D> x{};
  Tensor<T, D> targets{};
};

namespace detail {

/// One element of a mix: λ·a + (1 − λ)·b in double (a copy where λ = 1).
struct MixPair {
  template <class T> AVGRAD_HOST_DEVICE T operator()(T a, T b, double l) const {
    return l == 1.0 ? a : static_cast<T>(l * static_cast<double>(a) + (1 - l) * static_cast<double>(b));
  }
};

/// λ as a (B, 1, …, 1) tensor broadcasting against a (B, …) tensor of rank `rank`.
template <Floating T, Device D = Cpu> Tensor<T, D> lambda_column(const std::vector<double>& lam, int rank) {
  Shape s;
  s.push_back(static_cast<std::int64_t>(lam.size()));
  for (int r = 1; r < rank; ++r) s.push_back(1);
  std::vector<T> v(lam.begin(), lam.end());
  return from_vector<T>(v, s).template to<D>();
}

/// out_i = λ_i·x_i + (1 − λ_i)·x_{p(i)} row by row, in double with λ exact (inputs carry no
/// gradient): the partner rows gathered, then one elementwise pass on x's device.
template <Floating T, Device D>
Tensor<T, D> mix_rows(const Tensor<T, D>& x, const std::vector<std::int64_t>& partner, const std::vector<double>& lam) {
  NoGradGuard no_grad;
  const auto a = x.detach();
  const auto b = index_select(a, 0, from_vector<std::int64_t>(partner).template to<D>());
  return avgrad::detail::map<T, T, T, double>(a, b, lambda_column<double, D>(lam, a.dim()), MixPair{}, "mix_rows");
}
}  // namespace detail

/// Applies a plan to a batch's inputs and labels (either modality may be missing).
template <Floating T, Device D>
MixedBatch<T, D> apply_mix(const AVBatch<T, D>& b, const MixPlan& plan, std::int64_t num_classes) {
  plan.check(b.size());
  MixedBatch<T, D> m;
  if (b.x.audio.defined()) m.x.audio = detail::mix_rows(b.x.audio, plan.partner, plan.lam_audio);
  if (b.x.video.defined()) m.x.video = detail::mix_rows(b.x.video, plan.partner, plan.lam_video);
  m.targets = detail::mix_rows(soft_targets(b.y, num_classes), plan.partner, plan.lam_label);
  return m;
}

/// λ_i·z_i + (1 − λ_i)·z_{p(i)} for a latent in the graph (B, …): gradients reach both rows.
template <Floating T, Device D> Tensor<T, D> mix_latent(const Tensor<T, D>& z, const std::vector<std::int64_t>& partner,
                                                        const std::vector<double>& lam) {
  AVGRAD_CHECK(z.defined() && z.dim() >= 1 && z.size(0) == static_cast<std::int64_t>(partner.size()), "mix_latent",
               "a latent (B, ...) with B = ", partner.size(), " expected, got ",
               z.defined() ? z.shape().str() : std::string("undefined"));
  const auto l = detail::lambda_column<T, D>(lam, z.dim());
  const auto idx = from_vector<std::int64_t>(partner).template to<D>();
  return l * z + (T(1) - l) * index_select(z, 0, idx);
}

// ---- input mix-up ------------------------------------------------------------------------------

/// Which inputs a mix-up mixes and how its λ are drawn.
enum class MixScope {
  shared,        ///< one λ ~ Beta(α, α) per example for both modalities (and the label)
  per_modality,  ///< independent λ_audio, λ_video ~ Beta(α, α)
  audio_only,    ///< λ_audio ~ Beta(α, α), the video unmixed (λ_video = 1)
  video_only,    ///< λ_video ~ Beta(α, α), the audio unmixed
  cross_modal    ///< λ_audio = λ, λ_video = 1 − λ: mostly i's audio with mostly its partner's video
};
inline const char* mix_scope_name(MixScope s) {
  switch (s) {
    case MixScope::shared:
      return "shared";
    case MixScope::per_modality:
      return "per-modality";
    case MixScope::audio_only:
      return "audio-only";
    case MixScope::video_only:
      return "video-only";
    case MixScope::cross_modal:
      return "cross-modal";
  }
  return "?";
}

struct MixupOptions {
  double alpha = 0.4;  ///< λ ~ Beta(α, α); α → 0 mixes little, α = 1 is uniform
  MixScope scope = MixScope::shared;
  double audio_share = 0.5;   ///< s in λ_y = s·λ_audio + (1 − s)·λ_video
  bool batch_lambda = false;  ///< one λ for the whole batch (Zhang et al.) instead of one per example

  void check(const char* who) const {
    AVGRAD_CHECK(alpha > 0 && std::isfinite(alpha), who, "alpha must be finite and > 0, got ", alpha);
    AVGRAD_CHECK(audio_share >= 0 && audio_share <= 1, who, "audio_share must be in [0, 1], got ", audio_share);
  }
};

/// A plan: partners a random permutation of the batch, weights per the options' scope.
inline MixPlan random_mix_plan(std::int64_t batch, const MixupOptions& o, Generator& gen) {
  o.check("random_mix_plan");
  MixPlan p;
  p.partner = random_permutation(batch, gen);
  const double shared_lam = o.batch_lambda ? beta_draw(o.alpha, o.alpha, gen) : 0.0;
  auto draw = [&] { return o.batch_lambda ? shared_lam : beta_draw(o.alpha, o.alpha, gen); };
  for (std::int64_t i = 0; i < batch; ++i) {
    double la = 1, lv = 1;
    switch (o.scope) {
      case MixScope::shared:
        la = lv = draw();
        break;
      case MixScope::per_modality:
        la = draw();
        lv = o.batch_lambda ? beta_draw(o.alpha, o.alpha, gen) : draw();
        break;
      case MixScope::audio_only:
        la = draw();
        break;
      case MixScope::video_only:
        lv = draw();
        break;
      case MixScope::cross_modal:
        la = draw();
        lv = 1 - la;
        break;
    }
    p.lam_audio.push_back(la);
    p.lam_video.push_back(lv);
    p.lam_label.push_back(o.scope == MixScope::shared ? la : label_weight(la, lv, o.audio_share));
  }
  return p;
}

/// The loss of a model on a planned input mix (one forward) and the accuracy against own labels.
template <AVModel M> StepOutput<typename M::value_type, typename M::device_type> mixed_input_loss(
    M& model, const AVBatch<typename M::value_type, typename M::device_type>& b, const MixPlan& plan, Cost& cost) {
  const auto mixed = apply_mix(b, plan, model.num_classes());
  auto logits = model.forward(mixed.x).logits;
  cost.add_forward(b.size());
  return {soft_label_loss(logits, mixed.targets, model.multi_label()), correct(logits, b.y), b.size()};
}

/// Input mix-up (Zhang et al. 2018) in every scope of MixScope.
template <AVModel M> class InputMixup final : public Defense<M> {
 public:
  using T = typename M::value_type;
  using D = typename M::device_type;
  explicit InputMixup(MixupOptions o = {}) : o_(o) { o.check("InputMixup"); }
  std::string name() const override { return std::string("mixup(") + mix_scope_name(o_.scope) + ")"; }
  StepOutput<T, D> loss(M& model, const AVBatch<T, D>& b, Generator& gen, Cost& cost) override {
    return mixed_input_loss(model, b, random_mix_plan(b.size(), o_, gen), cost);
  }
  const MixupOptions& options() const { return o_; }

 private:
  MixupOptions o_;
};

// ---- latent (manifold) mix-up ------------------------------------------------------------------

/// A model whose encoders, fusion and head can be called one by one (AVClassifier).
template <class M>
concept ComposedAVModel = AVModel<M> && requires(M& m, const models::module_tensor_t<M>& x) {
  { m.audio().forward(x) } -> std::same_as<models::module_tensor_t<M>>;
  { m.video().forward(x) } -> std::same_as<models::module_tensor_t<M>>;
  { m.fusion().fuse(x, x) } -> std::same_as<models::module_tensor_t<M>>;
  { m.head().forward(x) } -> std::same_as<models::module_tensor_t<M>>;
};

/// Where latent mix-up mixes: each encoder's output (before the fusion; λ per modality allowed),
/// or the fused latent the head sees (manifold mix-up at the fusion layer).
enum class LatentLevel { encoders, fused };

/// The logits of a model with the plan applied at a latent level (both modalities present).
template <ComposedAVModel M>
models::module_tensor_t<M> mixed_latent_logits(M& model,
                                               const AVInput<typename M::value_type, typename M::device_type>& x,
                                               const MixPlan& plan, LatentLevel level) {
  AVGRAD_CHECK(x.audio.defined() && x.video.defined(), "latent mix-up", "needs both modalities");
  auto za = model.audio().forward(x.audio);
  auto zv = model.video().forward(x.video);
  if (level == LatentLevel::encoders) {
    za = mix_latent(za, plan.partner, plan.lam_audio);
    zv = mix_latent(zv, plan.partner, plan.lam_video);
    return model.head().forward(model.fusion().fuse(za, zv));
  }
  return model.head().forward(mix_latent(model.fusion().fuse(za, zv), plan.partner, plan.lam_label));
}

struct LatentMixupOptions {
  MixupOptions mix{};  ///< α, scope (at the fused level only `shared` applies: one latent) and audio share
  LatentLevel level = LatentLevel::fused;
};

/// Manifold mix-up (Verma et al. 2019) at the encoders' outputs or at the fused latent.
template <ComposedAVModel M> class LatentMixup final : public Defense<M> {
 public:
  using T = typename M::value_type;
  using D = typename M::device_type;
  explicit LatentMixup(LatentMixupOptions o = {}) : o_(o) {
    o.mix.check("LatentMixup");
    AVGRAD_CHECK(o.level == LatentLevel::encoders || o.mix.scope == MixScope::shared, "LatentMixup",
                 "the fused latent is one tensor: only MixScope::shared applies there, got ",
                 mix_scope_name(o.mix.scope));
  }
  std::string name() const override {
    return std::string("latent-mixup(") + (o_.level == LatentLevel::fused ? "fused" : "encoders") + ", " +
           mix_scope_name(o_.mix.scope) + ")";
  }
  StepOutput<T, D> loss(M& model, const AVBatch<T, D>& b, Generator& gen, Cost& cost) override {
    const auto plan = random_mix_plan(b.size(), o_.mix, gen);
    auto logits = mixed_latent_logits(model, b.x, plan, o_.level);
    cost.add_forward(b.size());
    const auto targets = detail::mix_rows(soft_targets(b.y, model.num_classes()), plan.partner, plan.lam_label);
    return {soft_label_loss(logits, targets, model.multi_label()), correct(logits, b.y), b.size()};
  }

 private:
  LatentMixupOptions o_;
};

}  // namespace avgrad::train
