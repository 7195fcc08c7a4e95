// The machine's measured fp32 peak for the benchmarks' frac_of_peak counters: an FMA-bound
// register loop on every OpenMP thread (the best of several probes, since a busy neighbour can
// only slow a probe down). Shared by bench_core (which also reports it as BM_PeakFp32Fma) and
// the workload benchmarks.
#pragma once

#include <benchmark/benchmark.h>
#include <omp.h>

#if defined(__AVX512F__) || defined(__AVX2__) || defined(__FMA__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace avgrad::bench {

using Clock = std::chrono::steady_clock;

// 16 independent accumulator chains: enough to cover FMA latency × FMA ports on
// current x86 cores (4 cycles × 2 ports needs 8), and they all fit in registers.
constexpr int kChains = 16;

#if defined(__AVX512F__)
constexpr int kLanes = 16;
inline const char* const kIsa = "avx512 fma";
/// Runs `reps` rounds of kChains dependent FMAs per chain; returns a value that
/// depends on every lane, so nothing is optimised away.
inline float fma_loop(std::int64_t reps) {
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
inline const char* const kIsa = "avx2 fma";
inline float fma_loop(std::int64_t reps) {
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
inline const char* const kIsa = "generic mul+add (build with AVGRAD_NATIVE=ON for the real peak)";
typedef float v4f __attribute__((vector_size(16)));
inline float fma_loop(std::int64_t reps) {
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
inline double fma_flops(std::int64_t reps) { return 2.0 * kChains * kLanes * static_cast<double>(reps); }

/// Runs fma_loop on every OpenMP thread; returns the total FLOPs executed.
inline double fma_all_threads(std::int64_t reps, float& sink) {
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
inline double g_best_peak = 0;

/// One timed probe; updates g_best_peak.
inline double probe_peak(std::int64_t reps, float& sink) {
  auto t0 = Clock::now();
  const double flops = fma_all_threads(reps, sink);
  const double rate = flops / std::chrono::duration<double>(Clock::now() - t0).count() * 1e-9;
  g_best_peak = std::max(g_best_peak, rate);
  return flops;
}

/// Peak fp32 GFLOP/s of this machine on all threads: best of several ~50 ms probes
/// (run once), or a better rate BM_PeakFp32Fma saw.
inline double peak_gflops() {
  static const bool probed = [] {
    float sink = 0;
    for (int trial = 0; trial < 10; ++trial) probe_peak(10'000'000, sink);
    benchmark::DoNotOptimize(sink);
    return true;
  }();
  (void)probed;
  return g_best_peak;
}

}  // namespace avgrad::bench
