// What every attack shares: its result, the input-only gradient probe (the objective and its
// gradient with respect to the perturbed inputs, with the model's parameters frozen so no
// weight gradient is ever computed), and the bookkeeping of the best perturbation per example.
#pragma once

#include <cmath>
#include <utility>
#include <vector>

#include "avgrad/attacks/objective.hpp"
#include "avgrad/attacks/threat_model.hpp"
#include "avgrad/autograd/engine.hpp"

namespace avgrad::attacks {

using models::AVInput;
using models::AVModel;

/// The outcome of an attack on a batch.
template <Floating T, Device D = Cpu> struct AttackResult {
  Perturbation<T, D> delta;                              ///< the returned perturbation of each attacked modality
  Tensor<T, D> logits;                                   ///< the model's logits on x + δ
  std::vector<char> success;                             ///< per example: the attacker's goal is met (see successes())
  std::vector<double> value;                             ///< per example: the objective at the returned δ
  std::vector<int> steps;                                ///< per example: gradient steps spent (early stop shortens it)
  std::vector<char> bad_grad;                            ///< per example: some gradient was zero or non-finite
  std::int64_t forward_passes = 0, backward_passes = 0;  ///< batch passes, for cost accounting

  /// x + δ (the unattacked modalities as given).
  AVInput<T, D> adversarial(const AVInput<T, D>& x) const {
    return {delta.audio.defined() ? (x.audio + delta.audio).detach() : x.audio,
            delta.video.defined() ? (x.video + delta.video).detach() : x.video};
  }
  double success_rate() const {
    double s = 0;
    for (char c : success) s += c;
    return success.empty() ? 0.0 : s / static_cast<double>(success.size());
  }
};

/// Freezes a model's parameters for the guard's lifetime (restoring each one's flag after), so
/// backward passes compute input gradients only.
template <class M> class FrozenParameters {
 public:
  explicit FrozenParameters(M& model) {
    for (auto& [name, p] : model.named_parameters()) {
      saved_.emplace_back(p, p.requires_grad());
      auto t = p;
      t.requires_grad_(false);
    }
  }
  ~FrozenParameters() {
    for (auto& [p, flag] : saved_) p.requires_grad_(flag);
  }
  FrozenParameters(const FrozenParameters&) = delete;
  FrozenParameters& operator=(const FrozenParameters&) = delete;

 private:
  std::vector<std::pair<Tensor<typename M::value_type, typename M::device_type>, bool>> saved_;
};

/// The objective on x + δ and, when asked, its gradient with respect to δ of every attacked modality.
template <Floating T, Device D = Cpu> struct Probe {
  Tensor<T, D> value;   ///< (B) objective
  Tensor<T, D> logits;  ///< (B, K)
  Perturbation<T, D> grad;
};

template <AVModel M, Floating T = typename M::value_type, Device D = typename M::device_type>
Probe<T, D> probe(M& model, const AVInput<T, D>& x, const Perturbation<T, D>& delta, const Labels<T, D>& y,
                  const Objective<T, D>& objective, bool need_grad) {
  AVInput<T, D> adv = x;
  std::vector<Tensor<T, D>> leaves;
  std::vector<Modality> order;
  for (Modality m : {Modality::audio, Modality::video}) {
    if (!delta.at(m).defined()) continue;
    auto& xm = m == Modality::audio ? adv.audio : adv.video;
    xm = (xm + delta.at(m)).detach();
    if (need_grad) {
      xm.requires_grad_();
      leaves.push_back(xm);
      order.push_back(m);
    }
  }
  Probe<T, D> p;
  if (!need_grad) {
    NoGradGuard no_grad;
    p.logits = model.forward(adv).logits;
    p.value = objective(p.logits, y);
    return p;
  }
  p.logits = model.forward(adv).logits;
  p.value = objective(p.logits, y);
  if (!p.value.requires_grad()) {
    // The model cuts the inputs off its output (a detach, a saturated clamp): the gradient is
    // zero, which the attack reports as a bad gradient rather than an error.
    for (std::size_t i = 0; i < order.size(); ++i) p.grad.at(order[i]) = zeros_like(leaves[i].detach());
    return p;
  }
  auto grads = autograd::grad(sum(p.value), leaves);
  for (std::size_t i = 0; i < order.size(); ++i) p.grad.at(order[i]) = grads[i];
  p.logits = p.logits.detach();
  p.value = p.value.detach();
  return p;
}

/// Flags examples whose gradient (over all attacked modalities) is all zero or has a non-finite entry.
template <Floating T> void flag_bad_gradients(const Perturbation<T, Cpu>& g, std::vector<char>& flags) {
  std::vector<char> nonzero(flags.size(), 0), finite(flags.size(), 1);
  for (Modality m : {Modality::audio, Modality::video}) {
    const auto& t = g.at(m);
    if (!t.defined()) continue;
    const auto c = t.contiguous();
    const auto [B, n] = geometry::rows(c);
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t i = 0; i < n; ++i) {
        const T v = c.data()[b * n + i];
        if (v != T(0)) nonzero[static_cast<std::size_t>(b)] = 1;
        if (!std::isfinite(static_cast<double>(v))) finite[static_cast<std::size_t>(b)] = 0;
      }
  }
  for (std::size_t b = 0; b < flags.size(); ++b) flags[b] = flags[b] || !nonzero[b] || !finite[b];
}

