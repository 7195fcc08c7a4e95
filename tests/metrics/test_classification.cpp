// Classification metrics against hand-computed answers (the arithmetic is in the comments) and brute-force
// definitions: accuracy, top-k, confusion matrix, AP and AUC with tied scores, skipped degenerate classes, d′.
#include <cmath>
#include <random>

#include "avgrad/metrics/classification.hpp"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::testing;
using namespace avgrad::metrics;

namespace {

TD logits_of(const std::vector<double>& v, std::int64_t B, std::int64_t K) { return from_vector<double>(v, {B, K}); }

// AP by its definition: every distinct score is a threshold; precision and recall of "score ≥ threshold".
double brute_force_ap(const std::vector<double>& s, const std::vector<double>& t) {
  std::vector<double> thresholds = s;
  std::sort(thresholds.begin(), thresholds.end(), std::greater<>());
  thresholds.erase(std::unique(thresholds.begin(), thresholds.end()), thresholds.end());
  double P = 0;
  for (double v : t) P += v > 0.5;
  double ap = 0, prev = 0;
  for (double th : thresholds) {
    double tp = 0, n = 0;
    for (std::size_t i = 0; i < s.size(); ++i)
      if (s[i] >= th) ++n, tp += t[i] > 0.5;
    ap += (tp / P - prev) * (tp / n);
    prev = tp / P;
  }
  return ap;
}

// AUC by its definition: the fraction of (positive, negative) pairs ordered correctly, ties counting ½.
double brute_force_auc(const std::vector<double>& s, const std::vector<double>& t) {
  double good = 0, pairs = 0;
  for (std::size_t i = 0; i < s.size(); ++i)
    for (std::size_t j = 0; j < s.size(); ++j)
      if (t[i] > 0.5 && t[j] <= 0.5) good += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0, ++pairs;
  return good / pairs;
}

}  // namespace

// ---- single-label -----------------------------------------------------------------------------------------------

TEST(SingleLabel, AccuracyTopKAndTiesGoToTheLowerIndex) {
  // Rows: argmax 2, 0, 1 (tie of classes 0 and 1 → 0), 1.
  auto z = logits_of({0.1, 0.2, 0.9,  //
                      0.8, 0.1, 0.1,  //
                      0.5, 0.5, 0.0,  //
                      0.2, 0.7, 0.1},
                     4, 3);
  const std::vector<std::int64_t> y{2, 1, 1, 0};
  EXPECT_EQ(argmax_rows(z), (std::vector<std::int64_t>{2, 0, 0, 1}));
  EXPECT_DOUBLE_EQ(accuracy(z, y), 0.25);  // only example 0
  EXPECT_DOUBLE_EQ(accuracy(z, from_vector<std::int64_t>(y)), 0.25);
  // Top-2: ex 0 ✓; ex 1: label 1 tied with class 2 at 0.1, ranked ahead of it (lower index) → second ✓;
  // ex 2: label 1 ties class 0 which comes first → second ✓; ex 3: label 0 (0.2) is second ✓.
  EXPECT_DOUBLE_EQ(top_k_accuracy(z, y, 2), 1.0);
  EXPECT_DOUBLE_EQ(top_k_accuracy(z, y, 1), accuracy(z, y)) << "top-1 is accuracy, ties included";
  EXPECT_DOUBLE_EQ(top_k_accuracy(z, y, 7), 1.0);
  // Only the label tied below an earlier class is affected by the tie rule: y = 2 in row 1 ties class 1 at 0.1.
  EXPECT_DOUBLE_EQ(top_k_accuracy(logits_of({0.8, 0.1, 0.1}, 1, 3), std::vector<std::int64_t>{2}, 2), 0.0);
  expect_error([&] { accuracy(z, std::vector<std::int64_t>{0, 1, 3, 0}); }, {"outside [0, 3)"});
  expect_error([&] { top_k_accuracy(z, y, 0); }, {"k must be >= 1"});
}

