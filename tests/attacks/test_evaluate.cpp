// Robust evaluation on tiny linear audio-visual models whose answers are known in closed form: clean accuracy by
// hand, ε = 0, FGSM sweeps, minimal ε = margin / ‖w‖₁, the sanity flags on constructed failures, multi-label mAP,
// eval mode, and the Markdown / CSV / JSON writers read back.
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "avgrad/attacks/apgd.hpp"
#include "avgrad/attacks/evaluate.hpp"
#include "avgrad/attacks/pgd.hpp"
#include "avgrad/attacks/universal.hpp"
#include "avgrad/models/classifier.hpp"
#include "avgrad/models/fusion.hpp"
#include "avgrad/models/heads.hpp"
#include "avgrad/ops/unary.hpp"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::testing;
using namespace avgrad::attacks;
using namespace avgrad::models;
namespace json = avgrad::detail::json;

namespace {

constexpr std::int64_t Da = 3, Dv = 2;

/// An encoder that saturates: clamp(x, 10, 11) is constant for inputs below 10, so its input gradient is exactly 0.
template <Floating T> class Saturate : public nn::UnaryModule<T> {
 public:
  explicit Saturate(std::int64_t dim) : dim_(dim) {}
  Tensor<T> forward(const Tensor<T>& x) override { return clamp(x, 10.0, 11.0); }
  std::int64_t latent_dim() const { return dim_; }

 private:
  std::int64_t dim_;
};

template <Floating T, class Enc = InputPassthrough<T>> using LinearAV =
    AVClassifier<Enc, Enc, LateFusion<T>, ClassifierHead<T>>;

// Class scores z_k = Wa[k]·xa + Wv[k]·xv (no biases; the head is the identity). Binary: the margin of class y
// against the other is (Wa[y] − Wa[o])·xa + (Wv[y] − Wv[o])·xv.
const std::vector<double> kWa{1.0, -1.0, 0.5, -1.0, 1.0, -0.5};  // (2, 3): w_a = Wa[0] − Wa[1] = (2, −2, 1), ‖·‖₁ 5
const std::vector<double> kWv{0.5, 0.0, 0.0, 0.5};               // (2, 2): w_v = (0.5, −0.5), ‖·‖₁ 1

template <Floating T, class Enc = InputPassthrough<T>>
std::unique_ptr<LinearAV<T, Enc>> make_model(std::int64_t K = 2, bool multi_label = false,
                                             const std::vector<double>& wa = kWa, const std::vector<double>& wv = kWv) {
  Generator gen(3);
  auto m = std::make_unique<LinearAV<T, Enc>>(
      std::make_unique<Enc>(Da), std::make_unique<Enc>(Dv),
      std::make_unique<LateFusion<T>>(LateFusionOptions{.audio_dim = Da, .video_dim = Dv, .dim = K}, gen),
      std::make_unique<ClassifierHead<T>>(
          ClassifierHeadOptions{.in_dim = K, .num_classes = K, .multi_label = multi_label}, gen));
  auto set = [](Tensor<T>& t, const std::vector<double>& v) {
    ASSERT_EQ(static_cast<std::size_t>(t.numel()), v.size());
    for (std::size_t i = 0; i < v.size(); ++i) t.data()[i] = static_cast<T>(v[i]);
  };
  auto& f = m->fusion();
  set(f.audio_proj.weight, wa);
  set(f.video_proj.weight, wv);
  set(f.audio_proj.bias, std::vector<double>(static_cast<std::size_t>(K), 0.0));
  set(f.video_proj.bias, std::vector<double>(static_cast<std::size_t>(K), 0.0));
  std::vector<double> eye(static_cast<std::size_t>(K * K), 0.0);
  for (std::int64_t k = 0; k < K; ++k) eye[static_cast<std::size_t>(k * K + k)] = 1.0;
  set(m->head().fc->weight, eye);
  set(m->head().fc->bias, std::vector<double>(static_cast<std::size_t>(K), 0.0));
  return m;
}

template <Floating T> using Batch = std::pair<AVInput<T>, Labels<T>>;

/// Batches of inputs uniform in [−1, 1] with labels b % 2 (so some examples are misclassified).
template <Floating T> std::vector<Batch<T>> make_batches(int count, std::int64_t B, std::uint64_t seed) {
  Generator gen(seed);
  std::vector<Batch<T>> out;
  for (int i = 0; i < count; ++i) {
    std::vector<std::int64_t> y(static_cast<std::size_t>(B));
    for (std::int64_t b = 0; b < B; ++b) y[static_cast<std::size_t>(b)] = (b + i) % 2;
    out.push_back({AVInput<T>{rand<T>({B, Da}, gen, -1, 1), rand<T>({B, Dv}, gen, -1, 1)},
                   Labels<T>{from_vector<std::int64_t>(y), {}}});
  }
  return out;
}

/// The hand computation: class scores of one example from kWa, kWv.
std::array<double, 2> scores_by_hand(const double* xa, const double* xv) {
  std::array<double, 2> z{};
  for (int k = 0; k < 2; ++k) {
    for (int i = 0; i < Da; ++i) z[k] += kWa[k * Da + i] * xa[i];
    for (int i = 0; i < Dv; ++i) z[k] += kWv[k * Dv + i] * xv[i];
  }
  return z;
}

double l1(const std::vector<double>& w, int row_a, int row_b, std::int64_t n) {
  double s = 0;
  for (std::int64_t i = 0; i < n; ++i) s += std::abs(w[row_a * n + i] - w[row_b * n + i]);
  return s;
}

EvaluateOptions quiet() {
  EvaluateOptions o;
  o.quiet = true;
  return o;
}

Budget linf(double eps, double step = 0) { return Budget{.norm = Norm::linf, .eps = eps, .step = step}; }

using Model = LinearAV<double>;

/// A minimal CSV reader (RFC 4180 quoting) for the round trip.
std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
  std::vector<std::vector<std::string>> rows(1);
  std::string field;
  bool quoted = false, any = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"')
        field += '"', ++i;
      else if (c == '"')
        quoted = false;
      else
        field += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      rows.back().push_back(field), field.clear();
    } else if (c == '\n') {
      rows.back().push_back(field), field.clear();
      rows.emplace_back();
    } else {
      field += c;
    }
    any = true;
  }
  if (rows.back().empty()) rows.pop_back();
  (void)any;
  return rows;
}

