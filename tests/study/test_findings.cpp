// The study's reading of its results (study/findings.hpp) on hand-made numbers: each finding's
// verdict flips exactly where its rule says, and the tables and JSON carry what they claim.
#include <gtest/gtest.h>

#include <avgrad/study/study.hpp>

namespace {

using namespace avgrad;
using study::ModelKind;
using study::ModelResult;
using study::Verdict;

const std::vector<double> kGrid{0, 0.05, 0.1};

attacks::EpsilonSweep sweep(const std::string& attack, const std::string& scope, double clean,
                            const std::vector<double>& robust) {
  attacks::EpsilonSweep s;
  s.attack = attack;
  s.scope = scope;
  for (std::size_t i = 0; i < robust.size(); ++i) {
    attacks::SweepPoint p;
    p.eps = kGrid[i];
    p.summary.clean_accuracy = clean;
    p.summary.robust_accuracy = robust[i];
    s.points.push_back(p);
  }
  return s;
}

ModelResult model(ModelKind k, double clean, const std::map<std::string, std::vector<double>>& pgd,
                  std::string defense = "plain") {
  ModelResult m;
  m.kind = k;
  m.defense = std::move(defense);
  for (const auto& [scope, r] : pgd) {
    m.sweeps.push_back(sweep("FGSM", scope, clean, r));
    m.sweeps.push_back(sweep("PGD-10(ce)", scope, clean, r));
  }
  return m;
}

/// A latent report with one space holding the given mean convexity and purity.
metrics::LatentReport latent(const std::string& space, double convexity, double purity) {
  metrics::LatentReport r;
  metrics::SpaceReport s;
  s.space = space;
  s.mean_convexity = convexity;
  s.mean_purity = purity;
  s.convexity = {{0, 5, 10, convexity}, {1, 5, 10, convexity}};
  s.density = {{0, 5, purity, 1.0, 1.2}, {1, 5, purity, 1.0, 1.2}};
  r.spaces.push_back(s);
  return r;
}

study::StudyResults base(double late_joint, double late_audio) {
  study::StudyResults r;
  r.attack.eps_grid = kGrid;
  r.ref = 2;
  r.models.push_back(model(ModelKind::audio, 0.8, {{"audio", {0.8, 0.5, 0.4}}}));
  r.models.push_back(model(ModelKind::video, 0.6, {{"video", {0.6, 0.55, 0.5}}}));
  r.models.push_back(
      model(ModelKind::late, 0.9,
            {{"audio", {0.9, 0.7, late_audio}}, {"video", {0.9, 0.85, 0.85}}, {"joint", {0.9, 0.5, late_joint}}}));
  return r;
}

TEST(StudyFindings, FusionRobustnessComparesJointAttackWithTheBetterUniModalModel) {
  // The better uni-modal model keeps 0.5 at ref (video-only under the video attack).
  EXPECT_EQ(study::finding_fusion_robustness(base(0.45, 0.7)).verdict, Verdict::holds);
  EXPECT_EQ(study::finding_fusion_robustness(base(0.5, 0.7)).verdict, Verdict::holds);  // not above: holds
  const auto f = study::finding_fusion_robustness(base(0.55, 0.7));
  EXPECT_EQ(f.verdict, Verdict::does_not_hold);
  EXPECT_NE(f.evidence.find("late 0.550"), std::string::npos) << f.evidence;
  auto r = base(0.45, 0.7);
  r.models.erase(r.models.begin());  // no audio-only model: nothing to compare with
  EXPECT_EQ(study::finding_fusion_robustness(r).verdict, Verdict::inconclusive);
}

TEST(StudyFindings, SingleModalityAttackBreaksWhenBelowTheUntouchedModelsCleanAccuracy) {
  // Audio attacked: the late model must stay at or above video-only's clean 0.6 (video attacked, 0.85 ≥ 0.8).
  EXPECT_EQ(study::finding_single_modality(base(0.5, 0.59)).verdict, Verdict::holds);
  EXPECT_EQ(study::finding_single_modality(base(0.5, 0.6)).verdict, Verdict::does_not_hold);
}

TEST(StudyFindings, MetricsTrackRobustnessBySpearmanRank) {
  auto r = base(0.5, 0.7);
  // retained (PGD, own scope): audio 0.5625, video ≈ 0.875, late ≈ 0.556 → convexity in the same order.
  r.models[0].latent = latent("audio", 0.5, 0.1);
  r.models[1].latent = latent("video", 0.9, 0.1);
  r.models[2].latent = latent("fused", 0.3, 0.1);
  EXPECT_EQ(study::finding_metrics_track(r).verdict, Verdict::holds);
  r.models[1].latent = latent("video", 0.1, 0.1);  // the most robust model now has the least convex latent
  r.models[2].latent = latent("fused", 0.9, 0.1);
  const auto f = study::finding_metrics_track(r);
  EXPECT_EQ(f.verdict, Verdict::does_not_hold) << f.evidence;
  EXPECT_NE(f.evidence.find("over 3 models"), std::string::npos);
}

TEST(StudyFindings, Spearman) {
  EXPECT_DOUBLE_EQ(study::spearman({1, 2, 3, 4}, {10, 20, 30, 40}), 1.0);
  EXPECT_DOUBLE_EQ(study::spearman({1, 2, 3, 4}, {4, 3, 2, 1}), -1.0);
  EXPECT_DOUBLE_EQ(study::spearman({1, 2, 3, 4}, {1, 4, 9, 1000}), 1.0);  // ranks, not values
  EXPECT_TRUE(std::isnan(study::spearman({1, 2}, {1, 2})));
  EXPECT_TRUE(std::isnan(study::spearman({1, NAN, 3, NAN}, {1, 2, 3, 4})));             // two finite pairs left
  EXPECT_NEAR(study::spearman({1, 1, 2, 3}, {1, 2, 3, 4}), 0.9486832980505138, 1e-12);  // ties averaged
}

study::StudyResults defenses(double guided, std::int64_t guided_cost) {
  study::StudyResults r = base(0.5, 0.7);
  auto d = [&](const std::string& name, double robust, std::int64_t cost) {
    auto m = model(ModelKind::late, 0.9, {{"joint", {0.9, robust, robust}}}, name);
    m.train.cost.backward_examples = cost;
    r.defenses.push_back(m);
  };
  d("plain", 0.1, 1000);
  d("guided", guided, guided_cost);
  d("pgd-at", 0.5, 6000);
  return r;
}

TEST(StudyFindings, GuidedMixupAgainstAdversarialTrainingGainAndCost) {
  EXPECT_EQ(study::finding_guided_mixup(defenses(0.45, 1000)).verdict, Verdict::holds);  // gain 0.35 ≥ 0.8·0.4
  EXPECT_EQ(study::finding_guided_mixup(defenses(0.45, 4000)).verdict, Verdict::inconclusive);   // too costly
  EXPECT_EQ(study::finding_guided_mixup(defenses(0.25, 1000)).verdict, Verdict::does_not_hold);  // gain 0.15 < 0.2
  auto r = defenses(0.45, 1000);
  r.defenses[2].sweeps = model(ModelKind::late, 0.9, {{"joint", {0.9, 0.1, 0.1}}}).sweeps;  // PGD-AT gains nothing
  const auto f = study::finding_guided_mixup(r);
  EXPECT_EQ(f.verdict, Verdict::inconclusive);
  EXPECT_NE(f.evidence.find("gains nothing"), std::string::npos);
}

TEST(StudyFindings, TablesAndJsonCarryEveryModelAndVerdict) {
  auto r = defenses(0.45, 1000);
  const auto fs = study::read_findings(r);
  ASSERT_EQ(fs.size(), 4u);
  const auto md = study::findings_markdown(fs);
  EXPECT_NE(md.find("| 3 | metric-guided"), std::string::npos);
  EXPECT_NE(md.find("**holds**"), std::string::npos);
  const auto json = study::findings_json(fs);
  EXPECT_NE(json.find("\"verdict\":\"holds\""), std::string::npos) << json;
  const auto table = study::summary_table(r.models, r.ref);
  for (const char* name : {"| audio-only |", "| video-only |", "| late |"})
    EXPECT_NE(table.find(name), std::string::npos);
  const auto d = study::defenses_table(r.defenses, r.ref);
  EXPECT_NE(d.find("| pgd-at | 0.900 | 0.500 |"), std::string::npos) << d;
  EXPECT_NE(d.find("6.000×"), std::string::npos) << d;
  std::vector<const ModelResult*> all;
  for (const auto& m : r.models) all.push_back(&m);
  const auto csv = study::robustness_csv(all);
  // header + (3 points × 2 attacks) for audio-only and video-only + 3 scopes × 6 for late
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 6 + 6 + 18);
}

