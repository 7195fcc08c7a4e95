// Adversarial training through the attacks module: PGD-AT (Madry et al. 2018) with per-modality
// budgets (audio only, video only or both — the ThreatModel decides), FGSM with a random start
// ("fast" adversarial training, Wong et al. 2020) and TRADES (Zhang et al. 2019). Also the
// clean and robust accuracy every defense is judged by.
//
// Keeps true: training examples stay inside the threat model's budget and valid range (the
// attack's projection guarantees it); every attack pass is charged to the run's Cost; each
// step's attack seed comes from the trainer's generator, so a resumed run attacks identically.
#pragma once

#include "avgrad/attacks/pgd.hpp"
#include "avgrad/train/defense.hpp"

namespace avgrad::train {

enum class AdversarialMethod { pgd, fgsm_rs, trades };
inline const char* adversarial_method_name(AdversarialMethod m) {
  return m == AdversarialMethod::pgd ? "pgd-at" : m == AdversarialMethod::fgsm_rs ? "fgsm-rs-at" : "trades";
}

struct AdversarialTrainingOptions {
  AdversarialMethod method = AdversarialMethod::pgd;
  attacks::ThreatModel threat{};  ///< which modalities are perturbed in training, each with its budget
  int steps = 7;                  ///< PGD and TRADES inner steps (Budget::step is the step size)
  double fgsm_step = 1.25;        ///< FGSM-RS step as a multiple of ε (Wong et al.)
  double trades_beta = 6.0;       ///< TRADES: loss = CE(clean) + β·KL(p_clean ‖ p_adv)
  double clean_weight = 0.0;      ///< PGD/FGSM: loss = w·CE(clean) + (1 − w)·CE(adversarial); Madry: 0
  /// Craft the perturbation with the model in eval mode (batch norm's running statistics are
  /// then not updated by the attack's passes, and dropout does not randomise the gradient);
  /// the training pass always runs in the model's own mode.
  bool attack_in_eval_mode = true;

