// Metric-guided mix-up, avgrad's definition (../shared/PAPER.md): every epoch or every N steps the
// density and convexity of each class are measured in the audio, video and fused latent spaces on a
// held-out subset, and mixing is spent where they are low — which examples get mixed, with which
// partner (same class or another needy class), and in which modality. The policy that turns the
// metrics into a MixPlan is a pluggable strategy object; ConvexityDensityPolicy is the default.
//
// Keeps true: before the first measurement every class has the same need, so the default policy
// is then plain mix-up at its base rate; the measured metrics are part of the defense's state and
// go into checkpoints, so a resumed run mixes exactly as the uninterrupted one.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <sstream>

#include "avgrad/metrics/latent.hpp"
#include "avgrad/train/mixup.hpp"

namespace avgrad::train {

/// One latent space's per-class metrics (NaN where a class has too few held-out members).
struct SpaceMetrics {
  std::vector<double> convexity{}, purity{};
};

/// The metrics a guidance policy reads: per class, in the audio, video and fused spaces.
struct GuidanceMetrics {
  std::int64_t num_classes = 0;
  std::int64_t measured_at_step = -1;    ///< -1: never measured
  std::array<SpaceMetrics, 3> spaces{};  ///< indexed by Space
  enum Space { audio = 0, video = 1, fused = 2 };
  const SpaceMetrics& at(Space s) const { return spaces[static_cast<std::size_t>(s)]; }
  bool measured() const { return measured_at_step >= 0; }
};

struct GuidanceMeasureOptions {
  std::int64_t convexity_pairs = 200;  ///< interpolations per class and space
  std::int64_t density_k = 10;         ///< k of the kNN purity
  std::int64_t batch = 256;            ///< held-out examples per forward
  std::uint64_t seed = 0;              ///< pairs and λ of the convexity metric
};

/// Measures the metrics of `model` on a held-out set (eval mode, no gradient; the model's mode is
/// restored). Adds its forward passes (held-out batches and head calls) to `cost`.
/// On another device the latents come to the host for the metrics; the head still runs on the
/// model's device (the mixed latents go there and their logits come back).
template <AVModel M>
GuidanceMetrics measure_guidance_metrics(M& model,
                                         const AVBatch<typename M::value_type, typename M::device_type>& heldout,
                                         const GuidanceMeasureOptions& o, Cost& cost) {
  using T = typename M::value_type;
  using D = typename M::device_type;
  AVGRAD_CHECK(!heldout.y.multi_label(), "measure_guidance_metrics",
               "guided mix-up needs class labels; multi-hot labels are not supported");
  AVGRAD_CHECK(heldout.x.audio.defined() && heldout.x.video.defined(), "measure_guidance_metrics",
               "the held-out set needs both modalities");
  AVGRAD_CHECK(o.convexity_pairs >= 1 && o.density_k >= 1 && o.batch >= 1, "measure_guidance_metrics",
               "convexity_pairs, density_k and batch must be >= 1");
  ModeGuard<M> mode(model, false);
  NoGradGuard no_grad;
  const std::int64_t N = heldout.size();
  std::vector<Tensor<T, Cpu>> za, zv, zf;
  for (std::int64_t s = 0; s < N; s += o.batch) {
    const std::int64_t e = std::min(N, s + o.batch);
    auto out = model.forward({heldout.x.audio.slice(0, s, e), heldout.x.video.slice(0, s, e)});
    cost.add_forward(e - s);
    za.push_back(out.audio_latent.detach().template to<Cpu>());
    zv.push_back(out.video_latent.detach().template to<Cpu>());
    zf.push_back(out.fused_latent.detach().template to<Cpu>());
  }
  const auto labels = heldout.y.classes.template to<Cpu>().to_vector();
  const auto sets = metrics::ClassSets::single(labels, model.num_classes());
  GuidanceMetrics g;
  g.num_classes = model.num_classes();
  metrics::ConvexityOptions co{.pairs = o.convexity_pairs, .seed = o.seed, .batch = o.batch};
  const std::array<std::vector<Tensor<T, Cpu>>*, 3> parts{&za, &zv, &zf};
  for (int s = 0; s < 3; ++s) {
    const auto z = concat(*parts[static_cast<std::size_t>(s)], 0);
    std::function<Tensor<T, Cpu>(const Tensor<T, Cpu>&)> head;
    if (s == 2)
      head = [&](const Tensor<T, Cpu>& x) { return model.fused_head_logits(x.template to<D>()).template to<Cpu>(); };
    else
      head = [&, s](const Tensor<T, Cpu>& x) {
        return model.branch_head_logits(s == 0 ? Modality::audio : Modality::video, x.template to<D>())
            .template to<Cpu>();
      };
    auto& sp = g.spaces[static_cast<std::size_t>(s)];
    for (const auto& c : metrics::convexity<T>(head, z, sets, co)) {
      sp.convexity.push_back(c.convexity);
      if (c.members >= 2)
        cost.add_forward(0, (o.convexity_pairs + o.batch - 1) / o.batch), cost.forward_examples += c.pairs;
    }
    for (const auto& d : metrics::density(z, sets, metrics::DensityOptions{.k = o.density_k}))
      sp.purity.push_back(d.purity);
  }
  g.measured_at_step = 0;
  return g;
}

/// Turns metrics into a mixing plan for a batch of class labels. Implementations must draw every
/// random number from `gen`.
class GuidancePolicy {
 public:
  virtual ~GuidancePolicy() = default;
  virtual std::string name() const = 0;
  /// Parameters as "key=value" pairs, for logs and docs.
  virtual std::string describe() const = 0;
  virtual MixPlan plan(const GuidanceMetrics& m, const std::vector<std::int64_t>& labels, Generator& gen) const = 0;
};

/// The default policy's parameters.
struct ConvexityDensityOptions {
  double alpha = 0.4;             ///< λ ~ Beta(α, α) for a mixed modality
  double mix_rate = 0.5;          ///< mean fraction of examples mixed per batch
  double convexity_weight = 0.5;  ///< w in need = w·(1 − C) + (1 − w)·(1 − purity)
  double gamma = 1.0;             ///< need is raised to γ: > 1 concentrates mixing on the worst classes
  double floor = 0.05;            ///< added to every need, so no class is never mixed
  double same_class = 0.5;        ///< probability that a mixed example's partner is of its own class
  double audio_share = 0.5;       ///< s in λ_y = s·λ_audio + (1 − s)·λ_video

