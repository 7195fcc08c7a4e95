// The whole study of ../shared/PAPER.md on AV-Digits in one call: features, every model trained
// with identical encoders, FGSM/PGD ε sweeps under audio-only, video-only and joint threat models,
// latent density and convexity per modality and fusion, the late-fusion model under each defense,
// then results/ as CSV, JSON, Markdown and SVG plots and the reading of the findings.
//
//   study::StudyConfig c;
//   c.data = "build/release/av-digits";
//   c.out = "results";
//   auto r = study::run_study(c);          // progress on stderr, the summary on stdout
//
// Re-running reuses what is finished and still valid — the feature cache and every checkpoint
// whose fingerprint (data, features, model, defense, training options) matches — unless
// `reuse` is off. Every file is written atomically: an interrupted run leaves old or complete
// files, never half-written ones.
#pragma once

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "avgrad/report/plot.hpp"
#include "avgrad/study/findings.hpp"

namespace avgrad::study {

struct StudyConfig {
  std::filesystem::path data;             ///< an AV-Digits folder (manifest.json + shards)
  std::filesystem::path out = "results";  ///< results, plots, checkpoints and the feature cache
  FeatureOptions features{};
  TrainConfig train{};
  AttackConfig attack{};
  std::vector<ModelKind> models{kAllModels.begin(), kAllModels.end()};
  /// Defenses of the late-fusion model besides plain training (whose run is the late model's).
  std::vector<std::string> defenses{"mixup", "guided", "pgd-at"};
  DefenseConfig defense{};  ///< defense.eps_audio is the headline ε (a grid point): tables report it
  bool reuse = true;        ///< reuse the feature cache and matching checkpoints
  bool quiet = false;       ///< no progress bars (stage lines and the summary still print)

  void check() const {
    AVGRAD_CHECK(!data.empty(), "study", "no dataset folder given");
    AVGRAD_CHECK(!out.empty(), "study", "no output folder given");
    features.check();
    train.check();
    attack.check();
    AVGRAD_CHECK(!models.empty(), "study", "no model to run");
    defense.check();
    AVGRAD_CHECK(std::find(attack.eps_grid.begin(), attack.eps_grid.end(), defense.eps_audio) != attack.eps_grid.end(),
                 "study", "ref_eps ", defense.eps_audio, " must be a positive point of the ε grid");
    for (const auto& d : defenses)
      AVGRAD_CHECK(d == "mixup" || d == "guided" || d == "pgd-at" || d == "fgsm-at" || d == "trades", "study",
                   "unknown defense '", d, "'; expected mixup, guided, pgd-at, fgsm-at or trades");
    const bool late = std::find(models.begin(), models.end(), ModelKind::late) != models.end();
    AVGRAD_CHECK(defenses.empty() || late, "study", "the defenses train the late-fusion model: add late to the models");
    const bool has = [&] {
      bool a = false, v = false;
      for (auto k : models) a |= k == ModelKind::audio, v |= k == ModelKind::video;
      return a && v;
    }();
    const bool super = std::find(models.begin(), models.end(), ModelKind::super_late) != models.end();
    AVGRAD_CHECK(!super || has, "study", "super-late fusion averages the audio-only and video-only models: add both");
  }
};

namespace study_detail {

using attacks::eval_detail::csv;
using attacks::eval_detail::json;
using attacks::eval_detail::json_array;
using attacks::eval_detail::JsonObject;
using findings_detail::f3;

/// Stage lines: what the study is doing, how far it is, how long it has run; each stage's wall
/// time is kept for study.json.
class Stages {
 public:
  explicit Stages(int total) : total_(total), start_(std::chrono::steady_clock::now()) {}
  void begin(const std::string& what) {
    close();
    ++done_;
    std::fprintf(stderr, "[study %d/%d, %s] %s\n", done_, total_, ProgressBar::format_duration(elapsed()).c_str(),
                 what.c_str());
    std::fflush(stderr);
    times_.emplace_back(what, elapsed());
    open_ = true;
  }
  /// Ends the current stage; its entry then holds its duration.
  void close() {
    if (open_) times_.back().second = elapsed() - times_.back().second;
    open_ = false;
  }
  double elapsed() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }
  const std::vector<std::pair<std::string, double>>& times() const { return times_; }

