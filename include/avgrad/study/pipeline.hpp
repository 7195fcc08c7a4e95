// The study's steps for one model, generic over its type: train it (or load the checkpoint a
// previous run left with the same configuration), sweep ε under FGSM and PGD for every threat
// model it can be attacked under, and compute its latent-space report. run_study (study.hpp)
// calls these for every model; the example programs train / attack / metrics call them for one.
#pragma once

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "avgrad/attacks/evaluate.hpp"
#include "avgrad/attacks/pgd.hpp"
#include "avgrad/metrics/report.hpp"
#include "avgrad/optim/adam.hpp"
#include "avgrad/study/zoo.hpp"
#include "avgrad/train/adversarial.hpp"
#include "avgrad/train/checkpoint.hpp"
#include "avgrad/train/guided_mixup.hpp"
#include "avgrad/train/mixup.hpp"
#include "avgrad/train/trainer.hpp"

namespace avgrad::study {

// ---- configuration -----------------------------------------------------------------------------

struct TrainConfig {
  std::int64_t epochs = 20, batch = 32;
  double lr = 1e-3;
  std::uint64_t seed = 1;
  /// GEMM operand precision of training and of everything run_study does with the model
  /// (core/precision.hpp); float32 by default.
  MatmulPrecision precision = MatmulPrecision::float32;
  bool quiet = false;  ///< no progress bars

  void check() const {
    AVGRAD_CHECK(epochs >= 1 && batch >= 1, "TrainConfig", "epochs and batch must be >= 1, got ", epochs, " and ",
                 batch);
    AVGRAD_CHECK(std::isfinite(lr) && lr > 0, "TrainConfig", "lr must be positive, got ", lr);
  }
  /// Everything that changes the trained weights (not `quiet`).
  std::string str() const {
    std::ostringstream s;
    s << "epochs " << epochs << " batch " << batch << " lr " << lr << " seed " << seed;
    if (precision != MatmulPrecision::float32) s << " gemm " << matmul_precision_name(precision);
    return s.str();
  }
};

/// Threat models and attacks. Budgets are L∞ on the features: audio is z-scored fbank (unit
/// variance per bin), video is pixels in [0, 1]; ε_video = video_ratio · ε_audio everywhere, so
/// one grid indexes every threat model and the joint point is the union of the two single ones.
struct AttackConfig {
  /// ε_audio, ascending; 0 gives the clean point. Audio features are far more fragile than pixels:
  /// on AV-Digits ε_a = 0.02 already breaks most audio-only predictions, ε_v = 0.01 a third of the
  /// video-only ones, so the grid is fine-grained where the curves fall.
  std::vector<double> eps_grid{0, 0.0025, 0.005, 0.01, 0.02, 0.04};
  double video_ratio = 0.5;  ///< ε_video / ε_audio (ε_a = 0.01 ↔ ε_v = 0.005 ≈ 1.3/255)
  /// L∞ (the study's) or L2 balls per example and modality; an L2 grid's ε is the whole
  /// perturbation's length, so it is about sqrt(dimensions) times an L∞ grid's.
  attacks::Norm norm = attacks::Norm::linf;
  int pgd_steps = 10;        ///< PGD steps of ε/4 each (2.5 ε of travel: enough to cross the ball)
  bool fgsm = true;          ///< also sweep FGSM (one step of ε)
  std::uint64_t seed = 7;    ///< PGD's random start
  std::int64_t batch = 100;  ///< examples per attack batch
  bool quiet = false;

