// kinetics_sounds: the study pipeline (train → attack → latent metrics → result files) on a
// Kinetics-Sounds-style folder of video clips with a label CSV, decoded once through FFmpeg into
// a cache; single-label (ClassifierHead, accuracy), L∞ PGD under audio-only, video-only and
// joint threat models.
//
//   kinetics_sounds --csv ks/train.csv --test-csv ks/test.csv --clips ks/videos --model late
//                   --out results/kinetics_sounds
//
// Features, not raw signals, are attacked, as in the study:
//  - audio: Kaldi fbank (25 ms windows, 10 ms shift, --mel-bins bins) of the mono 16 kHz
//    soundtrack, z-scored per bin with training statistics: a (frames, bins) sequence;
//  - video: the clip at --fps frames per second, decoded straight to grayscale at --size ×
//    --size pixels (FFmpeg scales), each frame's pixels in [0, 1] flattened: a (frames, size²)
//    sequence. Small and model-free on purpose: no pretrained image network is needed, and
//    the video budget is in pixel units (ε = 8/255 is a familiar radius).
// Models are the study's factories at StudyOptions::small sizes adapted to these shapes.
#include <omp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <avgrad/audio/frontend.hpp>
#include <avgrad/avgrad.hpp>
#include <avgrad/data/clip_folder.hpp>
#include <avgrad/train/trainer.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/report_helpers.hpp"

using namespace avgrad;
namespace fs = std::filesystem;
using Head = models::ClassifierHead<float>;
using namespace examples;  // as_batches, the summary cells, the option validators

