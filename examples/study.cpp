// study: the main job. Runs the whole study of ../shared/PAPER.md on AV-Digits — six models with
// identical encoders, FGSM/PGD ε sweeps under audio-only, video-only and joint attacks, latent
// density and convexity, the late-fusion model under mix-up, metric-guided mix-up and PGD-AT — and
// writes results/ (summary.md, study.json, CSV tables, SVG plots) with a reading of which findings
// hold here. A re-run reuses the feature cache and the checkpoints (--fresh retrains).
//
//   build/release/examples/study --data build/release/av-digits --out results
#include <avgrad/study/study.hpp>

#include "common/cli.hpp"

int main(int argc, char** argv) {
  using namespace avgrad;
  examples::CommonOptions o;
  std::vector<std::string> model_names, defenses{"mixup", "guided", "pgd-at"};
  study::DefenseConfig dc;
  bool fresh = false;

  CLI::App app{"The audio-visual robustness study on AV-Digits, end to end (docs/RESULTS.md)", "study"};
  examples::add_io_options(app, o, "results folder (summary.md, study.json, CSV, plots/, checkpoints/, cache/)");
  examples::add_feature_options(app, o);
  examples::add_train_options(app, o);
  examples::add_attack_options(app, o);
  app.add_option("--models", model_names,
                 "models to run (default all): audio-only, video-only, early, mid, late, super-late, bottleneck")
      ->delimiter(',');
  app.add_option("--defenses", defenses,
                 "defenses of the late-fusion model besides plain training: mixup, guided, pgd-at, fgsm-at, trades "
                 "(\"none\": no defense)")
      ->capture_default_str()
      ->delimiter(',');
  app.add_option("--ref-eps", dc.eps_audio,
                 "headline ε_audio (a point of --eps): defenses train at it, tables report it")
      ->capture_default_str();
  app.add_option("--at-steps", dc.at_steps, "PGD-AT inner steps")->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--heldout", dc.heldout, "validation examples guided mix-up measures its metrics on")
      ->capture_default_str()
      ->check(CLI::Range(2, 1000000000));
  app.add_flag("--fresh", fresh, "recompute the features and retrain every model (ignore the cache and checkpoints)");
  CLI11_PARSE(app, argc, argv);
  examples::apply(o);

  return examples::guarded("study", [&] {
    study::StudyConfig c;
    c.data = o.data;
    c.out = o.out;
    c.features = o.features;
    c.train = o.train;
    c.attack = o.attack;
    if (!model_names.empty()) {
      c.models.clear();
      for (const auto& n : model_names) c.models.push_back(study::parse_model_kind(n));
    }
    c.defenses = defenses;
    if (c.defenses.size() == 1 && c.defenses[0] == "none") c.defenses.clear();
    c.defense = dc;
    c.reuse = !fresh;
    c.quiet = o.quiet;
    study::run_study(c);
  });
}
