// Classification metrics on plain CPU values (no autograd): accuracy, top-k, per-class accuracy and the confusion
// matrix for single-label logits; per-class average precision, ROC AUC, mAP and d′ for multi-label scores.
//
// Definitions (the multi-label ones match sklearn's average_precision_score and roc_auc_score, which the study's
// reference code calls per class):
//   argmax / top-k   ties between logits go to the lower class index, as std::max_element, so top-1 accuracy is
//                    accuracy and both agree with attacks::successes();
//   AP               Σ_n (R_n − R_{n−1}) · P_n over the distinct score thresholds, highest first: examples with tied
//                    scores enter together as one step of the precision-recall curve, so AP does not depend on the
//                    order of tied examples;
//   ROC AUC          the Mann–Whitney statistic P(s⁺ > s⁻) + ½ P(s⁺ = s⁻), computed from mid-ranks;
//   d′               √2 · Φ⁻¹(AUC) (0 at chance, +∞ at AUC 1);
//   mAP, mean AUC    means over the classes where the metric is defined: AP needs a positive, AUC a positive and a
//                    negative; undefined classes hold NaN in the per-class vectors and are counted, not averaged.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <numeric>
#include <span>
#include <vector>

#include "avgrad/core/tensor.hpp"

namespace avgrad::metrics {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---- single-label ---------------------------------------------------------------------------------------------

namespace detail {

template <Floating T> void check_logits(const char* who, const Tensor<T, Cpu>& logits) {
  AVGRAD_CHECK(logits.defined() && logits.dim() == 2 && logits.size(0) > 0 && logits.size(1) > 0, who,
               "expected logits (B, K) with B, K > 0, got ",
               logits.defined() ? logits.shape().str() : std::string("an undefined tensor"));
}

inline void check_labels(const char* who, const std::vector<std::int64_t>& labels, std::int64_t B, std::int64_t K) {
  AVGRAD_CHECK(static_cast<std::int64_t>(labels.size()) == B, who, "expected ", B, " labels, got ", labels.size());
  for (std::size_t i = 0; i < labels.size(); ++i)
    AVGRAD_CHECK(labels[i] >= 0 && labels[i] < K, who, "label ", labels[i], " of example ", i, " is outside [0, ", K,
                 ")");
}

inline std::vector<std::int64_t> labels_of(const char* who, const Tensor<std::int64_t, Cpu>& labels) {
  AVGRAD_CHECK(labels.defined() && labels.dim() == 1, who, "expected class labels (B), got ",
               labels.defined() ? labels.shape().str() : std::string("an undefined tensor"));
  return labels.to_vector();
}

}  // namespace detail

/// Row-wise argmax of logits (B, K); a tie goes to the lowest index.
template <Floating T> std::vector<std::int64_t> argmax_rows(const Tensor<T, Cpu>& logits) {
  detail::check_logits("argmax_rows", logits);
  const auto z = logits.contiguous();
  const std::int64_t B = z.size(0), K = z.size(1);
  std::vector<std::int64_t> out(static_cast<std::size_t>(B));
  for (std::int64_t b = 0; b < B; ++b) {
    const T* r = z.data() + b * K;
    out[static_cast<std::size_t>(b)] = std::max_element(r, r + K) - r;
  }
  return out;
}

/// Fraction of predictions equal to the labels.
inline double accuracy(const std::vector<std::int64_t>& predictions, const std::vector<std::int64_t>& labels) {
  AVGRAD_CHECK(!labels.empty() && predictions.size() == labels.size(), "accuracy", "expected as many predictions as ",
               "labels (and at least one), got ", predictions.size(), " and ", labels.size());
  std::int64_t hit = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) hit += predictions[i] == labels[i];
  return static_cast<double>(hit) / static_cast<double>(labels.size());
}

/// Top-1 accuracy of logits (B, K) against class labels (B).
template <Floating T> double accuracy(const Tensor<T, Cpu>& logits, const std::vector<std::int64_t>& labels) {
  const auto pred = argmax_rows(logits);
  detail::check_labels("accuracy", labels, logits.size(0), logits.size(1));
  return accuracy(pred, labels);
}
template <Floating T> double accuracy(const Tensor<T, Cpu>& logits, const Tensor<std::int64_t, Cpu>& labels) {
  return accuracy(logits, detail::labels_of("accuracy", labels));
}

