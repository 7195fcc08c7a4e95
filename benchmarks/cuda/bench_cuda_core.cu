// GPU kernel benchmarks of the CUDA backend, timed with CUDA events (manual time):
//   Sgemm/N          avgrad matmul (N³, float32) and, beside it, a bare cublasSgemm call on the
//                    same buffers: the wrapper's overhead (target: within 5% of cuBLAS)
//   GemmBf16/N, GemmFp16/N  float matmul under MatmulPrecisionGuard (operands rounded to 16 bits
//                    per call, float accumulation; PyTorch: torch.mm under autocast), and
//                    GemmExBf16Bare/N a bare cublasGemmEx on operands already in bfloat16
//   AddBroadcast     (B, C) + (C) with autograd off: bandwidth of the elementwise kernel
//   SumRows          row sums of (B, C): the reduction kernel
//   LogSoftmaxFwdBwd log_softmax forward + backward over (B, classes)
//   PgdStepLinf      the fused L∞ PGD update (one kernel) against the same update as four
//                    elementwise ops (sign, axpy, clamp to the ball, clamp to the range)
// The PyTorch side is benchmarks/torch/bench_cuda_core.py (same names, same shapes, same GPU).
// Counters: GFLOP/s for GEMM, GB/s (bytes read + written) for the memory-bound kernels.
#include <benchmark/benchmark.h>

#include <cstdio>

#include "avgrad/avgrad.hpp"
#include "avgrad/cuda.cuh"
#include "cuda_bench.cuh"

using namespace avgrad;

