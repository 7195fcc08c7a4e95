// Audio front-end benchmarks, reference workload W3: Kaldi fbank (128 bins, 25 ms Hann
// frames every 10 ms) of 16 clips × 10 s at 16 kHz, forward and forward+backward (the
// gradient of the sum of all features with respect to the waveform), and the study's
// reference log-mel recipe on the same clips. Argument: OpenMP threads. The torchaudio
// side is benchmarks/torch/bench_audio.py; benchmarks/compare.py runs both.
#include "avgrad/audio/frontend.hpp"
#include "avgrad/autograd/engine.hpp"

#include <benchmark/benchmark.h>
#include <omp.h>

using namespace avgrad;

namespace {

constexpr std::int64_t kClips = 16, kSamples = 160000;

Tensor<float, Cpu> clips() {
  Generator g(0);
  return randn<float>(Shape{kClips, kSamples}, g) * 0.1;
}

audio::kaldi::FbankOptions w3_options() {
  return std::get<audio::kaldi::FbankOptions>(audio::recipes::ast_fbank().features);
}

template <bool Backward, class Frontend> void run(benchmark::State& state, const Frontend& fe) {
  omp_set_num_threads(static_cast<int>(state.range(0)));
  auto x = clips();
  if (Backward) x.requires_grad_();
  std::int64_t out_elems = 0;
  for (auto _ : state) {
    auto y = fe(x);
    out_elems = y.numel();
    if constexpr (Backward) {
      sum(y).backward();
      benchmark::DoNotOptimize(x.grad().data());
      x.zero_grad();
    } else {
      benchmark::DoNotOptimize(y.data());
    }
  }
  state.counters["clips/s"] =
      benchmark::Counter(static_cast<double>(kClips), benchmark::Counter::kIsIterationInvariantRate);
  // compulsory traffic: the waveform read and the features written (twice each with the backward)
  const double bytes = (Backward ? 2.0 : 1.0) * sizeof(float) * static_cast<double>(kClips * kSamples + out_elems);
  state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_W3_fbank_fwd(benchmark::State& s) { run<false>(s, audio::kaldi::Fbank<float>(w3_options())); }
void BM_W3_fbank_fwdbwd(benchmark::State& s) { run<true>(s, audio::kaldi::Fbank<float>(w3_options())); }

audio::LogMelOptions recipe() { return std::get<audio::LogMelOptions>(audio::recipes::reference_logmel().features); }
void BM_W3_recipe_fwd(benchmark::State& s) { run<false>(s, audio::LogMel<float>(recipe())); }
void BM_W3_recipe_fwdbwd(benchmark::State& s) { run<true>(s, audio::LogMel<float>(recipe())); }

}  // namespace

BENCHMARK(BM_W3_fbank_fwd)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_W3_fbank_fwdbwd)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_W3_recipe_fwd)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_W3_recipe_fwdbwd)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
