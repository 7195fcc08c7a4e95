// train_defenses: trains the study's late-fusion model (StudyOptions::small sizes) on AV-Digits
// features with each defense — plain, input mix-up, metric-guided mix-up, PGD-AT — and prints
// clean accuracy, PGD robust accuracy and the training cost of each, the comparison of the
// study's claim 4 (guided mix-up ≈ adversarial training in protection, at a fraction of the cost).
//
// Features, not raw signals, are attacked, as in the study: audio = Kaldi fbank (40 bins, 98
// frames) z-scored per bin with training statistics; video = each frame's pixels in [0, 1]
// flattened, a (T, H·W) sequence. Budgets are L∞ on those features, the evaluation attack is
// PGD-10 on both modalities with the training budgets.
#include <omp.h>

#include <avgrad/avgrad.hpp>
#include <avgrad/data/av_digits.hpp>
#include <avgrad/train/adversarial.hpp>
#include <avgrad/train/guided_mixup.hpp>
#include <avgrad/train/trainer.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

using namespace avgrad;
using Model = models::study::LateFusionModel<float, models::ClassifierHead<float>>;

namespace {

struct Options {
  std::string data;
  std::vector<std::string> defenses{"plain", "mixup", "guided", "pgd-at"};
  std::int64_t epochs = 3, batch = 32, pgd_steps = 5, eval_examples = 500, heldout = 300;
  double lr = 1e-3, eps_audio = 0.25, eps_video = 0.05;
  std::uint64_t seed = 1;
  int threads = 2;
  bool quiet = false;
};

void usage() {
  std::puts(
      "usage: train_defenses --data DIR [options]\n"
      "  --data DIR          AV-Digits folder (built by the av_digits target; see docs/data.md)\n"
      "  --defenses LIST     comma-separated: plain, mixup, guided, pgd-at, fgsm-at, trades (default "
      "plain,mixup,guided,pgd-at)\n"
      "  --epochs N          epochs per defense (default 3)\n"
      "  --batch N           minibatch size (default 32)\n"
      "  --lr X              Adam learning rate (default 1e-3)\n"
      "  --eps-audio X       L∞ budget on z-scored fbank features (default 0.25)\n"
      "  --eps-video X       L∞ budget on pixels in [0, 1] (default 0.05)\n"
      "  --pgd-steps N       PGD-AT / TRADES inner steps (default 5; evaluation uses PGD-10)\n"
      "  --eval N            test examples evaluated, clean and under PGD (default 500)\n"
      "  --heldout N         validation examples guided mix-up measures its metrics on (default 300)\n"
      "  --seed N            initialisation, data order and defense seed (default 1)\n"
      "  --threads N         OpenMP threads (default 2)\n"
      "  --quiet             no progress bars");
}

[[noreturn]] void fail(const std::string& msg) {
  std::fprintf(stderr, "train_defenses: %s\n", msg.c_str());
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail(a + " needs a value");
      return argv[++i];
    };
    auto number = [&](double lo, double hi) {
      const std::string s = value();
      char* end = nullptr;
      const double v = std::strtod(s.c_str(), &end);
      if (s.empty() || *end != '\0' || !(v >= lo && v <= hi)) fail("invalid value '" + s + "' for " + a);
      return v;
    };
    if (a == "--help" || a == "-h") {
      usage();
      std::exit(0);
    } else if (a == "--data")
      o.data = value();
    else if (a == "--defenses") {
      o.defenses.clear();
      std::stringstream ss(value());
      for (std::string d; std::getline(ss, d, ',');) {
        if (d != "plain" && d != "mixup" && d != "guided" && d != "pgd-at" && d != "fgsm-at" && d != "trades")
          fail("unknown defense '" + d + "' (see --help)");
        o.defenses.push_back(d);
      }
    } else if (a == "--epochs")
      o.epochs = static_cast<std::int64_t>(number(1, 1e6));
    else if (a == "--batch")
      o.batch = static_cast<std::int64_t>(number(1, 1e6));
    else if (a == "--lr")
      o.lr = number(0, 10);
    else if (a == "--eps-audio")
      o.eps_audio = number(0, 1e3);
    else if (a == "--eps-video")
      o.eps_video = number(0, 1);
    else if (a == "--pgd-steps")
      o.pgd_steps = static_cast<std::int64_t>(number(1, 1000));
    else if (a == "--eval")
      o.eval_examples = static_cast<std::int64_t>(number(1, 1e9));
    else if (a == "--heldout")
      o.heldout = static_cast<std::int64_t>(number(2, 1e9));
    else if (a == "--seed")
      o.seed = static_cast<std::uint64_t>(number(0, 9e15));
    else if (a == "--threads")
      o.threads = static_cast<int>(number(1, 1024));
    else if (a == "--quiet")
      o.quiet = true;
    else
      fail("unknown option " + a + " (see --help)");
  }
  if (o.data.empty()) fail("--data DIR is required (see --help)");
  if (!std::filesystem::is_regular_file(std::filesystem::path(o.data) / "manifest.json"))
    fail("no AV-Digits dataset at '" + o.data + "' (missing manifest.json; build it with the av_digits target)");
  return o;
}