TEST(StudyModels, NamesRoundTripAndUnknownNamesAreRejected) {
  for (auto k : study::kAllModels) EXPECT_EQ(study::parse_model_kind(study::model_name(k)), k);
  EXPECT_EQ(study::parse_model_kind("audio"), ModelKind::audio);
  try {
    study::parse_model_kind("attention");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown model 'attention'"), std::string::npos);
  }
}

TEST(StudyTrainRecord, MetadataRoundTripsAndBadValuesAreNamed) {
  study::TrainRecord r;
  r.model = "mid";
  r.defense = "guided";
  r.cost.seconds = 12.5;
  r.cost.backward_examples = 4000;
  r.steps = 63;
  r.test_accuracy = 0.75;
  const auto back = study::TrainRecord::from_metadata(r.to_metadata(), "x.safetensors");
  EXPECT_TRUE(back.reused);
  EXPECT_EQ(back.model, "mid");
  EXPECT_EQ(back.defense, "guided");
  EXPECT_DOUBLE_EQ(back.cost.seconds, 12.5);
  EXPECT_EQ(back.cost.backward_examples, 4000);
  EXPECT_EQ(back.steps, 63);
  EXPECT_DOUBLE_EQ(back.test_accuracy, 0.75);
  EXPECT_TRUE(std::isnan(back.test_accuracy_audio_only));
  auto md = r.to_metadata();
  md["study.seconds"] = "fast";
  try {
    study::TrainRecord::from_metadata(md, "x.safetensors");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.safetensors: malformed value 'fast' for 'study.seconds'"),
              std::string::npos)
        << e.what();
  }
  md.erase("study.steps");
  md["study.seconds"] = "1";
  EXPECT_THROW(study::TrainRecord::from_metadata(md, "x.safetensors"), Error);
}

}  // namespace
