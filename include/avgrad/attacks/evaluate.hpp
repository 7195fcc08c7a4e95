// Robust evaluation: run named attacks under named threat models over a data set and report per-example results,
// per (attack, threat model) summaries, ε sweeps, minimal ε per example and AutoAttack-style sanity flags, with
// Markdown, CSV and JSON writers.
//
// Definitions (what the numbers mean):
//   clean correct   single-label: argmax of the clean logits is the label; multi-label: the predicted label set
//                   (sigmoid ≥ threshold) equals the true set.
//   robust          clean correct AND the attack failed (AttackResult::success is false). An example the model
//                   already gets wrong is never robust, whatever the attack does; robust accuracy ≤ clean accuracy.
//   success rate    successes among the clean-correct examples (NaN when there is none).
//   multi-label     the headline numbers are clean and robust mAP and mean AUC (metrics/classification.hpp) of
//                   scores = sigmoid(logits) over the whole set; exact-set accuracies are reported beside them.
//   norms           ‖δ‖ per attacked modality in that modality's budget norm, mean and median over all examples.
//   ε = 0           a threat model whose every budget has ε = 0 leaves nothing to search: by default the attack is
//                   not run and the clean logits stand (EvaluateOptions::skip_zero_eps).
//   minimal ε       per clean-correct example, the smallest ε of an ascending grid at which the attack succeeds;
//                   never broken: +∞ ("> max ε"), counted, left out of the mean, kept in the median.
// Attacks are untargeted: they get the true labels. A targeted attack's success would mean "hit the target", which
// this report cannot interpret; the inconsistent_success flag catches that mistake.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "avgrad/attacks/attack.hpp"
#include "avgrad/autograd/grad_mode.hpp"
#include "avgrad/data/atomic_file.hpp"
#include "avgrad/data/detail/json.hpp"
#include "avgrad/metrics/classification.hpp"
#include "avgrad/train/progress.hpp"

namespace avgrad::attacks {

// ---- attacks and threat models by name ---------------------------------------------------------------------------

/// A named attack on model type M, type-erased. Attacks of one non-empty `family` are ordered by `strength`
/// (higher: stronger), which the strength sanity check uses; `steps` (0: unknown) lets the check say "more steps".
template <Floating T, class M> struct AttackSpec {
  using Device = typename M::device_type;  ///< inputs, labels and results live on the model's device
  using Runner = std::function<AttackResult<T, Device>(M&, const AVInput<T, Device>&, const Labels<T, Device>&,
                                                       const ThreatModel&)>;
  std::string name{};
  Runner run{};
  std::string family{};
  int strength = 0;
  int steps = 0;
};

struct AttackSpecOptions {
  std::string name{};    ///< empty: the attack's name()
  std::string family{};  ///< empty: no declared strength order
  int strength = 0;
};

/// What attack_spec() returns: converts to AttackSpec<T, M> for whichever model it is evaluated on, so a braced list
/// {attack_spec(a), attack_spec(b)} can be passed straight to evaluate_robustness.
template <class A> struct AttackHandle {
  A attack;
  AttackSpecOptions options;

  template <Floating T, class M> operator AttackSpec<T, M>() const {
    AttackSpec<T, M> s;
    s.name = options.name.empty() ? std::string(attack.name()) : options.name;
    using D = typename M::device_type;
    s.run = [a = attack](M& m, const AVInput<T, D>& x, const Labels<T, D>& y, const ThreatModel& tm) mutable {
      return AttackResult<T, D>(a.run(m, x, y, tm));
    };
    s.family = options.family;
    s.strength = options.strength;
    if constexpr (requires { attack.options().steps; }) s.steps = static_cast<int>(attack.options().steps);
    return s;
  }
};

/// Wraps any attack object with run(model, x, y, tm) and name() (Pgd, fgsm(), mi_fgsm(), …).
template <class A> AttackHandle<A> attack_spec(A attack, AttackSpecOptions options = {}) {
  return {std::move(attack), std::move(options)};
}

/// A threat model and the name reports use for it (default: ThreatModel::str()).
struct NamedThreatModel {
  std::string name;
  ThreatModel tm;
  NamedThreatModel(ThreatModel t) : name(t.str()), tm(std::move(t)) {}  // NOLINT: implicit on purpose
  NamedThreatModel(std::string n, ThreatModel t) : name(std::move(n)), tm(std::move(t)) {}
};

/// The base threat model at radius eps. One attacked modality: its budget with ε = eps. Joint: eps is the audio ε
/// and the video ε is scaled by the same factor (ε_v = eps · ε_v,base / ε_a,base), so the budgets keep their ratio.
/// Steps scale with ε (Budget::with_eps).
inline ThreatModel scale_threat_model(const ThreatModel& base, double eps) {
  base.check("scale_threat_model");
  AVGRAD_CHECK(std::isfinite(eps) && eps >= 0, "scale_threat_model", "eps must be finite and >= 0, got ", eps);
  ThreatModel out = base;
  if (base.audio && base.video) {
    AVGRAD_CHECK(base.audio->eps > 0, "scale_threat_model",
                 "a joint threat model scales from its audio budget, whose eps is 0: give the base a positive eps");
    const double factor = eps / base.audio->eps;
    out.audio = base.audio->with_eps(eps);
    out.video = base.video->with_eps(base.video->eps * factor);
  } else if (base.audio) {
    out.audio = base.audio->with_eps(eps);
  } else {
    out.video = base.video->with_eps(eps);
  }
  return out;
}

/// Whether every attacked budget has ε = 0.
inline bool zero_radius(const ThreatModel& tm) {
  return (!tm.audio || tm.audio->eps == 0) && (!tm.video || tm.video->eps == 0);
}

// ---- options, flags and the report ---------------------------------------------------------------------------------

struct SanityOptions {
  double bad_grad_fraction = 0.1;       ///< flag when more examples than this have a zero or non-finite gradient
  std::int64_t tolerance_examples = 1;  ///< robust counts may rise by this many examples before it is flagged
  double score_tolerance = 0.005;       ///< the same for robust mAP (multi-label), in mAP units
  double norm_slack = 1e-4;             ///< relative slack of ‖δ‖ ≤ ε (rounding of the norm in T)
};

enum class SanityKind {
  bad_gradients,         ///< many examples with zero or non-finite input gradients (masking, saturation)
  eps_not_monotone,      ///< robust accuracy rises with a larger ε in a sweep
  steps_not_monotone,    ///< robust accuracy rises with more steps of the same attack
  strength_order,        ///< a declared-stronger attack leaves more examples robust than a weaker one
  budget_exceeded,       ///< an attack returned δ outside its ball
  inconsistent_success,  ///< the attack's success flags disagree with its own logits (targeted attack?)
};
inline const char* sanity_kind_name(SanityKind k) {
  switch (k) {
    case SanityKind::bad_gradients:
      return "bad_gradients";
    case SanityKind::eps_not_monotone:
      return "eps_not_monotone";
    case SanityKind::steps_not_monotone:
      return "steps_not_monotone";
    case SanityKind::strength_order:
      return "strength_order";
    case SanityKind::budget_exceeded:
      return "budget_exceeded";
    case SanityKind::inconsistent_success:
      return "inconsistent_success";
  }
  return "?";
}

struct SanityFlag {
  SanityKind kind;
  std::string attack, threat_model;
  std::string message;
};

struct EvaluateOptions {
  bool quiet = false;         ///< no progress bar
  bool keep_examples = true;  ///< keep per-example rows in the report
  bool skip_zero_eps = true;  ///< ε = 0 everywhere: do not run the attack (see the header comment)
  /// Multi-label: a class is predicted when sigmoid(logit) ≥ threshold. The attacks of pgd.hpp judge their own success
  /// at 0.5, so another value here makes inconsistent_success fire on examples near the threshold.
  double threshold = 0.5;
  std::vector<double> min_eps_grid;  ///< non-empty: search each example's minimal ε on this ascending grid
  SanityOptions sanity{};
  std::string label = "robust eval";  ///< the progress bar's label
  std::FILE* progress_out = stderr;
};

/// One example under one (attack, threat model).
struct ExampleResult {
  std::size_t attack = 0, threat_model = 0;   ///< indices into RobustnessReport::attacks / threat_models
  std::int64_t batch = 0, index = 0;          ///< the batch and the row in it
  std::int64_t example = 0;                   ///< running index over the data set
  std::int64_t label = -1;                    ///< the class (single-label); −1 for multi-label
  std::int64_t clean_pred = 0, adv_pred = 0;  ///< argmax of the logits (multi-label: the top class)
  bool clean_correct = false, success = false, adv_correct = false, robust = false;
  double norm_audio = metrics::kNaN, norm_video = metrics::kNaN;  ///< NaN: modality not attacked
  int steps = 0;
  bool bad_grad = false;
  double min_eps = metrics::kNaN;  ///< NaN: not searched or not clean-correct; +∞: never broken on the grid
};

/// Minimal-ε statistics over the clean-correct examples.
struct MinEpsStats {
  bool computed = false;
  double max_eps = metrics::kNaN;  ///< the grid's largest ε
  std::int64_t considered = 0, broken = 0, never_broken = 0;
  double mean = metrics::kNaN;    ///< over the broken examples
  double median = metrics::kNaN;  ///< over all considered, never-broken ones as +∞ (so it can be "> max ε")
};

/// One (attack, threat model) over the whole data set.
struct Summary {
  std::string attack, threat_model, scope;
  double eps_audio = metrics::kNaN, eps_video = metrics::kNaN;  ///< NaN: modality not attacked
  int attack_steps = 0;
  bool multi_label = false;
  std::int64_t examples = 0, clean_correct = 0, robust_correct = 0, successes = 0;  ///< successes: among clean-correct
  double clean_accuracy = metrics::kNaN, robust_accuracy = metrics::kNaN, success_rate = metrics::kNaN;
  double clean_map = metrics::kNaN, robust_map = metrics::kNaN, clean_auc = metrics::kNaN, robust_auc = metrics::kNaN;
  double norm_audio_mean = metrics::kNaN, norm_audio_median = metrics::kNaN;
  double norm_video_mean = metrics::kNaN, norm_video_median = metrics::kNaN;
  std::int64_t bad_grad_examples = 0;
  std::int64_t forward_passes = 0, backward_passes = 0;
  double seconds = 0;          ///< the attack's wall time over all batches
  double min_eps_seconds = 0;  ///< the minimal-ε search's wall time
  MinEpsStats min_eps;