  void check() const {
    const char* who = "ConvexityDensityPolicy";
    AVGRAD_CHECK(alpha > 0 && std::isfinite(alpha), who, "alpha must be finite and > 0, got ", alpha);
    AVGRAD_CHECK(mix_rate >= 0 && mix_rate <= 1, who, "mix_rate must be in [0, 1], got ", mix_rate);
    AVGRAD_CHECK(convexity_weight >= 0 && convexity_weight <= 1, who, "convexity_weight must be in [0, 1], got ",
                 convexity_weight);
    AVGRAD_CHECK(gamma > 0 && std::isfinite(gamma), who, "gamma must be finite and > 0, got ", gamma);
    AVGRAD_CHECK(floor >= 0 && std::isfinite(floor), who, "floor must be finite and >= 0, got ", floor);
    AVGRAD_CHECK(same_class >= 0 && same_class <= 1, who, "same_class must be in [0, 1], got ", same_class);
    AVGRAD_CHECK(audio_share >= 0 && audio_share <= 1, who, "audio_share must be in [0, 1], got ", audio_share);
  }
};

/// The default policy. need_c(space) = floor + (w·(1 − C_c) + (1 − w)·(1 − purity_c))^γ (a class
/// without metrics gets the mean need of the others). For a batch:
///  - example i of class c is mixed with probability min(1, mix_rate · need_c(fused) / mean_b need(fused));
///  - its partner is, with probability same_class, another example of class c (filling the gaps of
///    the class's own region, which is what convexity measures), else an example of another class
///    c' drawn ∝ need_c'(fused) (pushing the boundary between needy classes); same-class falls back to
///    cross-class when the batch has no other member of c;
///  - modality m ∈ {audio, video} is mixed with probability need_c(m) / max(need_c(audio),
///    need_c(video)): the needier modality always, the other in proportion; mixed modalities get
///    λ ~ Beta(α, α), the others λ = 1, and the label λ_y = s·λ_audio + (1 − s)·λ_video.
class ConvexityDensityPolicy final : public GuidancePolicy {
 public:
  explicit ConvexityDensityPolicy(ConvexityDensityOptions o = {}) : o_(o) { o.check(); }
  std::string name() const override { return "convexity-density"; }
  std::string describe() const override {
    std::ostringstream s;
    s << "alpha=" << o_.alpha << " mix_rate=" << o_.mix_rate << " convexity_weight=" << o_.convexity_weight
      << " gamma=" << o_.gamma << " floor=" << o_.floor << " same_class=" << o_.same_class
      << " audio_share=" << o_.audio_share;
    return s.str();
  }
  const ConvexityDensityOptions& options() const { return o_; }

