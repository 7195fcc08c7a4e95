// What a training strategy (plain, mix-up, adversarial) is to the trainer: it turns one batch into
// a differentiable loss and counts every forward and backward pass it spends, so defenses compare
// by cost as well as by robustness. Also the batch type, the cost ledger, soft targets and the
// soft-label losses mix-up trains with.
//
// Keeps true: a Defense draws all of its randomness from the Generator the trainer passes in (or
// from seeds derived from it), so restoring that generator restores the defense's choices; state
// a defense carries between steps goes through state_dict()/load_state_dict().
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "avgrad/attacks/objective.hpp"
#include "avgrad/models/concepts.hpp"
#include "avgrad/ops/index.hpp"
#include "avgrad/ops/loss.hpp"
#include "avgrad/ops/reduce.hpp"
#include "avgrad/ops/softmax.hpp"

namespace avgrad::train {

using attacks::Labels;
using models::AVInput;
using models::AVModel;
using models::Modality;

/// One training or evaluation batch: the inputs of each modality and their labels. Data sets
/// live in host memory; the trainer moves each batch to the model's device (to<D>()).
template <Floating T, Device D = Cpu> struct AVBatch {
  AVInput<T, D> x{};
  Labels<T, D> y{};
  std::int64_t size() const { return x.batch(); }

  /// The same batch on device E (a copy; undefined parts stay undefined).
  template <Device E> AVBatch<T, E> to() const { return {models::to_device<E>(x), attacks::to_device<E>(y)}; }
};

/// What a run has spent. Passes count batch passes (one forward of a batch of any size is one
/// pass, as the attacks count them); the *_examples fields weigh each pass by its batch size,
/// which is what compares runs with different batch sizes.
struct Cost {
  double seconds = 0;
  std::int64_t forward_passes = 0, backward_passes = 0;
  std::int64_t forward_examples = 0, backward_examples = 0;
  std::int64_t examples_seen = 0;  ///< training examples drawn from the data