audio::FrontEndOptions fbank_options() {
  audio::kaldi::FbankOptions fb;
  fb.sample_frequency = 16000;
  fb.num_mel_bins = 40;
  fb.frame_length_ms = 25;
  fb.frame_shift_ms = 10;
  fb.dither = 0.0;
  audio::FrontEndOptions o;
  o.features = fb;
  o.layout = audio::FeatureLayout::time_freq;  // (B, T, F) as the study's audio encoder reads
  return o;
}

/// A split as features: audio (N, 98, 40) z-scored, video (N, T, H·W) in [0, 1], labels (N).
train::TensorData<float> features(const AvDigits& split, audio::FrontEnd<float>& frontend, std::int64_t limit) {
  NoGradGuard no_grad;
  data::DataLoader<AvDigits> loader(split, {.batch_size = 64});
  std::vector<Tensor<float, Cpu>> a, v;
  std::vector<Tensor<std::int64_t, Cpu>> y;
  std::int64_t n = 0;
  for (auto& b : loader.epoch(0)) {
    if (n >= limit) break;
    a.push_back(frontend(b.audio));
    const auto& c = b.video;  // (B, T, 1, H, W)
    v.push_back(c.reshape({c.size(0), c.size(1), c.size(3) * c.size(4)}).contiguous());
    y.push_back(b.labels);
    n += b.size();
  }
  train::TensorData<float> d;
  d.audio = concat(a, 0);
  d.video = concat(v, 0);
  std::vector<std::int64_t> labels;
  for (const auto& t : y)
    for (auto l : t.to_vector()) labels.push_back(l);
  d.y.classes = from_vector<std::int64_t>(labels);
  if (d.size() > limit) {
    std::vector<std::int64_t> idx;
    for (std::int64_t i = 0; i < limit; ++i) idx.push_back(i);
    auto b = d.rows(idx);
    d = {b.x.audio, b.x.video, b.y};
  }
  return d;
}

