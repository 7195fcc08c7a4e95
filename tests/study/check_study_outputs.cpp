// Checks what the main job (examples/study) wrote: every file is there and parses, and the
// numbers are in sane ranges — accuracies in [0, 1], robust ≤ clean, ε = 0 gives clean accuracy,
// each model under the threat models it can be attacked with, four findings with a verdict.
// Exact values are not checked: they depend on the run.
//
//   STUDY_OUT=<folder> check_study_outputs [--gtest_filter=...]
//   STUDY_EXPECT_REUSED=1 also requires every model to have come from a reused checkpoint.
#include <gtest/gtest.h>

#include <avgrad/data/detail/json.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace {

namespace fs = std::filesystem;
namespace json = avgrad::detail::json;

fs::path out_dir() {
  const char* d = std::getenv("STUDY_OUT");
  return d ? fs::path(d) : fs::path();
}

std::string read(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

const json::Value& at(const json::Value& v, std::string_view key) {
  const auto* x = v.find(key);
  if (!x) throw std::runtime_error("study.json: missing key " + std::string(key));
  return *x;
}

double num(const json::Value& v, std::string_view key) {
  const auto& x = at(v, key);
  return x.kind == json::Value::Kind::Null ? NAN : x.as_double();
}

class StudyOutputs : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(out_dir().empty()) << "set STUDY_OUT to the study's output folder";
    ASSERT_TRUE(fs::is_regular_file(out_dir() / "study.json")) << out_dir();
    study_ = json::parse(read(out_dir() / "study.json"));
  }
  json::Value study_;
};

TEST_F(StudyOutputs, EveryFileIsWrittenAndNoTemporaryIsLeft) {
  for (const char* f :
       {"summary.md", "study.json", "training.csv", "robustness.csv", "latent.csv", "plots/robust_accuracy_audio.svg",
        "plots/robust_accuracy_video.svg", "plots/robust_accuracy_joint.svg", "plots/convexity_per_class.svg",
        "plots/defense_cost.svg", "cache/features.safetensors"}) {
    EXPECT_TRUE(fs::is_regular_file(out_dir() / f)) << f;
    EXPECT_GT(fs::file_size(out_dir() / f), 100u) << f;
  }
  for (const char* m :
       {"audio-only", "video-only", "early", "mid", "late", "bottleneck", "late-mixup", "late-guided", "late-pgd-at"})
    EXPECT_TRUE(fs::is_regular_file(out_dir() / "checkpoints" / (std::string(m) + ".safetensors"))) << m;
  for (const auto& e : fs::recursive_directory_iterator(out_dir())) {
    const auto name = e.path().filename().string();
    EXPECT_EQ(name.find(".tmp"), std::string::npos) << "left behind: " << e.path();
    EXPECT_EQ(name.find(".training"), std::string::npos) << "left behind: " << e.path();
  }
  const std::string svg = read(out_dir() / "plots/robust_accuracy_joint.svg");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
}

TEST_F(StudyOutputs, SummaryHasTheTablesAndTheReading) {
  const std::string md = read(out_dir() / "summary.md");
  for (const char* s : {"# Study results", "## Models (plain training)", "## Defenses (late fusion)",
                        "## Reading: the study's findings here", "| super-late |", "| bottleneck |", "| pgd-at |",
                        "](plots/robust_accuracy_joint.svg)"})
    EXPECT_NE(md.find(s), std::string::npos) << s;
}