  void check() const {
    attacks::eval_detail::check_grid("AttackConfig", eps_grid);
    AVGRAD_CHECK(std::isfinite(video_ratio) && video_ratio > 0, "AttackConfig", "video_ratio must be positive");
    AVGRAD_CHECK(pgd_steps >= 1 && batch >= 1, "AttackConfig", "pgd_steps and batch must be >= 1");
  }
  attacks::Budget audio_budget(double eps) const { return {.norm = norm, .eps = eps, .step = eps / 4}; }
  attacks::Budget video_budget(double eps_audio) const {
    const double e = eps_audio * video_ratio;
    return {.norm = norm, .eps = e, .step = e / 4, .lo = 0, .hi = 1, .domain = attacks::Domain::pixels};
  }
  attacks::ThreatModel joint(double eps_audio) const {
    return attacks::ThreatModel::joint(audio_budget(eps_audio), video_budget(eps_audio));
  }
};

// ---- data as attack / metric batches ----------------------------------------------------------------

using Batch = std::pair<models::AVInput<float>, attacks::Labels<float>>;

/// `data` in batches of `size`, holding only the modalities the model reads (a uni-modal model
/// gets no input it would ignore, so no attack can spend effort on it).
inline std::vector<Batch> batches_of(const train::TensorData<float>& data, std::int64_t size, bool audio = true,
                                     bool video = true) {
  data.check("study::batches_of");
  std::vector<Batch> out;
  for (std::int64_t s = 0; s < data.size(); s += size) {
    std::vector<std::int64_t> idx;
    for (std::int64_t i = s; i < std::min(data.size(), s + size); ++i) idx.push_back(i);
    auto b = data.rows(idx);
    if (!audio) b.x.audio = {};
    if (!video) b.x.video = {};
    out.emplace_back(std::move(b.x), std::move(b.y));
  }
  return out;
}

/// `data` with one modality removed (the missing-modality test of a fused model).
inline train::TensorData<float> without(const train::TensorData<float>& data, models::Modality m) {
  auto d = data;
  (m == models::Modality::audio ? d.audio : d.video) = {};
  return d;
}

// ---- training ----------------------------------------------------------------------------------------

/// What a trained model remembers of its training, stored in its checkpoint's metadata so a
/// re-run that reuses the checkpoint still reports the cost.
struct TrainRecord {
  std::string model, defense = "plain";
  bool reused = false;
  train::Cost cost{};
  std::int64_t steps = 0;
  double val_accuracy = metrics::kNaN, test_accuracy = metrics::kNaN;
  double test_accuracy_audio_only = metrics::kNaN, test_accuracy_video_only = metrics::kNaN;  ///< other input missing