TEST(SingleLabel, ConfusionMatrixPerClassAndBalancedAccuracy) {
  const std::vector<std::int64_t> y{0, 0, 0, 1, 1, 3}, pred{0, 1, 0, 1, 0, 3};
  const auto m = confusion_matrix(y, pred, 4);
  EXPECT_EQ(m.at(0, 0), 2);
  EXPECT_EQ(m.at(0, 1), 1);
  EXPECT_EQ(m.at(1, 0), 1);
  EXPECT_EQ(m.at(1, 1), 1);
  EXPECT_EQ(m.at(3, 3), 1);
  EXPECT_EQ(m.total(), 6);
  EXPECT_EQ(m.correct(), 4);
  EXPECT_DOUBLE_EQ(m.accuracy(), 4.0 / 6.0);
  const auto pc = m.per_class_accuracy();
  EXPECT_DOUBLE_EQ(pc[0], 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(pc[1], 0.5);
  EXPECT_TRUE(std::isnan(pc[2])) << "class 2 has no examples";
  EXPECT_DOUBLE_EQ(pc[3], 1.0);
  EXPECT_DOUBLE_EQ(m.balanced_accuracy(), (2.0 / 3.0 + 0.5 + 1.0) / 3.0) << "the empty class is not averaged";
  // From logits: the same matrix through argmax.
  auto z = logits_of({1, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1}, 6, 4);
  EXPECT_EQ(confusion_matrix(z, y).counts, m.counts);
  EXPECT_EQ(per_class_accuracy(z, from_vector<std::int64_t>(y))[1], 0.5);
}

// ---- multi-label ------------------------------------------------------------------------------------------------

TEST(MultiLabel, AveragePrecisionAndAucOnSklearnsDocumentedExample) {
  // sklearn's docstrings: y_true [0, 0, 1, 1], scores [0.1, 0.4, 0.35, 0.8] → AP 0.8333, AUC 0.75.
  // AP: by score 0.8(+) 0.4(−) 0.35(+) 0.1(−); thresholds 0.8: R ½, P 1 → ½·1; 0.4: R unchanged;
  //     0.35: R 1, P ⅔ → ½·⅔; total ½ + ⅓ = 0.8333.  AUC: pairs (0.35,0.1) (0.8,0.1) (0.8,0.4) of 4 → 0.75.
  const std::vector<double> t{0, 0, 1, 1}, s{0.1, 0.4, 0.35, 0.8};
  EXPECT_NEAR(average_precision(s, t), 0.5 + 1.0 / 3.0, 1e-15);
  EXPECT_NEAR(roc_auc(s, t), 0.75, 1e-15);
}

TEST(MultiLabel, TiedScoresFormOneThreshold) {
  // scores [0.8, 0.8, 0.5, 0.5, 0.2], targets [1, 0, 1, 1, 0]: P = 3, N = 2.
  // AP thresholds: 0.8 → TP 1 FP 1: R ⅓, P ½ → ⅓·½ = ⅙; 0.5 → TP 3 FP 1: R 1, P ¾ → ⅔·¾ = ½; 0.2 → R unchanged.
  //   AP = ⅙ + ½ = ⅔ (sklearn's value; ordering the tied pair positive-first would give ⅓·1 + ⅔·¾ = 0.8333).
  // AUC: positive 0.8 vs negatives 0.8 (tie ½), 0.2 (1); each positive 0.5 vs 0.8 (0), 0.2 (1) → (1.5 + 1 + 1)/6.
  std::vector<double> s{0.8, 0.8, 0.5, 0.5, 0.2}, t{1, 0, 1, 1, 0};
  EXPECT_NEAR(average_precision(s, t), 2.0 / 3.0, 1e-15);
  EXPECT_NEAR(roc_auc(s, t), 3.5 / 6.0, 1e-15);
  // Reordering tied examples changes nothing.
  std::vector<double> s2{0.8, 0.8, 0.5, 0.2, 0.5}, t2{0, 1, 1, 0, 1};
  EXPECT_NEAR(average_precision(s2, t2), 2.0 / 3.0, 1e-15);
  EXPECT_NEAR(roc_auc(s2, t2), 3.5 / 6.0, 1e-15);
  // All scores equal: one threshold, AP = prevalence, AUC = ½.
  std::vector<double> flat(5, 0.3);
  EXPECT_NEAR(average_precision(flat, t), 0.6, 1e-15);
  EXPECT_NEAR(roc_auc(flat, t), 0.5, 1e-15);
}

TEST(MultiLabel, MatchesBruteForceDefinitionsOnRandomScoresWithTies) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> level(0, 5);  // 6 score levels: many ties
  std::bernoulli_distribution coin(0.4);
  for (int trial = 0; trial < 50; ++trial) {
    const int n = 3 + trial % 17;
    std::vector<double> s(n), t(n);
    for (int i = 0; i < n; ++i) s[i] = 0.1 * level(rng), t[i] = coin(rng);
    t[0] = 1, t[1] = 0;  // both classes present
    EXPECT_NEAR(average_precision(s, t), brute_force_ap(s, t), 1e-12) << "trial " << trial;
    EXPECT_NEAR(roc_auc(s, t), brute_force_auc(s, t), 1e-12) << "trial " << trial;
  }
}