/// Fraction of examples whose label is among the k highest logits. Ranks are strict with ties to the lower index
/// (the order argmax uses), so a label tied with the k-th logit counts only if its index is lower: k = 1 is
/// accuracy(), and k ≥ K is 1.
template <Floating T>
double top_k_accuracy(const Tensor<T, Cpu>& logits, const std::vector<std::int64_t>& labels, std::int64_t k) {
  detail::check_logits("top_k_accuracy", logits);
  AVGRAD_CHECK(k >= 1, "top_k_accuracy", "k must be >= 1, got ", k);
  const auto z = logits.contiguous();
  const std::int64_t B = z.size(0), K = z.size(1);
  detail::check_labels("top_k_accuracy", labels, B, K);
  std::int64_t hit = 0;
  for (std::int64_t b = 0; b < B; ++b) {
    const T* r = z.data() + b * K;
    const std::int64_t y = labels[static_cast<std::size_t>(b)];
    std::int64_t ahead = 0;  // classes ranked before the label
    for (std::int64_t j = 0; j < K; ++j) ahead += r[j] > r[y] || (r[j] == r[y] && j < y);
    hit += ahead < k;
  }
  return static_cast<double>(hit) / static_cast<double>(B);
}
template <Floating T>
double top_k_accuracy(const Tensor<T, Cpu>& logits, const Tensor<std::int64_t, Cpu>& labels, std::int64_t k) {
  return top_k_accuracy(logits, detail::labels_of("top_k_accuracy", labels), k);
}

/// counts[t · K + p]: examples of true class t predicted as p.
struct ConfusionMatrix {
  std::int64_t num_classes = 0;
  std::vector<std::int64_t> counts;

  std::int64_t at(std::int64_t truth, std::int64_t predicted) const {
    return counts[static_cast<std::size_t>(truth * num_classes + predicted)];
  }
  std::int64_t total() const { return std::accumulate(counts.begin(), counts.end(), std::int64_t{0}); }
  std::int64_t correct() const {
    std::int64_t c = 0;
    for (std::int64_t k = 0; k < num_classes; ++k) c += at(k, k);
    return c;
  }
  /// Examples whose true class is k.
  std::int64_t support(std::int64_t k) const {
    std::int64_t s = 0;
    for (std::int64_t p = 0; p < num_classes; ++p) s += at(k, p);
    return s;
  }
  double accuracy() const { return total() ? static_cast<double>(correct()) / static_cast<double>(total()) : kNaN; }
  /// Per true class, the fraction predicted correctly (the class's recall); NaN for a class with no examples.
  std::vector<double> per_class_accuracy() const {
    std::vector<double> out(static_cast<std::size_t>(num_classes));
    for (std::int64_t k = 0; k < num_classes; ++k) {
      const std::int64_t s = support(k);
      out[static_cast<std::size_t>(k)] = s ? static_cast<double>(at(k, k)) / static_cast<double>(s) : kNaN;
    }
    return out;
  }
  /// The mean of per_class_accuracy() over the classes that have examples.
  double balanced_accuracy() const {
    double sum = 0;
    std::int64_t n = 0;
    for (double a : per_class_accuracy())
      if (!std::isnan(a)) sum += a, ++n;
    return n ? sum / static_cast<double>(n) : kNaN;
  }
};

inline ConfusionMatrix confusion_matrix(const std::vector<std::int64_t>& labels,
                                        const std::vector<std::int64_t>& predictions, std::int64_t num_classes) {
  AVGRAD_CHECK(num_classes > 0, "confusion_matrix", "num_classes must be positive, got ", num_classes);
  detail::check_labels("confusion_matrix", labels, static_cast<std::int64_t>(labels.size()), num_classes);
  detail::check_labels("confusion_matrix", predictions, static_cast<std::int64_t>(labels.size()), num_classes);
  ConfusionMatrix m{num_classes, std::vector<std::int64_t>(static_cast<std::size_t>(num_classes * num_classes), 0)};
  for (std::size_t i = 0; i < labels.size(); ++i)
    ++m.counts[static_cast<std::size_t>(labels[i] * num_classes + predictions[i])];
  return m;
}
template <Floating T>
ConfusionMatrix confusion_matrix(const Tensor<T, Cpu>& logits, const std::vector<std::int64_t>& labels) {
  return confusion_matrix(labels, argmax_rows(logits), logits.size(1));
}
template <Floating T>
ConfusionMatrix confusion_matrix(const Tensor<T, Cpu>& logits, const Tensor<std::int64_t, Cpu>& labels) {
  return confusion_matrix(logits, detail::labels_of("confusion_matrix", labels));
}