std::string read_text(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

TEST(Evaluate, CleanAccuracyByHandAndEpsZeroEqualsClean) {
  auto model = make_model<double>();
  const auto batches = make_batches<double>(2, 8, 11);
  // Clean accuracy by hand from the weights.
  std::int64_t correct = 0;
  std::vector<std::int64_t> pred_by_hand;
  for (const auto& [x, y] : batches)
    for (std::int64_t b = 0; b < 8; ++b) {
      const auto z = scores_by_hand(x.audio.data() + b * Da, x.video.data() + b * Dv);
      pred_by_hand.push_back(z[1] > z[0] ? 1 : 0);
      correct += pred_by_hand.back() == y.classes.data()[b];
    }
  ASSERT_GT(correct, 0);
  ASSERT_LT(correct, 16) << "the data should hold misclassified examples too";

  Pgd<double> pgd(PgdOptions{.steps = 3, .random_start = false});
  const std::vector<NamedThreatModel> tms{ThreatModel::audio_only(linf(0, 0.01)),
                                          ThreatModel::video_only(linf(0, 0.01)),
                                          {"joint zero", ThreatModel::joint(linf(0, 0.01), linf(0, 0.01))}};
  for (bool skip : {true, false}) {
    auto o = quiet();
    o.skip_zero_eps = skip;  // not skipping runs the attacks for real: δ is projected to 0 every step
    const auto r = evaluate_robustness(*model, batches, {attack_spec(fgsm<double>()), attack_spec(pgd)}, tms, o);
    ASSERT_EQ(r.summaries.size(), 6u);
    EXPECT_EQ(r.num_examples, 16);
    EXPECT_EQ(r.attacks[0], "FGSM");
    EXPECT_EQ(r.attacks[1], "PGD-3(ce)");
    EXPECT_EQ(r.threat_models[2], "joint zero");
    for (const auto& s : r.summaries) {
      EXPECT_EQ(s.clean_correct, correct);
      EXPECT_DOUBLE_EQ(s.clean_accuracy, correct / 16.0);
      EXPECT_EQ(s.robust_correct, correct) << s.attack << " under " << s.threat_model << ", skip " << skip;
      EXPECT_DOUBLE_EQ(s.success_rate, 0.0);
      EXPECT_EQ(s.forward_passes > 0, !skip) << "skipped attacks cost nothing";
      if (s.scope != "video") {
        EXPECT_EQ(s.norm_audio_mean, 0.0);
      } else {
        EXPECT_TRUE(std::isnan(s.norm_audio_mean)) << "audio is not attacked";
      }
    }
    ASSERT_EQ(r.examples.size(), 6u * 16u);
    for (std::size_t i = 0; i < 16; ++i) {
      const auto& e = r.examples[i];
      EXPECT_EQ(e.example, static_cast<std::int64_t>(i));
      EXPECT_EQ(e.batch, static_cast<std::int64_t>(i / 8));
      EXPECT_EQ(e.clean_pred, pred_by_hand[i]);
      EXPECT_EQ(e.adv_pred, e.clean_pred);
      EXPECT_EQ(e.robust, e.clean_correct);
    }
    EXPECT_TRUE(r.flags.empty()) << to_markdown(r);
  }
}

TEST(Evaluate, FgsmSweepOnALinearModelIsNonIncreasingAndReachesZero) {
  auto model = make_model<double>();
  const auto batches = make_batches<double>(2, 8, 12);
  std::vector<double> grid;
  for (int i = 0; i <= 30; ++i) grid.push_back(0.1 * i);  // up to 3 > every margin / ‖w_a‖₁ (margin ≤ 6)
  const auto sw =
      epsilon_sweep(*model, batches, attack_spec(fgsm<double>()), ThreatModel::audio_only(linf(1)), grid, quiet());
  ASSERT_EQ(sw.points.size(), grid.size());
  EXPECT_EQ(sw.scope, "audio");
  EXPECT_EQ(sw.points[0].summary.robust_accuracy, sw.points[0].summary.clean_accuracy) << "ε = 0 is clean";
  for (std::size_t i = 1; i < sw.points.size(); ++i) {
    EXPECT_LE(sw.points[i].summary.robust_correct, sw.points[i - 1].summary.robust_correct) << "ε " << grid[i];
    EXPECT_DOUBLE_EQ(sw.points[i].eps_audio, grid[i]);
    EXPECT_TRUE(std::isnan(sw.points[i].eps_video));
  }
  EXPECT_EQ(sw.points.back().summary.robust_accuracy, 0.0);
  EXPECT_GT(sw.points[1].summary.robust_correct, 0) << "a small ε leaves some examples robust";
  EXPECT_TRUE(sw.flags.empty()) << to_markdown(sw);
  EXPECT_EQ(sw.min_eps.never_broken, 0);
  EXPECT_EQ(sw.min_eps.considered, sw.points[0].summary.clean_correct);
  // The three-way convenience: point i of the joint sweep is the union of the two single-modality points.
  const auto three = epsilon_sweeps_by_modality(*model, batches, attack_spec(fgsm<double>()),
                                                ThreatModel::joint(linf(1), linf(0.5)), {0.0, 0.2, 0.4}, quiet());
  ASSERT_EQ(three.size(), 3u);
  EXPECT_EQ(three[0].scope, "audio");
  EXPECT_EQ(three[1].scope, "video");
  EXPECT_EQ(three[2].scope, "joint");
  EXPECT_DOUBLE_EQ(three[1].points[2].eps_video, 0.2);
  EXPECT_DOUBLE_EQ(three[2].points[2].eps_audio, 0.4);
  EXPECT_DOUBLE_EQ(three[2].points[2].eps_video, 0.2);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_LE(three[2].points[i].summary.robust_correct, three[0].points[i].summary.robust_correct);
    EXPECT_LE(three[2].points[i].summary.robust_correct, three[1].points[i].summary.robust_correct);
  }
}

