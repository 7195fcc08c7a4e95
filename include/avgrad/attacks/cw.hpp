// The Carlini–Wagner L2 attack (Carlini & Wagner 2017, "Towards evaluating the robustness of neural
// networks"): the smallest L2 perturbation of the attacked modalities (jointly) that changes the
// prediction, found by Adam in tanh space with a per-example binary search over the trade-off c.
//
// CW is a minimum-norm attack: the δ it returns is not bounded by the threat model's ε. Robust
// accuracy at ε counts an example as broken only when the attack succeeded *and* δ is within the
// budget — within_budget(result, tm) gives those flags (success_within_budget both together).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "avgrad/attacks/attack.hpp"

namespace avgrad::attacks {

struct CarliniWagnerOptions {
  int binary_steps = 9;     ///< binary-search rounds over c
  int steps = 100;          ///< Adam iterations per c
  double initial_c = 1e-3;  ///< the first c of every example
  double lr = 0.01;         ///< Adam's learning rate on w; x' moves up to ~lr·(hi − lo)/2 per step, so a wide
                            ///< range resolves the minimal norm coarsely (lower lr for it)
  double kappa = 0.0;       ///< confidence: success needs the wanted class to lead by κ
  bool abort_early = true;  ///< an example stops once its loss stalls (checked every steps/10)
  bool targeted = false;    ///< labels are targets: reach them instead of leaving the true class
};

namespace cw_detail {

/// Per example: f = max(z_y − max_{j≠y} z_j, −κ) untargeted, max(max_{j≠t} z_j − z_t, −κ) targeted.
template <Floating T, Device D>
Tensor<T, D> cw_f(const Tensor<T, D>& logits, const Tensor<std::int64_t, D>& y, double kappa, bool targeted) {
  return objective_detail::rowwise_loss("cw_f", logits, y, [&](const T* z, std::int64_t K, std::int64_t c, T* g) {
    std::int64_t j = c == 0 ? 1 : 0;
    for (std::int64_t k = 0; k < K; ++k)
      if (k != c && z[k] > z[j]) j = k;
    std::fill(g, g + K, T(0));
    const double v = targeted ? static_cast<double>(z[j]) - z[c] : static_cast<double>(z[c]) - z[j];
    if (v <= -kappa) return -kappa;
    g[targeted ? j : c] = T(1);
    g[targeted ? c : j] = T(-1);
    return v;
  });
}

/// The margin by which the attacker's goal is met: max_{j≠y} z_j − z_y untargeted, z_t − max_{j≠t} z_j targeted.
template <Floating T, Device D>
std::vector<double> margins(const Tensor<T, D>& logits, const Tensor<std::int64_t, D>& y, bool targeted) {
  const auto z = logits.detach().template to<Cpu>().contiguous();
  const auto yc = y.template to<Cpu>().contiguous();
  const std::int64_t B = z.size(0), K = z.size(1);
  std::vector<double> out(static_cast<std::size_t>(B));
  for (std::int64_t b = 0; b < B; ++b) {
    const T* r = z.data() + b * K;
    const std::int64_t c = yc.data()[b];
    double other = -std::numeric_limits<double>::infinity();
    for (std::int64_t k = 0; k < K; ++k)
      if (k != c) other = std::max(other, static_cast<double>(r[k]));
    out[static_cast<std::size_t>(b)] = targeted ? r[c] - other : other - r[c];
  }
  return out;
}

// The tanh change of variables and Adam, elementwise on any device; all state in double.

/// w₀ = atanh((x − lo)/half − 1), shrunk by 1 − 1e-6 so inputs on the range's edge stay finite.
struct IntoTanhSpace {
  double lo, half;
  AVGRAD_HOST_DEVICE double operator()(double x) const {
    return ::atanh(std::clamp((x - lo) / half - 1, -1.0, 1.0) * (1 - 1e-6));
  }
};
/// δ = x'(w) − x with x' = lo + half·(tanh w + 1), clamped into [lo, hi] against rounding.
template <class T> struct DeltaOf {
  double lo, half;
  AVGRAD_HOST_DEVICE T operator()(double w, double x) const {
    const double xp = std::clamp(lo + half * (::tanh(w) + 1), lo, lo + 2 * half);
    return static_cast<T>(xp - x);
  }
};
/// ∂loss/∂x' = 2δ + c·∂f/∂x' (c per example).
struct LossGradient {
  template <class T> AVGRAD_HOST_DEVICE double operator()(T delta, T g, double c) const {
    return 2 * static_cast<double>(delta) + c * static_cast<double>(g);
  }
};
/// ∂loss/∂w = ∂loss/∂x' · half · (1 − tanh²w); zero where the example no longer moves.
struct ChainToW {
  double half;
  AVGRAD_HOST_DEVICE double operator()(double gx, double w, double live) const {
    const double th = ::tanh(w);
    return live != 0 ? gx * half * (1 - th * th) : 0.0;
  }
};
/// An exponential moving average of g (or g² when squared); frozen where the example no longer moves.
struct Moment {
  double beta;
  bool squared;
  AVGRAD_HOST_DEVICE double operator()(double m, double g, double live) const {
    return live != 0 ? beta * m + (squared ? (1 - beta) * g * g : (1 - beta) * g) : m;
  }
};
/// Adam's bias-corrected step on w.
struct AdamUpdate {
  double lr, corr1, corr2, eps;
  AVGRAD_HOST_DEVICE double operator()(double w, double m, double v, double live) const {
    return live != 0 ? w - lr * (m / corr1) / (::sqrt(v / corr2) + eps) : w;
  }
};
/// 1 where a gradient entry is NaN or ±Inf: v − v is exactly 0 for every finite v and NaN otherwise.
struct NonFinite {
  template <class T> AVGRAD_HOST_DEVICE T operator()(T v) const { return v - v == T(0) ? T(0) : T(1); }
};

/// A per-example column (B, 1, …, 1) of `rank` axes on D, broadcasting over a (B, …) tensor.
template <Device D> Tensor<double, D> column(const std::vector<double>& v, int rank) {
  Shape s{static_cast<std::int64_t>(v.size())};
  for (int i = 1; i < rank; ++i) s.push_back(1);
  auto h = Tensor<double, Cpu>::empty(s);
  std::copy(v.begin(), v.end(), h.data());
  return h.template to<D>();
}

/// Per example: the gradient has a NaN or ±Inf entry.
template <Floating T, Device D> std::vector<char> non_finite_rows(const Tensor<T, D>& g) {
  NoGradGuard no_grad;
  const auto [B, n] = geometry::rows(g);
  const auto count = sum(avgrad::detail::map<T>(g.detach().reshape({B, n}), NonFinite{}), {1});
  const auto h = count.template to<Cpu>().to_vector();
  std::vector<char> out(h.size());
  for (std::size_t b = 0; b < h.size(); ++b) out[b] = h[b] != T(0);
  return out;
}

}  // namespace cw_detail

/// Per example: every attacked modality's δ is within its budget (‖δ_m‖ ≤ ε_m in the budget's norm,
/// up to a relative rtol for rounding). For a minimum-norm attack (CW) this decides whether a success
/// counts at ε.
template <Floating T, Device D>
std::vector<char> within_budget(const AttackResult<T, D>& r, const ThreatModel& tm, double rtol = 1e-9) {
  std::vector<char> ok;
  for (Modality m : {Modality::audio, Modality::video}) {
    if (!tm.attacks(m)) continue;
    const auto& d = r.delta.at(m);
    AVGRAD_CHECK(d.defined(), "within_budget", "the result has no ", modality_name(m),
                 " perturbation, but the threat model attacks it");
    const Budget& bud = tm.budget(m);
    const auto n = geometry::norms(d, bud.norm);
    if (ok.empty()) ok.assign(n.size(), 1);
    AVGRAD_CHECK(n.size() == ok.size(), "within_budget", "the modalities' batch sizes differ");
    for (std::size_t b = 0; b < n.size(); ++b) ok[b] = ok[b] && n[b] <= bud.eps * (1 + rtol);
  }
  AVGRAD_CHECK(!ok.empty(), "within_budget", "the threat model attacks no modality");
  return ok;
}

/// Per example: the attack succeeded with a δ inside the budget — what robust accuracy at ε counts.
template <Floating T, Device D>
std::vector<char> success_within_budget(const AttackResult<T, D>& r, const ThreatModel& tm, double rtol = 1e-9) {
  auto ok = within_budget(r, tm, rtol);
  for (std::size_t b = 0; b < ok.size(); ++b) ok[b] = ok[b] && r.success[b];
  return ok;
}

/// The joint L2 norm of δ over the attacked modalities, per example.
template <Floating T, Device D> std::vector<double> joint_l2_norms(const Perturbation<T, D>& delta) {
  std::vector<double> s;
  for (Modality m : {Modality::audio, Modality::video}) {
    if (!delta.at(m).defined()) continue;
    const auto n = geometry::norms(delta.at(m), Norm::l2);
    if (s.empty()) s.assign(n.size(), 0.0);
    for (std::size_t b = 0; b < n.size(); ++b) s[b] += n[b] * n[b];
  }
  for (auto& v : s) v = std::sqrt(v);
  return s;
}

/// CW-L2 on any single-label AVModel, on the model's device D. Each attacked budget must give a
/// finite valid range [lo, hi] (the tanh change of variables maps onto it); its norm and ε are not
/// used by the attack. Result: δ is the smallest successful perturbation found per example (zero
/// where none was); success says whether one was; value is the CW margin at δ (see
/// cw_detail::margins: ≥ κ on success); bad_grad flags non-finite gradients only (a zero gradient of
/// the capped f is normal); an example whose gradient is non-finite in any attacked modality stops
/// moving in every modality from that step on. The tanh variable and Adam's moments are kept in
/// double on D; the per-example search over c (B numbers) runs on the host.
template <Floating T, Device D = Cpu> class CarliniWagnerL2 {
 public:
  explicit CarliniWagnerL2(CarliniWagnerOptions o = {}) : o_(o) {
    AVGRAD_CHECK(o.binary_steps >= 1 && o.steps >= 1, "CarliniWagnerL2", "binary_steps and steps must be >= 1, got ",
                 o.binary_steps, " and ", o.steps);
    AVGRAD_CHECK(o.initial_c > 0 && std::isfinite(o.initial_c), "CarliniWagnerL2",
                 "initial_c must be finite and > 0, got ", o.initial_c);
    AVGRAD_CHECK(o.lr > 0 && std::isfinite(o.lr), "CarliniWagnerL2", "lr must be finite and > 0, got ", o.lr);
    AVGRAD_CHECK(o.kappa >= 0 && std::isfinite(o.kappa), "CarliniWagnerL2", "kappa must be finite and >= 0, got ",
                 o.kappa);
  }

  /// Attacks x (labels y: true classes, or targets when targeted). tm names the attacked modalities
  /// and their valid ranges.
  template <AVModel M>
  AttackResult<T, D> run(M& model, const AVInput<T, D>& x, const Labels<T, D>& y, const ThreatModel& tm) const {
    namespace cw = cw_detail;
    using avgrad::detail::map;
    using avgrad::detail::map_n;
    const std::string who = name();
    AVGRAD_CHECK(!y.multi_label(), who, "CW needs class labels (single-label); got multi-hot labels");
    check_attack_inputs(who.c_str(), model, x, y, tm);
    AVGRAD_CHECK(model.num_classes() >= 2, who, "needs at least 2 classes");
    for (Modality m : {Modality::audio, Modality::video}) {
      if (!tm.attacks(m)) continue;
      const Budget& bud = tm.budget(m);
      AVGRAD_CHECK(std::isfinite(bud.lo) && std::isfinite(bud.hi) && bud.hi > bud.lo, who, "the ", modality_name(m),
                   " budget's valid range [", bud.lo, ", ", bud.hi,
                   "] must be finite and non-empty: CW maps tanh onto it");
    }
    FrozenParameters frozen(model);
    const std::int64_t B = x.batch();
    const auto nb = static_cast<std::size_t>(B);
    auto input = [&](Modality m) -> const Tensor<T, D>& { return m == Modality::audio ? x.audio : x.video; };

    // tanh space: x' = lo + (hi − lo)(tanh(w) + 1)/2, with w₀ mapping (nearly) onto x.
    struct Var {
      Modality m;
      Tensor<double, D> x, w0, w, mom, vel;
      double lo, half;
    };
    std::vector<Var> vars;
    for (Modality m : {Modality::audio, Modality::video}) {
      if (!tm.attacks(m)) continue;
      const Budget& bud = tm.budget(m);
      Var v{m, {}, {}, {}, {}, {}, bud.lo, (bud.hi - bud.lo) / 2};
      v.x = map<double>(input(m).detach(), avgrad::detail::Identity{});
      v.w0 = map<double>(v.x, cw::IntoTanhSpace{v.lo, v.half});
      vars.push_back(std::move(v));
    }
    auto perturbation = [&] {
      Perturbation<T, D> d;
      for (const auto& v : vars) d.at(v.m) = map<T>(v.w, v.x, cw::DeltaOf<T>{v.lo, v.half}, "cw");
      return d;
    };

    const Objective<T, D> f_objective{[k = o_.kappa, tg = o_.targeted](const Tensor<T, D>& z, const Labels<T, D>& lab) {
                                        return cw::cw_f(z, lab.classes, k, tg);
                                      },
                                      false, "cw"};

    AttackResult<T, D> r;
    r.steps.assign(nb, 0);
    r.bad_grad.assign(nb, 0);
    // The best so far: δ = 0 and the clean logits until a success is found.
    Perturbation<T, D> best;
    for (const auto& v : vars) best.at(v.m) = zeros<T, D>(input(v.m).shape());
    r.logits = probe(model, x, best, y, f_objective, false).logits.contiguous().clone();
    ++r.forward_passes;
    std::vector<char> found(nb, 0);
    std::vector<double> best_norm2(nb, std::numeric_limits<double>::infinity());
    std::vector<double> c(nb, o_.initial_c), lower(nb, 0.0), upper(nb, 1e10);
    const int check_every = std::max(o_.steps / 10, 1);
    constexpr double beta1 = 0.9, beta2 = 0.999, adam_eps = 1e-8;

    for (int round = 0; round < o_.binary_steps; ++round) {
      // Every round starts afresh from x, with a fresh Adam state.
      for (auto& v : vars) {
        v.w = v.w0.clone();
        v.mom = zeros<double, D>(v.w0.shape());
        v.vel = zeros<double, D>(v.w0.shape());
      }
      std::vector<char> active(nb, 1), found_now(nb, 0);
      std::vector<double> prev_loss(nb, std::numeric_limits<double>::infinity());
      for (int it = 0; it < o_.steps; ++it) {
        const auto delta = perturbation();
        auto p = probe(model, x, delta, y, f_objective, true);
        ++r.forward_passes;
        ++r.backward_passes;
        const auto f = values_of(p.value);
        const auto margin = cw::margins(p.logits, y.classes, o_.targeted);
        const auto argmax_ok = successes(p.logits, y, o_.targeted);
        const auto norm2 = [&] {
          auto n = joint_l2_norms(delta);
          for (auto& e : n) e *= e;
          return n;
        }();
        std::vector<double> loss(nb);
        for (std::size_t b = 0; b < nb; ++b) {
          loss[b] = norm2[b] + c[b] * f[b];
          const bool ok = argmax_ok[b] && margin[b] >= o_.kappa;
          if (!ok || !active[b]) continue;
          found_now[b] = 1;
          if (norm2[b] < best_norm2[b]) {
            best_norm2[b] = norm2[b];
            found[b] = 1;
            const auto i = static_cast<std::int64_t>(b);
            for (const auto& v : vars) geometry::copy_row(best.at(v.m), delta.at(v.m), i);
            geometry::copy_row(r.logits, p.logits, i);
          }
        }
        if (o_.abort_early && it % check_every == 0) {
          bool any = false;
          for (std::size_t b = 0; b < nb; ++b) {
            if (active[b] && loss[b] > 0.9999 * prev_loss[b]) active[b] = 0;
            prev_loss[b] = loss[b];
            any = any || active[b];
          }
          if (!any) break;
        }
        // An example with a non-finite gradient stops moving for good.
        for (const auto& v : vars) {
          const auto bad = cw::non_finite_rows(p.grad.at(v.m));
          for (std::size_t b = 0; b < nb; ++b) r.bad_grad[b] = r.bad_grad[b] || bad[b];
        }
        std::vector<double> live(nb);
        for (std::size_t b = 0; b < nb; ++b) live[b] = active[b] && !r.bad_grad[b] ? 1.0 : 0.0;
        // Adam on w: ∂loss/∂x' = 2δ + c·∂f/∂x', and ∂x'/∂w = (hi − lo)/2 · (1 − tanh²w).
        const double t = it + 1;
        const double corr1 = 1 - std::pow(beta1, t), corr2 = 1 - std::pow(beta2, t);
        for (auto& v : vars) {
          const int rank = v.w.dim();
          const auto live_col = cw::column<D>(live, rank);
          const Shape& s = v.w.shape();
          const auto gx =
              map<double>(delta.at(v.m), p.grad.at(v.m).detach(), cw::column<D>(c, rank), cw::LossGradient{}, "cw");
          const auto gw = map_n<double>(s, cw::ChainToW{v.half}, gx, v.w, live_col);
          v.mom = map_n<double>(s, cw::Moment{beta1, false}, v.mom, gw, live_col);
          v.vel = map_n<double>(s, cw::Moment{beta2, true}, v.vel, gw, live_col);
          v.w = map_n<double>(s, cw::AdamUpdate{o_.lr, corr1, corr2, adam_eps}, v.w, v.mom, v.vel, live_col);
        }
        for (std::size_t b = 0; b < nb; ++b) r.steps[b] += active[b];
      }
      // Binary search: a success means c can shrink; none means it must grow (×10 until bracketed).
      for (std::size_t b = 0; b < nb; ++b) {
        if (found_now[b]) {
          upper[b] = std::min(upper[b], c[b]);
          if (upper[b] < 1e9) c[b] = (lower[b] + upper[b]) / 2;
        } else {
          lower[b] = std::max(lower[b], c[b]);
          c[b] = upper[b] < 1e9 ? (lower[b] + upper[b]) / 2 : c[b] * 10;
        }
      }
    }
    r.delta = std::move(best);
    r.success = std::move(found);
    r.value = cw::margins(r.logits, y.classes, o_.targeted);
    return r;
  }

  std::string name() const {
    return detail::concat("CW-L2(", o_.binary_steps, "x", o_.steps,
                          o_.kappa > 0 ? detail::concat(", kappa=", o_.kappa) : "", o_.targeted ? ", targeted" : "",
                          ")");
  }
  const CarliniWagnerOptions& options() const { return o_; }

 private:
  CarliniWagnerOptions o_;
};

}  // namespace avgrad::attacks