  void add_forward(std::int64_t batch, std::int64_t passes = 1) {
    forward_passes += passes;
    forward_examples += passes * batch;
  }
  void add_backward(std::int64_t batch, std::int64_t passes = 1) {
    backward_passes += passes;
    backward_examples += passes * batch;
  }
  /// Metadata strings for checkpoints (seconds with round-trip precision).
  std::map<std::string, std::string> state_dict() const;
  void load_state_dict(const std::map<std::string, std::string>& s);
};

namespace detail {
inline std::string exact(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}
inline double parse_double(const std::map<std::string, std::string>& s, const std::string& key, const char* who) {
  auto it = s.find(key);
  AVGRAD_CHECK(it != s.end(), who, "missing state key '", key, "'");
  try {
    std::size_t used = 0;
    const double v = std::stod(it->second, &used);
    AVGRAD_CHECK(used == it->second.size(), who, "trailing characters");
    return v;
  } catch (...) {
    throw Error(who, ::avgrad::detail::concat("malformed value '", it->second, "' for '", key, "'"));
  }
}
inline std::int64_t parse_int(const std::map<std::string, std::string>& s, const std::string& key, const char* who) {
  auto it = s.find(key);
  AVGRAD_CHECK(it != s.end(), who, "missing state key '", key, "'");
  try {
    std::size_t used = 0;
    const long long v = std::stoll(it->second, &used);
    AVGRAD_CHECK(used == it->second.size(), who, "trailing characters");
    return v;
  } catch (...) {
    throw Error(who, ::avgrad::detail::concat("malformed value '", it->second, "' for '", key, "'"));
  }
}
}  // namespace detail

inline std::map<std::string, std::string> Cost::state_dict() const {
  return {{"seconds", detail::exact(seconds)},
          {"forward_passes", std::to_string(forward_passes)},
          {"backward_passes", std::to_string(backward_passes)},
          {"forward_examples", std::to_string(forward_examples)},
          {"backward_examples", std::to_string(backward_examples)},
          {"examples_seen", std::to_string(examples_seen)}};
}
inline void Cost::load_state_dict(const std::map<std::string, std::string>& s) {
  seconds = detail::parse_double(s, "seconds", "Cost");
  forward_passes = detail::parse_int(s, "forward_passes", "Cost");
  backward_passes = detail::parse_int(s, "backward_passes", "Cost");
  forward_examples = detail::parse_int(s, "forward_examples", "Cost");
  backward_examples = detail::parse_int(s, "backward_examples", "Cost");
  examples_seen = detail::parse_int(s, "examples_seen", "Cost");
}

/// Labels as a (B, K) target distribution: one-hot rows for class labels, the multi-hot rows as given.
template <Floating T, Device D> Tensor<T, D> soft_targets(const Labels<T, D>& y, std::int64_t num_classes) {
  if (y.multi_label()) {
    AVGRAD_CHECK(y.multi_hot.dim() == 2 && y.multi_hot.size(1) == num_classes, "soft_targets",
                 "multi-hot labels must be (B, ", num_classes, "), got ", y.multi_hot.shape());
    return y.multi_hot.detach().contiguous();
  }
  return one_hot<T>(y.classes, num_classes);
}

/// The loss on soft targets (B, K): cross entropy against a distribution for a single-label model
/// (mean over the batch), binary cross entropy with logits for a multi-label one (mean over every
/// entry, as PyTorch's default). Both are linear in the targets, so the loss on a mixed target
/// λ·t_i + (1 − λ)·t_j equals λ·ℓ(t_i) + (1 − λ)·ℓ(t_j) — mix-up's usual loss.
template <Floating T, Device D>
Tensor<T, D> soft_label_loss(const Tensor<T, D>& logits, const Tensor<T, D>& targets, bool multi_label) {
  AVGRAD_CHECK(logits.dim() == 2 && targets.shape() == logits.shape(), "soft_label_loss",
               "expected logits (B, K) and targets of the same shape, got ", logits.shape(), " and ",
               targets.defined() ? targets.shape().str() : std::string("undefined"));
  if (multi_label) return binary_cross_entropy_with_logits(logits, targets);
  return cross_entropy(logits, targets);
}

/// The loss on hard labels: cross entropy on class indices, or BCE on multi-hot rows.
template <Floating T, Device D> Tensor<T, D> label_loss(const Tensor<T, D>& logits, const Labels<T, D>& y) {
  if (y.multi_label()) return binary_cross_entropy_with_logits(logits, y.multi_hot);
  return cross_entropy(logits, y.classes);
}

/// Correct predictions in a batch: argmax = label, or (multi-label) every sigmoid ≥ 0.5 decision right.
template <Floating T, Device D> std::int64_t correct(const Tensor<T, D>& logits, const Labels<T, D>& y) {
  const auto ok = attacks::successes(logits.detach(), y, false);
  std::int64_t n = 0;
  for (char c : ok) n += !c;
  return n;
}

/// Sets a model's train/eval mode for a scope and restores the previous mode on exit, exceptions
/// included (attacks and evaluation run in eval mode inside a training loop).
template <class M> class ModeGuard {
 public:
  ModeGuard(M& model, bool training) : model_(model), was_(model.is_training()) { model.train(training); }
  ~ModeGuard() { model_.train(was_); }
  ModeGuard(const ModeGuard&) = delete;
  ModeGuard& operator=(const ModeGuard&) = delete;

 private:
  M& model_;
  bool was_;
};

/// What one step of a defense produced.
template <Floating T, Device D = Cpu> struct StepOutput {
  Tensor<T, D> loss{};           ///< scalar, differentiable in the parameters
  std::int64_t correct = 0;      ///< training predictions that match each example's own label
  std::int64_t predictions = 0;  ///< predictions counted in `correct`
};

/// A training strategy. loss() runs the model on a batch however the defense wants (mixed,
/// perturbed, twice) and returns the loss the trainer back-propagates; it adds every forward and
/// backward pass it spends itself to `cost` (the trainer adds the final backward).
template <AVModel M> class Defense {
 public:
  using T = typename M::value_type;
  using D = typename M::device_type;  ///< batches arrive on the model's device
  virtual ~Defense() = default;
  virtual std::string name() const = 0;
  virtual StepOutput<T, D> loss(M& model, const AVBatch<T, D>& batch, Generator& gen, Cost& cost) = 0;
  /// Called before every optimizer step `step` (0-based) and at the start of every epoch; a guided
  /// defense refreshes its statistics here (their passes go into `cost`).
  virtual void before_step(M&, std::int64_t /*step*/, Cost&) {}
  virtual void on_epoch_start(M&, std::int64_t /*epoch*/, std::int64_t /*step*/, Cost&) {}
  /// State that must survive a resume (strings, stored in the checkpoint's metadata).
  virtual std::map<std::string, std::string> state_dict() const { return {}; }
  virtual void load_state_dict(const std::map<std::string, std::string>&) {}
};

/// Plain empirical risk minimisation: the loss on the clean batch.
template <AVModel M> class PlainTraining final : public Defense<M> {
 public:
  using T = typename M::value_type;
  using D = typename M::device_type;
  std::string name() const override { return "plain"; }
  StepOutput<T, D> loss(M& model, const AVBatch<T, D>& b, Generator&, Cost& cost) override {
    auto logits = model.forward(b.x).logits;
    cost.add_forward(b.size());
    return {label_loss(logits, b.y), correct(logits, b.y), b.size()};
  }
};

}  // namespace avgrad::train
