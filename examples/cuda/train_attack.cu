// train_attack (CUDA build): the study's late-fusion model trained and attacked on the GPU, or on
// the CPU with --device cpu, by the same templated code. It trains with AdamW on the AV-Digits
// features (--data, computed once on the CPU and cached) or on a synthetic audio-visual task,
// then reports clean accuracy and PGD-10 robust accuracy over an ε grid for audio-only,
// video-only and joint L∞ threats, as a Markdown table with the time each phase took.
//
//   build/release/examples/train_attack_cuda                       # synthetic task, GPU
//   build/release/examples/train_attack_cuda --device cpu          # the same on the CPU
//   build/release/examples/train_attack_cuda --data build/release/av-digits --epochs 20
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include "avgrad/avgrad.hpp"
#include "avgrad/cuda.cuh"
#include "avgrad/data/loader.hpp"
#include "avgrad/study/features.hpp"
#include "avgrad/study/zoo.hpp"
#include "avgrad/train/progress.hpp"

using namespace avgrad;

namespace {

struct Options {
  std::string device = "cuda", data;
  std::int64_t synthetic = 2048, batch = 64, epochs = 10;
  double lr = 3e-3;
  std::vector<double> eps{0.0, 0.05, 0.1, 0.2};
  std::uint64_t seed = 0;
};

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

/// A learnable audio-visual task of the small study shapes: each class has its own mean pattern
/// in both modalities, buried in unit noise (so either modality alone is informative).
study::FeatureSet synthetic_features(std::int64_t n, std::uint64_t seed) {
  constexpr std::int64_t K = 10, Ta = 32, Fa = 16, Tv = 4, Dv = 32;
  Generator g(seed);
  const auto pa = randn<float>({K, Ta, Fa}, g, 0.0, 0.7), pv = randn<float>({K, Tv, Dv}, g, 0.0, 0.7);
  auto split = [&](std::int64_t m) {
    train::TensorData<float> d;
    d.y.classes = randint<std::int64_t>(0, K, {m}, g);
    d.audio = index_select(pa, 0, d.y.classes) + randn<float>({m, Ta, Fa}, g);
    d.video = index_select(pv, 0, d.y.classes) + randn<float>({m, Tv, Dv}, g);
    return d;
  };
  study::FeatureSet fs;
  fs.train = split(n);
  fs.val = split(n / 4);
  fs.test = split(n / 4);
  fs.num_classes = K;
  return fs;
}

/// Fraction of rows whose argmax is the label.
template <Device D> double accuracy(const Tensor<float, D>& logits, const Tensor<std::int64_t, D>& y) {
  const auto z = logits.template to<Cpu>().contiguous();
  const auto t = y.template to<Cpu>().to_vector();
  const std::int64_t B = z.size(0), K = z.size(1);
  std::int64_t hit = 0;
  for (std::int64_t b = 0; b < B; ++b) {
    const float* r = z.data() + b * K;
    hit += std::max_element(r, r + K) - r == t[static_cast<std::size_t>(b)];
  }
  return B ? static_cast<double>(hit) / static_cast<double>(B) : 0.0;
}

template <Device D> void run(const Options& o, const study::FeatureSet& fs) {
  const auto so = study::model_options(fs);
  Generator init(o.seed);
  auto model = models::study::late_fusion<float, models::ClassifierHead<float, D>>(so, init);
  optim::AdamW<float, D> opt(model->parameters(), {.lr = o.lr});
  const auto xa = fs.train.audio.to<D>(), xv = fs.train.video.to<D>();
  const auto y = fs.train.y.classes.to<D>();
  const std::int64_t n = fs.train.size(), steps_per_epoch = (n + o.batch - 1) / o.batch;

  auto t0 = Clock::now();
  model->train();
  ProgressBar bar("train", o.epochs * steps_per_epoch, o.batch);
  Generator shuffle(o.seed + 1);
  for (std::int64_t e = 0; e < o.epochs; ++e) {
    std::vector<std::int64_t> perm(static_cast<std::size_t>(n));
    std::iota(perm.begin(), perm.end(), 0);
    data::detail::shuffle_in_place(perm, shuffle);
    const auto order = from_vector<std::int64_t>(perm);
    for (std::int64_t s = 0; s < steps_per_epoch; ++s) {
      const std::int64_t lo = s * o.batch, m = std::min(o.batch, n - lo);
      const auto idx = order.narrow(0, lo, m).template to<D>();
      opt.zero_grad();
      auto loss = cross_entropy(model->forward({index_select(xa, 0, idx), index_select(xv, 0, idx)}).logits,
                                index_select(y, 0, idx));
      loss.backward();
      opt.step();
      if (s % 8 == 0 || s + 1 == steps_per_epoch)
        bar.update(e * steps_per_epoch + s + 1, {{"loss", static_cast<double>(loss.template to<Cpu>().item())}});
    }
  }
  const double train_s = seconds_since(t0);

  model->eval();
  const models::AVInput<float, D> xt{fs.test.audio.to<D>(), fs.test.video.to<D>()};
  const attacks::Labels<float, D> yt{fs.test.y.classes.to<D>(), {}};
  double clean;
  {
    NoGradGuard no_grad;
    clean = accuracy(model->forward(xt).logits, yt.classes);
  }
  t0 = Clock::now();
  std::printf("\n| ε | audio-only | video-only | joint |\n|---|---|---|---|\n");
  for (double eps : o.eps) {
    std::printf("| %.3g |", eps);
    for (int scope = 0; scope < 3; ++scope) {
      if (eps == 0) {
        std::printf(" %.3f |", clean);
        continue;
      }
      const attacks::Budget b{.norm = attacks::Norm::linf, .eps = eps, .step = eps / 4};
      const auto tm = scope == 0   ? attacks::ThreatModel::audio_only(b)
                      : scope == 1 ? attacks::ThreatModel::video_only(b)
                                   : attacks::ThreatModel::joint(b, b);
      const attacks::Pgd<float, D> pgd(attacks::PgdOptions{.steps = 10, .seed = o.seed});
      const auto r = pgd.run(*model, xt, yt, tm);
      std::printf(" %.3f |", 1.0 - r.success_rate());
    }
    std::printf("\n");
  }
  std::printf("\nrobust accuracy under PGD-10 (L∞, step ε/4) on %lld test examples; clean %.3f\n",
              static_cast<long long>(fs.test.size()), clean);
  std::printf("device %s: training %.2f s, attacks %.2f s\n",
              std::is_same_v<D, Cuda> ? cuda::device_name().c_str() : "cpu", train_s, seconds_since(t0));
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Train the study's late-fusion model and measure its robustness, on the GPU or the CPU",
               "train_attack_cuda"};
  app.add_option("--device", o.device, "cuda or cpu")->check(CLI::IsMember({"cuda", "cpu"}))->capture_default_str();
  app.add_option("--data", o.data, "an AV-Digits folder (features cached under it); empty: a synthetic task");
  app.add_option("--synthetic", o.synthetic, "training examples of the synthetic task")
      ->check(CLI::Range(16, 100000000))
      ->capture_default_str();
  app.add_option("--batch", o.batch, "batch size")->check(CLI::Range(1, 1000000))->capture_default_str();
  app.add_option("--epochs", o.epochs, "training epochs")->check(CLI::Range(1, 100000))->capture_default_str();
  app.add_option("--lr", o.lr, "AdamW learning rate")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--eps", o.eps, "the ε grid (L∞, for each modality)")->delimiter(',')->capture_default_str();
  app.add_option("--seed", o.seed, "model, data and attack seed")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    if (o.device == "cuda")
      AVGRAD_CHECK(cuda::available(), "--device cuda", "no CUDA device is visible; run with --device cpu");
    const auto fs = o.data.empty()
                        ? synthetic_features(o.synthetic, o.seed)
                        : study::load_features(o.data, std::filesystem::path(o.data) / "features.safetensors",
                                               study::FeatureOptions{}, false);
    if (o.device == "cuda")
      run<Cuda>(o, fs);
    else
      run<Cpu>(o, fs);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_attack_cuda: %s\n", e.what());
    return 2;
  }
}
