// latent_report: one pass over a data set collects every latent space of an audio-visual model
// (audio, video, fused), then computes per class and space the density and convexity metrics,
// their correlation with class frequency, and the clean classification metrics; Markdown, CSV
// and JSON writers. The head of each space is the model's own (fused_head_logits for the fused
// latent, branch_head_logits for a branch's).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "avgrad/data/atomic_file.hpp"
#include "avgrad/metrics/classification.hpp"
#include "avgrad/metrics/latent.hpp"
#include "avgrad/models/concepts.hpp"
#include "avgrad/ops/join.hpp"
#include "avgrad/train/progress.hpp"

namespace avgrad::metrics {

struct LatentReportOptions {
  DensityOptions density{};
  ConvexityOptions convexity{};  ///< multi_label is taken from the model
  bool quiet = false;            ///< no progress bar
  std::FILE* progress_out = stderr;
};

/// The metrics of one latent space ("audio", "video" or "fused").
struct SpaceReport {
  std::string space;
  std::vector<ClassDensity> density;
  std::vector<ClassConvexity> convexity;
  double mean_purity = kNaN, mean_local_density = kNaN, mean_margin_ratio = kNaN, mean_convexity = kNaN;
  double convexity_frequency_r = kNaN;  ///< Pearson r of C_c with the class's share of the examples
};

struct LatentReport {
  std::int64_t examples = 0, num_classes = 0;
  bool multi_label = false;
  double accuracy = kNaN;              ///< single-label clean accuracy
  double map = kNaN, mean_auc = kNaN;  ///< multi-label clean mAP and mean AUC
  std::vector<std::int64_t> class_counts;
  std::vector<SpaceReport> spaces;
};

namespace report_detail {
inline double mean_of(const std::vector<double>& v) {
  double s = 0, n = 0;
  for (double x : v)
    if (!std::isnan(x)) s += x, ++n;
  return n ? s / n : kNaN;
}
}  // namespace report_detail

/// Runs `model` (eval mode, no gradients) over `batches` — a range of (AVInput, labels) pairs whose
/// labels have `classes` (B) or `multi_hot` (B, K) and multi_label(), as attacks::Labels — and
/// computes the report. Spaces the model does not have (a uni-modal model's other branch, an
/// ensemble's fused latent) are left out. The model runs on its own device (host batches are
/// moved there); the latents come to the host for the metrics, and the convexity probes go back
/// through the model's heads.
template <models::AVModel M, class Batches, Floating T = typename M::value_type>
LatentReport latent_report(M& model, const Batches& batches, LatentReportOptions o = {}) {
  using D = typename M::device_type;
  const bool was_training = model.is_training();
  model.eval();
  std::vector<Tensor<T>> za, zv, zf, logits;
  std::vector<std::int64_t> labels;
  std::vector<Tensor<T>> multi_hot;
  std::unique_ptr<ProgressBar> bar;
  const auto total = static_cast<std::int64_t>(std::distance(std::begin(batches), std::end(batches)));
  if (!o.quiet) bar = std::make_unique<ProgressBar>("latents", total, 0, o.progress_out);
  std::int64_t done = 0;
  {
    NoGradGuard no_grad;
    for (const auto& [x, y] : batches) {
      auto out = model.forward(models::to_device<D>(x));
      if (out.audio_latent.defined()) za.push_back(out.audio_latent.detach().template to<Cpu>());
      if (out.video_latent.defined()) zv.push_back(out.video_latent.detach().template to<Cpu>());
      if (out.fused_latent.defined()) zf.push_back(out.fused_latent.detach().template to<Cpu>());
      logits.push_back(out.logits.detach().template to<Cpu>());
      if (y.multi_label())
        multi_hot.push_back(y.multi_hot.template to<Cpu>());
      else
        for (auto c : y.classes.template to<Cpu>().to_vector()) labels.push_back(c);
      if (bar) bar->update(++done);
    }
  }
  if (was_training) model.train();
  AVGRAD_CHECK(!logits.empty(), "latent_report", "no data");
  LatentReport r;
  r.num_classes = model.num_classes();
  r.multi_label = model.multi_label();
  const auto all_logits = concat(logits, 0);
  r.examples = all_logits.size(0);
  ClassSets sets;
  if (r.multi_label) {
    const auto y = concat(multi_hot, 0);
    sets = ClassSets::multi_hot(y);
    const auto m = multilabel_metrics(all_logits, y);
    r.map = m.map;
    r.mean_auc = m.mean_auc;
  } else {
    sets = ClassSets::single(labels, r.num_classes);
    r.accuracy = accuracy(all_logits, labels);
  }
  for (std::int64_t c = 0; c < r.num_classes; ++c)
    r.class_counts.push_back(static_cast<std::int64_t>(sets.members(c).size()));
  std::vector<double> freq;
  for (auto n : r.class_counts) freq.push_back(static_cast<double>(n) / static_cast<double>(r.examples));
  auto cx = o.convexity;
  cx.multi_label = r.multi_label;
  auto space = [&](const std::string& name, const std::vector<Tensor<T>>& parts,
                   const std::function<Tensor<T>(const Tensor<T>&)>& head) {
    if (parts.empty()) return;
    const auto z = concat(parts, 0);
    SpaceReport s;
    s.space = name;
    s.density = density(z, sets, o.density);
    s.convexity = convexity<T>(head, z, sets, cx);
    std::vector<double> p, l, mr, cv;
    for (const auto& d : s.density) p.push_back(d.purity), l.push_back(d.local_density), mr.push_back(d.margin_ratio);
    for (const auto& c : s.convexity) cv.push_back(c.convexity);
    s.mean_purity = report_detail::mean_of(p);
    s.mean_local_density = report_detail::mean_of(l);
    s.mean_margin_ratio = report_detail::mean_of(mr);
    s.mean_convexity = report_detail::mean_of(cv);
    s.convexity_frequency_r = pearson(cv, freq);
    r.spaces.push_back(std::move(s));
  };
  using models::Modality;
  auto host = [](const auto& t) { return t.template to<Cpu>(); };
  space("audio", za,
        [&](const Tensor<T>& z) { return host(model.branch_head_logits(Modality::audio, z.template to<D>())); });
  space("video", zv,
        [&](const Tensor<T>& z) { return host(model.branch_head_logits(Modality::video, z.template to<D>())); });
  space("fused", zf, [&](const Tensor<T>& z) { return host(model.fused_head_logits(z.template to<D>())); });
  return r;
}

namespace report_detail {
inline std::string num(double v) {
  if (std::isnan(v)) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}
inline std::string json_num(double v) { return std::isfinite(v) ? num(v) : "null"; }
}  // namespace report_detail

/// A summary table per space and a per-class table (density and convexity side by side).
inline std::string to_markdown(const LatentReport& r) {
  using report_detail::num;
  std::string s = avgrad::detail::concat(
      "Latent metrics over ", r.examples, " examples, ", r.num_classes, " classes; clean ",
      r.multi_label ? "mAP " + num(r.map) + ", mean AUC " + num(r.mean_auc) : "accuracy " + num(r.accuracy),
      ".\n\n| space | purity | local density | margin ratio | convexity | r(convexity, frequency) |\n"
      "|---|---:|---:|---:|---:|---:|\n");
  for (const auto& sp : r.spaces)
    s += avgrad::detail::concat("| ", sp.space, " | ", num(sp.mean_purity), " | ", num(sp.mean_local_density), " | ",
                                num(sp.mean_margin_ratio), " | ", num(sp.mean_convexity), " | ",
                                num(sp.convexity_frequency_r), " |\n");
  s += "\n| space | class | members | purity | local density | margin ratio | convexity "
       "|\n|---|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& sp : r.spaces)
    for (std::size_t c = 0; c < sp.density.size(); ++c)
      s += avgrad::detail::concat("| ", sp.space, " | ", c, " | ", sp.density[c].members, " | ",
                                  num(sp.density[c].purity), " | ", num(sp.density[c].local_density), " | ",
                                  num(sp.density[c].margin_ratio), " | ", num(sp.convexity[c].convexity), " |\n");
  return s;
}

/// One row per (space, class).
inline std::string to_csv(const LatentReport& r) {
  using report_detail::num;
  std::string s = "space,class,members,purity,local_density,margin_ratio,convexity\n";
  for (const auto& sp : r.spaces)
    for (std::size_t c = 0; c < sp.density.size(); ++c)
      s += avgrad::detail::concat(sp.space, ",", c, ",", sp.density[c].members, ",", num(sp.density[c].purity), ",",
                                  num(sp.density[c].local_density), ",", num(sp.density[c].margin_ratio), ",",
                                  num(sp.convexity[c].convexity), "\n");
  return s;
}

inline std::string to_json(const LatentReport& r) {
  using report_detail::json_num;
  std::string s = avgrad::detail::concat("{\"examples\":", r.examples, ",\"num_classes\":", r.num_classes,
                                         ",\"multi_label\":", r.multi_label ? "true" : "false",
                                         ",\"accuracy\":", json_num(r.accuracy), ",\"map\":", json_num(r.map),
                                         ",\"mean_auc\":", json_num(r.mean_auc), ",\"spaces\":[");
  for (std::size_t i = 0; i < r.spaces.size(); ++i) {
    const auto& sp = r.spaces[i];
    s += avgrad::detail::concat(
        i ? "," : "", "{\"space\":\"", sp.space, "\",\"mean_purity\":", json_num(sp.mean_purity),
        ",\"mean_local_density\":", json_num(sp.mean_local_density),
        ",\"mean_margin_ratio\":", json_num(sp.mean_margin_ratio), ",\"mean_convexity\":", json_num(sp.mean_convexity),
        ",\"convexity_frequency_r\":", json_num(sp.convexity_frequency_r), ",\"classes\":[");
    for (std::size_t c = 0; c < sp.density.size(); ++c)
      s += avgrad::detail::concat(c ? "," : "", "{\"class\":", c, ",\"members\":", sp.density[c].members,
                                  ",\"purity\":", json_num(sp.density[c].purity),
                                  ",\"local_density\":", json_num(sp.density[c].local_density),
                                  ",\"margin_ratio\":", json_num(sp.density[c].margin_ratio),
                                  ",\"convexity\":", json_num(sp.convexity[c].convexity), "}");
    s += "]}";
  }
  return s + "]}\n";
}

inline void write_markdown(const LatentReport& r, const std::filesystem::path& p) {
  write_file_atomic(p, to_markdown(r));
}
inline void write_csv(const LatentReport& r, const std::filesystem::path& p) { write_file_atomic(p, to_csv(r)); }
inline void write_json(const LatentReport& r, const std::filesystem::path& p) { write_file_atomic(p, to_json(r)); }

}  // namespace avgrad::metrics