namespace {

struct Options {
  std::string csv, test_csv, clips, cache, out = "results/kinetics_sounds", model = "late";
  std::vector<std::string> classes;
  double fps = 4, seconds = 2, test_fraction = 0.25;
  int size = 32, sample_rate = 16000;
  std::int64_t mel_bins = 32, epochs = 5, batch = 32, attack_examples = 200, pgd_steps = 10;
  std::int64_t convexity_pairs = 2000, knn = 10;
  double lr = 1e-3, eps_video = 8.0 / 255;
  std::vector<double> eps{0.0, 0.05, 0.1, 0.25};
  bool full = false, skip_bad = false, rebuild_cache = false, quiet = false;
  std::uint64_t seed = 1;
  int threads = 2;
};

/// Decodes the clips the CSV lists into `cache` once. Later runs reuse the cache while its stamp
/// (the CSV's path, size and modification time and the decoding options) matches; an edited CSV,
/// other options or --rebuild-cache decode again.
data::ClipFolder open_cache(const Options& o, const std::string& csv, const fs::path& cache) {
  data::ClipFolderOptions co;
  co.fps = o.fps;
  co.width = co.height = o.size;
  co.format = data::PixelFormat::gray;
  co.seconds = o.seconds;
  co.sample_rate = o.sample_rate;
  co.classes = o.classes;
  co.require_audio = true;  // an audio-visual study: a clip without a soundtrack is a bad row
  co.progress = !o.quiet;
  const fs::path folder = o.clips.empty() ? fs::path(csv).parent_path() : fs::path(o.clips);
  std::string stamp =
      detail::concat(fs::absolute(csv).string(), "\n", fs::absolute(folder).string(), "\n", fs::file_size(csv), "\n",
                     fs::last_write_time(csv).time_since_epoch().count(), "\nfps ", o.fps, " size ", o.size,
                     " seconds ", o.seconds, " rate ", o.sample_rate, " skip_bad ", o.skip_bad, "\nclasses");
  for (const auto& c : o.classes) stamp += " " + c;
  stamp += "\n";
  const fs::path stamp_file = cache / "source.txt";
  if (!o.rebuild_cache && fs::is_regular_file(cache / data::ClipFolder::kManifest) && fs::is_regular_file(stamp_file)) {
    std::ifstream in(stamp_file, std::ios::binary);
    const std::string old((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (old == stamp) return data::ClipFolder::open(cache);
  }
  fs::remove(stamp_file);  // a failed build must not leave a stamp that matches
  const auto rep = data::ClipFolder::build_cache(csv, folder, cache, co, o.skip_bad);
  for (const auto& s : rep.skipped)
    std::fprintf(stderr, "kinetics_sounds: skipped %s:%lld (%s): %s\n", csv.c_str(), static_cast<long long>(s.line),
                 s.file.c_str(), s.reason.c_str());
  auto ds = data::ClipFolder::open(cache);
  write_file_atomic(stamp_file, stamp);
  return ds;
}

/// The clips `idx` as features: audio fbank (N, frames, bins) (normalised by `frontend`), video
/// (N, T, size²) in [0, 1], labels (N).
train::TensorData<float> features(const data::ClipFolder& ds, const std::vector<std::int64_t>& idx,
                                  audio::FrontEnd<float>& frontend, const std::string& what, bool quiet) {
  NoGradGuard no_grad;
  std::vector<Tensor<float, Cpu>> a, v;
  std::vector<std::int64_t> labels;
  std::unique_ptr<ProgressBar> bar;
  const auto n = static_cast<std::int64_t>(idx.size());
  if (!quiet) bar = std::make_unique<ProgressBar>(what, n);
  for (std::int64_t s = 0; s < n; s += 32) {
    std::vector<data::ClipSample> clips;
    for (std::int64_t i = s; i < std::min(n, s + 32); ++i) clips.push_back(ds.get(idx[static_cast<std::size_t>(i)]));
    for (const auto& c : clips) labels.push_back(c.label);
    const auto b = data::ClipFolder::collate(std::move(clips));  // video (B, T, 1, H, W), audio (B, S)
    a.push_back(frontend(b.audio));
    v.push_back(b.video.reshape({b.video.size(0), b.video.size(1), b.video.size(3) * b.video.size(4)}).contiguous());
    if (bar) bar->update(std::min(n, s + 32));
  }
  train::TensorData<float> d;
  d.audio = concat(a, 0);
  d.video = concat(v, 0);
  d.y.classes = from_vector<std::int64_t>(labels);
  return d;
}

audio::FrontEndOptions fbank_options(const Options& o) {
  audio::kaldi::FbankOptions fb;
  fb.sample_frequency = o.sample_rate;
  fb.num_mel_bins = o.mel_bins;
  fb.frame_length_ms = 25;
  fb.frame_shift_ms = 10;
  fb.dither = 0.0;  // deterministic features: the cache and the attacks see the same input
  audio::FrontEndOptions fo;
  fo.features = fb;
  fo.layout = audio::FeatureLayout::time_freq;  // (B, T, F), what the study's audio encoder reads
  return fo;
}

/// Train, evaluate clean, sweep PGD over ε per threat model, measure the latent spaces, write it all.
template <class Model> void run(Model& model, const Options& o, const train::TensorData<float>& train_set,
                                const train::TensorData<float>& test_set) {
  const fs::path out = o.out;
  fs::create_directories(out);
  for (const char* f : {"train_log.csv", "train_log.jsonl"}) fs::remove(out / f);  // the trainer appends

  // 1. Train with cross entropy, Adam, linear warm-up then linear decay; best checkpoint by accuracy.
  train::ShuffledBatches<float> batches(train_set, o.batch, o.seed);
  const std::int64_t total_steps = o.epochs * batches.batches_per_epoch();
  optim::Adam<float> adam(model.parameters(), {.lr = o.lr});
  optim::LinearWarmupLinearDecayLR sched(
      adam, {.warmup_steps = std::min<std::int64_t>(100, total_steps / 10), .total_steps = total_steps});
  train::PlainTraining<Model> plain;
  train::Trainer<Model> trainer(model, adam, plain,
                                {.epochs = o.epochs,
                                 .checkpoint_dir = out / "checkpoints",
                                 .log_csv = out / "train_log.csv",
                                 .log_jsonl = out / "train_log.jsonl",
                                 .progress = !o.quiet,
                                 .seed = o.seed},
                                &sched);
  const auto fit = trainer.fit(batches, &test_set);
  const auto clean = train::evaluate(model, test_set);
  std::printf("trained %lld steps in %s; test accuracy %.4f\n", static_cast<long long>(fit.steps),
              ProgressBar::format_duration(fit.cost.seconds).c_str(), clean.accuracy);

  // 2. PGD (L∞, cross entropy, step 2.5·ε/steps) over the ε grid, per threat model the model can
  //    be attacked under: a uni-modal model ignores the other input, so only its own. Pixels stay
  //    in [0, 1]; the z-scored fbank has no natural range.
  const double eps_max = o.eps.back();
  const attacks::Budget ba{.eps = eps_max, .step = 2.5 * eps_max / static_cast<double>(o.pgd_steps)};
  const attacks::Budget bv{.eps = o.eps_video,
                           .step = 2.5 * o.eps_video / static_cast<double>(o.pgd_steps),
                           .lo = 0,
                           .hi = 1,
                           .domain = attacks::Domain::pixels};
  const attacks::Pgd<float> pgd({.steps = static_cast<int>(o.pgd_steps), .seed = o.seed});
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

  // 3. Latent density and convexity per space (argmax = c counts as class c).
  metrics::LatentReportOptions lo;
  lo.density.k = o.knn;
  lo.density.seed = o.seed;
  lo.convexity.pairs = o.convexity_pairs;
  lo.convexity.seed = o.seed;
  lo.quiet = o.quiet;
  const auto latent = metrics::latent_report(model, as_batches(test_set, test_set.size(), 64), lo);
  metrics::write_markdown(latent, out / "latent.md");
  metrics::write_csv(latent, out / "latent.csv");
  metrics::write_json(latent, out / "latent.json");

  // 4. One summary: the run's configuration, clean accuracy, training cost, robust accuracy at the largest ε.
  std::string md = "# Kinetics-Sounds clips: " + o.model + " model\n\n";
  md += detail::concat("train ", train_set.size(), " / test ", test_set.size(), " clips (", o.csv, "), audio ",
                       train_set.audio.shape(), ", video ", train_set.video.shape(), ", ", o.epochs, " epochs, batch ",
                       o.batch, ", lr ", o.lr, "\n\nclean test accuracy ", json_number(clean.accuracy), "; training ",
                       ProgressBar::format_duration(fit.cost.seconds), ", ", fit.cost.forward_passes, " forward / ",
                       fit.cost.backward_passes, " backward passes\n\n",
                       "| threat model | ε audio | ε video | robust accuracy |\n|---|---:|---:|---:|\n");
  std::string js = detail::concat(
      "{\"dataset\":\"kinetics_sounds\",\"model\":", json_string(o.model), ",\"full_size\":", o.full ? "true" : "false",
      ",\"train_examples\":", train_set.size(), ",\"test_examples\":", test_set.size(),
      ",\"attacked_examples\":", std::min(o.attack_examples, test_set.size()), ",\"num_classes\":", model.num_classes(),
      ",\"epochs\":", o.epochs, ",\"batch\":", o.batch, ",\"lr\":", json_number(o.lr),
      ",\"clean_accuracy\":", json_number(clean.accuracy), ",\"train_seconds\":", json_number(fit.cost.seconds),
      ",\"steps\":", fit.steps, ",\"robust\":[");
  for (std::size_t i = 0; i < sweeps.size(); ++i) {
    const auto& p = sweeps[i].points.back();
    md += detail::concat("| ", sweeps[i].scope, " | ", md_number(p.eps_audio), " | ", md_number(p.eps_video), " | ",
                         json_number(p.summary.robust_accuracy), " |\n");
    js += detail::concat(i ? "," : "", "{\"threat_model\":", json_string(sweeps[i].scope),
                         ",\"eps_audio\":", json_number(p.eps_audio), ",\"eps_video\":", json_number(p.eps_video),
                         ",\"robust_accuracy\":", json_number(p.summary.robust_accuracy), "}");
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
  CLI::App app{"The study pipeline (train, PGD attacks, latent metrics) on a folder of video clips with a label CSV."};
  app.option_defaults()->always_capture_default();
  app.add_option("--csv", o.csv, "label CSV: file,label[,start[,end]] per clip (training clips)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--test-csv", o.test_csv, "label CSV of the test clips; empty: hold out --test-fraction of --csv")
      ->check(CLI::ExistingFile);
  app.add_option("--test-fraction", o.test_fraction, "share of --csv held out (seeded) when --test-csv is not given")
      ->check(CLI::Range(0.01, 0.9));
  app.add_option("--clips", o.clips, "folder the CSV's file names are relative to; empty: the CSV's folder")
      ->check(CLI::ExistingDirectory);
  app.add_option("--cache", o.cache, "decoded-clip cache folder; empty: <out>/cache");
  app.add_flag("--rebuild-cache", o.rebuild_cache, "decode the clips again even when the cache matches");
  app.add_flag("--skip-bad", o.skip_bad, "leave out unreadable clips and bad CSV rows (listed) instead of stopping");
  app.add_option("--classes", o.classes, "class names in label order, when the CSV labels are names; empty: integers")
      ->delimiter(',');
  app.add_option("--fps", o.fps, "video frames per second")->check(kPositive);
  app.add_option("--size", o.size, "frames are decoded to size × size grayscale pixels")->check(kPositive);
  app.add_option("--seconds", o.seconds, "clip length read from each clip's start")->check(kPositive);
  app.add_option("--sample-rate", o.sample_rate, "audio sample rate")->check(kPositive);
  app.add_option("--mel-bins", o.mel_bins, "Kaldi fbank mel bins (early fusion: must divide size²)")->check(kPositive);
  app.add_option("--model", o.model, "the study model")
      ->check(CLI::IsMember({"audio", "video", "early", "mid", "late", "super-late"}));
  app.add_flag("--full", o.full, "the study's full encoder sizes instead of StudyOptions::small");
  app.add_option("--epochs", o.epochs, "training epochs")->check(kPositive);
  app.add_option("--batch", o.batch, "minibatch size")->check(kPositive);
  app.add_option("--lr", o.lr, "Adam peak learning rate")->check(kPositive);
  app.add_option("--eps", o.eps, "ascending audio L∞ ε grid on the z-scored fbank")
      ->check(kNonNegative)
      ->delimiter(',');
  app.add_option("--eps-video", o.eps_video, "video L∞ ε (pixels in [0, 1]) at the largest audio ε")
      ->check(CLI::Range(1e-9, 1.0));
  app.add_option("--pgd-steps", o.pgd_steps, "PGD steps (step size 2.5·ε/steps)")->check(kPositive);
  app.add_option("--attack-examples", o.attack_examples, "test clips attacked (the first ones)")->check(kPositive);
  app.add_option("--convexity-pairs", o.convexity_pairs, "interpolated pairs per class for the convexity metric")
      ->check(kPositive);
  app.add_option("--knn", o.knn, "k of the kNN density metrics")->check(kPositive);
  app.add_option("--out", o.out, "folder for the results (created)");
  app.add_option("--seed", o.seed, "initialisation, split, data order and attack seed");
  app.add_option("--threads", o.threads, "OpenMP threads")->check(kPositive);
  app.add_flag("--quiet", o.quiet, "no progress bars");
  CLI11_PARSE(app, argc, argv);
  if (!std::is_sorted(o.eps.begin(), o.eps.end()) || o.eps.empty() || o.eps.back() <= 0) {
    std::fprintf(stderr, "kinetics_sounds: --eps must be an ascending list ending in a positive value\n");
    return 2;
  }
  omp_set_num_threads(o.threads);

  try {
    const fs::path cache = o.cache.empty() ? fs::path(o.out) / "cache" : fs::path(o.cache);
    const auto train_ds = open_cache(o, o.csv, cache / "train");
    const auto test_ds = o.test_csv.empty() ? train_ds : open_cache(o, o.test_csv, cache / "test");

    // Which clips train and which test: a seeded permutation of one CSV, or the two CSVs.
    std::vector<std::int64_t> train_idx(static_cast<std::size_t>(train_ds.size())), test_idx;
    std::iota(train_idx.begin(), train_idx.end(), 0);
    if (o.test_csv.empty()) {
      std::vector<std::int64_t> perm = train_idx;
      std::shuffle(perm.begin(), perm.end(), std::mt19937_64(o.seed));
      const auto n_test = static_cast<std::size_t>(std::llround(o.test_fraction * static_cast<double>(perm.size())));
      test_idx.assign(perm.end() - static_cast<std::ptrdiff_t>(n_test), perm.end());
      train_idx.assign(perm.begin(), perm.end() - static_cast<std::ptrdiff_t>(n_test));
    } else {
      test_idx.resize(static_cast<std::size_t>(test_ds.size()));
      std::iota(test_idx.begin(), test_idx.end(), 0);
    }
    if (train_idx.empty() || test_idx.size() < 2)
      throw std::runtime_error(detail::concat(o.csv, ": ", train_idx.size(), " training and ", test_idx.size(),
                                              " test clips; need at least 1 and 2"));

    // The fbank is normalised per bin with statistics of the training clips only.
    audio::FrontEnd<float> frontend(fbank_options(o));
    {
      NoGradGuard no_grad;
      audio::FeatureStatistics stats;
      for (std::size_t s = 0; s < train_idx.size(); s += 32) {
        std::vector<data::ClipSample> clips;
        for (std::size_t i = s; i < std::min(train_idx.size(), s + 32); ++i)
          clips.push_back(train_ds.get(train_idx[i]));
        stats.add(frontend.features(data::ClipFolder::collate(std::move(clips)).audio));
      }
      frontend.set_normalizer(stats, false);
    }
    const auto train_set = features(train_ds, train_idx, frontend, "train features", o.quiet);
    const auto test_set = features(test_ds, test_idx, frontend, "test features", o.quiet);

    std::int64_t classes = static_cast<std::int64_t>(o.classes.size());
    if (classes == 0) {  // integer labels: as many classes as the largest label says
      for (const auto* d : {&train_set, &test_set})
        for (auto l : d->y.classes.to_vector()) classes = std::max(classes, l + 1);
    }
    auto so = o.full ? models::study::StudyOptions{} : models::study::StudyOptions::small(classes);
    so.num_classes = classes;
    so.audio_frames = train_set.audio.size(1);
    so.audio.stem.num_bins = train_set.audio.size(2);
    so.video_frames = so.video.num_frames = train_set.video.size(1);
    so.video_dim = so.video.input_dim = train_set.video.size(2);
    std::printf("kinetics_sounds: %s model, %lld classes, %lld train / %lld test clips; audio %s, video %s\n",
                o.model.c_str(), static_cast<long long>(classes), static_cast<long long>(train_set.size()),
                static_cast<long long>(test_set.size()), train_set.audio.shape().str().c_str(),
                train_set.video.shape().str().c_str());

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
    std::fprintf(stderr, "kinetics_sounds: %s\n", e.what());
    return 2;
  }
  return 0;
}