std::unique_ptr<train::Defense<Model>> make_defense(const std::string& name, const Options& o,
                                                    const attacks::ThreatModel& tm, const train::AVBatch<float>& held) {
  if (name == "plain") return std::make_unique<train::PlainTraining<Model>>();
  if (name == "mixup") return std::make_unique<train::InputMixup<Model>>(train::MixupOptions{.alpha = 0.4});
  if (name == "guided") return std::make_unique<train::GuidedMixup<Model>>(held);
  if (name == "pgd-at")
    return std::make_unique<train::AdversarialTraining<Model>>(
        train::AdversarialTrainingOptions{.threat = tm, .steps = static_cast<int>(o.pgd_steps)});
  if (name == "fgsm-at")
    return std::make_unique<train::AdversarialTraining<Model>>(
        train::AdversarialTrainingOptions{.method = train::AdversarialMethod::fgsm_rs, .threat = tm});
  return std::make_unique<train::AdversarialTraining<Model>>(train::AdversarialTrainingOptions{
      .method = train::AdversarialMethod::trades, .threat = tm, .steps = static_cast<int>(o.pgd_steps)});
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse(argc, argv);
  omp_set_num_threads(opt.threads);
  try {
    const auto train_split = AvDigits::open(opt.data, "train");
    const auto val_split = AvDigits::open(opt.data, "val");
    const auto test_split = AvDigits::open(opt.data, "test");
    audio::FrontEnd<float> frontend(fbank_options());
    {  // per-bin statistics of the training features
      NoGradGuard no_grad;
      audio::FeatureStatistics stats;
      data::DataLoader<AvDigits> loader(train_split, {.batch_size = 64});
      for (auto& b : loader.epoch(0)) stats.add(frontend.features(b.audio));
      frontend.set_normalizer(stats, false);
    }
    const auto train_set = features(train_split, frontend, train_split.size());
    const auto val_set = features(val_split, frontend, val_split.size());
    const auto test_set = features(test_split, frontend, opt.eval_examples);
    std::vector<std::int64_t> held_idx;
    for (std::int64_t i = 0; i < std::min(opt.heldout, val_set.size()); ++i) held_idx.push_back(i);
    const auto held = val_set.rows(held_idx);

    auto so = models::study::StudyOptions::small(10);
    so.audio_frames = train_set.audio.size(1);
    so.audio.stem.num_bins = train_set.audio.size(2);
    so.video_frames = train_set.video.size(1);
    so.video_dim = train_set.video.size(2);
    so.video.input_dim = so.video_dim;
    so.video.num_frames = so.video_frames;
    std::printf("train_defenses: %lld train / %lld val / %lld test examples; audio %s, video %s\n",
                static_cast<long long>(train_set.size()), static_cast<long long>(val_set.size()),
                static_cast<long long>(test_set.size()), train_set.audio.shape().str().c_str(),
                train_set.video.shape().str().c_str());

    const attacks::Budget ba{.eps = opt.eps_audio, .step = 2.5 * opt.eps_audio / static_cast<double>(opt.pgd_steps)};
    const attacks::Budget bv{
        .eps = opt.eps_video, .step = 2.5 * opt.eps_video / static_cast<double>(opt.pgd_steps), .lo = 0, .hi = 1};
    const auto tm = attacks::ThreatModel::joint(ba, bv);
    const attacks::Pgd<float> pgd(attacks::PgdOptions{.steps = 10, .seed = 7});
    const auto eval_tm = attacks::ThreatModel::joint(ba.with_eps(opt.eps_audio), bv.with_eps(opt.eps_video));
    auto eval_tm10 = eval_tm;
    eval_tm10.audio->step = opt.eps_audio / 4;
    eval_tm10.video->step = opt.eps_video / 4;

    std::printf(
        "\n| defense | clean acc | PGD-10 robust acc | train time | forward passes | backward passes | forward "
        "examples | "
        "backward examples |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    std::fflush(stdout);
    for (const auto& name : opt.defenses) {
      Generator init(opt.seed);
      default_generator().manual_seed(opt.seed);
      auto model = models::study::late_fusion<float, models::ClassifierHead<float>>(so, init);
      optim::Adam<float> adam(model->parameters(), {.lr = opt.lr});
      auto defense = make_defense(name, opt, tm, held);
      train::Trainer<Model> trainer(*model, adam, *defense,
                                    {.epochs = opt.epochs, .progress = !opt.quiet, .seed = opt.seed});
      train::ShuffledBatches<float> batches(train_set, opt.batch, opt.seed);
      const auto r = trainer.fit(batches, &val_set);
      const auto acc = train::robust_accuracy(*model, test_set.all(), pgd, eval_tm10);
      std::printf("| %s | %.3f | %.3f | %s | %lld | %lld | %lld | %lld |\n", defense->name().c_str(), acc.clean,
                  acc.robust, ProgressBar::format_duration(r.cost.seconds).c_str(),
                  static_cast<long long>(r.cost.forward_passes), static_cast<long long>(r.cost.backward_passes),
                  static_cast<long long>(r.cost.forward_examples), static_cast<long long>(r.cost.backward_examples));
      std::fflush(stdout);
    }
    std::printf("\nbudgets: audio %s, video %s; evaluation PGD-10 (step eps/4, seed 7) on %lld test examples\n",
                eval_tm10.audio->str().c_str(), eval_tm10.video->str().c_str(),
                static_cast<long long>(test_set.size()));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_defenses: %s\n", e.what());
    return 2;
  }
  return 0;
}
