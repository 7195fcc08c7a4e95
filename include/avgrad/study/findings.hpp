// The study's results and their reading: which of the findings of ../shared/PAPER.md hold on the
// data at hand. Pure functions of the numbers — no model runs here — so the reading is tested on
// hand-made results and every verdict names the numbers it rests on.
//
// The rules (docs/RESULTS.md explains them; `ref` is the headline grid point, the defenses'
// training budget):
//   1a fusion is not automatically more robust — holds when some fused model's PGD robust accuracy
//      under the joint attack at ref is not above the better uni-modal model's under its own attack.
//   1b a single-modality attack can break the fused model — holds when attacking one input drives
//      some fused model below the clean accuracy of the uni-modal model of the untouched input
//      (fusion then does worse than ignoring the attacked input would).
//   2  the latent metrics track robustness — Spearman ρ across models between a metric of the
//      model's own latent (fused latent for fused models) and its retained accuracy (robust /
//      clean, averaged over the grid's ε > 0, PGD under its widest threat model): holds when
//      ρ ≥ 0.5 for mean convexity or mean kNN purity, does not when both are ≤ 0.
//   3  metric-guided mix-up ≈ PGD-AT at a fraction of the cost — with gain = robust accuracy
//      at ref (joint PGD) minus plain training's: holds when guided's gain ≥ 0.8 × PGD-AT's and
//      its backward-pass examples ≤ 0.5 × PGD-AT's; does not when guided's gain < 0.5 × PGD-AT's.
//      Inconclusive when PGD-AT gains nothing itself.
#pragma once

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "avgrad/attacks/evaluate.hpp"
#include "avgrad/metrics/report.hpp"
#include "avgrad/study/pipeline.hpp"

namespace avgrad::study {

/// One trained (or assembled) model and what the study measured on it.
struct ModelResult {
  ModelKind kind = ModelKind::late;
  std::string defense = "plain";
  TrainRecord train{};
  std::vector<attacks::EpsilonSweep> sweeps;  ///< from robustness_sweeps
  std::optional<metrics::LatentReport> latent;

  /// "late", or "late + guided" for a defended model.
  std::string label() const {
    return defense == "plain" ? std::string(model_name(kind)) : std::string(model_name(kind)) + " + " + defense;
  }
  /// The widest threat model it can be attacked under: its own modality, or joint for a fused model.
  std::string own_scope() const {
    return kind == ModelKind::audio ? "audio" : kind == ModelKind::video ? "video" : "joint";
  }
  /// The sweep of the attack whose name starts with `attack` ("FGSM", "PGD") under `scope`, or null.
  const attacks::EpsilonSweep* sweep(std::string_view attack, std::string_view scope) const {
    for (const auto& s : sweeps)
      if (s.scope == scope && s.attack.rfind(attack, 0) == 0 && !(attack == "FGSM" && s.attack != "FGSM")) return &s;
    return nullptr;
  }
  /// Robust accuracy at grid point i (NaN when the model has no such sweep).
  double robust(std::string_view attack, std::string_view scope, std::size_t i) const {
    const auto* s = sweep(attack, scope);
    return s && i < s->points.size() ? s->points[i].summary.robust_accuracy : metrics::kNaN;
  }
  double clean_accuracy() const {
    for (const auto& s : sweeps)
      if (!s.points.empty()) return s.points.front().summary.clean_accuracy;
    return train.test_accuracy;
  }
  /// Robust / clean accuracy averaged over the grid points with ε > 0 (1: attacks change nothing).
  double retained(std::string_view attack, std::string_view scope) const {
    const auto* s = sweep(attack, scope);
    if (!s) return metrics::kNaN;
    double sum = 0;
    int n = 0;
    for (const auto& p : s->points) {
      if (p.eps <= 0 || !(p.summary.clean_accuracy > 0)) continue;
      sum += p.summary.robust_accuracy / p.summary.clean_accuracy;
      ++n;
    }
    return n ? sum / n : metrics::kNaN;
  }
  /// The report of the model's own latent: the fused latent of a fused model, else its branch's.
  const metrics::SpaceReport* own_space() const {
    if (!latent) return nullptr;
    const std::string want = kind == ModelKind::audio ? "audio" : kind == ModelKind::video ? "video" : "fused";
    for (const auto& s : latent->spaces)
      if (s.space == want) return &s;
    return nullptr;
  }
};

struct StudyResults {
  AttackConfig attack{};
  std::size_t ref = 0;                ///< index into attack.eps_grid of the headline ε
  std::vector<ModelResult> models;    ///< plain training, one per ModelKind run
  std::vector<ModelResult> defenses;  ///< the late-fusion model under each defense (plain included)
  std::string device = "cpu";         ///< where the models trained and were attacked

