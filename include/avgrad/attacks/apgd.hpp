// Auto-PGD (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of
// diverse parameter-free attacks"): PGD with momentum and a step size that halves, per example, at
// fixed checkpoints when progress stalls, restarting from the best point found. APGD-CE ascends the
// cross entropy, APGD-DLR the difference of logits ratio. Batched, seeded, per-modality budgets.
//
// Per-modality budgets: each attacked modality steps and projects in its own ball. The step size is
// kept per example as a multiple η/ε of the radius (2 at the start), so one schedule drives every
// modality: modality m steps η/ε · ε_m.
//
// Devices: Apgd<T, D> runs on the model's device. The per-example schedule (B numbers per step)
// is kept on the host; the steps, projections and momentum run on D.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "avgrad/attacks/attack.hpp"

namespace avgrad::attacks {

struct ApgdOptions {
  int steps = 100;           ///< N_iter: iterations per run
  int restarts = 1;          ///< runs per example; the worst case is kept (success, then objective)
  double rho = 0.75;         ///< checkpoint test (1): halve η when fewer than ρ of the steps increased f
  double alpha = 0.75;       ///< momentum weight α of the new step (1 − α on the previous displacement)
  bool random_start = true;  ///< every run starts uniformly in the ball (else the first starts at δ = 0)
  std::uint64_t seed = 0;    ///< random starts draw from Generator(seed)
};

/// The checkpoints w_j = ceil(p_j · n) at which APGD may halve its step: p_0 = 0, p_1 = 0.22,
/// p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06), while p_j ≤ 1. Includes w_0 = 0. The p_j are
/// whole hundredths, so they are kept as integers and the ceiling is exact (in floating point
/// 0.41·100 rounds above 41). A checkpoint equal to the previous one (small n) is dropped: it
/// would judge an empty stretch of steps.
inline std::vector<int> apgd_checkpoints(int n) {
  AVGRAD_CHECK(n >= 1, "apgd_checkpoints", "the number of iterations must be >= 1, got ", n);
  std::vector<int> w{0};
  std::int64_t prev = 0, cur = 22;  // hundredths
  while (cur <= 100) {
    const auto wj = static_cast<int>((cur * n + 99) / 100);
    if (wj > w.back()) w.push_back(wj);
    const std::int64_t next = cur + std::max<std::int64_t>(cur - prev - 3, 6);
    prev = cur;
    cur = next;
  }
  return w;
}

/// Targeted APGD-DLR's objective: ascends Croce & Hein's targeted DLR (needs K ≥ 4). The labels given
/// to the attack are the targets; `truth` are the true classes of the same batch.
template <Floating T, Device D = Cpu> Objective<T, D> targeted_dlr_objective(const Tensor<std::int64_t, D>& truth) {
  AVGRAD_CHECK(truth.defined() && truth.dim() == 1, "targeted_dlr_objective", "true labels must be (B)");
  // Objective negates a targeted loss before ascending it; dlr_targeted_loss is already the
  // quantity to ascend, so the stored loss is its negation.
  return {[truth](const Tensor<T, D>& z, const Labels<T, D>& target) {
            AVGRAD_CHECK(!target.multi_label() && target.classes.size(0) == truth.size(0), "targeted_dlr_objective",
                         "the targets must be class indices of the true labels' batch size ", truth.size(0));
            return -dlr_targeted_loss(z, truth, target.classes);
          },
          true, "dlr-targeted"};
}

namespace apgd_detail {

template <Floating T, Device D> Perturbation<T, D> clone(const Perturbation<T, D>& p) {
  Perturbation<T, D> c;
  for (Modality m : {Modality::audio, Modality::video})
    if (p.at(m).defined()) c.at(m) = p.at(m).contiguous().clone();
  return c;
}

/// APGD's momentum step in δ coordinates (x cancels): d + α(z − d) + (1 − α)(d − p), in double.
struct Momentum {
  double alpha;
  template <class T> AVGRAD_HOST_DEVICE T operator()(T z, T d, T p) const {
    const double dd = static_cast<double>(d);
    return static_cast<T>(dd + alpha * (static_cast<double>(z) - dd) + (1 - alpha) * (dd - static_cast<double>(p)));
  }
};

}  // namespace apgd_detail

/// APGD on any AVModel, for L∞ and L2 budgets. The model runs as it is (call eval() first); its
/// parameters are frozen during the attack. Per run: one gradient probe at the start x_0, then
/// N steps, each one forward and (but the last) one backward pass.
template <Floating T, Device D = Cpu> class Apgd {
 public:
  explicit Apgd(ApgdOptions o = {}, Objective<T, D> objective = Objective<T, D>::of(LossKind::cross_entropy))
      : o_(o), objective_(std::move(objective)) {
    AVGRAD_CHECK(o.steps >= 1 && o.restarts >= 1, "Apgd", "steps and restarts must be >= 1, got ", o.steps, " and ",
                 o.restarts);
    AVGRAD_CHECK(o.rho >= 0 && o.rho <= 1, "Apgd", "rho must be in [0, 1], got ", o.rho);
    AVGRAD_CHECK(o.alpha > 0 && o.alpha <= 1, "Apgd", "alpha must be in (0, 1], got ", o.alpha);
  }

  /// Attacks x (labels y: true classes, or targets when the objective is targeted) within tm.
  template <AVModel M>
  AttackResult<T, D> run(M& model, const AVInput<T, D>& x, const Labels<T, D>& y, const ThreatModel& tm) const {
    const std::string who = name();
    check_attack_inputs(who.c_str(), model, x, y, tm);
    for (Modality m : {Modality::audio, Modality::video})
      AVGRAD_CHECK(!tm.attacks(m) || tm.budget(m).norm != Norm::l1, who, "the ", modality_name(m),
                   " budget is L1; APGD here supports Linf and L2 budgets");
    FrozenParameters frozen(model);
    Generator gen(o_.seed);
    const std::int64_t B = x.batch();
    const auto nb = static_cast<std::size_t>(B);
    const auto checkpoints = apgd_checkpoints(o_.steps);
    AttackResult<T, D> r;
    r.steps.assign(nb, 0);
    r.bad_grad.assign(nb, 0);
    BestPerturbation<T, D> best;
    auto input = [&](Modality m) -> const Tensor<T, D>& { return m == Modality::audio ? x.audio : x.video; };

    for (int run = 0; run < o_.restarts; ++run) {
      Perturbation<T, D> delta;
      for (Modality m : {Modality::audio, Modality::video}) {
        if (!tm.attacks(m)) continue;
        delta.at(m) = zeros<T, D>(input(m).shape());
        if (o_.random_start || run > 0) random_start_(delta.at(m), input(m), tm.budget(m), gen);
      }
      auto p = probe(model, x, delta, y, objective_, true);
      ++r.forward_passes;
      ++r.backward_passes;
      flag_bad_gradients(p.grad, r.bad_grad);
      Perturbation<T, D> grad = apgd_detail::clone(p.grad);
      best.offer(delta, p.logits, successes(p.logits, y, objective_.targeted), values_of(p.value));

      // Per-example schedule state.
      std::vector<double> eta(nb, 2.0);  // step as a multiple of each modality's ε
      std::vector<double> f_cur = values_of(p.value), f_max = f_cur, f_max_at_check = f_cur;
      std::vector<int> increased(nb, 0);
      std::vector<char> reduced_at_check(nb, 0);
      Perturbation<T, D> x_max = apgd_detail::clone(delta), grad_at_max = apgd_detail::clone(grad);
      Perturbation<T, D> previous = apgd_detail::clone(delta);
      std::size_t next_check = 1;

      for (int k = 0; k < o_.steps; ++k) {
        const auto groups = step_groups(eta);
        Perturbation<T, D> next;
        for (Modality m : {Modality::audio, Modality::video}) {
          if (!tm.attacks(m)) continue;
          const Budget& bud = tm.budget(m);
          // z = P(x_k + η∇f(x_k)): each group of examples steps its own η (rows are independent,
          // so stepping and projecting group by group is the same as stepping all, then projecting)
          auto z = delta.at(m).clone();
          for (const auto& [ratio, members] : groups)
            backend::PgdStep<D>::step(z, grad.at(m), input(m), bud, ratio * bud.eps, &members);
          if (k == 0) {
            next.at(m) = z;
          } else {
            // x_{k+1} = P(x_k + α(z − x_k) + (1 − α)(x_k − x_{k−1})), in δ coordinates (x cancels).
            auto nx = avgrad::detail::map<T, T, T, T>(z, delta.at(m), previous.at(m), apgd_detail::Momentum{o_.alpha},
                                                      "apgd momentum");
            project_(nx, input(m), bud);
            next.at(m) = nx;
          }
        }
        previous = std::move(delta);
        delta = std::move(next);

        const bool last = k + 1 == o_.steps;
        p = probe(model, x, delta, y, objective_, !last);
        ++r.forward_passes;
        if (!last) {
          ++r.backward_passes;
          flag_bad_gradients(p.grad, r.bad_grad);
          grad = apgd_detail::clone(p.grad);
        }
        for (auto& s : r.steps) ++s;
        const auto f = values_of(p.value);
        best.offer(delta, p.logits, successes(p.logits, y, objective_.targeted), f);
        for (std::size_t b = 0; b < nb; ++b) {
          increased[b] += f[b] > f_cur[b];
          f_cur[b] = f[b];
          if (f[b] > f_max[b]) {
            f_max[b] = f[b];
            for (Modality m : {Modality::audio, Modality::video}) {
              if (!tm.attacks(m)) continue;
              geometry::copy_row(x_max.at(m), delta.at(m), static_cast<std::int64_t>(b));
              if (!last) geometry::copy_row(grad_at_max.at(m), grad.at(m), static_cast<std::int64_t>(b));
            }
          }
        }

        // Checkpoint w_j (a checkpoint at N would judge steps that are never taken).
        if (last || next_check >= checkpoints.size() || k + 1 != checkpoints[next_check]) continue;
        const int span = checkpoints[next_check] - checkpoints[next_check - 1];
        ++next_check;
        for (std::size_t b = 0; b < nb; ++b) {
          const bool oscillating = increased[b] < o_.rho * span;
          const bool stalled = !reduced_at_check[b] && f_max[b] <= f_max_at_check[b];
          const bool halve = oscillating || stalled;
          reduced_at_check[b] = halve;
          f_max_at_check[b] = f_max[b];
          increased[b] = 0;
          if (!halve) continue;
          eta[b] /= 2;
          // Restart from x_max: its gradient steps next, and no momentum carries over.
          f_cur[b] = f_max[b];
          for (Modality m : {Modality::audio, Modality::video}) {
            if (!tm.attacks(m)) continue;
            const auto i = static_cast<std::int64_t>(b);
            geometry::copy_row(delta.at(m), x_max.at(m), i);
            geometry::copy_row(previous.at(m), x_max.at(m), i);
            geometry::copy_row(grad.at(m), grad_at_max.at(m), i);
          }
        }
      }
    }
    r.delta = std::move(best.delta);
    r.logits = std::move(best.logits);
    r.success = std::move(best.success);
    r.value = std::move(best.value);
    return r;
  }

  std::string name() const {
    std::string s = detail::concat("APGD-", o_.steps);
    if (o_.restarts > 1) s += detail::concat("x", o_.restarts);
    return s + "(" + objective_.name + (objective_.targeted ? ", targeted" : "") + ")";
  }
  const ApgdOptions& options() const { return o_; }
  const Objective<T, D>& objective() const { return objective_; }

 private:
  /// Examples grouped by step size (η/ε is 2 halved a whole number of times, so equal values are exact),
  /// as one membership mask per distinct step for ascend_.
  static std::map<double, std::vector<char>> step_groups(const std::vector<double>& eta) {
    std::map<double, std::vector<char>> g;
    for (std::size_t b = 0; b < eta.size(); ++b) {
      auto& mask = g[eta[b]];
      if (mask.empty()) mask.assign(eta.size(), 0);
      mask[b] = 1;
    }
    return g;
  }

  ApgdOptions o_;
  Objective<T, D> objective_;
};

}  // namespace avgrad::attacks