TEST(MultiLabel, PerfectAndReversedRankings) {
  std::vector<double> t{1, 1, 0, 0, 0};
  EXPECT_DOUBLE_EQ(average_precision(std::vector<double>{5, 4, 3, 2, 1}, t), 1.0);
  EXPECT_DOUBLE_EQ(roc_auc(std::vector<double>{5, 4, 3, 2, 1}, t), 1.0);
  // Reversed: the positives come last: thresholds 2 → R ½, P ¼; 1 → R 1, P ⅖ → ⅛ + ⅕ = 0.325.
  EXPECT_NEAR(average_precision(std::vector<double>{1, 2, 3, 4, 5}, t), 0.125 + 0.2, 1e-15);
  EXPECT_DOUBLE_EQ(roc_auc(std::vector<double>{1, 2, 3, 4, 5}, t), 0.0);
}

TEST(MultiLabel, DegenerateClassesAreSkippedInTheMeans) {
  // 4 examples × 3 classes. Class 0: no positive (AP and AUC undefined); class 1: all positive (AP defined = 1,
  // AUC undefined); class 2: scores [0.9, 0.1, 0.8, 0.2], targets [1, 0, 0, 1] → AP: 0.9 (+) R ½ P 1 → ½;
  // 0.8 (−); 0.2 (+) R 1 P ⅔ → ⅓; AP ⅚. AUC: positives 0.9, 0.2 vs negatives 0.1, 0.8 → 3 of 4 = 0.75.
  const std::vector<double> scores{0.3, 0.6, 0.9,  //
                                   0.2, 0.4, 0.1,  //
                                   0.5, 0.7, 0.8,  //
                                   0.1, 0.2, 0.2};
  const std::vector<double> targets{0, 1, 1,  //
                                    0, 1, 0,  //
                                    0, 1, 0,  //
                                    0, 1, 1};
  const auto m = multilabel_metrics(scores, targets, 4, 3);
  EXPECT_TRUE(std::isnan(m.average_precision[0]));
  EXPECT_TRUE(std::isnan(m.auc[0]));
  EXPECT_DOUBLE_EQ(m.average_precision[1], 1.0);
  EXPECT_TRUE(std::isnan(m.auc[1]));
  EXPECT_NEAR(m.average_precision[2], 5.0 / 6.0, 1e-15);
  EXPECT_NEAR(m.auc[2], 0.75, 1e-15);
  EXPECT_EQ(m.ap_classes, 2);
  EXPECT_EQ(m.auc_classes, 1);
  EXPECT_NEAR(m.map, (1.0 + 5.0 / 6.0) / 2, 1e-15);
  EXPECT_NEAR(m.mean_auc, 0.75, 1e-15);
  EXPECT_NEAR(m.d_prime, std::sqrt(2.0) * 0.6744897501960817, 1e-12) << "Φ⁻¹(0.75) = 0.67449";
  // The tensor overload agrees (float scores: only the order matters).
  auto ms = multilabel_metrics(from_vector<float>(std::vector<float>(scores.begin(), scores.end()), {4, 3}),
                               from_vector<float>(std::vector<float>(targets.begin(), targets.end()), {4, 3}));
  EXPECT_NEAR(ms.map, m.map, 1e-12);
  EXPECT_NEAR(mean_average_precision(scores, targets, 4, 3), m.map, 1e-15);
  // Nothing defined at all: the means are NaN, not 0.
  const auto none = multilabel_metrics(std::vector<double>{0.1, 0.2}, std::vector<double>{0, 0}, 2, 1);
  EXPECT_TRUE(std::isnan(none.map));
  EXPECT_TRUE(std::isnan(none.mean_auc));
  EXPECT_EQ(none.ap_classes, 0);
  expect_error([&] { average_precision(std::vector<double>{NAN, 1}, std::vector<double>{1, 0}); }, {"must be finite"});
}

TEST(MultiLabel, DPrimeAndTheNormalQuantile) {
  EXPECT_EQ(d_prime(0.5), 0.0);
  EXPECT_NEAR(normal_quantile(0.975), 1.959963984540054, 1e-14);
  EXPECT_NEAR(normal_quantile(0.025), -1.959963984540054, 1e-14);
  EXPECT_NEAR(normal_quantile(1e-10), -6.361340902404056, 1e-11);   // the lower tail branch
  EXPECT_NEAR(normal_quantile(1 - 1e-6), 4.753424308822899, 1e-9);  // the upper tail branch
  // Φ(1) = 0.8413447460685429 → d′ = √2.
  EXPECT_NEAR(d_prime(0.8413447460685429), std::sqrt(2.0), 1e-13);
  EXPECT_NEAR(d_prime(0.25), -d_prime(0.75), 1e-14) << "antisymmetric about chance";
  EXPECT_EQ(d_prime(1.0), std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan(normal_quantile(1.5)));
}