 private:
  int total_, done_ = 0;
  bool open_ = false;
  std::chrono::steady_clock::time_point start_;
  std::vector<std::pair<std::string, double>> times_;
};

}  // namespace study_detail

// ---- writers -------------------------------------------------------------------------------------

/// One row per model: training, clean and missing-modality accuracy, cost.
inline std::string training_markdown(const std::vector<ModelResult>& rows) {
  using study_detail::f3;
  std::string s =
      "| model | defense | test acc | audio only | video only | val acc | steps | train time | backward examples | "
      "checkpoint |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
  for (const auto& m : rows) {
    const auto& t = m.train;
    s += "| " + std::string(model_name(m.kind)) + " | " + m.defense + " | " + f3(t.test_accuracy) + " | " +
         f3(t.test_accuracy_audio_only) + " | " + f3(t.test_accuracy_video_only) + " | " + f3(t.val_accuracy) + " | " +
         std::to_string(t.steps) + " | " + attacks::eval_detail::md_seconds(t.cost.seconds) + " | " +
         std::to_string(t.cost.backward_examples) + " | " + (t.reused ? "reused" : "trained") + " |\n";
  }
  return s;
}

inline std::string training_csv(const std::vector<ModelResult>& rows) {
  using study_detail::csv;
  std::string s =
      "model,defense,test_accuracy,test_accuracy_audio_only,test_accuracy_video_only,val_accuracy,steps,seconds,"
      "forward_passes,backward_passes,forward_examples,backward_examples,reused\n";
  for (const auto& m : rows) {
    const auto& t = m.train;
    s += csv(std::string(model_name(m.kind))) + "," + csv(m.defense) + "," + csv(t.test_accuracy) + "," +
         csv(t.test_accuracy_audio_only) + "," + csv(t.test_accuracy_video_only) + "," + csv(t.val_accuracy) + "," +
         std::to_string(t.steps) + "," + csv(t.cost.seconds) + "," + std::to_string(t.cost.forward_passes) + "," +
         std::to_string(t.cost.backward_passes) + "," + std::to_string(t.cost.forward_examples) + "," +
         std::to_string(t.cost.backward_examples) + "," + (t.reused ? "true" : "false") + "\n";
  }
  return s;
}

/// One row per (model, attack, threat model, ε): the curves of the plots.
inline std::string robustness_csv(const std::vector<const ModelResult*>& rows) {
  using study_detail::csv;
  std::string s =
      "model,defense,attack,scope,eps_audio,eps_video,clean_accuracy,robust_accuracy,success_rate,forward_passes,"
      "backward_passes,seconds\n";
  for (const auto* m : rows)
    for (const auto& sw : m->sweeps)
      for (const auto& p : sw.points) {
        const auto& q = p.summary;
        s += csv(std::string(model_name(m->kind))) + "," + csv(m->defense) + "," + csv(sw.attack) + "," +
             csv(sw.scope) + "," + csv(p.eps_audio) + "," + csv(p.eps_video) + "," + csv(q.clean_accuracy) + "," +
             csv(q.robust_accuracy) + "," + csv(q.success_rate) + "," + std::to_string(q.forward_passes) + "," +
             std::to_string(q.backward_passes) + "," + csv(q.seconds) + "\n";
      }
  return s;
}

/// One row per (model, latent space, class).
inline std::string latent_csv(const std::vector<ModelResult>& rows) {
  using study_detail::csv;
  std::string s = "model,space,class,members,purity,local_density,margin_ratio,convexity\n";
  for (const auto& m : rows) {
    if (!m.latent) continue;
    for (const auto& sp : m.latent->spaces)
      for (std::size_t c = 0; c < sp.density.size(); ++c) {
        const auto& d = sp.density[c];
        const double conv = c < sp.convexity.size() ? sp.convexity[c].convexity : metrics::kNaN;
        s += csv(std::string(model_name(m.kind))) + "," + csv(sp.space) + "," + std::to_string(d.cls) + "," +
             std::to_string(d.members) + "," + csv(d.purity) + "," + csv(d.local_density) + "," + csv(d.margin_ratio) +
             "," + csv(conv) + "\n";
      }
  }
  return s;
}

