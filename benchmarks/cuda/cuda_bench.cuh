// What the GPU benchmark binaries share: event timing of one iteration on the current stream,
// and a main that names the device first.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdio>

#include "../main.hpp"
#include "avgrad/cuda.cuh"

namespace avgrad::bench {

/// Times `body` (queued on the current stream) with CUDA events around each iteration, after one
/// untimed call (handles, algorithm choices, the allocator's cache).
template <class Body> void cuda_timed(benchmark::State& state, Body body) {
  body();
  cuda::synchronize();
  cuda::Event start, stop;
  for (auto _ : state) {
    start.record(cuda::current_stream());
    body();
    stop.record(cuda::current_stream());
    stop.synchronize();
    state.SetIterationTime(stop.elapsed_ms(start) / 1e3);
  }
}

inline int cuda_bench_main(int argc, char** argv) {
  if (cuda::available()) std::printf("device: %s\n", cuda::device_name().c_str());
  return run_benchmarks(argc, argv);
}

}  // namespace avgrad::bench
