// Universal PGD, the study's attack: one perturbation per attacked modality, shared by every example
// of an evaluation set, learnt by sign (L∞) or normalised (L2) steps on the objective summed over
// each batch, for a number of passes over the data.
//
// The study's reference code never projects δ back onto the ε-ball, so its δ grows by one step per
// batch without bound. avgrad projects after every step (project = true, the default); project =
// false reproduces the reference's bug, on request, to compare with its numbers. Either way the valid
// input range is enforced where δ is applied: x + δ is clamped into [lo, hi] per example.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <ranges>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "avgrad/attacks/attack.hpp"

namespace avgrad::attacks {

struct UniversalPgdOptions {
  int passes = 20;      ///< passes over the data; one step per batch
  bool project = true;  ///< false: never project onto the ε-ball (the reference code's bug)
};

namespace universal_detail {

/// Checks that x (B, ...) has the per-example shape of δ (1, ...).
template <Floating T, Device D>
void check_shape(const char* who, Modality m, const Tensor<T, D>& x, const Tensor<T, D>& delta) {
  bool same = x.dim() == delta.dim();
  for (int i = 1; same && i < x.dim(); ++i) same = x.size(i) == delta.size(i);
  AVGRAD_CHECK(same, who, "the ", modality_name(m), " input ", x.shape(),
               " does not have the per-example shape of the ", "universal perturbation ", delta.shape());
}

/// clamp(x + δ, lo, hi), in double.
struct ClampedSum {
  double lo, hi;
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x, T d) const {
    return static_cast<T>(std::clamp(static_cast<double>(x) + static_cast<double>(d), lo, hi));
  }
};
/// g where the clamp of x + δ does not bind (where x + δ depends on δ), else 0.
struct GradInsideRange {
  double lo, hi;
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x, T d, T g) const {
    const double v = static_cast<double>(x) + static_cast<double>(d);
    return v >= lo && v <= hi ? g : T(0);
  }
};

/// clamp(x + δ, lo, hi) with δ (1, ...) broadcast over x's batch.
template <Floating T, Device D>
Tensor<T, D> applied(const Tensor<T, D>& x, const Tensor<T, D>& delta, const Budget& bud) {
  return avgrad::detail::map<T>(x.detach(), delta.detach(), ClampedSum{bud.lo, bud.hi}, "universal perturbation");
}

/// ∇_δ of the batch's summed objective: the per-example gradient g (B, ...) where the clamp does
/// not bind, summed over the batch into δ's shape (1, ...).
template <Floating T, Device D> Tensor<T, D> batch_gradient(const Tensor<T, D>& x, const Tensor<T, D>& delta,
                                                            const Tensor<T, D>& g, const Budget& bud) {
  NoGradGuard no_grad;
  const auto inside = avgrad::detail::map<T>(x.detach(), delta.detach(), g.detach(), GradInsideRange{bud.lo, bud.hi},
                                             "universal gradient");
  return sum(inside, {0}, true);
}

}  // namespace universal_detail

/// A learnt universal perturbation: δ of each attacked modality with shape (1, ...) — one example's
/// shape with a batch axis of 1 — broadcast over any batch.
template <Floating T, Device D = Cpu> struct UniversalPerturbation {
  Perturbation<T, D> delta;
  ThreatModel threat;
  Objective<T, D> objective;
  std::vector<double> pass_objective;  ///< per pass: mean objective over the examples, each before its batch's step
  int updates = 0;                     ///< steps δ took (passes × batches)
  std::int64_t forward_passes = 0, backward_passes = 0;

  /// x + δ clamped into each attacked modality's valid range (the other modality as given); no autograd.
  AVInput<T, D> apply(const AVInput<T, D>& x) const {
    AVInput<T, D> out = x;
    for (Modality m : {Modality::audio, Modality::video}) {
      if (!threat.attacks(m)) continue;
      const auto& xm = m == Modality::audio ? x.audio : x.video;
      AVGRAD_CHECK(xm.defined(), "UniversalPerturbation", "the ", modality_name(m),
                   " input is missing, but the universal perturbation attacks it");
      universal_detail::check_shape("UniversalPerturbation", m, xm, delta.at(m));
      (m == Modality::audio ? out.audio : out.video) = universal_detail::applied(xm, delta.at(m), threat.budget(m));
    }
    return out;
  }

  /// The universal δ on one batch, with Pgd's result conventions: delta is the per-example
  /// perturbation actually applied (x + δ clamped, minus x), value the objective there, steps the
  /// updates δ took; the passes counted are this batch's one forward pass.
  template <AVModel M> AttackResult<T, D> attack_batch(M& model, const AVInput<T, D>& x, const Labels<T, D>& y) const {
    check_attack_inputs("UniversalPerturbation", model, x, y, threat);
    const auto adv = apply(x);
    AttackResult<T, D> r;
    {
      NoGradGuard no_grad;
      r.logits = model.forward(adv).logits;
      r.value = values_of(objective(r.logits, y));
    }
    for (Modality m : {Modality::audio, Modality::video})
      if (threat.attacks(m))
        r.delta.at(m) = m == Modality::audio ? (adv.audio - x.audio).detach() : (adv.video - x.video).detach();
    r.success = successes(r.logits, y, objective.targeted);
    const auto nb = static_cast<std::size_t>(x.batch());
    r.steps.assign(nb, updates);
    r.bad_grad.assign(nb, 0);
    r.forward_passes = 1;
    return r;
  }
  /// The attack interface (run, name), so evaluate_robustness can report a learnt universal δ beside
  /// per-example attacks: attack_spec(universal). The threat model passed in must be the one δ was
  /// learnt under (checked by its description).
  template <AVModel M>
  AttackResult<T, D> run(M& model, const AVInput<T, D>& x, const Labels<T, D>& y, const ThreatModel& tm) const {
    AVGRAD_CHECK(tm.str() == threat.str(), "UniversalPerturbation", "learnt under '", threat.str(),
                 "' but evaluated under '", tm.str(), "'");
    return attack_batch(model, x, y);
  }
  std::string name() const { return detail::concat("universal-", updates, "(", objective.name, ")"); }
};

