// audioset_features: the study pipeline (train → attack → latent metrics → result files) on the
// reference code's AudioSet feature files (HDF5: feat_a (N, 400, 64), feat_v (N, 10, 2048),
// labels (N, 527) multi-hot), with the study's multi-label attention-pool head, BCE, mAP and
// L∞ PGD under audio-only, video-only and joint threat models.
//
//   audioset_features --train bal_train.h5 --test eval.h5 --model late --out results/audioset
//
// Features, not raw signals, are attacked, as in the study: the budgets are on the file's
// normalised log-mel and frame-embedding values (the study's ε = 0.1). Models are the study's
// factories at StudyOptions::small sizes adapted to the file's shapes (so a run fits on a
// laptop), or the study's full sizes with --full.
#include <omp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <avgrad/avgrad.hpp>
#include <avgrad/data/hdf5.hpp>
#include <avgrad/train/trainer.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/report_helpers.hpp"

using namespace avgrad;
namespace fs = std::filesystem;
using Head = models::AttentionPoolHead<float>;
using namespace examples;  // as_batches, the summary cells, the option validators

namespace {

struct Options {
  std::string train_file, test_file, out = "results/audioset", model = "late";
  double test_fraction = 0.2;
  std::int64_t limit = 0, epochs = 5, batch = 32, attack_examples = 200, pgd_steps = 10;
  std::int64_t convexity_pairs = 2000, knn = 10;
  double lr = 1e-3, eps_video = 0.1;
  std::vector<double> eps{0.0, 0.02, 0.05, 0.1};
  bool full = false, quiet = false;
  std::uint64_t seed = 1;
  int threads = 2;
};

/// Reads samples [first, first + count) of the file into memory: the study's sets are small
/// enough (20k clips ≈ 4 GB as float), and training then draws batches without disk reads.
train::TensorData<float> load(const data::AudioSetFeatures& file, std::int64_t first, std::int64_t count, bool quiet) {
  using F = data::AudioSetFeatures;
  train::TensorData<float> d;
  d.audio = Tensor<float, Cpu>::empty(Shape{count, F::kAudioFrames, F::kMelBins});
  d.video = Tensor<float, Cpu>::empty(Shape{count, F::kVideoFrames, F::kVideoDim});
  d.y.multi_hot = Tensor<float, Cpu>::empty(Shape{count, F::kClasses});
  std::unique_ptr<ProgressBar> bar;
  if (!quiet) bar = std::make_unique<ProgressBar>("read " + fs::path(file.path()).filename().string(), count);
  for (std::int64_t i = 0; i < count; ++i) {
    const auto s = file.get(first + i);  // checks the row: finite features, labels in {0, 1}
    std::copy_n(s.audio.data(), s.audio.numel(), d.audio.data() + i * s.audio.numel());
    std::copy_n(s.video.data(), s.video.numel(), d.video.data() + i * s.video.numel());
    std::copy_n(s.labels.data(), s.labels.numel(), d.y.multi_hot.data() + i * s.labels.numel());
    if (bar && (i % 64 == 63 || i + 1 == count)) bar->update(i + 1);
  }
  return d;
}

/// Train, evaluate clean, sweep PGD over ε per threat model, measure the latent spaces, write it all.
template <class Model> void run(Model& model, const Options& o, const train::TensorData<float>& train_set,
                                const train::TensorData<float>& test_set) {
  const fs::path out = o.out;
  fs::create_directories(out);
  // The trainer appends to its logs; a rerun into the same folder starts them afresh.
  for (const char* f : {"train_log.csv", "train_log.jsonl"}) fs::remove(out / f);

  // 1. Train with BCE (the multi-hot labels select it), Adam, linear warm-up then linear decay.
  train::ShuffledBatches<float> batches(train_set, o.batch, o.seed);
  const std::int64_t total_steps = o.epochs * batches.batches_per_epoch();
  optim::Adam<float> adam(model.parameters(), {.lr = o.lr});
  optim::LinearWarmupLinearDecayLR sched(
      adam, {.warmup_steps = std::min<std::int64_t>(100, total_steps / 10), .total_steps = total_steps});
  train::PlainTraining<Model> plain;
  // Validation "accuracy" of a multi-label model is exact set match, too strict to pick a
  // checkpoint by: the best checkpoint follows the validation BCE instead.
  train::Trainer<Model> trainer(model, adam, plain,
                                {.epochs = o.epochs,
                                 .monitor_loss = true,
                                 .checkpoint_dir = out / "checkpoints",
                                 .log_csv = out / "train_log.csv",
                                 .log_jsonl = out / "train_log.jsonl",
                                 .progress = !o.quiet,
                                 .seed = o.seed},
                                &sched);
  const auto fit = trainer.fit(batches, &test_set);

  // 2. Clean mAP on the whole test set.
  const Batches all = as_batches(test_set, test_set.size(), 64);
  double clean_map = NAN, clean_auc = NAN;
  {
    NoGradGuard no_grad;
    model.eval();
    std::vector<Tensor<float, Cpu>> logits;
    for (const auto& [x, y] : all) logits.push_back(model.forward(x).logits);
    const auto m = metrics::multilabel_metrics(sigmoid(concat(logits, 0)), test_set.y.multi_hot);
    clean_map = m.map;
    clean_auc = m.mean_auc;
  }
  std::printf("trained %lld steps in %s; test mAP %.4f, mean AUC %.4f\n", static_cast<long long>(fit.steps),
              ProgressBar::format_duration(fit.cost.seconds).c_str(), clean_map, clean_auc);

  // 3. PGD (L∞, BCE objective, step 2.5·ε/steps) over the ε grid, per threat model the model
  //    can be attacked under: a uni-modal model ignores the other input, so only its own.
  const double eps_max = o.eps.back();
  const attacks::Budget ba{.eps = eps_max, .step = 2.5 * eps_max / static_cast<double>(o.pgd_steps)};
  const attacks::Budget bv{.eps = o.eps_video, .step = 2.5 * o.eps_video / static_cast<double>(o.pgd_steps)};
  const attacks::Pgd<float> pgd({.steps = static_cast<int>(o.pgd_steps), .seed = o.seed},
                                attacks::Objective<float>::of(attacks::LossKind::bce));
  const Batches attacked = as_batches(test_set, o.attack_examples, 32);
  attacks::EvaluateOptions eo;
  eo.quiet = o.quiet;
  std::vector<attacks::EpsilonSweep> sweeps;
  const auto has = model.modalities();
  if (has.audio && has.video) {
    sweeps = attacks::epsilon_sweeps_by_modality(model, attacked, attacks::attack_spec(pgd),
                                                 attacks::ThreatModel::joint(ba, bv), o.eps, eo);
  } else if (has.audio) {
    sweeps.push_back(attacks::epsilon_sweep(model, attacked, attacks::attack_spec(pgd),
                                            attacks::ThreatModel::audio_only(ba), o.eps, eo));
  } else {
    std::vector<double> grid;  // the video ε keeps its ratio to the audio grid
    for (double e : o.eps) grid.push_back(e * o.eps_video / eps_max);
    sweeps.push_back(attacks::epsilon_sweep(model, attacked, attacks::attack_spec(pgd),
                                            attacks::ThreatModel::video_only(bv), grid, eo));
  }
  attacks::write_markdown(sweeps, out / "robustness.md");
  attacks::write_csv(sweeps, out / "robustness.csv");
  attacks::write_json(sweeps, out / "robustness.json");

  // 4. Latent density and convexity per space (p_c ≥ 0.1 counts as class c, as the study's code).
  metrics::LatentReportOptions lo;
  lo.density.k = o.knn;
  lo.density.seed = o.seed;
  lo.convexity.pairs = o.convexity_pairs;
  lo.convexity.seed = o.seed;
  lo.quiet = o.quiet;
  const auto latent = metrics::latent_report(model, all, lo);
  metrics::write_markdown(latent, out / "latent.md");
  metrics::write_csv(latent, out / "latent.csv");
  metrics::write_json(latent, out / "latent.json");

  // 5. One summary: the run's configuration, clean mAP, training cost, robust mAP at the largest ε.
  std::string md = "# AudioSet features: " + o.model + " model\n\n";
  md += detail::concat("train ", train_set.size(), " / test ", test_set.size(), " clips (", o.train_file, "), ",
                       o.full ? "full" : "small", " sizes, ", o.epochs, " epochs, batch ", o.batch, ", lr ", o.lr,
                       "\n\nclean test mAP ", json_number(clean_map), ", mean AUC ", json_number(clean_auc),
                       "; training ", ProgressBar::format_duration(fit.cost.seconds), ", ", fit.cost.forward_passes,
                       " forward / ", fit.cost.backward_passes,
                       " backward passes\n\n| threat model | ε audio | ε video | robust mAP |\n",
                       "|---|---:|---:|---:|\n");
  std::string js = detail::concat(
      "{\"dataset\":\"audioset_features\",\"model\":", json_string(o.model),
      ",\"full_size\":", o.full ? "true" : "false", ",\"train_examples\":", train_set.size(),
      ",\"test_examples\":", test_set.size(), ",\"attacked_examples\":", std::min(o.attack_examples, test_set.size()),
      ",\"epochs\":", o.epochs, ",\"batch\":", o.batch, ",\"lr\":", json_number(o.lr),
      ",\"clean_map\":", json_number(clean_map), ",\"clean_mean_auc\":", json_number(clean_auc),
      ",\"train_seconds\":", json_number(fit.cost.seconds), ",\"steps\":", fit.steps, ",\"robust\":[");
  for (std::size_t i = 0; i < sweeps.size(); ++i) {
    const auto& p = sweeps[i].points.back();
    md += detail::concat("| ", sweeps[i].scope, " | ", md_number(p.eps_audio), " | ", md_number(p.eps_video), " | ",
                         json_number(p.summary.robust_map), " |\n");
    js += detail::concat(i ? "," : "", "{\"threat_model\":", json_string(sweeps[i].scope),
                         ",\"eps_audio\":", json_number(p.eps_audio), ",\"eps_video\":", json_number(p.eps_video),
                         ",\"robust_map\":", json_number(p.summary.robust_map), "}");
  }
  js += "],\"latent\":[";
  for (std::size_t i = 0; i < latent.spaces.size(); ++i) {
    const auto& s = latent.spaces[i];
    md += i ? "" : "\n| space | purity | convexity |\n|---|---:|---:|\n";
    md += detail::concat("| ", s.space, " | ", md_number(s.mean_purity), " | ", md_number(s.mean_convexity), " |\n");
    js += detail::concat(i ? "," : "", "{\"space\":", json_string(s.space),
                         ",\"mean_purity\":", json_number(s.mean_purity),
                         ",\"mean_convexity\":", json_number(s.mean_convexity), "}");
  }
  js += "]}\n";
  write_file_atomic(out / "summary.md", md);
  write_file_atomic(out / "summary.json", js);
  std::printf("results in %s: summary, robustness and latent tables (.md/.csv/.json), train_log, checkpoints/\n",
              out.string().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"The study pipeline (train, PGD attacks, latent metrics) on AudioSet feature files (HDF5)."};
  app.option_defaults()->always_capture_default();
  app.add_option("--train", o.train_file,
                 "HDF5 feature file to train on (feat_a, feat_v, labels; flat or e_<i> groups)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--test", o.test_file, "HDF5 feature file to evaluate on; empty: the last --test-fraction of --train")
      ->check(CLI::ExistingFile);
  app.add_option("--test-fraction", o.test_fraction, "share of --train held out for testing when --test is not given")
      ->check(CLI::Range(0.01, 0.9));
  app.add_option("--limit", o.limit, "read at most this many clips from each file (0: all)")->check(kNonNegative);
  app.add_option("--model", o.model, "the study model")
      ->check(CLI::IsMember({"audio", "video", "early", "mid", "late", "super-late"}));
  app.add_flag("--full", o.full, "the study's full sizes (10-layer CNN stem, 2048-wide video transformer)");
  app.add_option("--epochs", o.epochs, "training epochs")->check(kPositive);
  app.add_option("--batch", o.batch, "minibatch size")->check(kPositive);
  app.add_option("--lr", o.lr, "Adam peak learning rate (the study: 4e-4 at full size)")->check(kPositive);
  app.add_option("--eps", o.eps, "ascending audio L∞ ε grid on the normalised log-mel features")
      ->check(kNonNegative)
      ->delimiter(',');
  app.add_option("--eps-video", o.eps_video, "video L∞ ε at the largest audio ε (scaled with it along the grid)")
      ->check(kPositive);
  app.add_option("--pgd-steps", o.pgd_steps, "PGD steps (step size 2.5·ε/steps)")->check(kPositive);
  app.add_option("--attack-examples", o.attack_examples, "test clips attacked (the first ones)")->check(kPositive);
  app.add_option("--convexity-pairs", o.convexity_pairs, "interpolated pairs per class for the convexity metric")
      ->check(kPositive);
  app.add_option("--knn", o.knn, "k of the kNN density metrics")->check(kPositive);
  app.add_option("--out", o.out, "folder for the results (created)");
  app.add_option("--seed", o.seed, "initialisation, data order and attack seed");
  app.add_option("--threads", o.threads, "OpenMP threads")->check(kPositive);
  app.add_flag("--quiet", o.quiet, "no progress bars");
  CLI11_PARSE(app, argc, argv);
  if (!std::is_sorted(o.eps.begin(), o.eps.end()) || o.eps.empty() || o.eps.back() <= 0) {
    std::fprintf(stderr, "audioset_features: --eps must be an ascending list ending in a positive value\n");
    return 2;
  }
  omp_set_num_threads(o.threads);

  try {
    // Open both files first: a bad path or a wrong shape stops the run before any work.
    const auto train_file = data::AudioSetFeatures::open(o.train_file);
    const auto test_file = o.test_file.empty() ? train_file : data::AudioSetFeatures::open(o.test_file);
    const auto cap = [&](std::int64_t n) { return o.limit > 0 ? std::min(n, o.limit) : n; };
    train::TensorData<float> train_set, test_set;
    if (o.test_file.empty()) {
      const std::int64_t n = cap(train_file.size());
      const auto n_test = static_cast<std::int64_t>(std::llround(o.test_fraction * static_cast<double>(n)));
      if (n - n_test < 1 || n_test < 2)
        throw std::runtime_error(detail::concat(o.train_file, ": ", n, " clips are too few to hold out ",
                                                o.test_fraction, " for testing (need 2 or more test clips)"));
      train_set = load(train_file, 0, n - n_test, o.quiet);
      test_set = load(test_file, n - n_test, n_test, o.quiet);
    } else {
      train_set = load(train_file, 0, cap(train_file.size()), o.quiet);
      test_set = load(test_file, 0, cap(test_file.size()), o.quiet);
      if (train_set.size() < 1 || test_set.size() < 2)
        throw std::runtime_error(detail::concat("need at least 1 training clip and 2 test clips; ", o.train_file,
                                                " has ", train_set.size(), ", ", o.test_file, " has ",
                                                test_set.size()));
    }

    // The small sizes, with the input shapes of the file (400 × 64 audio, 10 × 2048 video).
    using F = data::AudioSetFeatures;
    auto so = o.full ? models::study::StudyOptions{} : models::study::StudyOptions::small(F::kClasses);
    so.num_classes = F::kClasses;
    so.audio_frames = F::kAudioFrames;
    so.audio.stem.num_bins = F::kMelBins;
    so.video_frames = so.video.num_frames = F::kVideoFrames;
    so.video_dim = so.video.input_dim = F::kVideoDim;
    std::printf("audioset_features: %s model (%s sizes), %lld train / %lld test clips\n", o.model.c_str(),
                o.full ? "full" : "small", static_cast<long long>(train_set.size()),
                static_cast<long long>(test_set.size()));

    Generator init(o.seed);
    default_generator().manual_seed(o.seed);  // dropout
    namespace st = models::study;
    if (o.model == "audio")
      run(*st::audio_model<float, Head>(so, init), o, train_set, test_set);
    else if (o.model == "video")
      run(*st::video_model<float, Head>(so, init), o, train_set, test_set);
    else if (o.model == "early")
      run(*st::early_fusion<float, Head>(so, init), o, train_set, test_set);
    else if (o.model == "mid")
      run(*st::mid_fusion<float, Head>(so, init), o, train_set, test_set);
    else if (o.model == "late")
      run(*st::late_fusion<float, Head>(so, init), o, train_set, test_set);
    else
      run(*st::super_late<float, Head>(so, init), o, train_set, test_set);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "audioset_features: %s\n", e.what());
    return 2;
  }
  return 0;
}