/// Per true class, the fraction of its examples classified correctly; NaN for a class absent from the labels.
template <Floating T>
std::vector<double> per_class_accuracy(const Tensor<T, Cpu>& logits, const std::vector<std::int64_t>& labels) {
  return confusion_matrix(logits, labels).per_class_accuracy();
}
template <Floating T>
std::vector<double> per_class_accuracy(const Tensor<T, Cpu>& logits, const Tensor<std::int64_t, Cpu>& labels) {
  return confusion_matrix(logits, labels).per_class_accuracy();
}

// ---- multi-label ----------------------------------------------------------------------------------------------

namespace detail {

inline void check_scores(const char* who, std::span<const double> scores, std::span<const double> targets) {
  AVGRAD_CHECK(scores.size() == targets.size(), who, "expected as many scores as targets, got ", scores.size(), " and ",
               targets.size());
  for (std::size_t i = 0; i < scores.size(); ++i)
    AVGRAD_CHECK(std::isfinite(scores[i]), who, "score ", i, " is ", scores[i], ": scores must be finite");
}

/// Indices of the scores, highest score first.
inline std::vector<std::size_t> order_desc(std::span<const double> scores) {
  std::vector<std::size_t> idx(scores.size());
  std::iota(idx.begin(), idx.end(), std::size_t{0});
  std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return scores[a] > scores[b]; });
  return idx;
}

}  // namespace detail

/// Average precision of one class: scores (any real values, higher = more likely positive) and targets (> 0.5:
/// positive). Tied scores form one threshold. NaN when there is no positive.
inline double average_precision(std::span<const double> scores, std::span<const double> targets) {
  detail::check_scores("average_precision", scores, targets);
  double positives = 0;
  for (double t : targets) positives += t > 0.5;
  if (positives == 0) return kNaN;
  const auto idx = detail::order_desc(scores);
  double tp = 0, fp = 0, prev_recall = 0, ap = 0;
  for (std::size_t i = 0; i < idx.size();) {
    const double s = scores[idx[i]];
    for (; i < idx.size() && scores[idx[i]] == s; ++i) (targets[idx[i]] > 0.5 ? tp : fp) += 1;
    const double recall = tp / positives;
    ap += (recall - prev_recall) * (tp / (tp + fp));
    prev_recall = recall;
  }
  return ap;
}

/// Area under the ROC curve of one class: P(s⁺ > s⁻) + ½ P(s⁺ = s⁻) from mid-ranks. NaN unless the targets hold
/// both a positive and a negative.
inline double roc_auc(std::span<const double> scores, std::span<const double> targets) {
  detail::check_scores("roc_auc", scores, targets);
  const std::size_t n = scores.size();
  double positives = 0;
  for (double t : targets) positives += t > 0.5;
  const double negatives = static_cast<double>(n) - positives;
  if (positives == 0 || negatives == 0) return kNaN;
  std::vector<std::size_t> idx(n);
  std::iota(idx.begin(), idx.end(), std::size_t{0});
  std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return scores[a] < scores[b]; });
  // Sum of the positives' ranks (1-based, ascending), each tie group sharing its mean rank.
  double rank_sum = 0;
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i;
    double group_positives = 0;
    for (; j < n && scores[idx[j]] == scores[idx[i]]; ++j) group_positives += targets[idx[j]] > 0.5;
    const double mid_rank = 0.5 * static_cast<double>(i + 1 + j);  // mean of ranks i+1 … j
    rank_sum += group_positives * mid_rank;
    i = j;
  }
  return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives);
}