TEST(Evaluate, ALearntUniversalPerturbationIsReportedBesidePerExampleAttacks) {
  auto model = make_model<double>();
  const auto batches = make_batches<double>(2, 8, 12);
  const auto tm = ThreatModel::audio_only(linf(0.5, 0.1));
  const auto universal = UniversalPgd<double>({.passes = 5}).run(*model, batches, tm);
  const auto report =
      evaluate_robustness(*model, batches, {attack_spec(universal), attack_spec(fgsm<double>())}, {tm}, quiet());
  ASSERT_EQ(report.summaries.size(), 2u);
  EXPECT_EQ(report.attacks[0], universal.name());
  // One δ for every example is weaker than a per-example FGSM of the same radius on a linear model.
  EXPECT_GE(report.summaries[0].robust_correct, report.summaries[1].robust_correct);
  EXPECT_LT(report.summaries[0].robust_correct, report.summaries[0].clean_correct) << "the universal δ hurts";
  expect_error([&] { universal.run(*model, batches[0].first, batches[0].second, ThreatModel::audio_only(linf(0.4))); },
               {"learnt under"});
}

TEST(Evaluate, DocsExample) {
  // docs/attacks.md's robust-evaluation example on the linear test model (double, no video range).
  auto model = make_model<double>();
  const auto test_batches = make_batches<double>(2, 8, 15);
  const Budget a{.norm = Norm::linf, .eps = 0.1, .step = 0.01};
  const Budget v{.norm = Norm::linf, .eps = 8.0 / 255, .step = 1.0 / 255};
  auto report = evaluate_robustness(*model, test_batches,
                                    {attack_spec(fgsm<double>(), {.family = "linf", .strength = 1}),
                                     attack_spec(Pgd<double>({.steps = 10}), {.family = "linf", .strength = 2}),
                                     attack_spec(Apgd<double>({.steps = 100}), {.family = "linf", .strength = 3})},
                                    {ThreatModel::audio_only(a), ThreatModel::video_only(v), ThreatModel::joint(a, v)},
                                    {.quiet = true, .min_eps_grid = {0.0, 0.02, 0.05, 0.1, 0.2}});
  EXPECT_EQ(report.summaries.size(), 9u);
  EXPECT_TRUE(report.flags.empty()) << to_markdown(report);
  const auto path =
      std::filesystem::temp_directory_path() / ("avgrad_docs_example_" + std::to_string(::getpid()) + ".md");
  write_markdown(report, path);
  EXPECT_EQ(read_text(path), to_markdown(report));
  std::filesystem::remove(path);
  auto sweeps = epsilon_sweeps_by_modality(*model, test_batches, attack_spec(Pgd<double>({.steps = 10})),
                                           ThreatModel::joint(a, v), {0.0, 0.025, 0.05, 0.1, 0.2}, quiet());
  EXPECT_EQ(sweeps.size(), 3u);
}