  /// need_c for every class in one space (all 1 + floor before any measurement).
  std::vector<double> needs(const GuidanceMetrics& m, GuidanceMetrics::Space space, std::int64_t num_classes) const {
    std::vector<double> need(static_cast<std::size_t>(num_classes), 1.0 + o_.floor);
    if (!m.measured()) return need;
    const auto& sp = m.at(space);
    AVGRAD_CHECK(static_cast<std::int64_t>(sp.convexity.size()) == num_classes &&
                     static_cast<std::int64_t>(sp.purity.size()) == num_classes,
                 "ConvexityDensityPolicy", "metrics for ", sp.convexity.size(), " classes, labels for ", num_classes);
    double sum = 0;
    std::int64_t n = 0;
    for (std::int64_t c = 0; c < num_classes; ++c) {
      const double C = sp.convexity[static_cast<std::size_t>(c)], P = sp.purity[static_cast<std::size_t>(c)];
      if (std::isnan(C) || std::isnan(P)) {
        need[static_cast<std::size_t>(c)] = NAN;
        continue;
      }
      const double raw = o_.convexity_weight * (1 - C) + (1 - o_.convexity_weight) * (1 - P);
      need[static_cast<std::size_t>(c)] = o_.floor + std::pow(std::clamp(raw, 0.0, 1.0), o_.gamma);
      sum += need[static_cast<std::size_t>(c)];
      ++n;
    }
    const double mean = n ? sum / static_cast<double>(n) : 1.0 + o_.floor;
    for (auto& v : need)
      if (std::isnan(v)) v = mean;
    return need;
  }