/// Φ⁻¹(p), the standard normal quantile: Acklam's rational approximation refined by one Halley step on erfc, which
/// brings it to double precision. ±∞ at p = 1 and p = 0; NaN outside [0, 1].
inline double normal_quantile(double p) {
  if (!(p >= 0 && p <= 1)) return kNaN;
  if (p == 0) return -std::numeric_limits<double>::infinity();
  if (p == 1) return std::numeric_limits<double>::infinity();
  static constexpr double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,  -2.759285104469687e+02,
                                 1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static constexpr double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                                 6.680131188771972e+01, -1.328068155288572e+01};
  static constexpr double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                                 -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static constexpr double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                                 3.754408661907416e+00};
  constexpr double p_low = 0.02425;
  double x;
  if (p < p_low) {
    const double q = std::sqrt(-2 * std::log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else if (p <= 1 - p_low) {
    const double q = p - 0.5, r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  } else {
    const double q = std::sqrt(-2 * std::log1p(-p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  const double e = 0.5 * std::erfc(-x / std::numbers::sqrt2) - p;
  const double u = e * std::sqrt(2 * std::numbers::pi) * std::exp(x * x / 2);
  return x - u / (1 + x * u / 2);
}

/// d′ = √2 · Φ⁻¹(AUC): the separation, in standard deviations, of two equal-variance Gaussians with this AUC.
inline double d_prime(double auc) { return std::numbers::sqrt2 * normal_quantile(auc); }

/// The multi-label summary of a score matrix. Per-class vectors hold NaN where the metric is undefined.
struct MultiLabelMetrics {
  std::vector<double> average_precision;         ///< per class; NaN without positives
  std::vector<double> auc;                       ///< per class; NaN without positives or without negatives
  double map = kNaN;                             ///< mean AP over classes with positives
  double mean_auc = kNaN;                        ///< mean AUC over classes with positives and negatives
  double d_prime = kNaN;                         ///< d′ of mean_auc, as the reference code reports it
  std::int64_t ap_classes = 0, auc_classes = 0;  ///< classes averaged into map and mean_auc
};

/// Per-class metrics of row-major scores (B, K) against targets (B, K) (> 0.5: positive).
inline MultiLabelMetrics multilabel_metrics(std::span<const double> scores, std::span<const double> targets,
                                            std::int64_t B, std::int64_t K) {
  AVGRAD_CHECK(B > 0 && K > 0 && static_cast<std::int64_t>(scores.size()) == B * K &&
                   static_cast<std::int64_t>(targets.size()) == B * K,
               "multilabel_metrics", "expected scores and targets of ", B, " × ", K, " values, got ", scores.size(),
               " and ", targets.size());
  MultiLabelMetrics m;
  m.average_precision.resize(static_cast<std::size_t>(K));
  m.auc.resize(static_cast<std::size_t>(K));
  std::vector<double> s(static_cast<std::size_t>(B)), t(static_cast<std::size_t>(B));
  double ap_sum = 0, auc_sum = 0;
  for (std::int64_t k = 0; k < K; ++k) {
    for (std::int64_t b = 0; b < B; ++b) {
      s[static_cast<std::size_t>(b)] = scores[static_cast<std::size_t>(b * K + k)];
      t[static_cast<std::size_t>(b)] = targets[static_cast<std::size_t>(b * K + k)];
    }
    const double ap = average_precision(s, t), auc = roc_auc(s, t);
    m.average_precision[static_cast<std::size_t>(k)] = ap;
    m.auc[static_cast<std::size_t>(k)] = auc;
    if (!std::isnan(ap)) ap_sum += ap, ++m.ap_classes;
    if (!std::isnan(auc)) auc_sum += auc, ++m.auc_classes;
  }
  if (m.ap_classes) m.map = ap_sum / static_cast<double>(m.ap_classes);
  if (m.auc_classes) {
    m.mean_auc = auc_sum / static_cast<double>(m.auc_classes);
    m.d_prime = metrics::d_prime(m.mean_auc);
  }
  return m;
}

/// The same on tensors: scores (B, K) (probabilities or logits: only their order matters) and multi-hot targets.
template <Floating T>
MultiLabelMetrics multilabel_metrics(const Tensor<T, Cpu>& scores, const Tensor<T, Cpu>& targets) {
  AVGRAD_CHECK(scores.defined() && targets.defined() && scores.dim() == 2 && scores.shape() == targets.shape(),
               "multilabel_metrics", "expected scores and targets of one shape (B, K), got ",
               scores.defined() ? scores.shape().str() : std::string("undefined"), " and ",
               targets.defined() ? targets.shape().str() : std::string("undefined"));
  const auto sv = scores.to_vector(), tv = targets.to_vector();
  const std::vector<double> s(sv.begin(), sv.end()), t(tv.begin(), tv.end());
  return multilabel_metrics(s, t, scores.size(0), scores.size(1));
}

/// mAP alone (mean AP over classes with positives).
inline double mean_average_precision(std::span<const double> scores, std::span<const double> targets, std::int64_t B,
                                     std::int64_t K) {
  return multilabel_metrics(scores, targets, B, K).map;
}

}  // namespace avgrad::metrics
