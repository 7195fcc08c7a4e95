// Core kernel benchmarks: SGEMM 1024³, conv2d forward and forward+backward at
// the shapes of the audio network's first blocks, and a roofline probe that
// measures this machine's peak fp32 FLOP/s (an FMA-bound register loop on every
// OpenMP thread) and memory bandwidth (a STREAM-triad loop), so the GEMM and
// conv numbers can be read as a fraction of peak.
//
// Counters: GFLOP/s (rate over real time), frac_of_peak (achieved / measured
// peak), GB/s for the triad. Run with --benchmark_min_time=0.5s for stable numbers.
// avgrad first: gemm.hpp sets the warning state for the intrinsics headers it pulls in
#include "avgrad/autograd/engine.hpp"
#include "avgrad/backend/cpu/gemm.hpp"
#include "avgrad/ops/conv.hpp"

#include <benchmark/benchmark.h>
#include <omp.h>

#if defined(__AVX512F__) || defined(__AVX2__) || defined(__FMA__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>

using namespace avgrad;

namespace {

using Clock = std::chrono::steady_clock;

// ---- roofline probe: peak fp32 FMA throughput ---------------------------------

// 16 independent accumulator chains: enough to cover FMA latency × FMA ports on
// current x86 cores (4 cycles × 2 ports needs 8), and they all fit in registers.
constexpr int kChains = 16;

#if defined(__AVX512F__)
constexpr int kLanes = 16;
const char* const kIsa = "avx512 fma";
/// Runs `reps` rounds of kChains dependent FMAs per chain; returns a value that
/// depends on every lane, so nothing is optimised away.
float fma_loop(std::int64_t reps) {
  __m512 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_ps(1.0f + 0.001f * static_cast<float>(j));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (std::int64_t r = 0; r < reps; ++r) {
#pragma GCC unroll 16
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_fmadd_ps(acc[j], a, b);
  }
  __m512 s = acc[0];
  for (int j = 1; j < kChains; ++j) s = _mm512_add_ps(s, acc[j]);
  return _mm512_reduce_add_ps(s);
}
#elif defined(__FMA__) && defined(__AVX__)
constexpr int kLanes = 8;
const char* const kIsa = "avx2 fma";
float fma_loop(std::int64_t reps) {
  __m256 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm256_set1_ps(1.0f + 0.001f * static_cast<float>(j));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (std::int64_t r = 0; r < reps; ++r) {
#pragma GCC unroll 16
    for (int j = 0; j < kChains; ++j) acc[j] = _mm256_fmadd_ps(acc[j], a, b);
  }
  alignas(32) float lanes[8];
  __m256 s = acc[0];
  for (int j = 1; j < kChains; ++j) s = _mm256_add_ps(s, acc[j]);
  _mm256_store_ps(lanes, s);
  float t = 0;
  for (float v : lanes) t += v;
  return t;
}
#else
// Portable fallback (no FMA in the target ISA): multiply-add on 4-lane vectors.
constexpr int kLanes = 4;
const char* const kIsa = "generic mul+add (build with AVGRAD_NATIVE=ON for the real peak)";
typedef float v4f __attribute__((vector_size(16)));
float fma_loop(std::int64_t reps) {
  v4f acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = v4f{} + (1.0f + 0.001f * static_cast<float>(j));
  const v4f a = v4f{} + 0.999999f, b = v4f{} + 1e-7f;
  for (std::int64_t r = 0; r < reps; ++r) {
#pragma GCC unroll 16
    for (int j = 0; j < kChains; ++j) acc[j] = acc[j] * a + b;
  }
  float t = 0;
  for (int j = 0; j < kChains; ++j) t += acc[j][0] + acc[j][1] + acc[j][2] + acc[j][3];
  return t;
}
#endif

/// FLOPs of one fma_loop(reps) (an FMA counts as 2).
double fma_flops(std::int64_t reps) { return 2.0 * kChains * kLanes * static_cast<double>(reps); }

/// Runs fma_loop on every OpenMP thread; returns the total FLOPs executed.
double fma_all_threads(std::int64_t reps, float& sink) {
  int threads = 1;
  float total = 0;
#pragma omp parallel reduction(+ : total)
  {
#pragma omp single
    threads = omp_get_num_threads();
    total += fma_loop(reps);
  }
  sink += total;
  return fma_flops(reps) * threads;
}

/// Best all-thread fp32 rate seen so far (GFLOP/s): a busy neighbour can only
/// slow a probe down, so the maximum over probes is the best estimate of peak.
double g_best_peak = 0;

/// One timed probe; updates g_best_peak.
double probe_peak(std::int64_t reps, float& sink) {
  auto t0 = Clock::now();
  const double flops = fma_all_threads(reps, sink);
  const double rate = flops / std::chrono::duration<double>(Clock::now() - t0).count() * 1e-9;
  g_best_peak = std::max(g_best_peak, rate);
  return flops;
}

/// Peak fp32 GFLOP/s of this machine on all threads: best of several ~50 ms probes
/// (run once), or a better rate BM_PeakFp32Fma saw.
double peak_gflops() {
  static const bool probed = [] {
    float sink = 0;
    for (int trial = 0; trial < 10; ++trial) probe_peak(10'000'000, sink);
    benchmark::DoNotOptimize(sink);
    return true;
  }();
  (void)probed;
  return g_best_peak;
}

void BM_PeakFp32Fma(benchmark::State& state) {
  const std::int64_t reps = 5'000'000;
  float sink = 0;
  double flops = 0;
  for (auto _ : state) {
    flops += probe_peak(reps, sink);
    benchmark::DoNotOptimize(sink);
  }
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsRate);
  state.counters["threads"] = omp_get_max_threads();
  state.SetLabel(kIsa);
}
BENCHMARK(BM_PeakFp32Fma)->Unit(benchmark::kMillisecond)->UseRealTime();