  void check() const {
    threat.check("AdversarialTraining");
    AVGRAD_CHECK(steps >= 1, "AdversarialTraining", "steps must be >= 1, got ", steps);
    AVGRAD_CHECK(fgsm_step > 0 && std::isfinite(fgsm_step), "AdversarialTraining", "fgsm_step must be > 0");
    AVGRAD_CHECK(trades_beta >= 0 && std::isfinite(trades_beta), "AdversarialTraining",
                 "trades_beta must be finite and >= 0, got ", trades_beta);
    AVGRAD_CHECK(clean_weight >= 0 && clean_weight <= 1, "AdversarialTraining", "clean_weight must be in [0, 1], got ",
                 clean_weight);
    for (Modality m : {Modality::audio, Modality::video})
      if (threat.attacks(m) && method != AdversarialMethod::fgsm_rs)
        AVGRAD_CHECK(threat.budget(m).step > 0, "AdversarialTraining", "the ", models::modality_name(m),
                     " budget's step is 0: set Budget::step (e.g. 2.5·eps/steps)");
  }
};

/// KL(p ‖ softmax(z)) per example (B) for fixed p (B, K): Σ_k p_k (log p_k − log softmax(z)_k).
template <Floating T, Device D> Tensor<T, D> kl_from_probs(const Tensor<T, D>& p, const Tensor<T, D>& logits) {
  AVGRAD_CHECK(p.shape() == logits.shape() && logits.dim() == 2, "kl_from_probs",
               "expected probabilities and logits of one shape (B, K), got ", p.shape(), " and ", logits.shape());
  // 0·log 0 = 0: clamp p inside the log only where it multiplies a zero.
  const auto logp = log(clamp(p, 1e-30, 1.0));
  return sum(p * (logp - log_softmax(logits, 1)), {1});
}

/// PGD-AT, FGSM-RS-AT or TRADES on any AVModel.
template <AVModel M> class AdversarialTraining final : public Defense<M> {
 public:
  using T = typename M::value_type;
  using D = typename M::device_type;
  explicit AdversarialTraining(AdversarialTrainingOptions o) : o_(std::move(o)) { o_.check(); }
  std::string name() const override {
    return std::string(adversarial_method_name(o_.method)) + "(" + o_.threat.str() + ")";
  }

  /// The perturbed batch this step trains on (also what tests inspect).
  AVInput<T, D> perturb(M& model, const AVBatch<T, D>& b, std::uint64_t seed, Cost& cost,
                        const Tensor<T, D>& clean_probs = {}) const {
    ModeGuard<M> mode(model, o_.attack_in_eval_mode ? false : model.is_training());
    attacks::Objective<T, D> objective =
        attacks::Objective<T, D>::of(model.multi_label() ? attacks::LossKind::bce : attacks::LossKind::cross_entropy);
    if (o_.method == AdversarialMethod::trades) {
      objective = {[clean_probs](const Tensor<T, D>& z, const Labels<T, D>&) { return kl_from_probs(clean_probs, z); },
                   false, "kl"};
    }
    attacks::Pgd<T, D> attack =
        o_.method == AdversarialMethod::fgsm_rs
            ? attacks::fgsm<T, D>(objective, true, seed, o_.fgsm_step)
            : attacks::Pgd<T, D>(attacks::PgdOptions{.steps = o_.steps, .random_start = true, .seed = seed}, objective);
    auto r = attack.run(model, b.x, b.y, o_.threat);
    cost.add_forward(b.size(), r.forward_passes);
    cost.add_backward(b.size(), r.backward_passes);
    return r.adversarial(b.x);
  }

  StepOutput<T, D> loss(M& model, const AVBatch<T, D>& b, Generator& gen, Cost& cost) override {
    const std::uint64_t seed = gen.next_below(std::uint64_t{1} << 62);
    if (o_.method == AdversarialMethod::trades) {
      AVGRAD_CHECK(!model.multi_label(), "AdversarialTraining", "TRADES needs a single-label model");
      auto clean = model.forward(b.x).logits;
      cost.add_forward(b.size());
      const auto p = softmax(clean.detach(), 1);
      const auto adv = perturb(model, b, seed, cost, p);
      auto adv_logits = model.forward(adv).logits;
      cost.add_forward(b.size());
      // Gradient through both terms of the KL, as the reference implementation.
      auto kl = mean(sum(softmax(clean, 1) * (log_softmax(clean, 1) - log_softmax(adv_logits, 1)), {1}));
      auto loss = label_loss(clean, b.y) + kl * static_cast<T>(o_.trades_beta);
      return {loss, correct(adv_logits, b.y), b.size()};
    }
    const auto adv = perturb(model, b, seed, cost);
    auto adv_logits = model.forward(adv).logits;
    cost.add_forward(b.size());
    auto loss = label_loss(adv_logits, b.y);
    if (o_.clean_weight > 0) {
      auto clean = model.forward(b.x).logits;
      cost.add_forward(b.size());
      loss = label_loss(clean, b.y) * static_cast<T>(o_.clean_weight) + loss * static_cast<T>(1 - o_.clean_weight);
    }
    return {loss, correct(adv_logits, b.y), b.size()};
  }
  const AdversarialTrainingOptions& options() const { return o_; }

 private:
  AdversarialTrainingOptions o_;
};

/// Clean and robust accuracy of a model on a labelled set, in eval mode (restored after).
struct RobustAccuracy {
  double clean = 0, robust = 0;
  std::int64_t examples = 0;
};

/// Accuracy on clean inputs and under `attack` within `tm` (robust: the attack's returned input is
/// still classified correctly). `batch` examples per attack call.
template <AVModel M, class Attack>
RobustAccuracy robust_accuracy(M& model, const AVBatch<typename M::value_type, typename M::device_type>& data,
                               const Attack& attack, const attacks::ThreatModel& tm, std::int64_t batch = 256) {
  AVGRAD_CHECK(batch >= 1 && data.size() >= 1, "robust_accuracy", "need batch >= 1 and a non-empty set");
  ModeGuard<M> mode(model, false);
  RobustAccuracy r;
  std::int64_t clean = 0, robust = 0;
  for (std::int64_t s = 0; s < data.size(); s += batch) {
    const std::int64_t e = std::min(data.size(), s + batch);
    AVBatch<typename M::value_type, typename M::device_type> b;
    if (data.x.audio.defined()) b.x.audio = data.x.audio.slice(0, s, e).contiguous();
    if (data.x.video.defined()) b.x.video = data.x.video.slice(0, s, e).contiguous();
    if (data.y.multi_label())
      b.y.multi_hot = data.y.multi_hot.slice(0, s, e).contiguous();
    else
      b.y.classes = data.y.classes.slice(0, s, e).contiguous();
    {
      NoGradGuard no_grad;
      clean += correct(model.forward(b.x).logits, b.y);
    }
    const auto res = attack.run(model, b.x, b.y, tm);
    robust += correct(res.logits, b.y);
  }
  r.examples = data.size();
  r.clean = static_cast<double>(clean) / static_cast<double>(r.examples);
  r.robust = static_cast<double>(robust) / static_cast<double>(r.examples);
  return r;
}

}  // namespace avgrad::train
