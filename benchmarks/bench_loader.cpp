// DataLoader throughput against training throughput: samples/s of a loader over a synthetic
// audio-visual dataset whose get() does decode-like work per sample (a 1 s 16 kHz waveform and an
// 8×32×32 clip synthesised from the sample's seed), with 0, 1 and 2 workers at batch 32, next to
// samples/s of a W2-style training step (the audio branch of bench-av-small, ../shared/DESIGN.md:
// 4 × conv3×3+ReLU+maxpool2 on (32,1,128,100) fbanks, global mean, linear, cross entropy,
// forward+backward). The loader keeps up when its samples/s exceeds the step's; the last
// benchmark runs the step with a 1-worker loader feeding it, so the cost of sharing cores shows.
//
// Counters: samples/s (rate over real time); core_ms/sample, the process CPU time (all threads)
// per sample — on a shared, loaded machine this is the steadier figure: 1000 / core_ms/sample is
// the rate per free core; GFLOP/s for the step. No BatchNorm in the stand-in: the conv FLOPs
// dominate W2's step.
#include "avgrad/autograd/engine.hpp"
#include "avgrad/data/dataset.hpp"
#include "avgrad/data/loader.hpp"
#include "avgrad/ops/binary.hpp"
#include "avgrad/ops/conv.hpp"
#include "avgrad/ops/linalg.hpp"
#include "avgrad/ops/loss.hpp"
#include "avgrad/ops/pool.hpp"
#include "avgrad/ops/reduce.hpp"
#include "avgrad/ops/unary.hpp"

#include <benchmark/benchmark.h>
#include <time.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <optional>
#include <vector>

using namespace avgrad;

namespace {

using Clock = std::chrono::steady_clock;

/// CPU time of every thread of the process (workers and OpenMP threads included).
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

void report_samples(benchmark::State& state, std::int64_t samples, double cpu_seconds) {
  state.counters["samples/s"] = benchmark::Counter(static_cast<double>(samples), benchmark::Counter::kIsRate);
  state.counters["core_ms/sample"] = 1e3 * cpu_seconds / static_cast<double>(samples);
}

constexpr std::int64_t kBatch = 32;
constexpr std::int64_t kWaveform = 16000;                       // S: 1 s at 16 kHz
constexpr std::int64_t kFrames = 8, kHeight = 32, kWidth = 32;  // T H W of the clip
constexpr std::int64_t kClasses = 10;

/// A stand-in for a decoded AV dataset: every sample is synthesised from its index, with about
/// the arithmetic a FLAC decode + resample and a small video decode cost per second of data.
struct SyntheticAv {
  struct Sample {
    Tensor<float, Cpu> audio;  // (S)
    Tensor<float, Cpu> video;  // (T, H, W)
    std::int64_t label = 0;
  };
  struct Batch {
    Tensor<float, Cpu> audio;          // (B, S)
    Tensor<float, Cpu> video;          // (B, T, H, W)
    Tensor<std::int64_t, Cpu> labels;  // (B)
  };
  using sample_type = Sample;
  using batch_type = Batch;

  std::int64_t n = 0;
  std::uint64_t seed = 1;

  std::int64_t size() const { return n; }
  std::int64_t label(std::int64_t i) const { return static_cast<std::int64_t>(draw(i, 0) * kClasses); }

