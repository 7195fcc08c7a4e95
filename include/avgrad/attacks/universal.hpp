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
template <Floating T> void check_shape(const char* who, Modality m, const Tensor<T>& x, const Tensor<T>& delta) {
  bool same = x.dim() == delta.dim();
  for (int i = 1; same && i < x.dim(); ++i) same = x.size(i) == delta.size(i);
  AVGRAD_CHECK(same, who, "the ", modality_name(m), " input ", x.shape(),
               " does not have the per-example shape of the ", "universal perturbation ", delta.shape());
}

/// clamp(x + δ, lo, hi) with δ (1, ...) broadcast over x's batch; `inside` (optional) gets 1 where the
/// clamp does not bind — where x + δ depends on δ.
template <Floating T>
Tensor<T> applied(const Tensor<T>& x, const Tensor<T>& delta, const Budget& bud, std::vector<char>* inside = nullptr) {
  const auto xc = x.contiguous();
  const auto [B, n] = geometry::rows(xc);
  auto out = Tensor<T>::empty(x.shape());
  if (inside) inside->assign(static_cast<std::size_t>(B * n), 1);
  const T* d = delta.data();
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t i = 0; i < n; ++i) {
      const double v = static_cast<double>(xc.data()[b * n + i]) + static_cast<double>(d[i]);
      const double c = std::clamp(v, bud.lo, bud.hi);
      out.data()[b * n + i] = static_cast<T>(c);
      if (inside && c != v) (*inside)[static_cast<std::size_t>(b * n + i)] = 0;
    }
  return out;
}

}  // namespace universal_detail

/// A learnt universal perturbation: δ of each attacked modality with shape (1, ...) — one example's
/// shape with a batch axis of 1 — broadcast over any batch.
template <Floating T> struct UniversalPerturbation {
  Perturbation<T> delta;
  ThreatModel threat;
  Objective<T> objective;
  std::vector<double> pass_objective;  ///< per pass: mean objective over the examples, each before its batch's step
  int updates = 0;                     ///< steps δ took (passes × batches)
  std::int64_t forward_passes = 0, backward_passes = 0;

  /// x + δ clamped into each attacked modality's valid range (the other modality as given); no autograd.
  AVInput<T> apply(const AVInput<T>& x) const {
    AVInput<T> out = x;
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
  template <AVModel M> AttackResult<T> attack_batch(M& model, const AVInput<T>& x, const Labels<T>& y) const {
    check_attack_inputs("UniversalPerturbation", model, x, y, threat);
    const auto adv = apply(x);
    AttackResult<T> r;
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
  AttackResult<T> run(M& model, const AVInput<T>& x, const Labels<T>& y, const ThreatModel& tm) const {
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
template <Floating T> class UniversalPgd {
 public:
  explicit UniversalPgd(UniversalPgdOptions o = {}, Objective<T> objective = Objective<T>::of(LossKind::cross_entropy))
      : o_(o), objective_(std::move(objective)) {
    AVGRAD_CHECK(o.passes >= 1, "UniversalPgd", "passes must be >= 1, got ", o.passes);
  }

  template <AVModel M, std::ranges::forward_range R>
  UniversalPerturbation<T> run(M& model, const R& batches, const ThreatModel& tm) const {
    const std::string who = name();
    tm.check(who.c_str());
    for (Modality m : {Modality::audio, Modality::video})
      AVGRAD_CHECK(!tm.attacks(m) || tm.budget(m).step > 0, who, "the ", modality_name(m),
                   " budget's step is 0: set Budget::step");
    AVGRAD_CHECK(std::ranges::begin(batches) != std::ranges::end(batches), who,
                 "no data: the range of batches is empty");
    FrozenParameters frozen(model);
    UniversalPerturbation<T> u;
    u.threat = tm;
    u.objective = objective_;
    for (int pass = 0; pass < o_.passes; ++pass) {
      double total = 0;
      std::int64_t count = 0;
      for (const auto& batch : batches) {
        const AVInput<T>& x = std::get<0>(batch);
        const Labels<T>& y = std::get<1>(batch);
        if (pass == 0) check_attack_inputs(who.c_str(), model, x, y, tm);
        // The per-example perturbation that reaches the model, and where it depends on δ.
        Perturbation<T> per_example;
        std::vector<char> inside[2];
        for (Modality m : {Modality::audio, Modality::video}) {
          if (!tm.attacks(m)) continue;
          const auto& xm = m == Modality::audio ? x.audio : x.video;
          auto& d = u.delta.at(m);
          if (!d.defined()) {
            Shape s = xm.shape();
            s[0] = 1;
            d = zeros<T>(s);
          }
          universal_detail::check_shape(who.c_str(), m, xm, d);
          auto& mask = inside[m == Modality::audio ? 0 : 1];
          per_example.at(m) = (universal_detail::applied(xm, d, tm.budget(m), &mask) - xm).detach();
        }
        auto p = probe(model, x, per_example, y, objective_, true);
        ++u.forward_passes;
        ++u.backward_passes;
        for (double v : values_of(p.value)) total += v;
        count += x.batch();
        for (Modality m : {Modality::audio, Modality::video}) {
          if (!tm.attacks(m)) continue;
          auto& d = u.delta.at(m);
          const auto& mask = inside[m == Modality::audio ? 0 : 1];
          const auto g = p.grad.at(m).contiguous();
          const auto [B, n] = geometry::rows(g);
          std::vector<double> acc(static_cast<std::size_t>(n), 0.0);
          for (std::int64_t b = 0; b < B; ++b)
            for (std::int64_t i = 0; i < n; ++i)
              if (mask[static_cast<std::size_t>(b * n + i)])
                acc[static_cast<std::size_t>(i)] += static_cast<double>(g.data()[b * n + i]);
          auto gsum = Tensor<T>::empty(d.shape());
          for (std::int64_t i = 0; i < n; ++i) gsum.data()[i] = static_cast<T>(acc[static_cast<std::size_t>(i)]);
          const Budget& bud = tm.budget(m);
          ascend_(d, gsum, bud, bud.step);
          if (o_.project) {
            // Onto the ball only: the range is enforced per example where δ is applied.
            Budget ball = bud;
            ball.lo = -std::numeric_limits<double>::infinity();
            ball.hi = std::numeric_limits<double>::infinity();
            project_(d, zeros<T>(d.shape()), ball);
          }
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
  const Objective<T>& objective() const { return objective_; }

 private:
  UniversalPgdOptions o_;
  Objective<T> objective_;
};

}  // namespace avgrad::attacks