  MixPlan plan(const GuidanceMetrics& m, const std::vector<std::int64_t>& labels, Generator& gen) const override {
    const std::int64_t B = static_cast<std::int64_t>(labels.size());
    const std::int64_t K =
        m.measured() ? m.num_classes : (labels.empty() ? 1 : *std::max_element(labels.begin(), labels.end()) + 1);
    for (std::size_t i = 0; i < labels.size(); ++i)
      AVGRAD_CHECK(labels[i] >= 0 && labels[i] < K, "ConvexityDensityPolicy", "label ", labels[i], " of example ", i,
                   " is outside [0, ", K, ")");
    const auto nf = needs(m, GuidanceMetrics::fused, K);
    const auto na = needs(m, GuidanceMetrics::audio, K);
    const auto nv = needs(m, GuidanceMetrics::video, K);
    double mean = 0;
    for (auto c : labels) mean += nf[static_cast<std::size_t>(c)];
    mean = B ? mean / static_cast<double>(B) : 1.0;
    MixPlan p = MixPlan::identity(B);
    for (std::int64_t i = 0; i < B; ++i) {
      const auto ii = static_cast<std::size_t>(i);
      const auto c = static_cast<std::size_t>(labels[ii]);
      // Every example draws the same number of uniforms whether mixed or not, so one example's
      // choice never shifts the draws of the next.
      const double u_mix = gen.next_uniform(), u_same = gen.next_uniform(), u_pick = gen.next_uniform();
      const double u_a = gen.next_uniform(), u_v = gen.next_uniform();
      if (u_mix >= std::min(1.0, o_.mix_rate * nf[c] / mean)) continue;
      std::vector<std::int64_t> same, other;
      std::vector<double> other_w;
      for (std::int64_t j = 0; j < B; ++j) {
        if (j == i) continue;
        if (labels[static_cast<std::size_t>(j)] == labels[ii])
          same.push_back(j);
        else {
          other.push_back(j);
          other_w.push_back(nf[static_cast<std::size_t>(labels[static_cast<std::size_t>(j)])]);
        }
      }
      std::int64_t j = -1;
      if (!same.empty() && (u_same < o_.same_class || other.empty())) {
        j = same[std::min(same.size() - 1, static_cast<std::size_t>(u_pick * static_cast<double>(same.size())))];
      } else if (!other.empty()) {
        double total = 0;
        for (double w : other_w) total += w;
        double acc = 0, target = u_pick * total;
        j = other.back();
        for (std::size_t k = 0; k < other.size(); ++k) {
          acc += other_w[k];
          if (target < acc) {
            j = other[k];
            break;
          }
        }
      }
      if (j < 0) continue;  // a batch of one
      const double top = std::max(na[c], nv[c]);
      const bool mix_a = u_a < na[c] / top, mix_v = u_v < nv[c] / top;
      const double la = mix_a ? beta_draw(o_.alpha, o_.alpha, gen) : 1.0;
      const double lv = mix_v ? beta_draw(o_.alpha, o_.alpha, gen) : 1.0;
      p.partner[ii] = j;
      p.lam_audio[ii] = la;
      p.lam_video[ii] = lv;
      p.lam_label[ii] = label_weight(la, lv, o_.audio_share);
    }
    return p;
  }