  std::map<std::string, std::string> to_metadata() const {
    auto d = [](double v) {
      char b[32];
      std::snprintf(b, sizeof b, "%.17g", v);
      return std::string(b);
    };
    return {{"study.model", model},
            {"study.defense", defense},
            {"study.seconds", d(cost.seconds)},
            {"study.forward_passes", std::to_string(cost.forward_passes)},
            {"study.backward_passes", std::to_string(cost.backward_passes)},
            {"study.forward_examples", std::to_string(cost.forward_examples)},
            {"study.backward_examples", std::to_string(cost.backward_examples)},
            {"study.examples_seen", std::to_string(cost.examples_seen)},
            {"study.steps", std::to_string(steps)},
            {"study.val_accuracy", d(val_accuracy)},
            {"study.test_accuracy", d(test_accuracy)},
            {"study.test_accuracy_audio_only", d(test_accuracy_audio_only)},
            {"study.test_accuracy_video_only", d(test_accuracy_video_only)}};
  }
  static TrainRecord from_metadata(const std::map<std::string, std::string>& md, const std::string& source) {
    auto get = [&](const std::string& k) -> const std::string& {
      const auto it = md.find(k);
      AVGRAD_CHECK(it != md.end(), "study", source, " lacks metadata key '", k, "'");
      return it->second;
    };
    auto num = [&](const std::string& k) {
      const std::string& s = get(k);
      try {
        return s == "nan" || s == "-nan" ? metrics::kNaN : std::stod(s);
      } catch (...) {
        throw Error("study", avgrad::detail::concat(source, ": malformed value '", s, "' for '", k, "'"));
      }
    };
    auto count = [&](const std::string& k) { return static_cast<std::int64_t>(num(k)); };
    TrainRecord r;
    r.model = get("study.model");
    r.defense = get("study.defense");
    r.cost.seconds = num("study.seconds");
    r.cost.forward_passes = count("study.forward_passes");
    r.cost.backward_passes = count("study.backward_passes");
    r.cost.forward_examples = count("study.forward_examples");
    r.cost.backward_examples = count("study.backward_examples");
    r.cost.examples_seen = count("study.examples_seen");
    r.steps = count("study.steps");
    r.val_accuracy = num("study.val_accuracy");
    r.test_accuracy = num("study.test_accuracy");
    r.test_accuracy_audio_only = num("study.test_accuracy_audio_only");
    r.test_accuracy_video_only = num("study.test_accuracy_video_only");
    r.reused = true;
    return r;
  }
};

/// The checkpoint's fingerprint when `path` is an avgrad state dict carrying one, else "".
inline std::string checkpoint_fingerprint(const std::filesystem::path& path) {
  if (!std::filesystem::is_regular_file(path)) return {};
  try {
    const auto f = SafetensorsFile::open(path);
    const auto it = f.metadata().find("study.fingerprint");
    return it == f.metadata().end() ? std::string() : it->second;
  } catch (const Error&) {
    return {};  // a damaged file is retrained, not trusted
  }
}

/// Where the study and the example programs keep a model's weights: <out>/checkpoints/<model>.safetensors,
/// or <model>-<defense>.safetensors for a defended one.
inline std::filesystem::path checkpoint_path(const std::filesystem::path& out, ModelKind k,
                                             const std::string& defense = "plain") {
  return out / "checkpoints" /
         (std::string(model_name(k)) + (defense == "plain" ? "" : "-" + defense) + ".safetensors");
}

/// Loads trained weights into `model` from the checkpoints under `out`; the super-late model's
/// two members come from the audio-only and video-only checkpoints. A missing file is an error
/// that says which program makes it.
template <models::AVModel M>
void load_trained(M& model, ModelKind k, const std::filesystem::path& out, const std::string& defense = "plain") {
  auto load = [&](auto& m, ModelKind kind, const std::string& d) {
    const auto p = checkpoint_path(out, kind, d);
    AVGRAD_CHECK(std::filesystem::is_regular_file(p), "study", "no checkpoint of the ", model_name(kind), " model",
                 d == "plain" ? "" : " under " + d, " at ", p.string(), " (train it with the train or study program)");
    load_state_dict(p, m);
  };
  if constexpr (is_super_late_model<M>) {
    AVGRAD_CHECK(defense == "plain", "study", "the super-late model is assembled from plainly trained members");
    load(model.audio_model(), ModelKind::audio, "plain");
    load(model.video_model(), ModelKind::video, "plain");
  } else {
    load(model, k, defense);
  }
}

/// Test accuracy of `model`, and for a fused model the accuracy with either input missing.
template <models::AVModel M> void record_test_accuracy(M& model, ModelKind kind, const FeatureSet& fs, TrainRecord& r) {
  r.test_accuracy = train::evaluate(model, fs.test).accuracy;
  if (is_fused(kind)) {
    r.test_accuracy_audio_only = train::evaluate(model, without(fs.test, models::Modality::video)).accuracy;
    r.test_accuracy_video_only = train::evaluate(model, without(fs.test, models::Modality::audio)).accuracy;
  }
}

/// How the defenses train: adversarial training attacks at ε_audio = `eps_audio` (ε_video =
/// AttackConfig::video_ratio · eps_audio, the study's headline budgets) with `at_steps` PGD steps;
/// guided mix-up measures its metrics on the first `heldout` validation examples.
struct DefenseConfig {
  double eps_audio = 0.01;
  int at_steps = 5;
  std::int64_t heldout = 300;