TEST(Evaluate, MinimalEpsMatchesTheClosedFormMarginOverTheDualNorm) {
  // FGSM under L∞ on a linear binary model moves along −sign(w) (w = W[y] − W[o]), the optimal direction: the margin
  // drops by ε‖w‖₁, so the example falls first at ε* = margin / ‖w‖₁; the grid answer is the first grid ε ≥ ε*.
  // Jointly with ε_v = ε_a / 2: ε* = margin / (‖w_a‖₁ + ‖w_v‖₁ / 2).
  auto model = make_model<double>();
  const auto batches = make_batches<double>(2, 8, 13);
  const double step = 0.01;
  std::vector<double> grid;
  for (int i = 0; i <= 300; ++i) grid.push_back(step * i);
  const double wa1 = l1(kWa, 0, 1, Da), wv1 = l1(kWv, 0, 1, Dv);
  ASSERT_DOUBLE_EQ(wa1, 5.0);
  ASSERT_DOUBLE_EQ(wv1, 1.0);
  auto o = quiet();
  o.min_eps_grid = grid;
  const std::vector<NamedThreatModel> tms{ThreatModel::audio_only(linf(0.3)),
                                          ThreatModel::joint(linf(0.3), linf(0.15))};
  const auto r = evaluate_robustness(*model, batches, {attack_spec(fgsm<double>())}, tms, o);
  std::int64_t checked = 0;
  for (const auto& e : r.examples) {
    const auto& [x, y] = batches[static_cast<std::size_t>(e.batch)];
    const auto z = scores_by_hand(x.audio.data() + e.index * Da, x.video.data() + e.index * Dv);
    const auto label = y.classes.data()[e.index];
    const double margin = z[label] - z[1 - label];
    if (!e.clean_correct) {
      EXPECT_TRUE(std::isnan(e.min_eps)) << "only clean-correct examples are searched";
      continue;
    }
    const double expected = margin / (e.threat_model == 0 ? wa1 : wa1 + 0.5 * wv1);
    EXPECT_GE(e.min_eps, expected - 1e-9) << "example " << e.example;
    EXPECT_LT(e.min_eps, expected + step + 1e-9) << "example " << e.example;
    ++checked;
  }
  EXPECT_GT(checked, 8);
  const auto& ms = r.at(0, 0).min_eps;
  EXPECT_TRUE(ms.computed);
  EXPECT_EQ(ms.considered, r.at(0, 0).clean_correct);
  EXPECT_EQ(ms.never_broken, 0);
  EXPECT_DOUBLE_EQ(ms.max_eps, 3.0);
  // The sweep derives the same minimal ε from its own points.
  const auto sw =
      epsilon_sweep(*model, batches, attack_spec(fgsm<double>()), ThreatModel::audio_only(linf(0.3)), grid, quiet());
  EXPECT_NEAR(sw.min_eps.mean, ms.mean, 1e-12);
  EXPECT_NEAR(sw.min_eps.median, ms.median, 1e-12);
  // A grid too short to break everyone: the rest are counted as never broken and the median can lie above the grid.
  o.min_eps_grid = {0.0, 0.01};
  const auto short_grid = evaluate_robustness(*model, batches, {attack_spec(fgsm<double>())}, {tms[0]}, o);
  const auto& s2 = short_grid.at(0, 0).min_eps;
  EXPECT_GT(s2.never_broken, s2.considered / 2);
  EXPECT_TRUE(std::isinf(s2.median));
  EXPECT_NE(to_markdown(short_grid).find("> 0.01"), std::string::npos) << to_markdown(short_grid);
}

TEST(Evaluate, ZeroGradientModelRaisesTheBadGradientFlag) {
  // Both encoders saturate (clamp to [10, 11] of inputs in [−1, 1]): every input gradient is exactly zero.
  auto masked = make_model<double, Saturate<double>>();
  const auto batches = make_batches<double>(1, 8, 14);
  Pgd<double> pgd(PgdOptions{.steps = 3, .random_start = false});
  const auto r = evaluate_robustness(*masked, batches, {attack_spec(pgd)},
                                     {ThreatModel::joint(linf(0.5, 0.1), linf(0.5, 0.1))}, quiet());
  EXPECT_TRUE(r.has_flag(SanityKind::bad_gradients)) << to_markdown(r);
  EXPECT_EQ(r.at(0, 0).bad_grad_examples, 8);
  EXPECT_EQ(r.at(0, 0).robust_correct, r.at(0, 0).clean_correct) << "nothing moves: the model looks robust";
  EXPECT_NE(to_markdown(r).find("bad_gradients"), std::string::npos);
  // The healthy linear model raises nothing.
  auto model = make_model<double>();
  const auto ok = evaluate_robustness(*model, batches, {attack_spec(pgd)},
                                      {ThreatModel::joint(linf(0.5, 0.1), linf(0.5, 0.1))}, quiet());
  EXPECT_FALSE(ok.has_flag(SanityKind::bad_gradients)) << to_markdown(ok);
  EXPECT_NE(to_markdown(ok).find("all passed"), std::string::npos);
}