  Sample get(std::int64_t i) const {
    const auto key = seed ^ static_cast<std::uint64_t>(i) * 0x9E3779B97F4A7C15ull;
    // Waveform: three partials with a decaying envelope plus Gaussian noise.
    auto audio = Tensor<float, Cpu>::empty({kWaveform});  // (S)
    float* a = audio.data();
    const double f0 = 100 + 400 * draw(i, 1), f1 = 2.5 * f0, f2 = 4.1 * f0;
    const double w = 2 * std::numbers::pi / 16000.0;
    for (std::int64_t s = 0; s < kWaveform; ++s) {
      const double t = static_cast<double>(s);
      const double env = std::exp(-3.0 * t / kWaveform);
      const double tone = std::sin(w * f0 * t) + 0.5 * std::sin(w * f1 * t) + 0.25 * std::sin(w * f2 * t);
      a[s] = static_cast<float>(0.3 * env * tone) + 0.01f * philox_normal<float>(key, 0, static_cast<std::uint64_t>(s));
    }
    // Clip: a Gaussian blob moving across the frame over noise.
    auto video = Tensor<float, Cpu>::empty({kFrames, kHeight, kWidth});  // (T, H, W)
    float* v = video.data();
    const double vx = 2 * draw(i, 2) - 1, vy = 2 * draw(i, 3) - 1;
    for (std::int64_t f = 0; f < kFrames; ++f)
      for (std::int64_t y = 0; y < kHeight; ++y)
        for (std::int64_t x = 0; x < kWidth; ++x) {
          const double cx = 16 + 2 * vx * static_cast<double>(f), cy = 16 + 2 * vy * static_cast<double>(f);
          const double d2 = (static_cast<double>(x) - cx) * (static_cast<double>(x) - cx) +
                            (static_cast<double>(y) - cy) * (static_cast<double>(y) - cy);
          const auto k = static_cast<std::uint64_t>((f * kHeight + y) * kWidth + x);
          *v++ = static_cast<float>(std::exp(-d2 / 32.0)) + 0.05f * philox_uniform<float>(key, 1u << 20, k);
        }
    return {std::move(audio), std::move(video), label(i)};
  }

  static Batch collate(std::vector<Sample>&& samples) {
    return {data::stack_batch(samples, &Sample::audio), data::stack_batch(samples, &Sample::video),
            data::stack_values<std::int64_t>(samples, &Sample::label)};
  }

 private:
  /// The j-th per-sample parameter in [0, 1).
  double draw(std::int64_t i, std::uint64_t j) const {
    return philox_uniform<double>(seed, static_cast<std::uint64_t>(i) * 8 + j, 0);
  }
};
static_assert(data::LabeledDataset<SyntheticAv> && data::CollatingDataset<SyntheticAv>);

// ---- loader throughput ---------------------------------------------------------------------------------

/// One iteration = one epoch of 8 batches of 32; arg 0 = num_workers.
void BM_LoaderThroughput(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(0));
  const SyntheticAv ds{.n = 8 * kBatch};
  data::DataLoader loader(ds, {.batch_size = kBatch, .shuffle = true, .num_workers = workers});
  std::int64_t samples = 0, epoch = 0;
  const double cpu0 = process_cpu_seconds();
  for (auto _ : state) {
    for (auto& b : loader.epoch(epoch++)) {
      samples += b.audio.size(0);
      benchmark::DoNotOptimize(b.video.data());
    }
  }
  report_samples(state, samples, process_cpu_seconds() - cpu0);
}
BENCHMARK(BM_LoaderThroughput)
    ->ArgName("workers")
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// ---- W2-style training step -------------------------------------------------------------------------

/// The audio branch of bench-av-small: blocks 1→32→64→128→128 channels, then a 128→10 linear.
struct AudioConvNet {
  std::vector<Tensor<float, Cpu>> w, b;  // conv weights (Co, Ci, 3, 3), biases (Co)
  Tensor<float, Cpu> fc_w, fc_b;         // (128, K), (K)

  AudioConvNet() {
    Generator g(5);
    const std::int64_t ch[] = {1, 32, 64, 128, 128};
    for (int k = 0; k < 4; ++k) {
      const double std = std::sqrt(2.0 / (9.0 * static_cast<double>(ch[k])));
      w.push_back(randn<float>({ch[k + 1], ch[k], 3, 3}, g, 0.0, std).requires_grad_());
      b.push_back(zeros<float>({ch[k + 1]}).requires_grad_());
    }
    fc_w = randn<float>({128, kClasses}, g, 0.0, 0.1).requires_grad_();
    fc_b = zeros<float>({kClasses}).requires_grad_();
  }