  double ref_eps_audio() const { return attack.eps_grid.at(ref); }
  double ref_eps_video() const { return attack.eps_grid.at(ref) * attack.video_ratio; }
  const ModelResult* model(ModelKind k) const {
    for (const auto& m : models)
      if (m.kind == k) return &m;
    return nullptr;
  }
  const ModelResult* defense(std::string_view d) const {
    for (const auto& m : defenses)
      if (m.defense == d) return &m;
    return nullptr;
  }
};

enum class Verdict { holds, does_not_hold, inconclusive };
inline const char* verdict_name(Verdict v) {
  return v == Verdict::holds ? "holds" : v == Verdict::does_not_hold ? "does not hold" : "inconclusive";
}

struct Finding {
  std::string id, claim;
  Verdict verdict = Verdict::inconclusive;
  std::string evidence;  ///< the numbers the verdict rests on, in words
};

namespace findings_detail {
inline std::string f3(double v) {
  if (!std::isfinite(v)) return "n/a";
  char b[32];
  std::snprintf(b, sizeof b, "%.3f", v);
  return b;
}

/// Ranks with ties averaged (1-based).
inline std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<std::size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (std::size_t i = 0; i < idx.size();) {
    std::size_t j = i;
    while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
    for (std::size_t k = i; k <= j; ++k) r[idx[k]] = (static_cast<double>(i + j) / 2) + 1;
    i = j + 1;
  }
  return r;
}
}  // namespace findings_detail

/// Spearman's rank correlation over the pairs where both values are finite; NaN below 3 pairs.
inline double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> x, y;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    if (std::isfinite(a[i]) && std::isfinite(b[i])) {
      x.push_back(a[i]);
      y.push_back(b[i]);
    }
  if (x.size() < 3) return metrics::kNaN;
  return metrics::pearson(findings_detail::ranks(x), findings_detail::ranks(y));
}

inline Finding finding_fusion_robustness(const StudyResults& r) {
  using findings_detail::f3;
  Finding f{"1a", "fusion is not automatically more robust than the better uni-modal model", Verdict::inconclusive, ""};
  const auto* a = r.model(ModelKind::audio);
  const auto* v = r.model(ModelKind::video);
  if (!a || !v) {
    f.evidence = "needs both uni-modal models";
    return f;
  }
  const double ua = a->robust("PGD", "audio", r.ref), uv = v->robust("PGD", "video", r.ref);
  const double best_uni = std::max(ua, uv);
  f.evidence = "PGD at ε_a = " + f3(r.ref_eps_audio()) + ", ε_v = " + f3(r.ref_eps_video()) + ": audio-only " + f3(ua) +
               ", video-only " + f3(uv) + "; joint attack on";
  bool any = false, below = false;
  for (const auto& m : r.models) {
    if (!is_fused(m.kind)) continue;
    const double j = m.robust("PGD", "joint", r.ref);
    if (!std::isfinite(j)) continue;
    any = true;
    below = below || j <= best_uni;
    f.evidence += " " + std::string(model_name(m.kind)) + " " + f3(j);
  }
  if (any && std::isfinite(best_uni)) f.verdict = below ? Verdict::holds : Verdict::does_not_hold;
  return f;
}

