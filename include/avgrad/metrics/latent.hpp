// Latent-space robustness metrics, avgrad's definitions of ../shared/PAPER.md: per-class
// density (kNN label purity, local density, same/other nearest-distance ratio) and convexity
// (the fraction of interpolations between same-class latents that the head still assigns to
// the class). Plain CPU computations on detached latents; the head is any callable.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "avgrad/core/philox.hpp"
#include "avgrad/metrics/knn.hpp"

namespace avgrad::metrics {

/// Class membership of N examples: single-label (one class each) or multi-label (a set each).
struct ClassSets {
  std::int64_t num_classes = 0;
  std::vector<std::vector<std::int64_t>> of;  ///< of[i]: the classes of example i

  static ClassSets single(const std::vector<std::int64_t>& labels, std::int64_t num_classes) {
    ClassSets s{num_classes, {}};
    for (std::size_t i = 0; i < labels.size(); ++i) {
      AVGRAD_CHECK(labels[i] >= 0 && labels[i] < num_classes, "ClassSets", "label ", labels[i], " of example ", i,
                   " is outside [0, ", num_classes, ")");
      s.of.push_back({labels[i]});
    }
    return s;
  }
  /// From multi-hot rows (N, K): class k belongs to example i when row i, column k > 0.5.
  template <Floating T> static ClassSets multi_hot(const Tensor<T, Cpu>& y) {
    AVGRAD_CHECK(y.dim() == 2, "ClassSets", "multi-hot labels must be (N, K), got ", y.shape());
    const auto c = y.contiguous();
    ClassSets s{y.size(1), std::vector<std::vector<std::int64_t>>(static_cast<std::size_t>(y.size(0)))};
    for (std::int64_t i = 0; i < y.size(0); ++i)
      for (std::int64_t k = 0; k < y.size(1); ++k)
        if (c.data()[i * y.size(1) + k] > T(0.5)) s.of[static_cast<std::size_t>(i)].push_back(k);
    return s;
  }
  bool has(std::size_t i, std::int64_t c) const { return std::find(of[i].begin(), of[i].end(), c) != of[i].end(); }
  std::vector<std::int64_t> members(std::int64_t c) const {
    std::vector<std::int64_t> out;
    for (std::size_t i = 0; i < of.size(); ++i)
      if (has(i, c)) out.push_back(static_cast<std::int64_t>(i));
    return out;
  }
};

/// Latents as (N, D): a (N, L, D) sequence is averaged over L (the pooled latent of the definitions).
template <Floating T> Tensor<T, Cpu> pooled_latents(const Tensor<T, Cpu>& z) {
  AVGRAD_CHECK(z.dim() == 2 || z.dim() == 3, "pooled_latents", "latents must be (N, D) or (N, L, D), got ", z.shape());
  if (z.dim() == 2) return z.contiguous();
  const std::int64_t N = z.size(0), L = z.size(1), D = z.size(2);
  const auto c = z.contiguous();
  auto out = zeros<T>({N, D});
  for (std::int64_t i = 0; i < N; ++i)
    for (std::int64_t l = 0; l < L; ++l)
      for (std::int64_t d = 0; d < D; ++d) out.data()[i * D + d] += c.data()[(i * L + l) * D + d] / static_cast<T>(L);
  return out;
}

struct DensityOptions {
  std::int64_t k = 10;
  KnnMetric metric = KnnMetric::l2;
  std::int64_t subsample = 0;  ///< > 0: compute on this many examples drawn without replacement (seeded)
  std::uint64_t seed = 0;
};

/// Density D_c of one class.
struct ClassDensity {
  std::int64_t cls = 0, members = 0;
  double purity = NAN;         ///< mean over members of the fraction of its k neighbours in the class
  double local_density = NAN;  ///< mean kNN distance of members / the global median kNN distance (< 1: denser)
  double margin_ratio = NAN;   ///< mean over members of (nearest other-class distance / nearest same-class distance)
};

/// Per class, the density statistics. The mean kNN distance of an example is over its k
/// neighbours (itself excluded); the global median is over all examples. The margin ratio needs
/// at least two members and one non-member (else NaN). Every distance comes from metrics::knn, so
/// memory stays bounded by its blocks whatever N is.
template <Floating T>
std::vector<ClassDensity> density(const Tensor<T, Cpu>& latents, const ClassSets& classes, DensityOptions o = {}) {
  AVGRAD_CHECK(o.k >= 1 && o.subsample >= 0, "density", "need k >= 1 and subsample >= 0, got ", o.k, " and ",
               o.subsample);
  AVGRAD_CHECK(latents.dim() >= 1 && static_cast<std::int64_t>(classes.of.size()) == latents.size(0), "density",
               "labels for ", classes.of.size(), " examples, latents for ", latents.dim() ? latents.size(0) : 0);
  if (o.subsample > 0 && o.subsample < latents.size(0)) {
    // A seeded partial Fisher–Yates shuffle picks the subset; the metrics are then those of the subset.
    const std::int64_t n = latents.size(0);
    std::vector<std::int64_t> order(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) order[static_cast<std::size_t>(i)] = i;
    Generator gen(o.seed);
    const auto u = rand<double>(Shape{o.subsample}, gen, 0.0, 1.0).to_vector();
    for (std::int64_t i = 0; i < o.subsample; ++i) {
      const auto j = i + std::min(static_cast<std::int64_t>(u[static_cast<std::size_t>(i)] * (n - i)), n - i - 1);
      std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
    }
    order.resize(static_cast<std::size_t>(o.subsample));
    const auto full = pooled_latents(latents);
    const std::int64_t D = full.size(1);
    auto picked = Tensor<T, Cpu>::empty({o.subsample, D});
    ClassSets sub{classes.num_classes, {}};
    for (std::size_t r = 0; r < order.size(); ++r) {
      std::copy(full.data() + order[r] * D, full.data() + (order[r] + 1) * D,
                picked.data() + static_cast<std::int64_t>(r) * D);
      sub.of.push_back(classes.of[static_cast<std::size_t>(order[r])]);
    }
    o.subsample = 0;
    return density(picked, sub, o);
  }
  const auto z = pooled_latents(latents);
  const std::int64_t N = z.size(0);
  AVGRAD_CHECK(N >= 2, "density", "needs at least 2 examples");
  const std::int64_t k = std::min(o.k, N - 1);
  const auto nn = knn(z, z, k, KnnOptions{.metric = o.metric, .exclude_self = true});
  const auto* idx = nn.indices.data();
  const auto* dist = nn.distances.data();
  std::vector<double> mean_knn(static_cast<std::size_t>(N));
  for (std::int64_t i = 0; i < N; ++i) {
    double s = 0;
    for (std::int64_t j = 0; j < k; ++j) s += static_cast<double>(dist[i * k + j]);
    mean_knn[static_cast<std::size_t>(i)] = s / static_cast<double>(k);
  }
  std::vector<double> sorted = mean_knn;
  std::nth_element(sorted.begin(), sorted.begin() + N / 2, sorted.end());
  double median = sorted[static_cast<std::size_t>(N / 2)];
  if (N % 2 == 0) median = 0.5 * (median + *std::max_element(sorted.begin(), sorted.begin() + N / 2));
  const std::int64_t D = z.size(1);
  // Rows `which` of z as a new (n, D) tensor.
  auto rows = [&](const std::vector<std::int64_t>& which) {
    auto t = Tensor<T, Cpu>::empty({static_cast<std::int64_t>(which.size()), D});
    for (std::size_t r = 0; r < which.size(); ++r)
      std::copy(z.data() + which[r] * D, z.data() + (which[r] + 1) * D, t.data() + static_cast<std::int64_t>(r) * D);
    return t;
  };
  std::vector<ClassDensity> out;
  for (std::int64_t c = 0; c < classes.num_classes; ++c) {
    ClassDensity d;
    d.cls = c;
    const auto members = classes.members(c);
    d.members = static_cast<std::int64_t>(members.size());
    if (members.empty()) {
      out.push_back(d);
      continue;
    }
    double purity = 0, local = 0;
    for (std::int64_t i : members) {
      std::int64_t same = 0;
      for (std::int64_t j = 0; j < k; ++j) same += classes.has(static_cast<std::size_t>(idx[i * k + j]), c);
      purity += static_cast<double>(same) / static_cast<double>(k);
      local += mean_knn[static_cast<std::size_t>(i)];
    }
    const double m = static_cast<double>(members.size());
    d.purity = purity / m;
    d.local_density = median > 0 ? local / m / median : NAN;
    // The nearest same- and other-class neighbours may lie beyond the k nearest: one more kNN
    // each, members against members and members against the rest (memory stays bounded).
    std::vector<std::int64_t> others;
    for (std::int64_t i = 0; i < N; ++i)
      if (!classes.has(static_cast<std::size_t>(i), c)) others.push_back(i);
    if (members.size() >= 2 && !others.empty()) {
      const auto zc = rows(members);
      const auto same = knn(zc, zc, 1, KnnOptions{.metric = o.metric, .exclude_self = true}).distances;
      const auto other = knn(zc, rows(others), 1, KnnOptions{.metric = o.metric}).distances;
      double ratio = 0;
      std::int64_t n = 0;
      for (std::size_t r = 0; r < members.size(); ++r) {
        const double ds = static_cast<double>(same.data()[r]), dn = static_cast<double>(other.data()[r]);
        if (ds > 0) ratio += dn / ds, ++n;
      }
      d.margin_ratio = n ? ratio / static_cast<double>(n) : NAN;
    }
    out.push_back(d);
  }
  return out;
}

struct ConvexityOptions {
  std::int64_t pairs = 2000;  ///< K interpolations per class
  double tau = 0.1;           ///< multi-label: counts when p_c ≥ τ
  bool multi_label = false;   ///< false: counts when argmax = c
  /// λ ~ U(lambda_lo, lambda_hi); the study's definition is U(0, 1).
  double lambda_lo = 0.0, lambda_hi = 1.0;
  std::uint64_t seed = 0;
  std::int64_t batch = 256;  ///< interpolations per head call
};

/// Convexity C_c of one class: the fraction of interpolated latents the head assigns to c.
struct ClassConvexity {
  std::int64_t cls = 0, members = 0, pairs = 0;
  double convexity = NAN;  ///< NaN for a class with fewer than 2 members
};

/// For each class c: K pairs (i, j), i ≠ j, drawn uniformly (with replacement) among the class's
/// members — not in lexicographic order, as the reference code did — λ ~ U(lo, hi),
/// z = λ·z_i + (1 − λ)·z_j elementwise (sequences (L, D) included), then the head's logits on z:
/// the fraction with argmax = c (single-label) or sigmoid(logit_c) ≥ τ (multi-label).
/// `head` maps a (B, ...) batch of latents to logits (B, K) — a model's fused_head_logits or
/// branch_head_logits.
template <Floating T>
std::vector<ClassConvexity> convexity(const std::function<Tensor<T, Cpu>(const Tensor<T, Cpu>&)>& head,
                                      const Tensor<T, Cpu>& latents, const ClassSets& classes,
                                      ConvexityOptions o = {}) {
  AVGRAD_CHECK(latents.dim() >= 2, "convexity", "latents must be (N, ...), got ", latents.shape());
  AVGRAD_CHECK(static_cast<std::int64_t>(classes.of.size()) == latents.size(0), "convexity", "labels for ",
               classes.of.size(), " examples, latents for ", latents.size(0));
  AVGRAD_CHECK(o.pairs >= 1 && o.batch >= 1 && o.lambda_lo <= o.lambda_hi && o.tau > 0 && o.tau < 1, "convexity",
               "need pairs >= 1, batch >= 1, lambda_lo <= lambda_hi and 0 < tau < 1");
  const auto z = latents.contiguous();
  const std::int64_t per = z.numel() / z.size(0);
  Shape one = z.shape();
  Generator gen(o.seed);
  NoGradGuard no_grad;
  std::vector<ClassConvexity> out;
  const double logit_tau = std::log(o.tau / (1 - o.tau));
  for (std::int64_t c = 0; c < classes.num_classes; ++c) {
    ClassConvexity r;
    r.cls = c;
    const auto members = classes.members(c);
    r.members = static_cast<std::int64_t>(members.size());
    if (members.size() < 2) {
      out.push_back(r);
      continue;
    }
    std::int64_t hits = 0;
    for (std::int64_t start = 0; start < o.pairs; start += o.batch) {
      const std::int64_t B = std::min(o.batch, o.pairs - start);
      const auto m = static_cast<double>(members.size());
      auto ui = rand<double>(Shape{B}, gen, 0.0, 1.0).to_vector();
      auto uj = rand<double>(Shape{B}, gen, 0.0, 1.0).to_vector();
      auto lam = rand<double>(Shape{B}, gen, o.lambda_lo, o.lambda_hi).to_vector();
      one[0] = B;
      auto batch = Tensor<T, Cpu>::empty(one);
      for (std::int64_t b = 0; b < B; ++b) {
        const auto bi = static_cast<std::size_t>(b);
        // i uniform over members; j uniform over the other members (i ≠ j).
        const auto a = std::min(static_cast<std::size_t>(ui[bi] * m), members.size() - 1);
        auto bb = std::min(static_cast<std::size_t>(uj[bi] * (m - 1)), members.size() - 2);
        if (bb >= a) ++bb;
        const T* zi = z.data() + members[a] * per;
        const T* zj = z.data() + members[bb] * per;
        T* dst = batch.data() + b * per;
        for (std::int64_t e = 0; e < per; ++e)
          dst[e] = static_cast<T>(lam[bi] * static_cast<double>(zi[e]) + (1 - lam[bi]) * static_cast<double>(zj[e]));
      }
      const auto logits = head(batch).contiguous();
      AVGRAD_CHECK(logits.dim() == 2 && logits.size(0) == B && logits.size(1) > c, "convexity",
                   "the head must return logits (B, K > ", c, "), got ", logits.shape());
      const std::int64_t K = logits.size(1);
      for (std::int64_t b = 0; b < B; ++b) {
        const T* row = logits.data() + b * K;
        hits += o.multi_label ? static_cast<double>(row[c]) >= logit_tau : (std::max_element(row, row + K) - row) == c;
      }
    }
    r.pairs = o.pairs;
    r.convexity = static_cast<double>(hits) / static_cast<double>(o.pairs);
    out.push_back(r);
  }
  return out;
}

/// Pearson correlation of two equally long series, skipping pairs with a NaN (e.g. convexity
/// against class frequency — the study reports r ≈ 0.35 on AudioSet).
inline double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  AVGRAD_CHECK(a.size() == b.size(), "pearson", "series of different lengths: ", a.size(), " and ", b.size());
  double sa = 0, sb = 0, n = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!std::isnan(a[i]) && !std::isnan(b[i])) sa += a[i], sb += b[i], ++n;
  if (n < 2) return NAN;
  const double ma = sa / n, mb = sb / n;
  double cov = 0, va = 0, vb = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!std::isnan(a[i]) && !std::isnan(b[i])) {
      cov += (a[i] - ma) * (b[i] - mb);
      va += (a[i] - ma) * (a[i] - ma);
      vb += (b[i] - mb) * (b[i] - mb);
    }
  return va > 0 && vb > 0 ? cov / std::sqrt(va * vb) : NAN;
}

}  // namespace avgrad::metrics