TEST(Evaluate, EpsSweepFlagOnAFakeSweepWhereAccuracyRises) {
  auto fake = [](std::vector<std::int64_t> robust, bool multi_label = false, std::vector<double> maps = {}) {
    EpsilonSweep sw;
    sw.attack = "fake";
    sw.multi_label = multi_label;
    for (std::size_t i = 0; i < std::max(robust.size(), maps.size()); ++i) {
      SweepPoint p;
      p.eps = 0.1 * static_cast<double>(i);
      p.summary.multi_label = multi_label;
      p.summary.examples = 20;
      p.summary.threat_model = detail::concat("eps=", p.eps);
      if (!multi_label) {
        p.summary.robust_correct = robust[i];
        p.summary.robust_accuracy = robust[i] / 20.0;
      } else {
        p.summary.robust_map = maps[i];
      }
      sw.points.push_back(p);
    }
    return sw;
  };
  // 10 → 6 → 9: 9 is 3 examples above the lowest so far (6): flagged at the third point.
  const auto flags = check_eps_monotone(fake({10, 6, 9}));
  ASSERT_EQ(flags.size(), 1u);
  EXPECT_EQ(flags[0].kind, SanityKind::eps_not_monotone);
  EXPECT_EQ(flags[0].threat_model, "eps=0.2");
  EXPECT_NE(flags[0].message.find("9/20"), std::string::npos) << flags[0].message;
  EXPECT_TRUE(check_eps_monotone(fake({10, 6, 7})).empty()) << "one example is within the tolerance";
  EXPECT_EQ(check_eps_monotone(fake({10, 6, 7, 8})).size(), 1u) << "slow creep is measured from the lowest point";
  EXPECT_EQ(check_eps_monotone(fake({10, 6, 8}), SanityOptions{.tolerance_examples = 2}).size(), 0u);
  // Multi-label sweeps compare robust mAP.
  EXPECT_EQ(check_eps_monotone(fake({}, true, {0.30, 0.20, 0.25})).size(), 1u);
  EXPECT_TRUE(check_eps_monotone(fake({}, true, {0.30, 0.20, 0.203})).empty());
}

TEST(Evaluate, StrengthChecksCompareRowsAndDeclaredOrders) {
  Summary weak, strong;
  weak.attack = "PGD-5(ce)", strong.attack = "PGD-20(ce)";
  weak.attack_steps = 5, strong.attack_steps = 20;
  weak.examples = strong.examples = 20;
  weak.robust_correct = 10, weak.robust_accuracy = 0.5;
  strong.robust_correct = 12, strong.robust_accuracy = 0.6;
  auto f = compare_strength(weak, strong);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->kind, SanityKind::steps_not_monotone);
  EXPECT_NE(f->message.find("20 steps"), std::string::npos) << f->message;
  strong.robust_correct = 11;
  EXPECT_FALSE(compare_strength(weak, strong).has_value()) << "within one example";
  strong.robust_correct = 9;
  EXPECT_FALSE(compare_strength(weak, strong).has_value());
  strong.robust_correct = 14, strong.attack_steps = 0;
  ASSERT_TRUE(compare_strength(weak, strong).has_value());
  EXPECT_EQ(compare_strength(weak, strong)->kind, SanityKind::strength_order);

  // Declared orders inside evaluate_robustness, weakest first: FGSM with the full radius as its step; a PGD-1 with
  // a tiny step declared stronger; a do-nothing attack declared strongest with 50 "steps".
  auto model = make_model<double>();
  const auto batches = make_batches<double>(2, 8, 15);
  AttackSpec<double, Model> full{"full-step FGSM",
                                 [](Model& m, const AVInput<double>& x, const Labels<double>& y, ThreatModel tm) {
                                   tm.audio->step = 0;  // FGSM steps the full radius when the budget names no step
                                   return fgsm<double>().run(m, x, y, tm);
                                 },
                                 "order", 0, 1};
  AttackSpec<double, Model> idle{"idle",
                                 [](Model& m, const AVInput<double>& x, const Labels<double>& y, const ThreatModel&) {
                                   AttackResult<double> r;
                                   NoGradGuard g;
                                   r.logits = m.forward(x).logits;
                                   r.success = successes(r.logits, y, false);
                                   return r;
                                 },
                                 "order", 2, 50};
  Pgd<double> timid(PgdOptions{.steps = 1, .random_start = false});
  const auto r = evaluate_robustness(
      *model, batches, {full, attack_spec(timid, {.name = "timid PGD-1", .family = "order", .strength = 1}), idle},
      {ThreatModel::audio_only(linf(0.6, 0.001))}, quiet());
  EXPECT_LT(r.at(0, 0).robust_correct + 1, r.at(1, 0).robust_correct) << "the premise: the full step is stronger";
  ASSERT_TRUE(r.has_flag(SanityKind::steps_not_monotone)) << to_markdown(r);
  ASSERT_TRUE(r.has_flag(SanityKind::strength_order)) << to_markdown(r);
  for (const auto& fl : r.flags) {
    if (fl.kind == SanityKind::steps_not_monotone) {
      EXPECT_EQ(fl.attack, "idle");
    }
    if (fl.kind == SanityKind::strength_order) {
      EXPECT_EQ(fl.attack, "timid PGD-1");
    }
  }
  EXPECT_TRUE(std::isnan(r.summary("idle", r.threat_models[0]).norm_audio_mean)) << "no δ returned";
}

