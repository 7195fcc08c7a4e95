// The study program's command line, shared by the CPU build (examples/study.cpp) and the CUDA
// build (examples/cuda/study.cu): options → StudyConfig, then `run` (run_study on one device).
#pragma once

#include <avgrad/study/study.hpp>

#include <string>
#include <vector>

#include "common/cli.hpp"

namespace examples {

/// Parses the study's options and calls run(config) with errors reported as "<program>: ...".
template <class Run> int study_main(int argc, char** argv, const char* program, const char* title, Run&& run) {
  CommonOptions o;
  std::vector<std::string> model_names, defenses{"mixup", "guided", "pgd-at"};
  study::DefenseConfig dc;
  bool fresh = false;

  CLI::App app{title, program};
  add_io_options(app, o, "results folder (summary.md, study.json, CSV, plots/, checkpoints/, cache/)");
  add_feature_options(app, o);
  add_train_options(app, o);
  add_attack_options(app, o);
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
  apply(o);

  return guarded(program, [&] {
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
    run(c);
  });
}

}  // namespace examples