/// The headline table: per model, clean accuracy, PGD robust accuracy at the reference ε under
/// each threat model, FGSM joint, retained accuracy, the own latent's metrics and training time.
inline std::string summary_table(const std::vector<ModelResult>& rows, std::size_t ref) {
  using study_detail::f3;
  std::string s =
      "| model | clean acc | PGD audio | PGD video | PGD joint | FGSM joint | retained (PGD) | convexity | kNN purity "
      "| "
      "margin ratio | train time |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
  for (const auto& m : rows) {
    const auto* sp = m.own_space();
    const std::string fgsm_scope = m.own_scope();
    s += "| " + m.label() + " | " + f3(m.clean_accuracy()) + " | " + f3(m.robust("PGD", "audio", ref)) + " | " +
         f3(m.robust("PGD", "video", ref)) + " | " + f3(m.robust("PGD", "joint", ref)) + " | " +
         f3(m.robust("FGSM", fgsm_scope == "joint" ? "joint" : fgsm_scope, ref)) + " | " +
         f3(m.retained("PGD", m.own_scope())) + " | " + f3(sp ? sp->mean_convexity : metrics::kNaN) + " | " +
         f3(sp ? sp->mean_purity : metrics::kNaN) + " | " + f3(sp ? sp->mean_margin_ratio : metrics::kNaN) + " | " +
         attacks::eval_detail::md_seconds(m.train.cost.seconds) + " |\n";
  }
  return s;
}

inline std::string defenses_table(const std::vector<ModelResult>& rows, std::size_t ref) {
  using study_detail::f3;
  const ModelResult* plain = nullptr;
  for (const auto& m : rows)
    if (m.defense == "plain") plain = &m;
  std::string s =
      "| defense | clean acc | PGD joint | PGD audio | PGD video | train time | backward examples | cost vs plain |\n"
      "| --- | --- | --- | --- | --- | --- | --- | --- |\n";
  for (const auto& m : rows) {
    const double rel = plain ? static_cast<double>(m.train.cost.backward_examples) /
                                   static_cast<double>(std::max<std::int64_t>(1, plain->train.cost.backward_examples))
                             : metrics::kNaN;
    s += "| " + m.defense + " | " + f3(m.clean_accuracy()) + " | " + f3(m.robust("PGD", "joint", ref)) + " | " +
         f3(m.robust("PGD", "audio", ref)) + " | " + f3(m.robust("PGD", "video", ref)) + " | " +
         attacks::eval_detail::md_seconds(m.train.cost.seconds) + " | " +
         std::to_string(m.train.cost.backward_examples) + " | " + f3(rel) + "× |\n";
  }
  return s;
}

inline std::string findings_markdown(const std::vector<Finding>& fs) {
  std::string s = "| # | claim of the study | here | evidence |\n| --- | --- | --- | --- |\n";
  for (const auto& f : fs)
    s += "| " + f.id + " | " + f.claim + " | **" + verdict_name(f.verdict) + "** | " + f.evidence + " |\n";
  return s;
}

inline std::string findings_json(const std::vector<Finding>& fs) {
  using namespace study_detail;
  return json_array(fs, [](const Finding& f) {
    return JsonObject()
        .str("id", f.id)
        .str("claim", f.claim)
        .str("verdict", verdict_name(f.verdict))
        .str("evidence", f.evidence)
        .done();
  });
}

inline std::string model_json(const ModelResult& m) {
  using namespace study_detail;
  const auto& t = m.train;
  JsonObject o;
  o.str("model", std::string(model_name(m.kind)))
      .str("defense", m.defense)
      .raw("train", JsonObject()
                        .num("test_accuracy", t.test_accuracy)
                        .num("test_accuracy_audio_only", t.test_accuracy_audio_only)
                        .num("test_accuracy_video_only", t.test_accuracy_video_only)
                        .num("val_accuracy", t.val_accuracy)
                        .integer("steps", t.steps)
                        .num("seconds", t.cost.seconds)
                        .integer("forward_passes", t.cost.forward_passes)
                        .integer("backward_passes", t.cost.backward_passes)
                        .integer("forward_examples", t.cost.forward_examples)
                        .integer("backward_examples", t.cost.backward_examples)
                        .boolean("reused", t.reused)
                        .done())
      .raw("sweeps", attacks::to_json(m.sweeps));
  o.raw("latent", m.latent ? metrics::to_json(*m.latent) : std::string("null"));
  return o.done();
}