  /// The number the checks compare: robust mAP (multi-label) or robust accuracy.
  double robust_score() const { return multi_label ? robust_map : robust_accuracy; }
};

struct RobustnessReport {
  bool multi_label = false;
  std::int64_t num_examples = 0, num_classes = 0;
  std::vector<std::string> attacks, threat_models;
  std::vector<Summary> summaries;       ///< attack-major: summaries[a · threat_models.size() + t]
  std::vector<ExampleResult> examples;  ///< grouped as summaries, each group in data order (if kept)
  std::vector<SanityFlag> flags;
  double seconds = 0;

  const Summary& at(std::size_t attack, std::size_t threat_model) const {
    return summaries.at(attack * threat_models.size() + threat_model);
  }
  const Summary& summary(std::string_view attack, std::string_view threat_model) const {
    for (const auto& s : summaries)
      if (s.attack == attack && s.threat_model == threat_model) return s;
    throw Error("RobustnessReport", detail::concat("no summary for attack '", attack, "' under '", threat_model, "'"));
  }
  bool has_flag(SanityKind k) const {
    return std::any_of(flags.begin(), flags.end(), [k](const SanityFlag& f) { return f.kind == k; });
  }
};

// ---- sanity checks ---------------------------------------------------------------------------------------------

namespace eval_detail {

inline std::string pct(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f%%", 100 * v);
  return buf;
}
inline std::string num(double v, const char* f = "%.4g") {
  char buf[48];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

/// How far `higher` rises above `lower` beyond the tolerance; > 0 means flag it.
inline double rise(const Summary& lower, const Summary& higher, const SanityOptions& o) {
  if (lower.multi_label) return higher.robust_map - lower.robust_map - o.score_tolerance;
  if (lower.examples == higher.examples)
    return static_cast<double>(higher.robust_correct - lower.robust_correct - o.tolerance_examples);
  const double n = static_cast<double>(std::max(lower.examples, higher.examples));
  return higher.robust_accuracy - lower.robust_accuracy - static_cast<double>(o.tolerance_examples) / n;
}
inline std::string robust_str(const Summary& s) {
  return s.multi_label
             ? "robust mAP " + num(s.robust_map)
             : detail::concat("robust accuracy ", pct(s.robust_accuracy), " (", s.robust_correct, "/", s.examples, ")");
}

}  // namespace eval_detail

/// Flags a declared-stronger attack (or the same attack with more steps) that leaves more examples robust than the
/// weaker one, beyond the tolerance: the stronger attack is not converging, or the gradients are masked.
inline std::optional<SanityFlag> compare_strength(const Summary& weaker, const Summary& stronger,
                                                  const SanityOptions& o = {}) {
  if (!(eval_detail::rise(weaker, stronger, o) > 0)) return std::nullopt;
  const bool more_steps = weaker.attack_steps > 0 && stronger.attack_steps > weaker.attack_steps;
  SanityFlag f{more_steps ? SanityKind::steps_not_monotone : SanityKind::strength_order,
               stronger.attack,
               stronger.threat_model,
               {}};
  f.message = detail::concat(
      "'", stronger.attack, "'", more_steps ? detail::concat(" (", stronger.attack_steps, " steps)") : std::string(),
      " leaves ", eval_detail::robust_str(stronger), ", above '", weaker.attack, "'",
      more_steps ? detail::concat(" (", weaker.attack_steps, " steps)") : std::string(), " at ",
      eval_detail::robust_str(weaker), " under ", stronger.threat_model,
      more_steps ? ": more steps should never help the model — check the step size, or gradient masking"
                 : ": the declared-stronger attack is weaker — check its settings, or gradient masking");
  return f;
}

/// Per-summary checks: bad gradients, δ outside the ball, success flags that the logits contradict.
inline std::vector<SanityFlag> check_summary(const Summary& s, std::int64_t budget_violations,
                                             std::int64_t inconsistent, const SanityOptions& o = {}) {
  std::vector<SanityFlag> out;
  const double bad = s.examples ? static_cast<double>(s.bad_grad_examples) / static_cast<double>(s.examples) : 0.0;
  if (bad > o.bad_grad_fraction)
    out.push_back({SanityKind::bad_gradients, s.attack, s.threat_model,
                   detail::concat(s.bad_grad_examples, " of ", s.examples, " examples (", eval_detail::pct(bad),
                                  ", more than ", eval_detail::pct(o.bad_grad_fraction), ") had a zero or non-finite ",
                                  "input gradient: the robustness may be gradient masking (saturation, a hard clamp, ",
                                  "a stop-gradient); try a gradient-free or transfer attack")});
  if (budget_violations > 0)
    out.push_back({SanityKind::budget_exceeded, s.attack, s.threat_model,
                   detail::concat(budget_violations, " examples got a perturbation larger than the budget")});
  if (inconsistent > 0)
    out.push_back({SanityKind::inconsistent_success, s.attack, s.threat_model,
                   detail::concat(inconsistent, " examples' success flags disagree with the adversarial logits ",
                                  "(the evaluation is untargeted: is the attack targeted?)")});
  return out;
}

// ---- evaluation ------------------------------------------------------------------------------------------------

namespace eval_detail {

/// Puts the model in eval mode for its lifetime, then restores every module's own mode (a training model may hold
/// modules kept in eval mode, e.g. frozen batch norm): train() is recursive, so the pre-order replay of the saved
/// flags leaves each module as it was.
template <class M> class EvalModeGuard {
 public:
  explicit EvalModeGuard(M& m) {
    for (auto& [name, mod] : m.named_modules()) saved_.emplace_back(mod, mod->is_training());
    m.eval();
  }
  ~EvalModeGuard() {
    for (auto& [mod, was] : saved_) mod->train(was);
  }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  std::vector<std::pair<nn::Module<typename M::value_type, typename M::device_type>*, bool>> saved_;
};

inline double median(std::vector<double> v) {
  if (v.empty()) return metrics::kNaN;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
inline double mean(const std::vector<double>& v) {
  if (v.empty()) return metrics::kNaN;
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

inline MinEpsStats min_eps_stats(const std::vector<double>& per_example, double max_eps) {
  MinEpsStats s;
  s.computed = true;
  s.max_eps = max_eps;
  std::vector<double> all, broken;
  for (double e : per_example) {
    if (std::isnan(e)) continue;
    all.push_back(e);
    if (std::isfinite(e)) broken.push_back(e);
  }
  s.considered = static_cast<std::int64_t>(all.size());
  s.broken = static_cast<std::int64_t>(broken.size());
  s.never_broken = s.considered - s.broken;
  s.mean = mean(broken);
  if (!all.empty()) {  // the median with +∞ entries: inf - inf would be NaN, so pick the middle values directly
    std::sort(all.begin(), all.end());
    const std::size_t n = all.size();
    s.median = n % 2 ? all[n / 2] : (std::isinf(all[n / 2]) ? all[n / 2] : 0.5 * (all[n / 2 - 1] + all[n / 2]));
  }
  return s;
}

inline void check_grid(const char* who, const std::vector<double>& grid) {
  AVGRAD_CHECK(!grid.empty(), who, "the ε grid is empty");
  for (std::size_t i = 0; i < grid.size(); ++i) {
    AVGRAD_CHECK(std::isfinite(grid[i]) && grid[i] >= 0, who, "grid ε ", grid[i], " must be finite and >= 0");
    AVGRAD_CHECK(i == 0 || grid[i] > grid[i - 1], who, "the ε grid must be strictly increasing, got ", grid[i - 1],
                 " then ", grid[i]);
  }
}

inline double sigmoid(double z) { return z >= 0 ? 1 / (1 + std::exp(-z)) : std::exp(z) / (1 + std::exp(z)); }

/// The attack at tm, or, when tm has ε = 0 everywhere and skipping is on, the clean logits as its result.
template <Floating T, class M, Device D = typename M::device_type>
AttackResult<T, D> attack_or_clean(const AttackSpec<T, M>& spec, M& model, const AVInput<T, D>& x,
                                   const Labels<T, D>& y, const ThreatModel& tm, const Tensor<T, D>& clean_logits,
                                   const EvaluateOptions& o) {
  if (!(o.skip_zero_eps && zero_radius(tm))) {
    AVGRAD_CHECK(static_cast<bool>(spec.run), "evaluate_robustness", "attack '", spec.name, "' has no runner");
    return spec.run(model, x, y, tm);
  }
  AttackResult<T, D> r;
  const std::int64_t B = x.batch();
  for (Modality m : {Modality::audio, Modality::video})
    if (tm.attacks(m)) r.delta.at(m) = zeros<T, D>((m == Modality::audio ? x.audio : x.video).shape());
  r.logits = clean_logits.clone();
  r.success = successes(clean_logits, y, false, o.threshold);
  r.steps.assign(static_cast<std::size_t>(B), 0);
  r.bad_grad.assign(static_cast<std::size_t>(B), 0);
  return r;
}

/// What accumulates for one (attack, threat model) over the batches.
struct Accumulator {
  std::vector<ExampleResult> rows;
  std::vector<double> adv_scores;  ///< multi-label: sigmoid(adversarial logits), row-major
  std::int64_t forward = 0, backward = 0, budget_violations = 0, inconsistent = 0;
  double seconds = 0, min_eps_seconds = 0;
};

}  // namespace eval_detail

/// Runs every attack under every threat model on every batch (pairs of AVInput and Labels: true labels), with the
/// model in eval mode (its mode is restored after). See the header comment for the definitions.
template <AVModel M, class Batches, Floating T = typename M::value_type>
RobustnessReport evaluate_robustness(M& model, const Batches& batches,
                                     const std::vector<std::type_identity_t<AttackSpec<T, M>>>& attacks,
                                     const std::vector<NamedThreatModel>& threat_models,
                                     const EvaluateOptions& options = {}) {
  using Clock = std::chrono::steady_clock;
  const auto since = [](Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  const auto start = Clock::now();
  AVGRAD_CHECK(!attacks.empty() && !threat_models.empty(), "evaluate_robustness", "need at least one attack and one ",
               "threat model, got ", attacks.size(), " and ", threat_models.size());
  AVGRAD_CHECK(options.threshold > 0 && options.threshold < 1, "evaluate_robustness",
               "the multi-label threshold must be in (0, 1), got ", options.threshold);
  for (const auto& t : threat_models) t.tm.check("evaluate_robustness");
  if (!options.min_eps_grid.empty()) eval_detail::check_grid("evaluate_robustness", options.min_eps_grid);
  const std::size_t NA = attacks.size(), NT = threat_models.size();
  const std::int64_t num_batches = static_cast<std::int64_t>(std::distance(std::begin(batches), std::end(batches)));
  AVGRAD_CHECK(num_batches > 0, "evaluate_robustness", "no batches");

  eval_detail::EvalModeGuard mode(model);
  RobustnessReport report;
  report.multi_label = model.multi_label();
  report.num_classes = model.num_classes();
  for (const auto& a : attacks) report.attacks.push_back(a.name);
  for (const auto& t : threat_models) report.threat_models.push_back(t.name);
  const std::int64_t K = report.num_classes;
  const bool ml = report.multi_label;

  std::vector<eval_detail::Accumulator> acc(NA * NT);
  std::vector<double> clean_scores, targets;  // multi-label, row-major over the whole set
  std::unique_ptr<ProgressBar> bar;
  if (!options.quiet)
    bar = std::make_unique<ProgressBar>(options.label, num_batches * static_cast<std::int64_t>(NA * NT), 0,
                                        options.progress_out);
  std::int64_t done = 0, offset = 0, batch_index = 0;

  for (const auto& batch : batches) {
    const auto& [batch_x, batch_y] = batch;
    // host-side batches serve a model on any device: each is moved there (a no-op on its own device)
    const auto x = models::to_device<typename M::device_type>(batch_x);
    const auto y = to_device<typename M::device_type>(batch_y);
    const std::int64_t B = x.batch();
    AVGRAD_CHECK(B > 0, "evaluate_robustness", "batch ", batch_index, " is empty");
    y.check("evaluate_robustness", B, K);
    AVGRAD_CHECK(y.multi_label() == ml, "evaluate_robustness", "batch ", batch_index, " has ",
                 y.multi_label() ? "multi-hot" : "class", " labels but the model is ",
                 ml ? "multi-label" : "single-label");
    using D = typename M::device_type;
    Tensor<T, D> clean;
    {
      NoGradGuard no_grad;
      clean = model.forward(x).logits.detach().contiguous();
    }
    AVGRAD_CHECK(clean.dim() == 2 && clean.size(0) == B && clean.size(1) == K, "evaluate_robustness",
                 "the model returned logits ", clean.shape(), ", expected (", B, ", ", K, ")");
    // B·K logits and B labels: the host keeps the books, whichever device ran the model
    // (moved once per batch; the attacks' logits once per run)
    const Tensor<T, Cpu> clean_host = clean.template to<Cpu>();
    const Labels<T, Cpu> y_host = to_device<Cpu>(y);
    const auto clean_pred = metrics::argmax_rows(clean_host);
    const auto clean_wrong = successes(clean_host, y_host, false, options.threshold);
    const std::vector<std::int64_t> labels = ml ? std::vector<std::int64_t>() : y_host.classes.to_vector();
    if (ml) {
      const auto z = clean_host.to_vector();
      const auto t = y_host.multi_hot.contiguous().to_vector();
      for (auto v : z) clean_scores.push_back(eval_detail::sigmoid(static_cast<double>(v)));
      targets.insert(targets.end(), t.begin(), t.end());
    }

    for (std::size_t a = 0; a < NA; ++a)
      for (std::size_t t = 0; t < NT; ++t) {
        const auto& spec = attacks[a];
        const ThreatModel& tm = threat_models[t].tm;
        auto& ac = acc[a * NT + t];
        const auto t0 = Clock::now();
        AttackResult<T, D> r = eval_detail::attack_or_clean(spec, model, x, y, tm, clean, options);
        ac.seconds += since(t0);
        AVGRAD_CHECK(r.logits.defined() && r.logits.dim() == 2 && r.logits.size(0) == B && r.logits.size(1) == K &&
                         static_cast<std::int64_t>(r.success.size()) == B,
                     "evaluate_robustness", "attack '", spec.name, "' returned logits ",
                     r.logits.defined() ? r.logits.shape().str() : std::string("undefined"), " and ", r.success.size(),
                     " success flags for a batch of ", B);
        ac.forward += r.forward_passes;
        ac.backward += r.backward_passes;
        const Tensor<T, Cpu> adv = r.logits.template to<Cpu>().contiguous();
        const auto adv_pred = metrics::argmax_rows(adv);
        const auto adv_wrong = successes(adv, y_host, false, options.threshold);
        std::vector<double> norms[2];
        for (Modality m : {Modality::audio, Modality::video}) {
          const auto& d = r.delta.at(m);
          if (!tm.attacks(m) || !d.defined()) continue;
          AVGRAD_CHECK(d.dim() >= 1 && d.size(0) == B, "evaluate_robustness", "attack '", spec.name, "' returned a ",
                       modality_name(m), " perturbation ", d.shape(), " for a batch of ", B);
          norms[static_cast<int>(m)] = geometry::norms(d, tm.budget(m).norm);
        }
        if (ml) {
          const auto z = adv.to_vector();
          for (auto v : z) ac.adv_scores.push_back(eval_detail::sigmoid(static_cast<double>(v)));
        }
        for (std::int64_t b = 0; b < B; ++b) {
          const auto i = static_cast<std::size_t>(b);
          ExampleResult e;
          e.attack = a;
          e.threat_model = t;
          e.batch = batch_index;
          e.index = b;
          e.example = offset + b;
          e.label = ml ? -1 : labels[i];
          e.clean_pred = clean_pred[i];
          e.adv_pred = adv_pred[i];
          e.clean_correct = !clean_wrong[i];
          e.success = r.success[i];
          e.adv_correct = !adv_wrong[i];
          e.robust = e.clean_correct && !e.success;
          e.steps = i < r.steps.size() ? r.steps[i] : 0;
          e.bad_grad = i < r.bad_grad.size() && r.bad_grad[i];
          for (Modality m : {Modality::audio, Modality::video}) {
            const auto& n = norms[static_cast<int>(m)];
            if (n.empty()) continue;
            (m == Modality::audio ? e.norm_audio : e.norm_video) = n[i];
            const double eps = tm.budget(m).eps;
            ac.budget_violations += n[i] > eps * (1 + options.sanity.norm_slack) + 1e-12;
          }
          ac.inconsistent += e.success != static_cast<bool>(adv_wrong[i]);
          ac.rows.push_back(e);
        }
        if (!options.min_eps_grid.empty()) {
          // Ascending grid; stop once every clean-correct example of the batch is broken.
          const auto t1 = Clock::now();
          const std::size_t first = ac.rows.size() - static_cast<std::size_t>(B);
          std::int64_t remaining = 0;
          for (std::int64_t b = 0; b < B; ++b) {
            auto& e = ac.rows[first + static_cast<std::size_t>(b)];
            if (e.clean_correct) e.min_eps = std::numeric_limits<double>::infinity(), ++remaining;
          }
          for (double eps : options.min_eps_grid) {
            if (remaining == 0) break;
            const auto re =
                eval_detail::attack_or_clean(spec, model, x, y, scale_threat_model(tm, eps), clean, options);
            AVGRAD_CHECK(static_cast<std::int64_t>(re.success.size()) == B, "evaluate_robustness", "attack '",
                         spec.name, "' returned ", re.success.size(), " success flags for a batch of ", B);
            for (std::int64_t b = 0; b < B; ++b) {
              auto& e = ac.rows[first + static_cast<std::size_t>(b)];
              if (std::isinf(e.min_eps) && re.success[static_cast<std::size_t>(b)]) e.min_eps = eps, --remaining;
            }
          }
          ac.min_eps_seconds += since(t1);
        }
        if (bar) bar->update(++done);
      }
    offset += B;
    ++batch_index;
  }
  report.num_examples = offset;

  // Summaries and per-summary checks.
  const auto clean_ml =
      ml ? metrics::multilabel_metrics(clean_scores, targets, offset, K) : metrics::MultiLabelMetrics{};
  for (std::size_t a = 0; a < NA; ++a)
    for (std::size_t t = 0; t < NT; ++t) {
      auto& ac = acc[a * NT + t];
      const ThreatModel& tm = threat_models[t].tm;
      Summary s;
      s.attack = attacks[a].name;
      s.threat_model = threat_models[t].name;
      s.scope = tm.scope();
      s.eps_audio = tm.audio ? tm.audio->eps : metrics::kNaN;
      s.eps_video = tm.video ? tm.video->eps : metrics::kNaN;
      s.attack_steps = attacks[a].steps;
      s.multi_label = ml;
      s.examples = offset;
      std::vector<double> na, nv, me;
      for (const auto& e : ac.rows) {
        s.clean_correct += e.clean_correct;
        s.robust_correct += e.robust;
        s.successes += e.clean_correct && e.success;
        s.bad_grad_examples += e.bad_grad;
        if (!std::isnan(e.norm_audio)) na.push_back(e.norm_audio);
        if (!std::isnan(e.norm_video)) nv.push_back(e.norm_video);
        me.push_back(e.min_eps);
      }
      const double n = static_cast<double>(offset);
      s.clean_accuracy = static_cast<double>(s.clean_correct) / n;
      s.robust_accuracy = static_cast<double>(s.robust_correct) / n;
      s.success_rate =
          s.clean_correct ? static_cast<double>(s.successes) / static_cast<double>(s.clean_correct) : metrics::kNaN;
      if (ml) {
        const auto adv_ml = metrics::multilabel_metrics(ac.adv_scores, targets, offset, K);
        s.clean_map = clean_ml.map;
        s.clean_auc = clean_ml.mean_auc;
        s.robust_map = adv_ml.map;
        s.robust_auc = adv_ml.mean_auc;
      }
      s.norm_audio_mean = eval_detail::mean(na);
      s.norm_audio_median = eval_detail::median(na);
      s.norm_video_mean = eval_detail::mean(nv);
      s.norm_video_median = eval_detail::median(nv);
      s.forward_passes = ac.forward;
      s.backward_passes = ac.backward;
      s.seconds = ac.seconds;
      s.min_eps_seconds = ac.min_eps_seconds;
      if (!options.min_eps_grid.empty()) s.min_eps = eval_detail::min_eps_stats(me, options.min_eps_grid.back());
      for (auto& f : check_summary(s, ac.budget_violations, ac.inconsistent, options.sanity))
        report.flags.push_back(std::move(f));
      report.summaries.push_back(std::move(s));
      if (options.keep_examples) std::move(ac.rows.begin(), ac.rows.end(), std::back_inserter(report.examples));
      ac = {};
    }

  // Declared strength order: within a family, a stronger attack must not leave more examples robust.
  for (std::size_t w = 0; w < NA; ++w)
    for (std::size_t s = 0; s < NA; ++s) {
      if (attacks[w].family.empty() || attacks[w].family != attacks[s].family) continue;
      if (!(attacks[w].strength < attacks[s].strength)) continue;
      for (std::size_t t = 0; t < NT; ++t)
        if (auto f = compare_strength(report.at(w, t), report.at(s, t), options.sanity))
          report.flags.push_back(std::move(*f));
    }
  report.seconds = since(start);
  return report;
}

// ---- ε sweeps ----------------------------------------------------------------------------------------------------

struct SweepPoint {
  double eps = 0;  ///< the grid value (the reference modality's ε; see scale_threat_model)
  double eps_audio = metrics::kNaN, eps_video = metrics::kNaN;
  Summary summary;
};

struct EpsilonSweep {
  std::string attack, scope;
  bool multi_label = false;
  std::vector<SweepPoint> points;
  MinEpsStats min_eps;  ///< from the sweep itself: the first grid ε at which each clean-correct example falls
  std::vector<SanityFlag> flags;
  RobustnessReport report;  ///< the underlying evaluation (one threat model per grid point)

  std::vector<double> robust_scores() const {
    std::vector<double> v;
    for (const auto& p : points) v.push_back(p.summary.robust_score());
    return v;
  }
};

/// Flags every grid point whose robust count (or robust mAP) rises above the lowest one at a smaller ε by more than
/// the tolerance: a larger ball contains the smaller one, so a converging attack cannot do worse.
inline std::vector<SanityFlag> check_eps_monotone(const EpsilonSweep& sweep, const SanityOptions& o = {}) {
  std::vector<SanityFlag> out;
  std::size_t lowest = 0;
  for (std::size_t i = 1; i < sweep.points.size(); ++i) {
    const Summary& lo = sweep.points[lowest].summary;
    const Summary& hi = sweep.points[i].summary;
    if (eval_detail::rise(lo, hi, o) > 0)
      out.push_back(
          {SanityKind::eps_not_monotone, sweep.attack, hi.threat_model,
           detail::concat(eval_detail::robust_str(hi), " at ε = ", eval_detail::num(sweep.points[i].eps), " is above ",
                          eval_detail::robust_str(lo), " at ε = ", eval_detail::num(sweep.points[lowest].eps),
                          ": a larger ε cannot help the model — the attack is not converging (step size, ",
                          "too few steps) or the gradients are masked")});
    if (hi.robust_score() < lo.robust_score()) lowest = i;
  }
  return out;
}

/// Robust accuracy (or mAP) of one attack at every ε of an ascending grid, the threat model scaled from the base
/// (scale_threat_model), plus each clean-correct example's minimal ε on the grid and the monotonicity check.
template <AVModel M, class Batches, Floating T = typename M::value_type>
EpsilonSweep epsilon_sweep(M& model, const Batches& batches, const std::type_identity_t<AttackSpec<T, M>>& attack,
                           const ThreatModel& base, const std::vector<double>& eps_grid, EvaluateOptions options = {}) {
  eval_detail::check_grid("epsilon_sweep", eps_grid);
  std::vector<NamedThreatModel> tms;
  for (double e : eps_grid) {
    ThreatModel tm = scale_threat_model(base, e);
    tms.emplace_back(detail::concat(tm.scope(), " eps=", eval_detail::num(e, "%.6g")), tm);
  }
  options.min_eps_grid.clear();  // the sweep itself gives the minimal ε
  options.keep_examples = true;
  if (options.label == EvaluateOptions{}.label) options.label = attack.name + " " + base.scope() + " sweep";
  EpsilonSweep sw;
  sw.report = evaluate_robustness(model, batches, {attack}, tms, options);
  sw.attack = attack.name;
  sw.scope = base.scope();
  sw.multi_label = sw.report.multi_label;
  for (std::size_t i = 0; i < eps_grid.size(); ++i) {
    SweepPoint p;
    p.eps = eps_grid[i];
    p.summary = sw.report.at(0, i);
    p.eps_audio = p.summary.eps_audio;
    p.eps_video = p.summary.eps_video;
    sw.points.push_back(std::move(p));
  }
  // Rows are grouped per threat model in data order, so row j of every group is the same example.
  const auto N = static_cast<std::size_t>(sw.report.num_examples);
  std::vector<double> me(N, metrics::kNaN);
  for (std::size_t j = 0; j < N; ++j) {
    if (!sw.report.examples[j].clean_correct) continue;
    me[j] = std::numeric_limits<double>::infinity();
    for (std::size_t i = 0; i < eps_grid.size(); ++i)
      if (sw.report.examples[i * N + j].success) {
        me[j] = eps_grid[i];
        break;
      }
  }
  sw.min_eps = eval_detail::min_eps_stats(me, eps_grid.back());
  sw.flags = sw.report.flags;
  for (auto& f : check_eps_monotone(sw, options.sanity)) sw.flags.push_back(std::move(f));
  return sw;
}

/// The three sweeps the study compares, {audio-only, video-only, joint}, from one joint base: point i of every sweep
/// uses ε_a = eps_grid[i] and ε_v = eps_grid[i] · ε_v,base / ε_a,base, so the joint point is the union of the two
/// single-modality points.
template <AVModel M, class Batches, Floating T = typename M::value_type>
std::vector<EpsilonSweep> epsilon_sweeps_by_modality(M& model, const Batches& batches,
                                                     const std::type_identity_t<AttackSpec<T, M>>& attack,
                                                     const ThreatModel& joint_base, const std::vector<double>& eps_grid,
                                                     const EvaluateOptions& options = {}) {
  AVGRAD_CHECK(joint_base.audio && joint_base.video && joint_base.audio->eps > 0, "epsilon_sweeps_by_modality",
               "needs a joint base threat model with a positive audio eps, got ", joint_base.str());
  const double ratio = joint_base.video->eps / joint_base.audio->eps;
  std::vector<double> video_grid;
  for (double e : eps_grid) video_grid.push_back(e * ratio);
  std::vector<EpsilonSweep> out;
  out.push_back(epsilon_sweep(model, batches, attack, ThreatModel::audio_only(*joint_base.audio), eps_grid, options));
  out.push_back(epsilon_sweep(model, batches, attack, ThreatModel::video_only(*joint_base.video), video_grid, options));
  out.push_back(epsilon_sweep(model, batches, attack, joint_base, eps_grid, options));
  return out;
}

// ---- writers -----------------------------------------------------------------------------------------------------

namespace eval_detail {

/// Markdown cell: 4 significant digits, "–" for NaN.
inline std::string md(double v, const char* f = "%.4g") {
  if (std::isnan(v)) return "–";
  if (std::isinf(v)) return v > 0 ? "∞" : "−∞";
  return num(v, f);
}
inline std::string md_min_eps(const MinEpsStats& m) {
  if (!m.computed) return "–";
  const std::string med = std::isinf(m.median) ? "> " + num(m.max_eps) : md(m.median);
  return detail::concat(md(m.mean), " / ", med, "; ", m.never_broken, " never broken");
}
/// Wall time: milliseconds stay visible for short runs; minutes and hours as the progress bar writes them.
inline std::string md_seconds(double s) { return s < 60 ? num(s, "%.3g") + "s" : ProgressBar::format_duration(s); }
inline std::string md_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}
/// CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break.
inline std::string csv(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}
/// CSV / JSON number: 10 significant digits; empty (CSV) or null (JSON) when not finite.
inline std::string csv(double v) { return std::isfinite(v) ? num(v, "%.10g") : std::string(); }
inline std::string json(double v) { return std::isfinite(v) ? num(v, "%.10g") : std::string("null"); }
inline std::string json(const std::string& s) {
  std::string out;
  if (avgrad::detail::json::is_valid_utf8(s)) {
    avgrad::detail::json::write_string(out, s);
  } else {
    std::string ascii = s;
    for (char& c : ascii)
      if (static_cast<unsigned char>(c) >= 0x80) c = '?';
    avgrad::detail::json::write_string(out, ascii);
  }
  return out;
}
inline std::string json(bool b) { return b ? "true" : "false"; }

/// Builds a JSON object one field at a time.
class JsonObject {
 public:
  JsonObject& raw(std::string_view key, const std::string& value) {
    out_ += first_ ? "{" : ",";
    first_ = false;
    out_ += json(std::string(key)) + ":" + value;
    return *this;
  }
  JsonObject& num(std::string_view key, double v) { return raw(key, json(v)); }
  JsonObject& integer(std::string_view key, std::int64_t v) { return raw(key, std::to_string(v)); }
  JsonObject& str(std::string_view key, const std::string& v) { return raw(key, json(v)); }
  JsonObject& boolean(std::string_view key, bool v) { return raw(key, json(v)); }
  std::string done() const { return first_ ? "{}" : out_ + "}"; }

 private:
  std::string out_;
  bool first_ = true;
};

template <class Range, class F> std::string json_array(const Range& r, F&& f) {
  std::string out = "[";
  bool first = true;
  for (const auto& v : r) {
    if (!first) out += ",";
    first = false;
    out += f(v);
  }
  return out + "]";
}

inline std::string json_min_eps(const MinEpsStats& m) {
  if (!m.computed) return "null";
  return JsonObject()
      .num("max_eps", m.max_eps)
      .integer("considered", m.considered)
      .integer("broken", m.broken)
      .integer("never_broken", m.never_broken)
      .num("mean", m.mean)
      .num("median", m.median)
      .boolean("median_above_grid", std::isinf(m.median))
      .done();
}

inline std::string json_summary(const Summary& s) {
  return JsonObject()
      .str("attack", s.attack)
      .str("threat_model", s.threat_model)
      .str("scope", s.scope)
      .num("eps_audio", s.eps_audio)
      .num("eps_video", s.eps_video)
      .integer("attack_steps", s.attack_steps)
      .boolean("multi_label", s.multi_label)
      .integer("examples", s.examples)
      .integer("clean_correct", s.clean_correct)
      .integer("robust_correct", s.robust_correct)
      .integer("successes", s.successes)
      .num("clean_accuracy", s.clean_accuracy)
      .num("robust_accuracy", s.robust_accuracy)
      .num("success_rate", s.success_rate)
      .num("clean_map", s.clean_map)
      .num("robust_map", s.robust_map)
      .num("clean_auc", s.clean_auc)
      .num("robust_auc", s.robust_auc)
      .num("norm_audio_mean", s.norm_audio_mean)
      .num("norm_audio_median", s.norm_audio_median)
      .num("norm_video_mean", s.norm_video_mean)
      .num("norm_video_median", s.norm_video_median)
      .integer("bad_grad_examples", s.bad_grad_examples)
      .integer("forward_passes", s.forward_passes)
      .integer("backward_passes", s.backward_passes)
      .num("seconds", s.seconds)
      .num("min_eps_seconds", s.min_eps_seconds)
      .raw("min_eps", json_min_eps(s.min_eps))
      .done();
}

inline std::string json_flag(const SanityFlag& f) {
  return JsonObject()
      .str("kind", sanity_kind_name(f.kind))
      .str("attack", f.attack)
      .str("threat_model", f.threat_model)
      .str("message", f.message)
      .done();
}

inline std::string json_example(const RobustnessReport& r, const ExampleResult& e) {
  return JsonObject()
      .str("attack", r.attacks[e.attack])
      .str("threat_model", r.threat_models[e.threat_model])
      .integer("batch", e.batch)
      .integer("index", e.index)
      .integer("example", e.example)
      .integer("label", e.label)
      .integer("clean_pred", e.clean_pred)
      .integer("adv_pred", e.adv_pred)
      .boolean("clean_correct", e.clean_correct)
      .boolean("success", e.success)
      .boolean("adv_correct", e.adv_correct)
      .boolean("robust", e.robust)
      .num("norm_audio", e.norm_audio)
      .num("norm_video", e.norm_video)
      .integer("steps", e.steps)
      .boolean("bad_grad", e.bad_grad)
      .num("min_eps", e.min_eps)
      .boolean("never_broken", std::isinf(e.min_eps))
      .done();
}

inline std::string md_flags(const std::vector<SanityFlag>& flags) {
  if (flags.empty()) return "Sanity checks: all passed.\n";
  std::string out = "Sanity checks:\n\n";
  for (const auto& f : flags)
    out += detail::concat("- **", sanity_kind_name(f.kind), "** (", md_escape(f.attack), ", ",
                          md_escape(f.threat_model), "): ", f.message, "\n");
  return out;
}

}  // namespace eval_detail

/// The summaries as a Markdown table (multi-label: with mAP and AUC columns), then the sanity flags.
inline std::string to_markdown(const RobustnessReport& r) {
  using namespace eval_detail;
  const bool min_eps = std::any_of(r.summaries.begin(), r.summaries.end(), [](auto& s) { return s.min_eps.computed; });
  std::string out = detail::concat("Robust evaluation: ", r.num_examples, " examples, ", r.num_classes, " classes",
                                   r.multi_label ? " (multi-label)" : "", ", ", md_seconds(r.seconds),
                                   "\n\n| attack | threat model | clean acc | robust acc | success rate |");
  if (r.multi_label) out += " clean mAP | robust mAP | clean AUC | robust AUC |";
  out += " ‖δ‖ audio mean / median | ‖δ‖ video mean / median |";
  if (min_eps) out += " min ε mean / median |";
  out += " fwd | bwd | time |\n|---|---|---|---|---|";
  if (r.multi_label) out += "---|---|---|---|";
  out += "---|---|";
  if (min_eps) out += "---|";
  out += "---|---|---|\n";
  for (const auto& s : r.summaries) {
    out +=
        detail::concat("| ", md_escape(s.attack), " | ", md_escape(s.threat_model), " | ", md(s.clean_accuracy, "%.4f"),
                       " | ", md(s.robust_accuracy, "%.4f"), " | ", md(s.success_rate, "%.4f"), " |");
    if (r.multi_label)
      out += detail::concat(" ", md(s.clean_map, "%.4f"), " | ", md(s.robust_map, "%.4f"), " | ",
                            md(s.clean_auc, "%.4f"), " | ", md(s.robust_auc, "%.4f"), " |");
    out += detail::concat(" ", md(s.norm_audio_mean), " / ", md(s.norm_audio_median), " | ", md(s.norm_video_mean),
                          " / ", md(s.norm_video_median), " |");
    if (min_eps) out += " " + md_min_eps(s.min_eps) + " |";
    out += detail::concat(" ", s.forward_passes, " | ", s.backward_passes, " | ", md_seconds(s.seconds), " |\n");
  }
  return out + "\n" + md_flags(r.flags);
}

/// One line per summary, with a header.
inline std::string to_csv(const RobustnessReport& r) {
  using eval_detail::csv;
  std::string out =
      "attack,threat_model,scope,eps_audio,eps_video,attack_steps,examples,clean_correct,robust_correct,successes,"
      "clean_accuracy,robust_accuracy,success_rate,clean_map,robust_map,clean_auc,robust_auc,norm_audio_mean,"
      "norm_audio_median,norm_video_mean,norm_video_median,bad_grad_examples,forward_passes,backward_passes,seconds,"
      "min_eps_mean,min_eps_median,min_eps_broken,min_eps_never_broken\n";
  for (const auto& s : r.summaries) {
    const auto& m = s.min_eps;
    out += detail::concat(
        csv(s.attack), ",", csv(s.threat_model), ",", csv(s.scope), ",", csv(s.eps_audio), ",", csv(s.eps_video), ",",
        s.attack_steps, ",", s.examples, ",", s.clean_correct, ",", s.robust_correct, ",", s.successes, ",",
        csv(s.clean_accuracy), ",", csv(s.robust_accuracy), ",", csv(s.success_rate), ",", csv(s.clean_map), ",",
        csv(s.robust_map), ",", csv(s.clean_auc), ",", csv(s.robust_auc), ",", csv(s.norm_audio_mean), ",",
        csv(s.norm_audio_median), ",", csv(s.norm_video_mean), ",", csv(s.norm_video_median), ",", s.bad_grad_examples,
        ",", s.forward_passes, ",", s.backward_passes, ",", csv(s.seconds), ",", m.computed ? csv(m.mean) : "", ",",
        m.computed ? (std::isinf(m.median) ? "inf" : csv(m.median)) : "", ",",
        m.computed ? std::to_string(m.broken) : "", ",", m.computed ? std::to_string(m.never_broken) : "", "\n");
  }
  return out;
}

/// One line per example and (attack, threat model); min_eps "inf" when never broken on the grid.
inline std::string examples_to_csv(const RobustnessReport& r) {
  using eval_detail::csv;
  std::string out =
      "attack,threat_model,batch,index,example,label,clean_pred,adv_pred,clean_correct,success,adv_correct,robust,"
      "norm_audio,norm_video,steps,bad_grad,min_eps\n";
  for (const auto& e : r.examples)
    out += detail::concat(csv(r.attacks[e.attack]), ",", csv(r.threat_models[e.threat_model]), ",", e.batch, ",",
                          e.index, ",", e.example, ",", e.label, ",", e.clean_pred, ",", e.adv_pred, ",",
                          int(e.clean_correct), ",", int(e.success), ",", int(e.adv_correct), ",", int(e.robust), ",",
                          csv(e.norm_audio), ",", csv(e.norm_video), ",", e.steps, ",", int(e.bad_grad), ",",
                          std::isinf(e.min_eps) ? "inf" : csv(e.min_eps), "\n");
  return out;
}

/// The whole report as one JSON object (non-finite numbers as null); per-example rows only when asked.
inline std::string to_json(const RobustnessReport& r, bool per_example = false) {
  using namespace eval_detail;
  JsonObject o;
  o.boolean("multi_label", r.multi_label)
      .integer("examples", r.num_examples)
      .integer("classes", r.num_classes)
      .num("seconds", r.seconds)
      .raw("attacks", json_array(r.attacks, [](const std::string& s) { return json(s); }))
      .raw("threat_models", json_array(r.threat_models, [](const std::string& s) { return json(s); }))
      .raw("summaries", json_array(r.summaries, json_summary))
      .raw("flags", json_array(r.flags, json_flag));
  if (per_example)
    o.raw("per_example", json_array(r.examples, [&](const ExampleResult& e) { return json_example(r, e); }));
  return o.done() + "\n";
}

/// A sweep as a Markdown table of robust accuracy (or mAP) per ε, the minimal-ε line and the flags.
inline std::string to_markdown(const EpsilonSweep& sw) {
  using namespace eval_detail;
  std::string out =
      detail::concat("### ", md_escape(sw.attack), ", ", sw.scope, " ε sweep\n\n| ε | ε audio | ε video | ",
                     sw.multi_label ? "robust mAP | robust AUC" : "robust acc | robust / N",
                     " | success rate | fwd | bwd | time |\n|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& p : sw.points) {
    const auto& s = p.summary;
    out +=
        detail::concat("| ", md(p.eps), " | ", md(p.eps_audio), " | ", md(p.eps_video), " | ",
                       sw.multi_label ? md(s.robust_map, "%.4f") : md(s.robust_accuracy, "%.4f"), " | ",
                       sw.multi_label ? md(s.robust_auc, "%.4f") : detail::concat(s.robust_correct, " / ", s.examples),
                       " | ", md(s.success_rate, "%.4f"), " | ", s.forward_passes, " | ", s.backward_passes, " | ",
                       md_seconds(s.seconds), " |\n");
  }
  if (!sw.points.empty())
    out += detail::concat(
        "\nClean ", sw.multi_label ? "mAP " : "accuracy ",
        md(sw.multi_label ? sw.points[0].summary.clean_map : sw.points[0].summary.clean_accuracy, "%.4f"),
        "; minimal ε over ", sw.min_eps.considered, " clean-correct examples: mean / median ", md_min_eps(sw.min_eps),
        "\n\n");
  return out + md_flags(sw.flags);
}
inline std::string to_markdown(const std::vector<EpsilonSweep>& sweeps) {
  std::string out;
  for (const auto& s : sweeps) out += to_markdown(s) + "\n";
  return out;
}

/// One line per sweep point.
inline std::string to_csv(const std::vector<EpsilonSweep>& sweeps) {
  using eval_detail::csv;
  std::string out =
      "attack,scope,eps,eps_audio,eps_video,examples,clean_accuracy,robust_accuracy,robust_correct,success_rate,"
      "clean_map,robust_map,robust_auc,forward_passes,backward_passes,seconds\n";
  for (const auto& sw : sweeps)
    for (const auto& p : sw.points) {
      const auto& s = p.summary;
      out += detail::concat(csv(sw.attack), ",", csv(sw.scope), ",", csv(p.eps), ",", csv(p.eps_audio), ",",
                            csv(p.eps_video), ",", s.examples, ",", csv(s.clean_accuracy), ",", csv(s.robust_accuracy),
                            ",", s.robust_correct, ",", csv(s.success_rate), ",", csv(s.clean_map), ",",
                            csv(s.robust_map), ",", csv(s.robust_auc), ",", s.forward_passes, ",", s.backward_passes,
                            ",", csv(s.seconds), "\n");
    }
  return out;
}
inline std::string to_csv(const EpsilonSweep& sweep) { return to_csv(std::vector<EpsilonSweep>{sweep}); }

/// Sweeps as a JSON array of {attack, scope, multi_label, points: [...], min_eps, flags}.
inline std::string to_json(const std::vector<EpsilonSweep>& sweeps) {
  using namespace eval_detail;
  return json_array(sweeps,
                    [](const EpsilonSweep& sw) {
                      return JsonObject()
                          .str("attack", sw.attack)
                          .str("scope", sw.scope)
                          .boolean("multi_label", sw.multi_label)
                          .raw("points", json_array(sw.points,
                                                    [](const SweepPoint& p) {
                                                      return JsonObject()
                                                          .num("eps", p.eps)
                                                          .num("eps_audio", p.eps_audio)
                                                          .num("eps_video", p.eps_video)
                                                          .raw("summary", json_summary(p.summary))
                                                          .done();
                                                    }))
                          .raw("min_eps", json_min_eps(sw.min_eps))
                          .raw("flags", json_array(sw.flags, json_flag))
                          .done();
                    }) +
         "\n";
}
inline std::string to_json(const EpsilonSweep& sweep) { return to_json(std::vector<EpsilonSweep>{sweep}); }

/// Atomic writes (data/atomic_file.hpp): the file holds the old or the complete new text.
template <class R> void write_markdown(const R& r, const std::filesystem::path& path) {
  write_file_atomic(path, to_markdown(r));
}
template <class R> void write_csv(const R& r, const std::filesystem::path& path) { write_file_atomic(path, to_csv(r)); }
template <class R> void write_json(const R& r, const std::filesystem::path& path) {
  write_file_atomic(path, to_json(r));
}
inline void write_json(const RobustnessReport& r, const std::filesystem::path& path, bool per_example) {
  write_file_atomic(path, to_json(r, per_example));
}
inline void write_examples_csv(const RobustnessReport& r, const std::filesystem::path& path) {
  write_file_atomic(path, examples_to_csv(r));
}

}  // namespace avgrad::attacks