/// Universal PGD on any AVModel over a multi-pass range of (AVInput, Labels) batches — a
/// std::vector<std::pair<AVInput<T>, Labels<T>>> or any forward range of pair- or tuple-like elements.
/// δ starts at 0; each batch: g = ∇_δ Σ_b objective(x_b + δ) (zero where the range clamp binds),
/// δ ← δ + step·(sign g | g/‖g‖₂ | L1 top-k) with the budget's step, then (project) onto the ε-ball.
/// δ lives on D, the model's device; batches held on another device (the host) move per batch.
template <Floating T, Device D = Cpu> class UniversalPgd {
 public:
  explicit UniversalPgd(UniversalPgdOptions o = {},
                        Objective<T, D> objective = Objective<T, D>::of(LossKind::cross_entropy))
      : o_(o), objective_(std::move(objective)) {
    AVGRAD_CHECK(o.passes >= 1, "UniversalPgd", "passes must be >= 1, got ", o.passes);
  }

  template <AVModel M, std::ranges::forward_range R>
  UniversalPerturbation<T, D> run(M& model, const R& batches, const ThreatModel& tm) const {
    const std::string who = name();
    tm.check(who.c_str());
    for (Modality m : {Modality::audio, Modality::video})
      AVGRAD_CHECK(!tm.attacks(m) || tm.budget(m).step > 0, who, "the ", modality_name(m),
                   " budget's step is 0: set Budget::step");
    AVGRAD_CHECK(std::ranges::begin(batches) != std::ranges::end(batches), who,
                 "no data: the range of batches is empty");
    FrozenParameters frozen(model);
    UniversalPerturbation<T, D> u;
    u.threat = tm;
    u.objective = objective_;
    for (int pass = 0; pass < o_.passes; ++pass) {
      double total = 0;
      std::int64_t count = 0;
      for (const auto& batch : batches) {
        const AVInput<T, D> x = models::to_device<D>(std::get<0>(batch));
        const Labels<T, D> y = to_device<D>(std::get<1>(batch));
        if (pass == 0) check_attack_inputs(who.c_str(), model, x, y, tm);
        // The per-example perturbation that reaches the model.
        Perturbation<T, D> per_example;
        for (Modality m : {Modality::audio, Modality::video}) {
          if (!tm.attacks(m)) continue;
          const auto& xm = m == Modality::audio ? x.audio : x.video;
          auto& d = u.delta.at(m);
          if (!d.defined()) {
            Shape s = xm.shape();
            s[0] = 1;
            d = zeros<T, D>(s);
          }
          universal_detail::check_shape(who.c_str(), m, xm, d);
          per_example.at(m) = (universal_detail::applied(xm, d, tm.budget(m)) - xm).detach();
        }
        auto p = probe(model, x, per_example, y, objective_, true);
        ++u.forward_passes;
        ++u.backward_passes;
        for (double v : values_of(p.value)) total += v;
        count += x.batch();
        for (Modality m : {Modality::audio, Modality::video}) {
          if (!tm.attacks(m)) continue;
          auto& d = u.delta.at(m);
          const Budget& bud = tm.budget(m);
          const auto gsum =
              universal_detail::batch_gradient(m == Modality::audio ? x.audio : x.video, d, p.grad.at(m), bud);
          // A step, then onto the ball only (an infinite ball unless projecting): the range is
          // enforced per example where δ is applied.
          constexpr double inf = std::numeric_limits<double>::infinity();
          Budget ball = bud;
          ball.lo = -inf;
          ball.hi = inf;
          if (!o_.project) ball.eps = inf;
          backend::PgdStep<D>::step(d, gsum, zeros<T, D>(d.shape()), ball, bud.step);
        }
        ++u.updates;
      }
      u.pass_objective.push_back(count > 0 ? total / static_cast<double>(count) : 0.0);
    }
    return u;
  }

  std::string name() const {
    return detail::concat("UniversalPGD-", o_.passes, "(", objective_.name, objective_.targeted ? ", targeted" : "",
                          o_.project ? "" : ", unprojected", ")");
  }
  const UniversalPgdOptions& options() const { return o_; }
  const Objective<T, D>& objective() const { return objective_; }

 private:
  UniversalPgdOptions o_;
  Objective<T, D> objective_;
};

}  // namespace avgrad::attacks