/// The plots: robust accuracy vs ε per threat model (one line per model), convexity per class
/// (one bar per model, each in its own latent), robustness vs training cost per defense.
inline std::vector<std::filesystem::path> write_plots(const StudyResults& r, const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> written;
  std::filesystem::create_directories(dir);
  const char* scopes[] = {"audio", "video", "joint"};
  const char* scope_titles[] = {"audio attacked", "video attacked", "both attacked"};
  for (int i = 0; i < 3; ++i) {
    std::vector<report::Series> lines;
    for (const auto& m : r.models)
      if (const auto* sw = m.sweep("PGD", scopes[i])) {
        report::Series s{std::string(model_name(m.kind)), {}, {}};
        for (std::size_t k = 0; k < sw->points.size(); ++k) {
          s.x.push_back(r.attack.eps_grid[k]);
          s.y.push_back(sw->points[k].summary.robust_accuracy);
        }
        lines.push_back(std::move(s));
      }
    if (lines.empty()) continue;
    char xl[96];
    std::snprintf(xl, sizeof xl, "ε audio (z-scored fbank; ε video = %.3g · ε audio, pixels)", r.attack.video_ratio);
    const auto p = dir / (std::string("robust_accuracy_") + scopes[i] + ".svg");
    report::write_svg(p, report::line_chart_svg(lines, {.title = std::string("PGD robust accuracy, ") + scope_titles[i],
                                                        .x_label = xl,
                                                        .y_label = "robust accuracy",
                                                        .y_min = 0,
                                                        .y_max = 1}));
    written.push_back(p);
  }
  {  // convexity per class, each model in its own latent space (NaN: a class without two members → 0 bar)
    std::vector<std::string> classes;
    std::vector<report::Series> bars;
    for (const auto& m : r.models) {
      const auto* sp = m.own_space();
      if (!sp || sp->convexity.empty()) continue;
      if (classes.empty())
        for (const auto& c : sp->convexity) classes.push_back(std::to_string(c.cls));
      report::Series s{std::string(model_name(m.kind)), {}, {}};
      for (const auto& c : sp->convexity) s.y.push_back(std::isfinite(c.convexity) ? c.convexity : 0.0);
      s.y.resize(classes.size(), 0.0);
      bars.push_back(std::move(s));
    }
    if (!bars.empty()) {
      const auto p = dir / "convexity_per_class.svg";
      report::write_svg(p, report::bar_chart_svg(classes, bars,
                                                 {.title = "Convexity per class (each model's own latent)",
                                                  .x_label = "class",
                                                  .y_label = "convexity C_c",
                                                  .y_min = 0,
                                                  .y_max = 1}));
      written.push_back(p);
    }
  }
  {
    std::vector<report::Series> points;
    for (const auto& m : r.defenses) {
      const double y = m.robust("PGD", "joint", r.ref);
      if (!std::isfinite(y)) continue;
      points.push_back({m.defense, {static_cast<double>(m.train.cost.backward_examples) / 1e3}, {y}});
    }
    if (!points.empty()) {
      char title[128];
      std::snprintf(title, sizeof title, "Late fusion: joint PGD robust accuracy at ε_a = %.3g vs training cost",
                    r.ref_eps_audio());
      const auto p = dir / "defense_cost.svg";
      report::write_svg(p, report::scatter_svg(points, {.title = title,
                                                        .x_label = "training cost (thousand backward-pass examples)",
                                                        .y_label = "robust accuracy",
                                                        .x_from_zero = true}));
      written.push_back(p);
    }
  }
  return written;
}