  /// x (B, 1, F, T) → loss; backward fills every parameter's grad.
  Tensor<float, Cpu> loss(const Tensor<float, Cpu>& x, const Tensor<std::int64_t, Cpu>& labels) {
    Tensor<float, Cpu> h = x;
    for (int k = 0; k < 4; ++k) h = max_pool2d(relu(conv2d(h, w[k], b[k], 1, 1)), 2);  // (B, C, F/2, T/2)
    auto pooled = mean(h, {2, 3});                                                     // (B, 128)
    auto logits = matmul(pooled, fc_w) + fc_b;                                         // (B, K)
    return cross_entropy(logits, labels);
  }

  void zero_grad() {
    for (auto& t : w) t.zero_grad();
    for (auto& t : b) t.zero_grad();
    fc_w.zero_grad();
    fc_b.zero_grad();
  }

  /// Forward FLOPs of the convolutions (2·MACs) for batch B on F×T input.
  static double conv_gflop(std::int64_t B, std::int64_t F, std::int64_t T) {
    const std::int64_t ch[] = {1, 32, 64, 128, 128};
    double f = 0;
    for (int k = 0; k < 4; ++k, F /= 2, T /= 2) f += 2.0 * static_cast<double>(B * F * T * ch[k] * ch[k + 1] * 9);
    return f * 1e-9;
  }
};

void report_step(benchmark::State& state, std::int64_t samples, double cpu_seconds) {
  report_samples(state, samples, cpu_seconds);
  // forward, input-gradient and weight-gradient products each cost about one forward (the first
  // block's input gradient is not needed, so this slightly overstates the work)
  state.counters["GFLOP/s"] =
      benchmark::Counter(3.0 * AudioConvNet::conv_gflop(kBatch, 128, 100) * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate);
}

/// One iteration = forward + backward of a batch of 32 fbanks (32, 1, 128, 100).
void BM_TrainStepW2Audio(benchmark::State& state) {
  AudioConvNet net;
  Generator g(9);
  const auto x = randn<float>({kBatch, 1, 128, 100}, g);  // (B, 1, F, T)
  const auto y = randint<std::int64_t>(0, kClasses, {kBatch}, g);
  auto step = [&] {
    net.zero_grad();
    auto loss = net.loss(x, y);
    loss.backward();
    benchmark::DoNotOptimize(net.w[0].grad().data());
  };
  step();  // warm-up: pool allocator and GEMM packing buffers
  std::int64_t samples = 0;
  const double cpu0 = process_cpu_seconds();
  for (auto _ : state) {
    step();
    samples += kBatch;
  }
  report_step(state, samples, process_cpu_seconds() - cpu0);
}
BENCHMARK(BM_TrainStepW2Audio)->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime();

/// The same step, each taking its labels from the next batch of a 1-worker loader that runs
/// concurrently on the same cores: the step's rate with loading overlapped.
void BM_TrainStepW2AudioWithLoader(benchmark::State& state) {
  AudioConvNet net;
  Generator g(9);
  const auto x = randn<float>({kBatch, 1, 128, 100}, g);  // (B, 1, F, T)
  const SyntheticAv ds{.n = 64 * kBatch};
  data::DataLoader loader(ds, {.batch_size = kBatch, .shuffle = true, .num_workers = 1});
  std::int64_t epoch = 0;
  std::optional<data::Epoch<SyntheticAv>> pass;
  std::optional<data::Epoch<SyntheticAv>::iterator> it;
  auto next_labels = [&] {
    if (it) ++*it;
    if (!it || *it == std::default_sentinel) {  // first step, or the epoch ended: start the next
      it.reset();
      pass.emplace(loader.epoch(epoch++));
      it = pass->begin();
    }
    return (**it).labels;
  };
  auto step = [&] {
    auto y = next_labels();
    net.zero_grad();
    auto loss = net.loss(x, y);
    loss.backward();
    benchmark::DoNotOptimize(net.w[0].grad().data());
  };
  step();
  std::int64_t samples = 0;
  const double cpu0 = process_cpu_seconds();
  for (auto _ : state) {
    step();
    samples += kBatch;
  }
  report_step(state, samples, process_cpu_seconds() - cpu0);
}
BENCHMARK(BM_TrainStepW2AudioWithLoader)->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