TEST(Evaluate, InconsistentSuccessAndBudgetViolationsAreFlagged) {
  auto model = make_model<double>();
  const auto batches = make_batches<double>(1, 8, 16);
  // Claims success everywhere without changing anything, and returns a δ twice the radius.
  AttackSpec<double, Model> liar{"liar",
                                 [](Model& m, const AVInput<double>& x, const Labels<double>&, const ThreatModel& tm) {
                                   AttackResult<double> r;
                                   NoGradGuard g;
                                   r.logits = m.forward(x).logits;
                                   r.success.assign(static_cast<std::size_t>(x.batch()), 1);
                                   r.delta.audio = full<double>(x.audio.shape(), 2 * tm.audio->eps);
                                   return r;
                                 }};
  const auto r = evaluate_robustness(*model, batches, {liar}, {ThreatModel::audio_only(linf(0.1))}, quiet());
  EXPECT_TRUE(r.has_flag(SanityKind::inconsistent_success)) << to_markdown(r);
  EXPECT_TRUE(r.has_flag(SanityKind::budget_exceeded)) << to_markdown(r);
  EXPECT_EQ(r.at(0, 0).robust_correct, 0) << "robust needs the attack to fail";
  EXPECT_DOUBLE_EQ(r.at(0, 0).norm_audio_median, 0.2);
}

TEST(Evaluate, EvalModeDuringTheRunAndRestoredAfter) {
  auto model = make_model<double>();
  const auto batches = make_batches<double>(2, 4, 17);
  std::vector<bool> seen;
  AttackSpec<double, Model> spy{
      "spy", [&](Model& m, const AVInput<double>& x, const Labels<double>& y, const ThreatModel& tm) {
        seen.push_back(m.is_training() || m.head().is_training());
        return fgsm<double>().run(m, x, y, tm);
      }};
  model->train();
  evaluate_robustness(*model, batches, {spy}, {ThreatModel::audio_only(linf(0.1))}, quiet());
  EXPECT_EQ(seen, std::vector<bool>(2, false));
  EXPECT_TRUE(model->is_training());
  EXPECT_TRUE(model->head().is_training());
  // Mixed modes come back module by module: a training model with its head kept in eval mode.
  model->head().eval();
  evaluate_robustness(*model, batches, {spy}, {ThreatModel::audio_only(linf(0.1))}, quiet());
  EXPECT_TRUE(model->is_training());
  EXPECT_TRUE(model->fusion().is_training());
  EXPECT_FALSE(model->head().is_training());
  EXPECT_FALSE(model->head().fc->is_training());
  model->eval();
  evaluate_robustness(*model, batches, {spy}, {ThreatModel::audio_only(linf(0.1))}, quiet());
  EXPECT_FALSE(model->is_training());
  EXPECT_EQ(seen, std::vector<bool>(6, false));
}

