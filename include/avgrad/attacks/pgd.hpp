// The projected-gradient family: PGD (Madry et al. 2018) with random restarts keeping the worst
// case per example and optional per-example early stop; FGSM (one full step, optionally from a
// random start as in "fast" adversarial training); MI-FGSM (momentum on L1-normalised gradients,
// Dong et al. 2018). Batched, seeded, per-modality budgets: each attacked modality steps and
// projects in its own ball, on one joint objective.
#pragma once

#include <cstdint>

#include "avgrad/attacks/attack.hpp"

namespace avgrad::attacks {

namespace fn {
/// 1/a where a > 0, else 0 (an example with a zero gradient keeps its momentum).
struct InverseOrZero {
  template <class T> AVGRAD_HOST_DEVICE T operator()(T a) const { return a > T(0) ? T(1) / a : T(0); }
};
}  // namespace fn

struct PgdOptions {
  int steps = 10;
  int restarts = 1;          ///< runs per example; the worst case is kept (success, then objective)
  bool random_start = true;  ///< every run starts uniformly in the ball (else the first starts at δ = 0)
  bool early_stop = false;   ///< an example stops moving once the attack succeeds on it
  double momentum = 0.0;     ///< MI-FGSM's decay μ; 0 is plain PGD
  std::uint64_t seed = 0;    ///< random starts draw from Generator(seed)
  /// > 0: every step is relative_step·ε of each modality's budget (FGSM: 1; fast adversarial
  /// training's FGSM with random start: 1.25), whatever Budget::step says; 0: Budget::step.
  double relative_step = 0.0;
};

/// PGD on any AVModel of device D. The model runs as it is (call eval() for evaluation;
/// adversarial training attacks in train mode); its parameters are frozen during the attack.
/// On a GPU every step stays on the device but for B numbers per step (success flags, bad
/// gradients) and the random starts, drawn on the host from the same stream as the CPU's.
template <Floating T, Device D = Cpu> class Pgd {
 public:
  explicit Pgd(PgdOptions o = {}, Objective<T, D> objective = Objective<T, D>::of(LossKind::cross_entropy))
      : o_(o), objective_(std::move(objective)) {
    AVGRAD_CHECK(o.steps >= 1 && o.restarts >= 1, "Pgd", "steps and restarts must be >= 1, got ", o.steps, " and ",
                 o.restarts);
    AVGRAD_CHECK(o.momentum >= 0 && std::isfinite(o.momentum), "Pgd", "momentum must be finite and >= 0, got ",
                 o.momentum);
    AVGRAD_CHECK(o.relative_step >= 0 && std::isfinite(o.relative_step), "Pgd",
                 "relative_step must be finite and >= 0, got ", o.relative_step);
  }

  /// Attacks x (labels y: true classes, or targets when the objective is targeted) within tm.
  template <AVModel M>
  AttackResult<T, D> run(M& model, const AVInput<T, D>& x, const Labels<T, D>& y, const ThreatModel& tm) const {
    check_attack_inputs(name().c_str(), model, x, y, tm);
    FrozenParameters frozen(model);
    Generator gen(o_.seed);
    const std::int64_t B = x.batch();
    AttackResult<T, D> r;
    r.steps.assign(static_cast<std::size_t>(B), 0);
    r.bad_grad.assign(static_cast<std::size_t>(B), 0);
    BestPerturbation<T, D> best;
    for (int run = 0; run < o_.restarts; ++run) {
      Perturbation<T, D> delta, velocity;
      for (Modality m : {Modality::audio, Modality::video}) {
        if (!tm.attacks(m)) continue;
        const auto& xm = m == Modality::audio ? x.audio : x.video;
        delta.at(m) = zeros<T, D>(xm.shape());
        if (o_.momentum > 0) velocity.at(m) = zeros<T, D>(xm.shape());
        if (o_.random_start || run > 0) random_start_(delta.at(m), xm, tm.budget(m), gen);
      }
      std::vector<char> active(static_cast<std::size_t>(B), 1);
      for (int s = 0; s < o_.steps; ++s) {
        auto p = probe(model, x, delta, y, objective_, true);
        ++r.forward_passes;
        ++r.backward_passes;
        if (o_.early_stop) {
          const auto won = successes(p.logits, y, objective_.targeted);
          bool any = false;
          for (std::size_t b = 0; b < active.size(); ++b) {
            active[b] = active[b] && !won[b];
            any = any || active[b];
          }
          if (!any) break;
        }
        flag_bad_gradients(p.grad, r.bad_grad);
        for (std::size_t b = 0; b < active.size(); ++b) r.steps[b] += active[b];
        for (Modality m : {Modality::audio, Modality::video}) {
          if (!tm.attacks(m)) continue;
          const auto& xm = m == Modality::audio ? x.audio : x.video;
          const Budget& bud = tm.budget(m);
          const Tensor<T, D>& g = o_.momentum > 0 ? accumulate_momentum(velocity.at(m), p.grad.at(m)) : p.grad.at(m);
          backend::PgdStep<D>::step(delta.at(m), g, xm, bud, step_size(bud), &active);
        }
      }
      auto final_probe = probe(model, x, delta, y, objective_, false);
      ++r.forward_passes;
      best.offer(delta, final_probe.logits, successes(final_probe.logits, y, objective_.targeted),
                 values_of(final_probe.value));
    }
    r.delta = std::move(best.delta);
    r.logits = std::move(best.logits);
    r.success = std::move(best.success);
    r.value = std::move(best.value);
    return r;
  }

  std::string name() const {
    if (o_.steps == 1 && o_.momentum == 0) return o_.random_start ? "FGSM-RS" : "FGSM";
    std::string s = o_.momentum > 0 ? "MI-FGSM" : "PGD";
    s += detail::concat("-", o_.steps);
    if (o_.restarts > 1) s += detail::concat("x", o_.restarts);
    return s + "(" + objective_.name + (objective_.targeted ? ", targeted" : "") + ")";
  }
  const PgdOptions& options() const { return o_; }
  const Objective<T, D>& objective() const { return objective_; }

 private:
  double step_size(const Budget& b) const {
    if (o_.relative_step > 0) return o_.relative_step * b.eps;
    AVGRAD_CHECK(b.step > 0, "Pgd", "the budget's step is 0: set Budget::step (e.g. eps/4 for PGD-10)");
    return b.step;
  }
  /// v ← μ·v + g/‖g‖₁ per example; returns v.
  const Tensor<T, D>& accumulate_momentum(Tensor<T, D>& v, const Tensor<T, D>& g) const {
    if constexpr (!std::same_as<D, Cpu>) {
      NoGradGuard no_grad;
      const auto [B, n] = geometry::rows(v);
      auto l1 = sum(abs(g.reshape({B, n})), {1}, true);  // (B, 1)
      auto k = detail::map<T>(l1, fn::InverseOrZero{});
      v = (v.reshape({B, n}) * o_.momentum + g.reshape({B, n}) * k).reshape(v.shape());
      return v;
    }
    const auto gc = g.contiguous();
    const auto [B, n] = geometry::rows(v);
    const auto l1 = geometry::norms(gc, Norm::l1);
    for (std::int64_t b = 0; b < B; ++b) {
      const double k = l1[static_cast<std::size_t>(b)] > 0 ? 1.0 / l1[static_cast<std::size_t>(b)] : 0.0;
      T* vr = v.data() + b * n;
      const T* gr = gc.data() + b * n;
      for (std::int64_t i = 0; i < n; ++i) vr[i] = static_cast<T>(o_.momentum * vr[i] + k * gr[i]);
    }
    return v;
  }

  PgdOptions o_;
  Objective<T, D> objective_;
};

/// FGSM: one step of the full radius ε from δ = 0, whatever Budget::step says (so FGSM and PGD
/// can share a threat model); with random_start, from a uniform start with a step of
/// `relative_step`·ε (fast adversarial training, Wong et al. 2020, uses 1.25).
template <Floating T, Device D = Cpu>
Pgd<T, D> fgsm(Objective<T, D> objective = Objective<T, D>::of(LossKind::cross_entropy), bool random_start = false,
               std::uint64_t seed = 0, double relative_step = 0.0) {
  if (relative_step == 0.0) relative_step = random_start ? 1.25 : 1.0;
  return Pgd<T, D>(
      PgdOptions{.steps = 1, .restarts = 1, .random_start = random_start, .seed = seed, .relative_step = relative_step},
      std::move(objective));
}

/// MI-FGSM: `steps` sign steps of Budget::step on the momentum of L1-normalised gradients, from δ = 0.
template <Floating T, Device D = Cpu>
Pgd<T, D> mi_fgsm(int steps = 10, double decay = 1.0,
                  Objective<T, D> objective = Objective<T, D>::of(LossKind::cross_entropy)) {
  return Pgd<T, D>(PgdOptions{.steps = steps, .restarts = 1, .random_start = false, .momentum = decay},
                   std::move(objective));
}

}  // namespace avgrad::attacks