// ---- roofline probe: memory bandwidth (STREAM triad) ----------------------------

void BM_StreamTriad(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  std::unique_ptr<float[]> a(new float[static_cast<std::size_t>(n)]), b(new float[static_cast<std::size_t>(n)]),
      c(new float[static_cast<std::size_t>(n)]);
  float* pa = a.get();
  float* pb = b.get();
  float* pc = c.get();
#pragma omp parallel for schedule(static)  // first touch by the threads that stream later
  for (std::int64_t i = 0; i < n; ++i) {
    pa[i] = 0.0f;
    pb[i] = 1.0f;
    pc[i] = 2.0f;
  }
  const float s = 3.0f;
  for (auto _ : state) {
#pragma omp parallel for simd schedule(static)
    for (std::int64_t i = 0; i < n; ++i) pa[i] = pb[i] + s * pc[i];
    benchmark::ClobberMemory();
  }
  // STREAM convention: 2 reads + 1 write per element (write-allocate traffic not counted)
  const double bytes = 3.0 * sizeof(float) * static_cast<double>(n) * static_cast<double>(state.iterations());
  state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsRate);
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}
BENCHMARK(BM_StreamTriad)->Arg(1 << 24)->Unit(benchmark::kMillisecond)->UseRealTime();

// ---- SGEMM ----------------------------------------------------------------------

void BM_Sgemm(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  Generator g(1);
  auto a = randn<float>({n, n}, g), b = randn<float>({n, n}, g);
  auto c = Tensor<float, Cpu>::empty({n, n});
  cpu::gemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);  // warm-up
  const double peak = peak_gflops();
  auto t0 = Clock::now();
  for (auto _ : state) {
    cpu::gemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const double gflop = 2.0 * static_cast<double>(n * n * n) * 1e-9 * static_cast<double>(state.iterations());
  state.counters["GFLOP/s"] = benchmark::Counter(gflop, benchmark::Counter::kIsRate);
  state.counters["frac_of_peak"] = gflop / secs / peak;
  state.counters["peak_GFLOP/s"] = peak;
  state.counters["threads"] = omp_get_max_threads();
}
BENCHMARK(BM_Sgemm)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();

// ---- conv2d 3×3, padding 1 ------------------------------------------------------
// args: N, C_in, H, W, C_out

double conv_gflop(const benchmark::State& s) {
  const double n = double(s.range(0)), ci = double(s.range(1)), h = double(s.range(2)), w = double(s.range(3)),
               co = double(s.range(4));
  return 2.0 * n * co * h * w * ci * 9.0 * 1e-9;  // one multiply-add per (output, input channel, tap)
}

void report_conv(benchmark::State& state, double gflop_per_iter, Clock::time_point t0) {
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const double gflop = gflop_per_iter * static_cast<double>(state.iterations());
  state.counters["GFLOP/s"] = benchmark::Counter(gflop, benchmark::Counter::kIsRate);
  state.counters["frac_of_peak"] = gflop / secs / peak_gflops();
}

void BM_Conv2dForward(benchmark::State& state) {
  Generator g(2);
  auto x = randn<float>({state.range(0), state.range(1), state.range(2), state.range(3)}, g);  // (N, C, H, W)
  auto w = randn<float>({state.range(4), state.range(1), 3, 3}, g, 0.0, 0.05);                 // (Co, C, 3, 3)
  auto b = randn<float>({state.range(4)}, g);                                                  // (Co)
  NoGradGuard no_grad;
  peak_gflops();
  benchmark::DoNotOptimize(conv2d(x, w, b, 1, 1).data());  // warm-up (allocator, page faults)
  auto t0 = Clock::now();
  for (auto _ : state) {
    auto y = conv2d(x, w, b, 1, 1);  // (N, Co, H, W)
    benchmark::DoNotOptimize(y.data());
  }
  report_conv(state, conv_gflop(state), t0);
}

void BM_Conv2dForwardBackward(benchmark::State& state) {
  Generator g(3);
  auto x = randn<float>({state.range(0), state.range(1), state.range(2), state.range(3)}, g);  // (N, C, H, W)
  auto w = randn<float>({state.range(4), state.range(1), 3, 3}, g, 0.0, 0.05);                 // (Co, C, 3, 3)
  auto b = randn<float>({state.range(4)}, g);                                                  // (Co)
  x.requires_grad_();
  w.requires_grad_();
  b.requires_grad_();
  auto seed = randn<float>({state.range(0), state.range(4), state.range(2), state.range(3)}, g);  // dL/dy
  peak_gflops();
  auto step = [&] {
    x.zero_grad();
    w.zero_grad();
    b.zero_grad();
    auto y = conv2d(x, w, b, 1, 1);
    y.backward(seed);  // dX, dW and db
  };
  step();  // warm-up
  auto t0 = Clock::now();
  for (auto _ : state) {
    step();
    benchmark::DoNotOptimize(w.grad().data());
  }
  report_conv(state, 3.0 * conv_gflop(state), t0);  // forward, dX and dW are one conv's FLOPs each
}

void conv_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "C", "H", "W", "Co"});
  b->Args({32, 64, 64, 50, 128});
  b->Args({32, 1, 128, 100, 64});
}
BENCHMARK(BM_Conv2dForward)->Apply(conv_args)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Conv2dForwardBackward)->Apply(conv_args)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