  void check() const {
    AVGRAD_CHECK(std::isfinite(eps_audio) && eps_audio > 0, "DefenseConfig", "eps_audio must be positive");
    AVGRAD_CHECK(at_steps >= 1 && heldout >= 2, "DefenseConfig", "at_steps must be >= 1 and heldout >= 2");
  }
  std::string str(double video_ratio) const {
    char b[128];
    std::snprintf(b, sizeof b, "eps %.17g ratio %.17g at %d heldout %lld", eps_audio, video_ratio, at_steps,
                  static_cast<long long>(heldout));
    return b;
  }
};

/// The defense `name` (plain, mixup, guided, pgd-at, fgsm-at, trades) for training model type M.
template <models::AVModel M>
std::unique_ptr<train::Defense<M>> make_defense(const std::string& name, const DefenseConfig& dc,
                                                const AttackConfig& ac, const FeatureSet& fs) {
  using namespace train;
  dc.check();
  if (name == "plain") return std::make_unique<PlainTraining<M>>();
  if (name == "mixup") return std::make_unique<InputMixup<M>>(MixupOptions{.alpha = 0.4});
  if (name == "guided") {
    std::vector<std::int64_t> idx;
    for (std::int64_t i = 0; i < std::min(dc.heldout, fs.val.size()); ++i) idx.push_back(i);
    return std::make_unique<GuidedMixup<M>>(fs.val.rows(idx));
  }
  auto at = [&](AdversarialMethod method) {
    auto tm = ac.joint(dc.eps_audio);  // steps of 2.5 ε / at_steps: the ball is crossed whatever the count
    tm.audio->step = 2.5 * tm.audio->eps / dc.at_steps;
    tm.video->step = 2.5 * tm.video->eps / dc.at_steps;
    return std::make_unique<AdversarialTraining<M>>(
        AdversarialTrainingOptions{.method = method, .threat = tm, .steps = dc.at_steps});
  };
  if (name == "pgd-at") return at(AdversarialMethod::pgd);
  if (name == "fgsm-at") return at(AdversarialMethod::fgsm_rs);
  if (name == "trades") return at(AdversarialMethod::trades);
  throw Error("study", avgrad::detail::concat("unknown defense '", name,
                                              "'; expected one of plain, mixup, guided, pgd-at, fgsm-at, trades"));
}

/// What a checkpoint must have been trained from to be reused: the features, the training
/// options, the model, the defense and (for a defense) its budgets.
inline std::string training_fingerprint(const FeatureSet& fs, const TrainConfig& tc, ModelKind k,
                                        const std::string& defense, const DefenseConfig& dc, const AttackConfig& ac) {
  std::string s = fs.fingerprint + "|" + tc.str() + "|" + std::string(model_name(k)) + "|" + defense;
  if (defense != "plain") s += "|" + dc.str(ac.video_ratio);
  return s;
}

inline constexpr const char* kDefenseNames = "plain, mixup, guided, pgd-at, fgsm-at, trades";

/// Trains `model` with `defense` on fs.train (Adam, validation on fs.val each epoch, the best
/// epoch's weights kept), then writes its weights and TrainRecord to `checkpoint` atomically.
/// When `reuse` is set and `checkpoint` already holds weights trained with the same
/// `fingerprint`, loads them instead and returns the stored record (reused = true).
template <models::AVModel M> TrainRecord train_or_load(M& model, ModelKind kind, train::Defense<M>& defense,
                                                       const std::string& defense_name, const FeatureSet& fs,
                                                       const TrainConfig& tc, const std::filesystem::path& checkpoint,
                                                       const std::string& fingerprint, bool reuse) {
  tc.check();
  if (reuse && !fingerprint.empty() && checkpoint_fingerprint(checkpoint) == fingerprint) {
    load_state_dict(checkpoint, model);
    return TrainRecord::from_metadata(SafetensorsFile::open(checkpoint).metadata(), checkpoint.string());
  }
  MatmulPrecisionGuard lowered(tc.precision);
  TrainRecord r;
  r.model = std::string(model_name(kind));
  r.defense = defense_name;
  using D = typename M::device_type;
  optim::Adam<float, D> adam(model.parameters(), {.lr = tc.lr});
  const auto scratch = checkpoint.parent_path() / (checkpoint.stem().string() + ".training");
  std::filesystem::remove_all(scratch);  // an interrupted run's epochs belong to another fit
  train::Trainer<M> trainer(model, adam, defense,
                            {.epochs = tc.epochs, .checkpoint_dir = scratch, .progress = !tc.quiet, .seed = tc.seed});
  train::ShuffledBatches<float> batches(fs.train, tc.batch, tc.seed);
  const auto res = trainer.fit(batches, &fs.val);
  // The epoch with the best validation accuracy is the model the study evaluates.
  if (std::filesystem::is_regular_file(scratch / "best.safetensors")) {
    CheckpointParts<float, D> parts;
    parts.module = &model;
    load_checkpoint(scratch / "best.safetensors", parts);
  }
  std::filesystem::remove_all(scratch);
  r.cost = res.cost;
  r.steps = res.steps;
  r.val_accuracy = train::evaluate(model, fs.val).accuracy;
  record_test_accuracy(model, kind, fs, r);
  auto md = r.to_metadata();
  md["study.fingerprint"] = fingerprint;
  std::filesystem::create_directories(checkpoint.parent_path().empty() ? "." : checkpoint.parent_path());
  save_state_dict(checkpoint, model, md);
  return r;
}

// ---- robustness ----------------------------------------------------------------------------------------

/// FGSM (if configured) and PGD ε sweeps of `model` on `test`: a uni-modal model under its own
/// modality's attack, a fused one under audio-only, video-only and joint attacks (in that order,
/// FGSM's sweeps first). Every sweep's points share the grid index: point i is ε_a = grid[i],
/// ε_v = video_ratio · grid[i] (a video-only sweep reports ε_v as its `eps`).
template <models::AVModel M> std::vector<attacks::EpsilonSweep> robustness_sweeps(M& model, ModelKind kind,
                                                                                  const train::TensorData<float>& test,
                                                                                  const AttackConfig& ac) {
  using namespace attacks;
  ac.check();
  const auto batches = batches_of(test, ac.batch, reads_audio(kind), reads_video(kind));
  std::vector<double> video_grid;
  for (double e : ac.eps_grid) video_grid.push_back(e * ac.video_ratio);
  using D = typename M::device_type;
  std::vector<AttackSpec<float, M>> specs;
  if (ac.fgsm) specs.push_back(attack_spec(fgsm<float, D>()));
  specs.push_back(attack_spec(Pgd<float, D>(PgdOptions{.steps = ac.pgd_steps, .seed = ac.seed})));
  EvaluateOptions eo;
  eo.quiet = ac.quiet;
  std::vector<EpsilonSweep> out;
  for (const auto& spec : specs) {
    eo.label = spec.name + " " + std::string(model_name(kind));
    if (reads_audio(kind))
      out.push_back(
          epsilon_sweep(model, batches, spec, ThreatModel::audio_only(ac.audio_budget(1.0)), ac.eps_grid, eo));
    if (reads_video(kind))
      out.push_back(epsilon_sweep(model, batches, spec, ThreatModel::video_only(ac.video_budget(1.0)), video_grid, eo));
    if (is_fused(kind)) out.push_back(epsilon_sweep(model, batches, spec, ac.joint(1.0), ac.eps_grid, eo));
  }
  for (auto& s : out) s.report.examples.clear();  // per-example rows are not part of the study's outputs
  return out;
}

/// The latent-space report (density and convexity per class in each latent space the model has).
template <models::AVModel M> metrics::LatentReport latent_metrics(M& model, const train::TensorData<float>& data,
                                                                  bool quiet, std::int64_t batch = 100) {
  return metrics::latent_report(model, batches_of(data, batch), {.quiet = quiet});
}

}  // namespace avgrad::study
