// Real FFT benchmarks: cpu::RealFft forward/inverse over a batch of frames (the STFT/fbank
// front-end's workload) against the same transform done as one GEMM with a precomputed DFT
// matrix, for n in {400, 512, 1024, 4096}, single-threaded (this compares kernels). Times are CPU times of the
// benchmark thread.
//
// Batches hold ~8M samples (16000 frames of 512), so data streams from memory as in the real
// front-end. Counters: items_per_second = frames/s, ns_per_frame.
// avgrad first: gemm.hpp sets the warning state for the intrinsics headers it pulls in
#include "avgrad/backend/cpu/fft.hpp"
#include "avgrad/backend/cpu/gemm.hpp"

#include <benchmark/benchmark.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <ctime>
#include <numbers>
#include <random>
#include <vector>

namespace {

constexpr std::int64_t kSamples = 16000 * 512;

std::int64_t batch_for(std::int64_t n) { return kSamples / n; }

std::vector<float> random_frames(std::size_t count) {
  std::mt19937 gen(42);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(count);
  for (auto& x : v) x = dist(gen);
  return v;
}

/// CPU time of this thread: other processes sharing the machine inflate wall time, not this.
double thread_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

/// items_per_second (frames/s, over CPU time) from the framework; ns_per_frame from our own CPU
/// clock (an inverted rate counter would print seconds with an SI prefix, which reads badly).
void set_counters(benchmark::State& state, std::int64_t frames, double seconds) {
  state.SetItemsProcessed(state.iterations() * frames);
  state.counters["ns_per_frame"] =
      seconds * 1e9 / (static_cast<double>(state.iterations()) * static_cast<double>(frames));
}

/// Args: n, inverse (0/1).
void BM_RealFft(benchmark::State& state) {
  omp_set_num_threads(1);
  const std::int64_t n = state.range(0), batch = batch_for(n);
  const bool inverse = state.range(1) != 0;
  const auto plan = avgrad::cpu::real_fft_plan<float>(n);
  const std::int64_t spec = 2 * plan->bins();
  std::vector<float> time = random_frames(static_cast<std::size_t>(batch * n));
  std::vector<float> freq = random_frames(static_cast<std::size_t>(batch * spec));
  std::vector<float> scratch(plan->scratch_size());
  double seconds = 0;
  for (auto _ : state) {
    const double t0 = thread_seconds();
    if (inverse)
      for (std::int64_t b = 0; b < batch; ++b)
        plan->inverse(freq.data() + b * spec, time.data() + b * n, scratch.data());
    else
      for (std::int64_t b = 0; b < batch; ++b)
        plan->forward(time.data() + b * n, freq.data() + b * spec, scratch.data());
    benchmark::DoNotOptimize(inverse ? time.data() : freq.data());
    benchmark::ClobberMemory();
    seconds += thread_seconds() - t0;
  }
  set_counters(state, batch, seconds);
}

/// The same transforms as one GEMM: forward (B, n)·(n, 2·bins) with columns cos / -sin, inverse
/// (B, 2·bins)·(2·bins, n) with the Hermitian weights (1 for DC/Nyquist, 2 elsewhere).
void BM_DftGemm(benchmark::State& state) {
  omp_set_num_threads(1);
  const std::int64_t n = state.range(0), batch = batch_for(n);
  const bool inverse = state.range(1) != 0;
  const std::int64_t bins = n / 2 + 1, spec = 2 * bins;
  std::vector<float> w(static_cast<std::size_t>(n * spec));
  constexpr long double two_pi = 2 * std::numbers::pi_v<long double>;
  for (std::int64_t t = 0; t < n; ++t)
    for (std::int64_t k = 0; k < bins; ++k) {
      const long double a = two_pi * static_cast<long double>((k * t) % n) / static_cast<long double>(n);
      if (!inverse) {  // w[t][2k], w[t][2k+1]
        w[static_cast<std::size_t>(t * spec + 2 * k)] = static_cast<float>(std::cos(a));
        w[static_cast<std::size_t>(t * spec + 2 * k + 1)] = static_cast<float>(-std::sin(a));
      } else {  // w[2k][t], w[2k+1][t]: out_t = sum_k c_k (re cos a - im sin a)
        const long double c = (k == 0 || 2 * k == n) ? 1 : 2;
        w[static_cast<std::size_t>(2 * k * n + t)] = static_cast<float>(c * std::cos(a));
        w[static_cast<std::size_t>((2 * k + 1) * n + t)] =
            (k == 0 || 2 * k == n) ? 0.0f : static_cast<float>(-c * std::sin(a));
      }
    }
  std::vector<float> time = random_frames(static_cast<std::size_t>(batch * n));
  std::vector<float> freq = random_frames(static_cast<std::size_t>(batch * spec));
  double seconds = 0;
  for (auto _ : state) {
    const double t0 = thread_seconds();
    if (inverse)
      avgrad::cpu::gemm(false, false, batch, n, spec, 1.0f, freq.data(), spec, w.data(), n, 0.0f, time.data(), n);
    else
      avgrad::cpu::gemm(false, false, batch, spec, n, 1.0f, time.data(), n, w.data(), spec, 0.0f, freq.data(), spec);
    benchmark::DoNotOptimize(inverse ? time.data() : freq.data());
    benchmark::ClobberMemory();
    seconds += thread_seconds() - t0;
  }
  set_counters(state, batch, seconds);
}

void fft_sizes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "inverse"});
  for (std::int64_t inv : {0, 1})
    for (std::int64_t n : {400, 512, 1024, 4096}) b->Args({n, inv});
  b->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_RealFft)->Apply(fft_sizes);
BENCHMARK(BM_DftGemm)->Apply(fft_sizes);

}  // namespace

BENCHMARK_MAIN();