 private:
  ConvexityDensityOptions o_;
};

/// Where guided mix-up applies its plans.
enum class GuidedLevel { input, encoders };

struct GuidedMixupOptions {
  std::int64_t refresh_every = 0;  ///< re-measure every N optimizer steps; 0: at the start of every epoch
  GuidanceMeasureOptions measure{};
  GuidedLevel level = GuidedLevel::input;  ///< encoders: the plan mixes the encoders' latents (needs ComposedAVModel)
};

/// Mix-up guided by the latent metrics of a held-out subset, through a GuidancePolicy.
template <AVModel M> class GuidedMixup final : public Defense<M> {
 public:
  using T = typename M::value_type;
  using D = typename M::device_type;
  /// `heldout` is a host batch; it is kept on the model's device.
  GuidedMixup(const AVBatch<T>& heldout, std::shared_ptr<const GuidancePolicy> policy = nullptr,
              GuidedMixupOptions o = {})
      : heldout_(heldout.template to<D>()),
        policy_(policy ? std::move(policy) : std::make_shared<ConvexityDensityPolicy>()),
        o_(o) {
    AVGRAD_CHECK(o.refresh_every >= 0, "GuidedMixup", "refresh_every must be >= 0, got ", o.refresh_every);
    AVGRAD_CHECK(heldout_.size() >= 2 && !heldout_.y.multi_label(), "GuidedMixup",
                 "needs a held-out set of at least 2 examples with class labels");
    if constexpr (!ComposedAVModel<M>)
      AVGRAD_CHECK(o.level == GuidedLevel::input, "GuidedMixup",
                   "latent-level guided mix-up needs a model with separate encoders, fusion and head");
  }
  std::string name() const override {
    return std::string("guided-mixup(") + policy_->name() +
           (o_.level == GuidedLevel::input ? ", input" : ", encoders") + ")";
  }
  void before_step(M& model, std::int64_t step, Cost& cost) override {
    if (o_.refresh_every > 0 && step % o_.refresh_every == 0) refresh(model, step, cost);
  }
  void on_epoch_start(M& model, std::int64_t, std::int64_t step, Cost& cost) override {
    if (o_.refresh_every == 0) refresh(model, step, cost);
  }
  StepOutput<T, D> loss(M& model, const AVBatch<T, D>& b, Generator& gen, Cost& cost) override {
    AVGRAD_CHECK(!b.y.multi_label(), "GuidedMixup", "needs class labels; multi-hot labels are not supported");
    const auto plan = policy_->plan(metrics_, b.y.classes.template to<Cpu>().to_vector(), gen);
    if constexpr (ComposedAVModel<M>) {
      if (o_.level == GuidedLevel::encoders) {
        auto logits = mixed_latent_logits(model, b.x, plan, LatentLevel::encoders);
        cost.add_forward(b.size());
        const auto targets = detail::mix_rows(soft_targets(b.y, model.num_classes()), plan.partner, plan.lam_label);
        return {soft_label_loss(logits, targets, false), correct(logits, b.y), b.size()};
      }
    }
    return mixed_input_loss(model, b, plan, cost);
  }
  /// Measures now (also what the hooks call).
  void refresh(M& model, std::int64_t step, Cost& cost) {
    auto mo = o_.measure;
    mo.seed = o_.measure.seed + static_cast<std::uint64_t>(step);  // fresh pairs each time, reproducible
    metrics_ = measure_guidance_metrics(model, heldout_, mo, cost);
    metrics_.measured_at_step = step;
  }
  const GuidanceMetrics& metrics() const { return metrics_; }
  const GuidancePolicy& policy() const { return *policy_; }

  std::map<std::string, std::string> state_dict() const override {
    std::map<std::string, std::string> s;
    s["measured_at_step"] = std::to_string(metrics_.measured_at_step);
    s["num_classes"] = std::to_string(metrics_.num_classes);
    static const char* names[3] = {"audio", "video", "fused"};
    for (int k = 0; k < 3; ++k) {
      const auto& sp = metrics_.spaces[static_cast<std::size_t>(k)];
      for (std::size_t c = 0; c < sp.convexity.size(); ++c) {
        s[::avgrad::detail::concat(names[k], ".convexity.", c)] = detail::exact(sp.convexity[c]);
        s[::avgrad::detail::concat(names[k], ".purity.", c)] = detail::exact(sp.purity[c]);
      }
    }
    return s;
  }
  void load_state_dict(const std::map<std::string, std::string>& s) override {
    GuidanceMetrics g;
    g.measured_at_step = detail::parse_int(s, "measured_at_step", "GuidedMixup");
    g.num_classes = detail::parse_int(s, "num_classes", "GuidedMixup");
    static const char* names[3] = {"audio", "video", "fused"};
    if (g.measured())
      for (int k = 0; k < 3; ++k)
        for (std::int64_t c = 0; c < g.num_classes; ++c) {
          auto& sp = g.spaces[static_cast<std::size_t>(k)];
          sp.convexity.push_back(
              detail::parse_double(s, ::avgrad::detail::concat(names[k], ".convexity.", c), "GuidedMixup"));
          sp.purity.push_back(
              detail::parse_double(s, ::avgrad::detail::concat(names[k], ".purity.", c), "GuidedMixup"));
        }
    metrics_ = std::move(g);
  }

 private:
  AVBatch<T, D> heldout_;
  std::shared_ptr<const GuidancePolicy> policy_;
  GuidedMixupOptions o_;
  GuidanceMetrics metrics_{};
};

}  // namespace avgrad::train