namespace {

void BM_Sgemm(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  if (!cuda::available()) return state.SkipWithError("no CUDA device present");
  auto a = randn<float, Cuda>({n, n}), b = randn<float, Cuda>({n, n});
  NoGradGuard ng;
  bench::cuda_timed(state, [&] { benchmark::DoNotOptimize(matmul(a, b)); });
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Sgemm)->Arg(1024)->Arg(4096)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_SgemmCublasBare(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  if (!cuda::available()) return state.SkipWithError("no CUDA device present");
  auto a = randn<float, Cuda>({n, n}), b = randn<float, Cuda>({n, n});
  auto c = empty<float, Cuda>({n, n});
  bench::cuda_timed(state, [&] {
    const float one = 1, zero = 0;
    cublasSgemm(cuda::blas_handle(), CUBLAS_OP_N, CUBLAS_OP_N, int(n), int(n), int(n), &one, b.data(), int(n), a.data(),
                int(n), &zero, c.data(), int(n));
  });
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_SgemmCublasBare)->Arg(1024)->Arg(4096)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_GemmLowered(benchmark::State& state, MatmulPrecision p) {
  const std::int64_t n = state.range(0);
  if (!cuda::available()) return state.SkipWithError("no CUDA device present");
  auto a = randn<float, Cuda>({n, n}), b = randn<float, Cuda>({n, n});
  NoGradGuard ng;
  MatmulPrecisionGuard lowered(p);
  bench::cuda_timed(state, [&] { benchmark::DoNotOptimize(matmul(a, b)); });
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK_CAPTURE(BM_GemmLowered, GemmBf16, MatmulPrecision::bfloat16)
    ->Arg(1024)
    ->Arg(4096)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_GemmLowered, GemmFp16, MatmulPrecision::float16)
    ->Arg(1024)
    ->Arg(4096)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

void BM_GemmExBf16Bare(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  if (!cuda::available()) return state.SkipWithError("no CUDA device present");
  const auto a = cast<bfloat16>(randn<float, Cuda>({n, n})), b = cast<bfloat16>(randn<float, Cuda>({n, n}));
  auto c = empty<float, Cuda>({n, n});
  bench::cuda_timed(state, [&] {
    const float one = 1, zero = 0;
    cublasGemmEx(cuda::blas_handle(), CUBLAS_OP_N, CUBLAS_OP_N, int(n), int(n), int(n), &one, b.data(), CUDA_R_16BF,
                 int(n), a.data(), CUDA_R_16BF, int(n), &zero, c.data(), CUDA_R_32F, int(n), CUBLAS_COMPUTE_32F,
                 CUBLAS_GEMM_DEFAULT);
  });
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_GemmExBf16Bare)->Arg(1024)->Arg(4096)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_AddBroadcast(benchmark::State& state) {
  const std::int64_t rows = state.range(0), cols = 1024;
  if (!cuda::available()) return state.SkipWithError("no CUDA device present");
  auto x = randn<float, Cuda>({rows, cols}), b = randn<float, Cuda>({cols});
  NoGradGuard ng;
  bench::cuda_timed(state, [&] { benchmark::DoNotOptimize(x + b); });
  state.counters["GB/s"] =
      benchmark::Counter(2.0 * rows * cols * sizeof(float), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_AddBroadcast)->Arg(1 << 14)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_SumRows(benchmark::State& state) {
  const std::int64_t rows = state.range(0), cols = state.range(1);
  if (!cuda::available()) return state.SkipWithError("no CUDA device present");
  auto x = randn<float, Cuda>({rows, cols});
  NoGradGuard ng;
  bench::cuda_timed(state, [&] { benchmark::DoNotOptimize(sum(x, {1})); });
  state.counters["GB/s"] =
      benchmark::Counter(1.0 * rows * cols * sizeof(float), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_SumRows)->Args({1 << 14, 1024})->Args({64, 1 << 18})->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_LogSoftmaxFwdBwd(benchmark::State& state) {
  const std::int64_t rows = state.range(0), classes = state.range(1);
  if (!cuda::available()) return state.SkipWithError("no CUDA device present");
  auto x = randn<float, Cuda>({rows, classes});
  x.requires_grad_();
  auto seed = randn<float, Cuda>({rows, classes});
  bench::cuda_timed(state, [&] {
    log_softmax(x).backward(seed);
    x.zero_grad();
  });
  state.counters["GB/s"] =
      benchmark::Counter(5.0 * rows * classes * sizeof(float), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_LogSoftmaxFwdBwd)->Args({4096, 10})->Args({4096, 527})->UseManualTime()->Unit(benchmark::kMicrosecond);

attacks::Budget linf_budget() {
  attacks::Budget b;
  b.norm = attacks::Norm::linf;
  b.eps = 8.0 / 255;
  b.lo = 0;
  b.hi = 1;
  return b;
}

void BM_PgdStepLinf(benchmark::State& state) {
  const std::int64_t batch = state.range(0), n = 3 * 16 * 112 * 112 / 4;
  if (!cuda::available()) return state.SkipWithError("no CUDA device present");
  auto x = rand<float, Cuda>({batch, n}), g = randn<float, Cuda>({batch, n});
  auto delta = zeros<float, Cuda>({batch, n});
  const auto bud = linf_budget();
  NoGradGuard ng;
  bench::cuda_timed(state, [&] { attacks::pgd_step_(delta, g, x, bud, 2.0 / 255); });
  state.counters["GB/s"] =
      benchmark::Counter(4.0 * batch * n * sizeof(float), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_PgdStepLinf)->Arg(64)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_PgdStepLinfUnfused(benchmark::State& state) {
  const std::int64_t batch = state.range(0), n = 3 * 16 * 112 * 112 / 4;
  if (!cuda::available()) return state.SkipWithError("no CUDA device present");
  auto x = rand<float, Cuda>({batch, n}), g = randn<float, Cuda>({batch, n});
  auto delta = zeros<float, Cuda>({batch, n});
  const auto bud = linf_budget();
  NoGradGuard ng;
  bench::cuda_timed(state, [&] {
    auto moved = delta + sign(g) * (2.0 / 255);
    auto in_ball = clamp(moved, -bud.eps, bud.eps);
    delta = clamp(x + in_ball, bud.lo, bud.hi) - x;
  });
  state.counters["GB/s"] =
      benchmark::Counter(4.0 * batch * n * sizeof(float), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_PgdStepLinfUnfused)->Arg(64)->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) { return avgrad::bench::cuda_bench_main(argc, argv); }