/// The same for a device gradient: per example, the largest |g| (NaN wins) decides: zero or
/// non-finite flags the example. One reduction per modality, B numbers back.
template <Floating T, Device D>
requires(!std::same_as<D, Cpu>) void flag_bad_gradients(const Perturbation<T, D>& g, std::vector<char>& flags) {
  NoGradGuard no_grad;
  for (Modality m : {Modality::audio, Modality::video}) {
    const auto& t = g.at(m);
    if (!t.defined()) continue;
    const auto [B, n] = geometry::rows(t);
    const auto top = amax(abs(t.detach().reshape({B, n})), {1}).template to<Cpu>().to_vector();
    for (std::int64_t b = 0; b < B; ++b) {
      const double v = static_cast<double>(top[static_cast<std::size_t>(b)]);
      if (!(v > 0) || !std::isfinite(v)) flags[static_cast<std::size_t>(b)] = 1;
    }
  }
}

/// Checks an attack's inputs: the threat model, the modalities present, finite inputs, labels.
template <AVModel M, Floating T, Device D> void check_attack_inputs(const char* who, const M& model,
                                                                    const AVInput<T, D>& x, const Labels<T, D>& y,
                                                                    const ThreatModel& tm) {
  tm.check(who);
  AVGRAD_CHECK(x.audio.defined() || x.video.defined(), who, "no input: both modalities are missing");
  for (Modality m : {Modality::audio, Modality::video}) {
    const auto& xm = m == Modality::audio ? x.audio : x.video;
    if (tm.attacks(m))
      AVGRAD_CHECK(xm.defined(), who, "the threat model attacks the ", modality_name(m), " input, which is missing");
    if (xm.defined()) {
      check_finite(xm, detail::concat(who, ": ", modality_name(m), " input").c_str());
      const auto& b = tm.attacks(m) ? tm.budget(m) : Budget{};
      if (tm.attacks(m) && (std::isfinite(b.lo) || std::isfinite(b.hi))) {
        auto c = xm.template to<Cpu>().contiguous();
        for (std::int64_t i = 0; i < c.numel(); ++i) {
          const double v = static_cast<double>(c.data()[i]);
          AVGRAD_CHECK(v >= b.lo && v <= b.hi, who, "the ", modality_name(m), " input has ", v, " at flat index ", i,
                       ", outside the budget's valid range [", b.lo, ", ", b.hi, "]");
        }
      }
    }
  }
  AVGRAD_CHECK(x.batch() > 0, who, "empty batch");
  y.check(who, x.batch(), model.num_classes());
}

/// Per example, keeps the better of (best, candidate): success first, then the higher objective.
template <Floating T, Device D = Cpu> struct BestPerturbation {
  Perturbation<T, D> delta;
  Tensor<T, D> logits;
  std::vector<char> success;
  std::vector<double> value;

  /// Copies the candidate's rows where it beats the best so far (or when nothing is kept yet).
  void offer(const Perturbation<T, D>& cand, const Tensor<T, D>& cand_logits, const std::vector<char>& cand_success,
             const std::vector<double>& cand_value) {
    if (!logits.defined()) {
      for (Modality m : {Modality::audio, Modality::video})
        if (cand.at(m).defined()) delta.at(m) = cand.at(m).clone();
      logits = cand_logits.clone();
      success = cand_success;
      value = cand_value;
      return;
    }
    const std::int64_t B = logits.size(0);
    for (std::int64_t b = 0; b < B; ++b) {
      const auto i = static_cast<std::size_t>(b);
      const bool better =
          (cand_success[i] && !success[i]) || (cand_success[i] == success[i] && cand_value[i] > value[i]);
      if (!better) continue;
      success[i] = cand_success[i];
      value[i] = cand_value[i];
      geometry::copy_row(logits, cand_logits, b);
      for (Modality m : {Modality::audio, Modality::video})
        if (cand.at(m).defined()) geometry::copy_row(delta.at(m), cand.at(m), b);
    }
  }
};

/// Objective values of a probe as doubles.
template <Floating T, Device D> std::vector<double> values_of(const Tensor<T, D>& v) {
  auto c = v.template to<Cpu>().contiguous();
  return std::vector<double>(c.data(), c.data() + c.numel());
}

}  // namespace avgrad::attacks
