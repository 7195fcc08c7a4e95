// What an attack maximises and how it knows it has won: labels (class indices or multi-hot),
// per-example attack losses (cross entropy, CW margin, DLR, BCE for multi-label heads, or the
// user's own), targeted or untargeted, and the success test on logits.
//
// Every loss returns one value per example, (B), and the attack ascends it: untargeted losses
// grow as the true class loses; a targeted objective ascends the negated loss towards the target.
#pragma once

#include <functional>
#include <vector>

#include "avgrad/autograd/node.hpp"
#include "avgrad/ops/loss.hpp"
#include "avgrad/ops/reduce.hpp"

namespace avgrad::attacks {

/// The labels of a batch: class indices (B) for a single-label model, or multi-hot (B, K)
/// for a multi-label one. For a targeted attack these are the targets.
template <Floating T, Device D = Cpu> struct Labels {
  Tensor<std::int64_t, D> classes;
  Tensor<T, D> multi_hot;

  bool multi_label() const { return multi_hot.defined(); }
  std::int64_t batch() const { return multi_label() ? multi_hot.size(0) : classes.size(0); }
  void check(const char* who, std::int64_t batch_size, std::int64_t num_classes) const {
    AVGRAD_CHECK(classes.defined() != multi_hot.defined(), who,
                 "labels need exactly one of class indices (B) or multi-hot (B, K)");
    if (multi_label())
      AVGRAD_CHECK(multi_hot.dim() == 2 && multi_hot.size(0) == batch_size && multi_hot.size(1) == num_classes, who,
                   "multi-hot labels must be (", batch_size, ", ", num_classes, "), got ", multi_hot.shape());
    else
      AVGRAD_CHECK(classes.dim() == 1 && classes.size(0) == batch_size, who, "class labels must be (", batch_size,
                   "), got ", classes.shape());
  }
};

/// y on device D: shallow copies when it is there already, else each defined part moved.
template <Device D, Floating T, Device E> Labels<T, D> to_device(const Labels<T, E>& y) {
  if constexpr (std::same_as<D, E>)
    return y;
  else
    return {y.classes.defined() ? y.classes.template to<D>() : Tensor<std::int64_t, D>(),
            y.multi_hot.defined() ? y.multi_hot.template to<D>() : Tensor<T, D>()};
}

/// A loss on logits (B, K) and labels, one value per example (B), differentiable in the logits.
template <Floating T, Device D = Cpu> using LossFn =
    std::function<Tensor<T, D>(const Tensor<T, D>& logits, const Labels<T, D>& labels)>;

namespace objective_detail {

/// Per-example value and logit gradient of a margin-type loss, computed row by row.
/// f(row, y, grad_row) returns the value and writes ∂value/∂row into grad_row. On another
/// device the B·K logits come to the host and the B values and B·K gradients go back: a
/// handful of numbers per attack step, and the row rules (top-3, ties) stay in one place.
template <Floating T, Device D, class F>
Tensor<T, D> rowwise_loss(const char* op, const Tensor<T, D>& logits, const Tensor<std::int64_t, D>& y, F f) {
  AVGRAD_CHECK(logits.dim() == 2 && y.dim() == 1 && y.size(0) == logits.size(0), op,
               "expected logits (B, K) and labels (B), got ", logits.shape(), " and ", y.shape());
  const std::int64_t B = logits.size(0), K = logits.size(1);
  const Tensor<T, Cpu> x = logits.detach().template to<Cpu>().contiguous();
  const Tensor<std::int64_t, Cpu> yc = y.template to<Cpu>().contiguous();
  for (std::int64_t b = 0; b < B; ++b)
    AVGRAD_CHECK(yc.data()[b] >= 0 && yc.data()[b] < K, op, "label ", yc.data()[b], " of example ", b,
                 " is outside [0, ", K, ")");
  auto out = Tensor<T, Cpu>::empty({B});
  auto grad = Tensor<T, Cpu>::empty({B, K});
  for (std::int64_t b = 0; b < B; ++b)
    out.data()[b] = static_cast<T>(f(x.data() + b * K, K, yc.data()[b], grad.data() + b * K));
  Tensor<T, D> value = out.template to<D>();
  if (!autograd::any_requires_grad<T, D>({&logits})) return value;
  const Tensor<T, D> dz = grad.template to<D>();
  return autograd::record<T, D>(op, value, {logits}, [dz, B](const Tensor<T, D>& g, const std::vector<bool>&) {
    return autograd::Grads<T, D>{dz * g.reshape(Shape{B, 1})};
  });
}

/// Indices of the largest entries of a row, in decreasing order (the first `count`).
template <Floating T> std::vector<std::int64_t> top(const T* row, std::int64_t K, std::int64_t count) {
  std::vector<std::int64_t> idx(static_cast<std::size_t>(K));
  for (std::int64_t k = 0; k < K; ++k) idx[static_cast<std::size_t>(k)] = k;
  count = std::min(count, K);
  std::partial_sort(idx.begin(), idx.begin() + count, idx.end(), [&](auto a, auto b) { return row[a] > row[b]; });
  idx.resize(static_cast<std::size_t>(count));
  return idx;
}

}  // namespace objective_detail

/// Cross entropy per example (untargeted: grows as the true class loses).
template <Floating T, Device D> Tensor<T, D> ce_loss(const Tensor<T, D>& logits, const Labels<T, D>& y) {
  AVGRAD_CHECK(!y.multi_label(), "ce_loss", "cross entropy needs class labels; use bce_loss for multi-hot labels");
  return cross_entropy(logits, y.classes, CrossEntropyOptions<T, D>{.reduction = Reduction::none});
}

/// BCE-with-logits summed over classes, per example: the multi-label head's loss.
template <Floating T, Device D> Tensor<T, D> bce_loss(const Tensor<T, D>& logits, const Labels<T, D>& y) {
  AVGRAD_CHECK(y.multi_label(), "bce_loss", "BCE needs multi-hot labels (B, K)");
  return sum(
      binary_cross_entropy_with_logits(logits, y.multi_hot, BceWithLogitsOptions<T, D>{.reduction = Reduction::none}),
      {1});
}

/// The Carlini–Wagner margin per example: max_{j≠y} z_j − z_y, capped at kappa (the attack
/// stops pushing once the wrong class leads by kappa). Positive exactly when misclassified.
template <Floating T, Device D> Tensor<T, D> margin_loss(const Tensor<T, D>& logits, const Labels<T, D>& y,
                                                         double kappa = std::numeric_limits<double>::infinity()) {
  AVGRAD_CHECK(!y.multi_label(), "margin_loss", "the margin loss needs class labels");
  return objective_detail::rowwise_loss("margin_loss", logits, y.classes,
                                        [kappa](const T* z, std::int64_t K, std::int64_t c, T* g) {
                                          std::int64_t j = c == 0 ? 1 : 0;
                                          for (std::int64_t k = 0; k < K; ++k)
                                            if (k != c && z[k] > z[j]) j = k;
                                          std::fill(g, g + K, T(0));
                                          const double m = static_cast<double>(z[j]) - z[c];
                                          if (K < 2 || m >= kappa) return std::min(m, kappa);
                                          g[j] = T(1);
                                          g[c] = T(-1);
                                          return m;
                                        });
}

/// Croce & Hein's difference of logits ratio, untargeted: −(z_y − max_{j≠y} z_j) / (z_π1 − z_π3),
/// π the classes sorted by logit; invariant to shifting and scaling the logits. Needs K ≥ 3.
template <Floating T, Device D> Tensor<T, D> dlr_loss(const Tensor<T, D>& logits, const Labels<T, D>& y) {
  AVGRAD_CHECK(!y.multi_label(), "dlr_loss", "the DLR loss needs class labels");
  AVGRAD_CHECK(logits.dim() == 2 && logits.size(1) >= 3, "dlr_loss", "DLR needs at least 3 classes, got logits ",
               logits.shape());
  return objective_detail::rowwise_loss(
      "dlr_loss", logits, y.classes, [](const T* z, std::int64_t K, std::int64_t c, T* g) {
        const auto order = objective_detail::top(z, K, 3);
        const std::int64_t p1 = order[0], p3 = order[2];
        const std::int64_t j = order[0] == c ? order[1] : order[0];  // the best other class
        const double num = static_cast<double>(z[c]) - z[j];
        const double den = static_cast<double>(z[p1]) - z[p3] + 1e-12;
        std::fill(g, g + K, T(0));
        // value = −num/den; ∂/∂z = −(∂num/den − num·∂den/den²)
        g[c] += static_cast<T>(-1.0 / den);
        g[j] += static_cast<T>(1.0 / den);
        g[p1] += static_cast<T>(num / (den * den));
        g[p3] += static_cast<T>(-num / (den * den));
        return -num / den;
      });
}

/// Targeted DLR (Croce & Hein): −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2), y the true class and
/// t the target; ascending it moves the target above the true class. Needs K ≥ 4.
template <Floating T, Device D> Tensor<T, D> dlr_targeted_loss(const Tensor<T, D>& logits,
                                                               const Tensor<std::int64_t, D>& truth,
                                                               const Tensor<std::int64_t, D>& target) {
  AVGRAD_CHECK(logits.dim() == 2 && logits.size(1) >= 4, "dlr_targeted_loss", "targeted DLR needs at least 4 classes");
  AVGRAD_CHECK(target.dim() == 1 && target.size(0) == logits.size(0), "dlr_targeted_loss", "targets must be (B)");
  const Tensor<std::int64_t, Cpu> tc = target.template to<Cpu>().contiguous();
  std::int64_t b = 0;
  return objective_detail::rowwise_loss(
      "dlr_targeted_loss", logits, truth, [&b, tc](const T* z, std::int64_t K, std::int64_t c, T* g) {
        const std::int64_t t = tc.data()[b++];
        AVGRAD_CHECK(t >= 0 && t < K, "dlr_targeted_loss", "target ", t, " is outside [0, ", K, ")");
        const auto order = objective_detail::top(z, K, 4);
        const double num = static_cast<double>(z[c]) - z[t];
        const double den = static_cast<double>(z[order[0]]) - 0.5 * (z[order[2]] + z[order[3]]) + 1e-12;
        std::fill(g, g + K, T(0));
        g[c] += static_cast<T>(-1.0 / den);
        g[t] += static_cast<T>(1.0 / den);
        g[order[0]] += static_cast<T>(num / (den * den));
        g[order[2]] += static_cast<T>(-0.5 * num / (den * den));
        g[order[3]] += static_cast<T>(-0.5 * num / (den * den));
        return -num / den;
      });
}

enum class LossKind { cross_entropy, margin, dlr, bce };
inline const char* loss_name(LossKind k) {
  return k == LossKind::cross_entropy ? "ce" : k == LossKind::margin ? "margin" : k == LossKind::dlr ? "dlr" : "bce";
}

/// What an attack ascends: a loss, and whether it is targeted (then the labels given to the
/// attack are the targets and the loss is descended towards them).
template <Floating T, Device D = Cpu> struct Objective {
  LossFn<T, D> loss;
  bool targeted = false;
  std::string name = "custom";

  static Objective of(LossKind kind, bool targeted = false) {
    switch (kind) {
      case LossKind::cross_entropy:
        return {[](const Tensor<T, D>& z, const Labels<T, D>& y) { return ce_loss(z, y); }, targeted, "ce"};
      case LossKind::margin:
        return {[](const Tensor<T, D>& z, const Labels<T, D>& y) { return margin_loss(z, y); }, targeted, "margin"};
      case LossKind::dlr:
        AVGRAD_CHECK(!targeted, "Objective", "targeted DLR needs the true labels too: use dlr_targeted_loss");
        return {[](const Tensor<T, D>& z, const Labels<T, D>& y) { return dlr_loss(z, y); }, false, "dlr"};
      case LossKind::bce:
        return {[](const Tensor<T, D>& z, const Labels<T, D>& y) { return bce_loss(z, y); }, targeted, "bce"};
    }
    return {};
  }
  /// The value ascended, per example: loss, or −loss when targeted.
  Tensor<T, D> operator()(const Tensor<T, D>& logits, const Labels<T, D>& y) const {
    AVGRAD_CHECK(static_cast<bool>(loss), "Objective", "no loss function");
    auto l = loss(logits, y);
    AVGRAD_CHECK(l.dim() == 1 && l.size(0) == logits.size(0), "Objective", "the loss '", name,
                 "' must return one value per example (", logits.size(0), "), got ", l.shape());
    return targeted ? -l : l;
  }
};

/// Whether each example's prediction is what the attacker wants: single-label untargeted —
/// argmax ≠ label; targeted — argmax = target; multi-label untargeted — the predicted label set
/// (sigmoid ≥ threshold) differs from the true set; targeted — it equals the target set.
template <Floating T> std::vector<char> successes(const Tensor<T, Cpu>& logits, const Labels<T, Cpu>& y, bool targeted,
                                                  double threshold = 0.5) {
  const auto z = logits.contiguous();
  const std::int64_t B = z.size(0), K = z.size(1);
  std::vector<char> out(static_cast<std::size_t>(B));
  const double logit_threshold = std::log(threshold / (1 - threshold));
  const Tensor<T, Cpu> mh = y.multi_label() ? y.multi_hot.contiguous() : Tensor<T, Cpu>{};
  const Tensor<std::int64_t, Cpu> cls = y.multi_label() ? Tensor<std::int64_t, Cpu>{} : y.classes.contiguous();
  for (std::int64_t b = 0; b < B; ++b) {
    const T* r = z.data() + b * K;
    bool hit;
    if (y.multi_label()) {
      bool same = true;
      for (std::int64_t k = 0; k < K; ++k) same = same && ((r[k] >= logit_threshold) == (mh.data()[b * K + k] > 0.5));
      hit = targeted ? same : !same;
    } else {
      const std::int64_t pred = std::max_element(r, r + K) - r;
      const std::int64_t c = cls.data()[b];
      hit = targeted ? pred == c : pred != c;
    }
    out[static_cast<std::size_t>(b)] = hit;
  }
  return out;
}

/// The same for device logits and labels: decided on the host from the (B, K) logits.
template <Floating T, Device D>
requires(!std::same_as<D, Cpu>) std::vector<char> successes(const Tensor<T, D>& logits, const Labels<T, D>& y,
                                                            bool targeted, double threshold = 0.5) {
  return successes(logits.template to<Cpu>(), to_device<Cpu>(y), targeted, threshold);
}

}  // namespace avgrad::attacks