inline Finding finding_single_modality(const StudyResults& r) {
  using findings_detail::f3;
  Finding f{"1b", "attacking one modality can break a fused model", Verdict::inconclusive, ""};
  const auto* a = r.model(ModelKind::audio);
  const auto* v = r.model(ModelKind::video);
  if (!a || !v) {
    f.evidence = "needs both uni-modal models";
    return f;
  }
  const double clean_a = a->clean_accuracy(), clean_v = v->clean_accuracy();
  f.evidence = "clean accuracy audio-only " + f3(clean_a) + ", video-only " + f3(clean_v) + "; PGD at ref on";
  bool any = false, broken = false;
  for (const auto& m : r.models) {
    if (!is_fused(m.kind)) continue;
    const double ra = m.robust("PGD", "audio", r.ref), rv = m.robust("PGD", "video", r.ref);
    if (!std::isfinite(ra) || !std::isfinite(rv)) continue;
    any = true;
    broken = broken || ra < clean_v || rv < clean_a;
    f.evidence +=
        " " + std::string(model_name(m.kind)) + " (audio attacked " + f3(ra) + ", video attacked " + f3(rv) + ")";
  }
  if (any) f.verdict = broken ? Verdict::holds : Verdict::does_not_hold;
  return f;
}

inline Finding finding_metrics_track(const StudyResults& r) {
  using findings_detail::f3;
  Finding f{"2", "the latent metrics (convexity, kNN density) track robustness across models", Verdict::inconclusive,
            ""};
  std::vector<double> conv, purity, kept;
  std::string rows;
  for (const auto& m : r.models) {
    const auto* s = m.own_space();
    if (!s) continue;
    conv.push_back(s->mean_convexity);
    purity.push_back(s->mean_purity);
    kept.push_back(m.retained("PGD", m.own_scope()));
    rows += " " + std::string(model_name(m.kind)) + " (C " + f3(s->mean_convexity) + ", purity " + f3(s->mean_purity) +
            ", retained " + f3(kept.back()) + ")";
  }
  const double rc = spearman(conv, kept), rp = spearman(purity, kept);
  f.evidence = "Spearman ρ over " + std::to_string(kept.size()) + " models: convexity " + f3(rc) + ", purity " +
               f3(rp) + ";" + rows;
  if (std::isfinite(rc) || std::isfinite(rp)) {
    const double best = std::max(std::isfinite(rc) ? rc : -1.0, std::isfinite(rp) ? rp : -1.0);
    f.verdict = best >= 0.5 ? Verdict::holds : best <= 0 ? Verdict::does_not_hold : Verdict::inconclusive;
  }
  return f;
}

inline Finding finding_guided_mixup(const StudyResults& r) {
  using findings_detail::f3;
  Finding f{"3", "metric-guided mix-up protects about as well as PGD-AT at a fraction of its cost",
            Verdict::inconclusive, ""};
  const auto* plain = r.defense("plain");
  const auto* guided = r.defense("guided");
  const auto* at = r.defense("pgd-at");
  if (!plain || !guided || !at) {
    f.evidence = "needs the plain, guided and pgd-at defenses";
    return f;
  }
  const double p = plain->robust("PGD", "joint", r.ref), g = guided->robust("PGD", "joint", r.ref),
               a = at->robust("PGD", "joint", r.ref);
  const double gain_g = g - p, gain_a = a - p;
  const double cost_ratio = static_cast<double>(guided->train.cost.backward_examples) /
                            static_cast<double>(std::max<std::int64_t>(1, at->train.cost.backward_examples));
  f.evidence = "joint PGD robust accuracy at ref: plain " + f3(p) + ", guided " + f3(g) + ", PGD-AT " + f3(a) +
               "; guided costs " + f3(cost_ratio) + " × PGD-AT's backward-pass examples (" +
               f3(guided->train.cost.seconds) + " s vs " + f3(at->train.cost.seconds) + " s)";
  if (!std::isfinite(gain_g) || !std::isfinite(gain_a) || gain_a <= 0.01) {
    f.evidence += "; PGD-AT gains nothing over plain training here";
    return f;
  }
  if (gain_g >= 0.8 * gain_a && cost_ratio <= 0.5)
    f.verdict = Verdict::holds;
  else if (gain_g < 0.5 * gain_a)
    f.verdict = Verdict::does_not_hold;
  return f;
}

/// The study's findings read off `r`, in the order of ../shared/PAPER.md.
inline std::vector<Finding> read_findings(const StudyResults& r) {
  return {finding_fusion_robustness(r), finding_single_modality(r), finding_metrics_track(r), finding_guided_mixup(r)};
}

}  // namespace avgrad::study