TEST(Evaluate, MultiLabelEvaluationUsesMap) {
  // Three classes, multi-label head on float: z = Wa·xa + Wv·xv per class, targets from the sign of two scores.
  const std::vector<double> wa{1, 0, 0, 0, 1, 0, 0, 0, 1}, wv{0.2, 0, 0, 0.2, 0.1, 0.1};
  auto model = make_model<float>(3, true, wa, wv);
  Generator gen(18);
  std::vector<Batch<float>> batches;
  for (int i = 0; i < 2; ++i) {
    auto xa = rand<float>({10, Da}, gen, -1, 1), xv = rand<float>({10, Dv}, gen, -1, 1);
    std::vector<float> mh(30);
    for (int b = 0; b < 10; ++b)
      for (int k = 0; k < 3; ++k) mh[b * 3 + k] = (xa.data()[b * Da + k] + 0.3f * (b % 3 == k)) > 0;
    batches.push_back({AVInput<float>{xa, xv}, Labels<float>{{}, from_vector<float>(mh, {10, 3})}});
  }
  Pgd<float> pgd(PgdOptions{.steps = 5, .random_start = false}, Objective<float>::of(LossKind::bce));
  const auto r = evaluate_robustness(*model, batches, {attack_spec(pgd)},
                                     {ThreatModel::joint(linf(0.5, 0.125), linf(0.5, 0.125))}, quiet());
  ASSERT_TRUE(r.multi_label);
  const auto& s = r.at(0, 0);
  // The clean mAP is the metrics header's mAP of sigmoid(clean logits) over the whole set.
  std::vector<double> scores, targets;
  for (const auto& [x, y] : batches) {
    NoGradGuard g;
    const auto p = sigmoid(model->forward(x).logits).to_vector();
    const auto t = y.multi_hot.to_vector();
    scores.insert(scores.end(), p.begin(), p.end());
    targets.insert(targets.end(), t.begin(), t.end());
  }
  const auto m = metrics::multilabel_metrics(scores, targets, 20, 3);
  EXPECT_NEAR(s.clean_map, m.map, 1e-6);
  EXPECT_NEAR(s.clean_auc, m.mean_auc, 1e-6);
  EXPECT_GT(s.clean_map, 0.5);
  EXPECT_LT(s.robust_map, s.clean_map - 0.05) << "the attack lowers the mAP";
  EXPECT_DOUBLE_EQ(s.robust_score(), s.robust_map);
  EXPECT_EQ(r.examples[0].label, -1);
  const auto md = to_markdown(r);
  EXPECT_NE(md.find("robust mAP"), std::string::npos) << md;
  // A multi-label sweep reports robust mAP per ε, starting from the clean mAP.
  const auto sw = epsilon_sweep(*model, batches, attack_spec(pgd),
                                ThreatModel::joint(linf(0.5, 0.125), linf(0.5, 0.125)), {0.0, 0.25, 0.5}, quiet());
  EXPECT_NEAR(sw.robust_scores()[0], m.map, 1e-6);
  EXPECT_LT(sw.robust_scores()[2], sw.robust_scores()[0]);
  EXPECT_NE(to_markdown(sw).find("robust mAP"), std::string::npos);
}

