// The reference workloads on the GPU, timed with CUDA events (manual time):
//   W2_TrainStep/B      bench-av-small training step: zero_grad, forward (train-mode BN), mean
//                       cross entropy, backward to every parameter, SGD (lr 0.01, momentum 0.9)
//   W4_Pgd10/B          PGD-10 joint L∞ on bench-av-small in eval mode (audio ε 0.1 step 0.01,
//                       video ε 8/255 step 1/255 in [0, 1]), δ from 0, input gradients only
//   W4_ForwardBackward/B  one probe of that attack: forward, CE, backward to the inputs
//   W5_Knn              exact kNN, k = 10, N = 20000 latents of D = 1024 (queries = base)
//   W3_Fbank/0|1        Kaldi fbank (128 bins, 25 ms Hann frames every 10 ms) of 16 clips × 10 s
//                       at 16 kHz, forward (0) or forward + backward of the sum to the waveform (1)
// B = 32 (the design's batch) and 256 (one that fills an H100). items/s = examples/s.
// Convolutions use cuDNN's heuristic algorithms unless AVGRAD_CONV_BENCHMARK=1 is set.
// The PyTorch side is benchmarks/torch/bench_cuda_workloads.py (same shapes, same GPU).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "avgrad/avgrad.hpp"
#include "avgrad/cuda.cuh"
#include "cuda_bench.cuh"

using namespace avgrad;
using namespace avgrad::attacks;

namespace {

constexpr std::int64_t kClasses = 10;

struct Batch {
  std::unique_ptr<models::BenchAvSmall<float, Cuda>> model;
  AVInput<float, Cuda> x;
  Labels<float, Cuda> y;
};

Batch make_batch(std::int64_t B) {
  cuda::set_conv_benchmark(std::getenv("AVGRAD_CONV_BENCHMARK") != nullptr);
  Generator g(4);
  Batch b;
  b.model = models::bench_av_small<float, Cuda>(kClasses, g);
  b.x = {randn<float, Cuda>(Shape{B, 1, 128, 100}, g), rand<float, Cuda>(Shape{B, 3, 8, 32, 32}, g, 0.0, 1.0)};
  b.y.classes = randint<std::int64_t, Cuda>(0, kClasses, Shape{B}, g);
  return b;
}

ThreatModel w4_threat() {
  return ThreatModel::joint(Budget{.norm = Norm::linf, .eps = 0.1, .step = 0.01},
                            Budget{.norm = Norm::linf, .eps = 8.0 / 255, .step = 1.0 / 255, .lo = 0.0, .hi = 1.0});
}

void BM_W2_TrainStep(benchmark::State& state) {
  if (!cuda::available()) return state.SkipWithError("no CUDA device present");
  auto b = make_batch(state.range(0));
  b.model->train();
  optim::SGD<float, Cuda> opt(b.model->parameters(), {.lr = 0.01, .momentum = 0.9});
  bench::cuda_timed(state, [&] {
    opt.zero_grad();
    auto loss = cross_entropy(b.model->forward(b.x).logits, b.y.classes);
    loss.backward();
    opt.step();
  });
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_W2_TrainStep)->Arg(32)->Arg(256)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_W4_Pgd10(benchmark::State& state) {
  if (!cuda::available()) return state.SkipWithError("no CUDA device present");
  auto b = make_batch(state.range(0));
  b.model->eval();
  const Pgd<float, Cuda> pgd(PgdOptions{.steps = 10, .restarts = 1, .random_start = false});
  const auto tm = w4_threat();
  bench::cuda_timed(state, [&] { benchmark::DoNotOptimize(pgd.run(*b.model, b.x, b.y, tm).delta.audio.data()); });
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_W4_Pgd10)->Arg(32)->Arg(256)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_W4_ForwardBackward(benchmark::State& state) {
  if (!cuda::available()) return state.SkipWithError("no CUDA device present");
  auto b = make_batch(state.range(0));
  b.model->eval();
  FrozenParameters frozen(*b.model);
  const auto objective = Objective<float, Cuda>::of(LossKind::cross_entropy);
  const Perturbation<float, Cuda> delta{zeros<float, Cuda>(b.x.audio.shape()), zeros<float, Cuda>(b.x.video.shape())};
  bench::cuda_timed(state,
                    [&] { benchmark::DoNotOptimize(probe(*b.model, b.x, delta, b.y, objective, true).logits.data()); });
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_W4_ForwardBackward)->Arg(32)->Arg(256)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_W5_Knn(benchmark::State& state) {
  if (!cuda::available()) return state.SkipWithError("no CUDA device present");
  Generator g(5);
  auto z = randn<float, Cuda>(Shape{20000, 1024}, g);
  bench::cuda_timed(state, [&] { benchmark::DoNotOptimize(metrics::knn(z, z, 10, {.block = 4096}).indices.data()); });
  state.SetItemsProcessed(state.iterations() * 20000);
}
BENCHMARK(BM_W5_Knn)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_W3_Fbank(benchmark::State& state) {
  if (!cuda::available()) return state.SkipWithError("no CUDA device present");
  const bool backward = state.range(0) != 0;
  const auto options = std::get<audio::kaldi::FbankOptions>(audio::recipes::ast_fbank().features);
  const audio::kaldi::Fbank<float, Cuda> fbank(options);
  Generator g(0);
  auto x = (randn<float>(Shape{16, 160000}, g) * 0.1).to<Cuda>();
  if (backward) x.requires_grad_();
  bench::cuda_timed(state, [&] {
    auto y = fbank(x);
    if (backward) {
      sum(y).backward();
      x.zero_grad();
    }
    benchmark::DoNotOptimize(y.data());
  });
  state.SetItemsProcessed(state.iterations() * 16);
}
BENCHMARK(BM_W3_Fbank)->Arg(0)->Arg(1)->UseManualTime()->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) { return avgrad::bench::cuda_bench_main(argc, argv); }