/// summary.md: the configuration, the tables, the findings and the plots.
inline std::string summary_markdown(const StudyResults& r, const StudyConfig& c, const std::vector<Finding>& fs,
                                    double seconds) {
  using study_detail::f3;
  std::string s = "# Study results\n\n";
  char line[512];
  std::snprintf(line, sizeof line,
                "Data: %s (features: %s). Training: %s. Attacks: %s balls, PGD-%d (step ε/4, random start)%s; "
                "ε_audio grid {",
                c.data.string().c_str(), c.features.str().c_str(), c.train.str().c_str(),
                attacks::norm_name(c.attack.norm), c.attack.pgd_steps, c.attack.fgsm ? " and FGSM" : "");
  s += line;
  for (std::size_t i = 0; i < c.attack.eps_grid.size(); ++i) s += (i ? ", " : "") + f3(c.attack.eps_grid[i]);
  std::snprintf(line, sizeof line,
                "}, ε_video = %.3g · ε_audio. Headline ε: ε_a = %.3g, ε_v = %.3g. Wall time %s (models on the %s).\n\n",
                c.attack.video_ratio, r.ref_eps_audio(), r.ref_eps_video(),
                ProgressBar::format_duration(seconds).c_str(), r.device.c_str());
  s += line;
  s += "## Models (plain training)\n\nRobust accuracies at the headline ε; *retained* is robust / clean accuracy "
       "averaged over the grid's ε > 0 under the model's widest threat model (joint for fused models). Latent metrics "
       "are of the model's own latent (the fused one for fused models), on the test set.\n\n";
  s += summary_table(r.models, r.ref) + "\n";
  s += training_markdown(r.models) + "\n";
  if (!r.defenses.empty()) {
    s += "## Defenses (late fusion)\n\n" + defenses_table(r.defenses, r.ref) + "\n";
  }
  s += "## Reading: the study's findings here\n\n" + findings_markdown(fs) + "\n";
  s += "## Plots\n\n";
  for (const char* p : {"robust_accuracy_audio", "robust_accuracy_video", "robust_accuracy_joint",
                        "convexity_per_class", "defense_cost"})
    if (std::filesystem::exists(c.out / "plots" / (std::string(p) + ".svg")))
      s += "![" + std::string(p) + "](plots/" + p + ".svg)\n";
  return s;
}

// ---- the study -------------------------------------------------------------------------------------

