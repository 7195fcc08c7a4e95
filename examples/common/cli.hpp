// Command-line options the study's example programs share (CLI11): the dataset, the output
// folder, the feature, training and attack settings, threads and progress. Each program adds its
// own options beside these; `--help` lists all of them with their defaults.
#pragma once

#include <omp.h>

#include <CLI/CLI.hpp>
#include <avgrad/study/pipeline.hpp>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace examples {

namespace study = avgrad::study;

struct CommonOptions {
  std::string data, out = "results";
  study::FeatureOptions features{};
  study::TrainConfig train{};
  study::AttackConfig attack{};
  int threads = 2;
  bool quiet = false;
};

/// --data, --out and --threads / --quiet.
inline void add_io_options(CLI::App& app, CommonOptions& o, const std::string& out_help) {
  app.add_option("--data", o.data, "AV-Digits folder (built by the av_digits target; see docs/data.md)")
      ->required()
      ->check(CLI::ExistingDirectory);
  app.add_option("--out", o.out, out_help)->capture_default_str();
  app.add_option("--threads", o.threads, "OpenMP threads")->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_flag("--quiet", o.quiet, "no progress bars");
}

/// Feature limits (the number of examples used per split).
inline void add_feature_options(CLI::App& app, CommonOptions& o) {
  app.add_option("--train-limit", o.features.train_limit, "training examples used (0: all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--val-limit", o.features.val_limit, "validation examples used (0: all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--test-limit", o.features.test_limit, "test examples used (0: all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
}

inline void add_train_options(CLI::App& app, CommonOptions& o) {
  app.add_option("--epochs", o.train.epochs, "training epochs")->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_option("--batch", o.train.batch, "minibatch size")->capture_default_str()->check(CLI::Range(1, 1000000));
  app.add_option("--lr", o.train.lr, "Adam learning rate")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--seed", o.train.seed, "initialisation, data order and defense seed")->capture_default_str();
  app.add_option("--matmul-precision", o.train.precision,
                 "GEMM operands: float32, bfloat16 or float16 (float accumulation; training and attacks)")
      ->transform(CLI::CheckedTransformer(
          std::map<std::string, avgrad::MatmulPrecision>{{"float32", avgrad::MatmulPrecision::float32},
                                                         {"fp32", avgrad::MatmulPrecision::float32},
                                                         {"bfloat16", avgrad::MatmulPrecision::bfloat16},
                                                         {"bf16", avgrad::MatmulPrecision::bfloat16},
                                                         {"float16", avgrad::MatmulPrecision::float16},
                                                         {"fp16", avgrad::MatmulPrecision::float16}},
          CLI::ignore_case))
      ->default_str("float32");
}

inline void add_attack_options(CLI::App& app, CommonOptions& o) {
  app.add_option("--eps", o.attack.eps_grid,
                 "ascending ε grid on the z-scored audio features (0 gives the clean point)")
      ->capture_default_str()
      ->delimiter(',');
  app.add_option("--video-ratio", o.attack.video_ratio, "ε_video / ε_audio (video ε is on pixels in [0, 1])")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--pgd-steps", o.attack.pgd_steps, "PGD steps (each ε/4)")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  app.add_flag("!--no-fgsm", o.attack.fgsm, "do not sweep FGSM (PGD only)");
  app.add_option("--norm", o.attack.norm, "ball of each modality's perturbation: linf (the study's) or l2")
      ->transform(
          CLI::CheckedTransformer(std::map<std::string, avgrad::attacks::Norm>{{"linf", avgrad::attacks::Norm::linf},
                                                                               {"l2", avgrad::attacks::Norm::l2}},
                                  CLI::ignore_case))
      ->default_str("linf");
}

/// Applies threads/quiet to the configs; call after parsing.
inline void apply(CommonOptions& o) {
  omp_set_num_threads(o.threads);
  o.train.quiet = o.quiet;
  o.attack.quiet = o.quiet;
}

/// Runs `body`; an avgrad error (bad input, missing file) becomes one line on stderr and exit code 2.
template <class F> int guarded(const char* program, F&& body) {
  try {
    body();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 2;
  }
}

}  // namespace examples