TEST(Evaluate, WritersParseBackWithTheExpectedFields) {
  auto model = make_model<double>();
  const auto batches = make_batches<double>(2, 6, 19);
  auto o = quiet();
  o.min_eps_grid = {0.0, 0.2, 0.4, 0.8};
  const auto r = evaluate_robustness(
      *model, batches, {attack_spec(fgsm<double>()), attack_spec(fgsm<double>(), {.name = "FGSM, \"quoted\""})},
      {ThreatModel::audio_only(linf(0.5)), ThreatModel::joint(linf(0.5), linf(0.1))}, o);

  // JSON: the summaries and flags, and per-example rows on request.
  const auto doc = json::parse(to_json(r, true));
  ASSERT_TRUE(doc.is_object());
  EXPECT_EQ(doc.find("examples")->integer, 12);
  EXPECT_FALSE(doc.find("multi_label")->boolean);
  const auto* sums = doc.find("summaries");
  ASSERT_TRUE(sums && sums->is_array());
  ASSERT_EQ(sums->items.size(), 4u);
  EXPECT_EQ(sums->items[3].find("attack")->string, "FGSM, \"quoted\"");
  EXPECT_EQ(sums->items[1].find("scope")->string, "joint");
  EXPECT_NEAR(sums->items[1].find("robust_accuracy")->as_double(), r.at(0, 1).robust_accuracy, 1e-9);
  EXPECT_EQ(sums->items[0].find("clean_map")->kind, json::Value::Kind::Null) << "NaN is null";
  EXPECT_TRUE(sums->items[0].find("min_eps")->is_object());
  EXPECT_TRUE(doc.find("flags")->is_array());
  EXPECT_EQ(doc.find("per_example")->items.size(), 4u * 12u);
  EXPECT_EQ(json::parse(to_json(r)).find("per_example"), nullptr);

  // CSV: a header and one row per summary, every row as wide as the header; quoting survives.
  const auto rows = parse_csv(to_csv(r));
  ASSERT_EQ(rows.size(), 5u);
  for (const auto& row : rows) EXPECT_EQ(row.size(), rows[0].size());
  EXPECT_EQ(rows[0][0], "attack");
  EXPECT_EQ(rows[0][11], "robust_accuracy");
  EXPECT_EQ(rows[4][0], "FGSM, \"quoted\"");
  EXPECT_NEAR(std::stod(rows[2][11]), r.at(0, 1).robust_accuracy, 1e-9);
  EXPECT_EQ(rows[1][13], "") << "clean mAP is empty for a single-label model";
  const auto ex = parse_csv(examples_to_csv(r));
  ASSERT_EQ(ex.size(), 1u + 4u * 12u);
  for (const auto& row : ex) EXPECT_EQ(row.size(), ex[0].size());

  // Markdown: the header, every attack and threat model, the minimal-ε column and the checks.
  const auto md = to_markdown(r);
  for (const char* s : {"| attack | threat model | clean acc | robust acc |", "FGSM, \"quoted\"",
                        "+ video Linf eps=0.1", "min ε", "Sanity checks"})
    EXPECT_NE(md.find(s), std::string::npos) << s << "\n" << md;

  // Sweeps, and the atomic file writers (the files hold exactly the strings).
  const auto sw = epsilon_sweep(*model, batches, attack_spec(fgsm<double>()), ThreatModel::audio_only(linf(1)),
                                {0.0, 0.5, 1.0}, quiet());
  const auto sdoc = json::parse(to_json(sw));
  ASSERT_TRUE(sdoc.is_array());
  EXPECT_EQ(sdoc.items[0].find("points")->items.size(), 3u);
  EXPECT_EQ(sdoc.items[0].find("scope")->string, "audio");
  const auto srows = parse_csv(to_csv(sw));
  ASSERT_EQ(srows.size(), 4u);
  EXPECT_EQ(srows[0][2], "eps");
  EXPECT_EQ(srows[2][2], "0.5");
  const auto dir = std::filesystem::temp_directory_path() / ("avgrad_eval_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  write_markdown(r, dir / "r.md");
  write_csv(r, dir / "r.csv");
  write_json(r, dir / "r.json");
  write_json(r, dir / "r_full.json", true);
  write_examples_csv(r, dir / "r_examples.csv");
  write_markdown(sw, dir / "s.md");
  write_csv(sw, dir / "s.csv");
  write_json(std::vector<EpsilonSweep>{sw}, dir / "s.json");
  EXPECT_EQ(read_text(dir / "r.md"), md);
  EXPECT_EQ(read_text(dir / "r.csv"), to_csv(r));
  EXPECT_EQ(read_text(dir / "r.json"), to_json(r));
  EXPECT_EQ(read_text(dir / "r_full.json"), to_json(r, true));
  EXPECT_EQ(read_text(dir / "r_examples.csv"), examples_to_csv(r));
  EXPECT_EQ(read_text(dir / "s.md"), to_markdown(sw));
  EXPECT_EQ(read_text(dir / "s.csv"), to_csv(sw));
  EXPECT_EQ(read_text(dir / "s.json"), to_json(sw));
  std::filesystem::remove_all(dir);
}

TEST(Evaluate, ProgressBarCountsBatchesTimesAttacksTimesThreatModels) {
  auto model = make_model<double>();
  const auto batches = make_batches<double>(3, 4, 20);
  std::FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  EvaluateOptions o;
  o.progress_out = out;
  o.label = "bar-test";
  evaluate_robustness(*model, batches, {attack_spec(fgsm<double>())},
                      {ThreatModel::audio_only(linf(0.1)), ThreatModel::video_only(linf(0.1))}, o);
  std::rewind(out);
  std::string text;
  char buf[256];
  while (std::fgets(buf, sizeof buf, out)) text += buf;
  std::fclose(out);
  EXPECT_NE(text.find("bar-test"), std::string::npos) << text;
  EXPECT_NE(text.find("6/6"), std::string::npos) << text;
  // Quiet prints nothing.
  out = std::tmpfile();
  o.progress_out = out;
  o.quiet = true;
  evaluate_robustness(*model, batches, {attack_spec(fgsm<double>())}, {ThreatModel::audio_only(linf(0.1))}, o);
  EXPECT_EQ(std::ftell(out), 0);
  std::fclose(out);
}

TEST(Evaluate, ThreatModelScalingAndInputErrors) {
  const auto joint = ThreatModel::joint(linf(0.2, 0.05), Budget{.norm = Norm::l2, .eps = 1.0, .step = 0.25});
  const auto s = scale_threat_model(joint, 0.4);
  EXPECT_DOUBLE_EQ(s.audio->eps, 0.4);
  EXPECT_DOUBLE_EQ(s.audio->step, 0.1);
  EXPECT_DOUBLE_EQ(s.video->eps, 2.0) << "the video budget scales by the same factor";
  EXPECT_DOUBLE_EQ(s.video->step, 0.5);
  EXPECT_EQ(s.video->norm, Norm::l2);
  EXPECT_DOUBLE_EQ(scale_threat_model(ThreatModel::video_only(linf(0.1)), 0.3).video->eps, 0.3);
  expect_error([&] { scale_threat_model(ThreatModel::joint(linf(0), linf(0.1)), 0.2); }, {"audio budget"});

  auto model = make_model<double>();
  const auto batches = make_batches<double>(1, 4, 21);
  expect_error(
      [&] {
        epsilon_sweep(*model, batches, attack_spec(fgsm<double>()), ThreatModel::audio_only(linf(1)), {0.2, 0.1},
                      quiet());
      },
      {"strictly increasing"});
  expect_error([&] { evaluate_robustness(*model, batches, {}, {ThreatModel::audio_only(linf(1))}, quiet()); },
               {"at least one attack"});
  std::vector<Batch<double>> multi_hot{{batches[0].first, Labels<double>{{}, zeros<double>({4, 2})}}};
  expect_error(
      [&] {
        evaluate_robustness(*model, multi_hot, {attack_spec(fgsm<double>())}, {ThreatModel::audio_only(linf(1))},
                            quiet());
      },
      {"multi-hot labels", "single-label"});
}