/// Runs the study (see the header comment) and writes c.out/{summary.md, study.json,
/// training.csv, robustness.csv, latent.csv, plots/*.svg}; checkpoints in c.out/checkpoints,
/// the feature cache in c.out/cache. Prints the summary to stdout. The models train and are
/// attacked on device D (run_study<Cuda> needs a translation unit compiled by nvcc with
/// avgrad/cuda.cuh); the features are computed on the host, and checkpoints are
/// device-neutral, so a GPU run reuses a CPU run's checkpoints and the other way round.
template <Device D = Cpu> StudyResults run_study(const StudyConfig& c) {
  using namespace study_detail;
  c.check();
  MatmulPrecisionGuard lowered(c.train.precision);  // training, evaluation, attacks and latent metrics
  std::filesystem::create_directories(c.out / "checkpoints");
  // features; per model: train (or assemble), attack, latent metrics; per defense: train, attack; writing
  Stages stages(1 + 3 * static_cast<int>(c.models.size()) + 2 * static_cast<int>(c.defenses.size()) + 1);

  stages.begin("features from " + c.data.string());
  const FeatureSet fs = load_features(
      c.data, c.reuse ? c.out / "cache" / "features.safetensors" : std::filesystem::path{}, c.features, c.quiet);
  std::fprintf(stderr, "  %lld train / %lld val / %lld test; audio %s, video %s%s\n",
               static_cast<long long>(fs.train.size()), static_cast<long long>(fs.val.size()),
               static_cast<long long>(fs.test.size()), fs.train.audio.shape().str().c_str(),
               fs.train.video.shape().str().c_str(), fs.from_cache ? " (cached)" : "");
  const auto so = model_options(fs);

  StudyResults res;
  res.attack = c.attack;
  res.device = std::string(D::name);
  res.ref = static_cast<std::size_t>(
      std::find(c.attack.eps_grid.begin(), c.attack.eps_grid.end(), c.defense.eps_audio) - c.attack.eps_grid.begin());
  auto tc = c.train;
  tc.quiet = c.quiet;
  auto ac = c.attack;
  ac.quiet = c.quiet;

  // One model under one defense: train or load, sweep, and (for plain training) the latent report.
  auto run_one = [&](ModelKind kind, const std::string& defense) {
    ModelResult m;
    m.kind = kind;
    m.defense = defense;
    Generator init(c.train.seed);
    default_generator().manual_seed(c.train.seed);
    with_model<D>(kind, so, init, [&](auto& model) {
      using M = std::remove_cvref_t<decltype(model)>;
      if constexpr (is_super_late_model<M>) {
        stages.begin("super-late fusion from the audio-only and video-only checkpoints");
        load_trained(model, kind, c.out);
        const auto* a = res.model(ModelKind::audio);
        const auto* v = res.model(ModelKind::video);
        m.train.model = std::string(model_name(kind));
        m.train.reused = a->train.reused && v->train.reused;
        for (const auto* part : {a, v}) {
          m.train.cost.seconds += part->train.cost.seconds;
          m.train.cost.forward_passes += part->train.cost.forward_passes;
          m.train.cost.backward_passes += part->train.cost.backward_passes;
          m.train.cost.forward_examples += part->train.cost.forward_examples;
          m.train.cost.backward_examples += part->train.cost.backward_examples;
          m.train.steps += part->train.steps;
        }
        m.train.val_accuracy = train::evaluate(model, fs.val).accuracy;
        record_test_accuracy(model, kind, fs, m.train);
      } else {
        stages.begin("training " + m.label());
        auto def = make_defense<M>(defense, c.defense, ac, fs);
        m.train = train_or_load(model, kind, *def, defense, fs, tc, checkpoint_path(c.out, kind, defense),
                                training_fingerprint(fs, tc, kind, defense, c.defense, ac), c.reuse);
        std::fprintf(stderr, "  test accuracy %.3f (%s)\n", m.train.test_accuracy,
                     m.train.reused ? "checkpoint reused" : ProgressBar::format_duration(m.train.cost.seconds).c_str());
      }
      stages.begin("attacking " + m.label());
      m.sweeps = robustness_sweeps(model, kind, fs.test, ac);
      if (defense == "plain") {
        stages.begin("latent metrics of " + m.label());
        m.latent = latent_metrics(model, fs.test, c.quiet);
      }
      return 0;
    });
    return m;
  };

  for (auto k : c.models) res.models.push_back(run_one(k, "plain"));
  if (!c.defenses.empty()) {
    res.defenses.push_back(*res.model(ModelKind::late));
    for (const auto& d : c.defenses) res.defenses.push_back(run_one(ModelKind::late, d));
  }

  stages.begin("writing " + c.out.string());
  const auto findings = read_findings(res);
  write_plots(res, c.out / "plots");
  std::vector<const ModelResult*> all;
  for (const auto& m : res.models) all.push_back(&m);
  for (const auto& m : res.defenses)
    if (m.defense != "plain") all.push_back(&m);
  std::vector<ModelResult> trained_rows = res.models;
  for (const auto& m : res.defenses)
    if (m.defense != "plain") trained_rows.push_back(m);
  write_file_atomic(c.out / "training.csv", training_csv(trained_rows));
  write_file_atomic(c.out / "robustness.csv", robustness_csv(all));
  write_file_atomic(c.out / "latent.csv", latent_csv(res.models));
  const double seconds = stages.elapsed();
  stages.close();
  {
    JsonObject o;
    o.str("data", c.data.string())
        .str("features", c.features.str())
        .str("training", c.train.str())
        .raw("eps_grid_audio", json_array(c.attack.eps_grid, [](double e) { return json(e); }))
        .num("video_ratio", c.attack.video_ratio)
        .str("norm", attacks::norm_name(c.attack.norm))
        .num("ref_eps_audio", res.ref_eps_audio())
        .num("ref_eps_video", res.ref_eps_video())
        .integer("pgd_steps", c.attack.pgd_steps)
        .num("seconds", seconds)
        .str("device", res.device)
        .raw("models", json_array(res.models, model_json))
        .raw("defenses", json_array(res.defenses, model_json))
        .raw("findings", findings_json(findings))
        .raw("stages", json_array(stages.times(), [](const auto& st) {
               return JsonObject().str("stage", st.first).num("seconds", st.second).done();
             }));
    write_file_atomic(c.out / "study.json", o.done() + "\n");
  }
  const std::string summary = summary_markdown(res, c, findings, seconds);
  write_file_atomic(c.out / "summary.md", summary);
  std::fputs(summary.c_str(), stdout);
  std::fflush(stdout);
  return res;
}

}  // namespace avgrad::study