TEST_F(StudyOutputs, ModelsHaveSaneAccuraciesAndSweeps) {
  const auto& models = at(study_, "models");
  ASSERT_EQ(models.items.size(), 7u);
  const bool expect_reused = std::getenv("STUDY_EXPECT_REUSED") != nullptr;
  std::set<std::string> names;
  const auto& grid = at(study_, "eps_grid_audio").items;
  for (const auto& m : models.items) {
    const std::string name = at(m, "model").string;
    names.insert(name);
    const auto& t = at(m, "train");
    for (const char* k : {"test_accuracy", "val_accuracy"}) {
      EXPECT_GE(num(t, k), 0.0) << name << " " << k;
      EXPECT_LE(num(t, k), 1.0) << name << " " << k;
    }
    EXPECT_GT(num(t, "test_accuracy"), 0.2) << name << ": a model that learned nothing (10 classes)";
    EXPECT_GT(at(t, "backward_examples").integer, 0) << name;
    if (expect_reused) {
      EXPECT_TRUE(at(t, "reused").boolean) << name << " was retrained on a re-run";
    }
    std::set<std::string> scopes;
    bool hurt = false;
    for (const auto& sw : at(m, "sweeps").items) {
      const std::string scope = at(sw, "scope").string;
      if (at(sw, "attack").string.rfind("PGD", 0) == 0) scopes.insert(scope);
      const auto& pts = at(sw, "points").items;
      ASSERT_EQ(pts.size(), grid.size()) << name << " " << scope;
      for (std::size_t i = 0; i < pts.size(); ++i) {
        const auto& s = at(pts[i], "summary");
        const double clean = num(s, "clean_accuracy"), robust = num(s, "robust_accuracy");
        EXPECT_GE(robust, 0.0);
        EXPECT_LE(robust, clean + 1e-12) << name << " " << scope << " point " << i;
        if (i == 0) {
          EXPECT_DOUBLE_EQ(robust, clean) << name << " " << scope << ": ε = 0 must be the clean point";
        }
      }
      const auto& last = at(pts.back(), "summary");
      hurt = hurt || num(last, "robust_accuracy") < num(last, "clean_accuracy");
    }
    EXPECT_TRUE(hurt) << name << ": no attack at the largest ε changed a single prediction";
    const std::set<std::string> want = name == "audio-only"   ? std::set<std::string>{"audio"}
                                       : name == "video-only" ? std::set<std::string>{"video"}
                                                              : std::set<std::string>{"audio", "video", "joint"};
    EXPECT_EQ(scopes, want) << name;
    const auto& latent = at(m, "latent");
    if (name == "super-late") continue;  // an ensemble has branch latents only
    ASSERT_TRUE(latent.is_object()) << name;
    for (const auto& sp : at(latent, "spaces").items)
      for (const char* k : {"mean_purity", "mean_convexity"}) {
        const double v = num(sp, k);
        EXPECT_TRUE(std::isnan(v) || (v >= 0 && v <= 1)) << name << " " << k << " = " << v;
      }
  }
  EXPECT_EQ(names,
            (std::set<std::string>{"audio-only", "video-only", "early", "mid", "late", "super-late", "bottleneck"}));
}

TEST_F(StudyOutputs, DefensesCostWhatTheyShould) {
  const auto& d = at(study_, "defenses").items;
  ASSERT_EQ(d.size(), 4u);
  std::map<std::string, std::int64_t> cost;
  for (const auto& m : d) cost[at(m, "defense").string] = at(at(m, "train"), "backward_examples").integer;
  ASSERT_EQ(cost.size(), 4u);
  // PGD-AT runs its inner attack's backward passes on top of the training pass.
  EXPECT_GT(cost["pgd-at"], 3 * cost["plain"]);
  EXPECT_EQ(cost["mixup"], cost["plain"]);
}

TEST_F(StudyOutputs, FindingsHaveVerdictsAndEvidence) {
  const auto& f = at(study_, "findings").items;
  ASSERT_EQ(f.size(), 4u);
  for (const auto& x : f) {
    const std::string v = at(x, "verdict").string;
    EXPECT_TRUE(v == "holds" || v == "does not hold" || v == "inconclusive") << v;
    EXPECT_FALSE(at(x, "evidence").string.empty());
  }
}

TEST_F(StudyOutputs, CsvTablesHaveOneRowPerItem) {
  const std::string training = read(out_dir() / "training.csv");
  EXPECT_EQ(std::count(training.begin(), training.end(), '\n'), 1 + 7 + 3);  // header, models, 3 defenses
  const std::string robust = read(out_dir() / "robustness.csv");
  EXPECT_EQ(robust.rfind("model,defense,attack,scope,eps_audio", 0), 0u);
}

}  // namespace
