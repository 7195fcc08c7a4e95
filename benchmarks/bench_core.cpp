// Core kernel benchmarks: SGEMM 1024³ (W1), conv2d/conv3d forward and forward+backward at
// every layer shape of bench-av-small, attention forward+backward, and a roofline probe that
// measures this machine's peak fp32 FLOP/s (an FMA-bound register loop on every
// OpenMP thread) and memory bandwidth (a STREAM-triad loop), so the GEMM and
// conv numbers can be read as a fraction of peak. The PyTorch side is benchmarks/torch/bench_core.py.
//
// Counters: GFLOP/s (rate over real time), frac_of_peak (achieved / measured
// peak), GB/s for the triad. Run with --benchmark_min_time=0.5s for stable numbers.
// avgrad first: gemm.hpp sets the warning state for the intrinsics headers it pulls in
#include "avgrad/autograd/engine.hpp"
#include "avgrad/backend/cpu/gemm.hpp"
#include "avgrad/data/safetensors.hpp"
#include "avgrad/ops/attention.hpp"
#include "avgrad/ops/conv.hpp"
#include "main.hpp"
#include "roofline.hpp"

#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

using namespace avgrad;

namespace {

using namespace avgrad::bench;

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

// ---- conv2d / conv3d 3×…×3, padding 1, no bias: the layers of bench-av-small ---------------
// args: N, C_in, spatial extents (2 or 3), C_out

/// GFLOP of one convolution: one multiply-add per (output, input channel, tap).
template <int Dims> double conv_gflop(const benchmark::State& s) {
  double positions = 1;
  for (int i = 0; i < Dims; ++i) positions *= double(s.range(2 + i));
  const double taps = Dims == 2 ? 9.0 : 27.0;
  return 2.0 * double(s.range(0)) * double(s.range(2 + Dims)) * positions * double(s.range(1)) * taps * 1e-9;
}

void report_rate(benchmark::State& state, double gflop_per_iter, Clock::time_point t0) {
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const double gflop = gflop_per_iter * static_cast<double>(state.iterations());
  state.counters["GFLOP/s"] = benchmark::Counter(gflop, benchmark::Counter::kIsRate);
  state.counters["frac_of_peak"] = gflop / secs / peak_gflops();
}

template <int Dims> struct ConvCase {
  Tensor<float, Cpu> x, w, seed;
  explicit ConvCase(const benchmark::State& s) {
    Generator g(2);
    Shape xs{s.range(0), s.range(1)}, ws{s.range(2 + Dims), s.range(1)}, ys{s.range(0), s.range(2 + Dims)};
    for (int i = 0; i < Dims; ++i) {
      xs.push_back(s.range(2 + i));
      ys.push_back(s.range(2 + i));
      ws.push_back(3);
    }
    x = randn<float>(xs, g);             // (N, C, spatial…)
    w = randn<float>(ws, g, 0.0, 0.05);  // (Co, C, 3…)
    seed = randn<float>(ys, g);          // dL/dy (N, Co, spatial…)
  }
  Tensor<float, Cpu> run() const {
    if constexpr (Dims == 2)
      return conv2d(x, w, Tensor<float, Cpu>(), 1, 1);
    else
      return conv3d(x, w, Tensor<float, Cpu>(), 1, 1);
  }
};

template <int Dims> void BM_ConvForward(benchmark::State& state) {
  ConvCase<Dims> c(state);
  NoGradGuard no_grad;
  peak_gflops();
  benchmark::DoNotOptimize(c.run().data());  // warm-up (allocator, page faults)
  auto t0 = Clock::now();
  for (auto _ : state) benchmark::DoNotOptimize(c.run().data());
  report_rate(state, conv_gflop<Dims>(state), t0);
}

/// Forward, then the input and weight gradients (a training step's share of the layer).
template <int Dims> void BM_ConvForwardBackward(benchmark::State& state) {
  ConvCase<Dims> c(state);
  c.x.requires_grad_();
  c.w.requires_grad_();
  peak_gflops();
  auto step = [&] {
    c.x.zero_grad();
    c.w.zero_grad();
    c.run().backward(c.seed);
  };
  step();  // warm-up
  auto t0 = Clock::now();
  for (auto _ : state) {
    step();
    benchmark::DoNotOptimize(c.w.grad().data());
  }
  report_rate(state, 3.0 * conv_gflop<Dims>(state), t0);  // forward, dX and dW are one conv's FLOPs each
}

// Every 3×3 layer of bench-av-small's audio branch, batch 32 (after each 2×2 pool).
void conv2d_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "C", "H", "W", "Co"});
  b->Args({32, 1, 128, 100, 32});
  b->Args({32, 32, 64, 50, 64});
  b->Args({32, 64, 32, 25, 128});
  b->Args({32, 128, 16, 12, 128});
}
// Every 3×3×3 layer of its video branch.
void conv3d_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "C", "T", "H", "W", "Co"});
  b->Args({32, 3, 8, 32, 32, 32});
  b->Args({32, 32, 8, 16, 16, 64});
  b->Args({32, 64, 4, 8, 8, 128});
}
BENCHMARK(BM_ConvForward<2>)
    ->Name("BM_Conv2dForward")
    ->Apply(conv2d_args)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_ConvForwardBackward<2>)
    ->Name("BM_Conv2dForwardBackward")
    ->Apply(conv2d_args)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_ConvForward<3>)
    ->Name("BM_Conv3dForward")
    ->Apply(conv3d_args)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_ConvForwardBackward<3>)
    ->Name("BM_Conv3dForwardBackward")
    ->Apply(conv3d_args)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// ---- scaled dot-product attention, forward + backward --------------------------------------------
// The study's CNN-transformer shape: d_model 512 as 8 heads of 64 over 128 time steps, batch 32.
// args: B, heads, L, E

void BM_AttentionForwardBackward(benchmark::State& state) {
  Generator g(5);
  const Shape s{state.range(0), state.range(1), state.range(2), state.range(3)};  // (B, H, L, E)
  auto q = randn<float>(s, g), k = randn<float>(s, g), v = randn<float>(s, g), seed = randn<float>(s, g);
  q.requires_grad_();
  k.requires_grad_();
  v.requires_grad_();
  peak_gflops();
  auto step = [&] {
    q.zero_grad();
    k.zero_grad();
    v.zero_grad();
    scaled_dot_product_attention(q, k, v).backward(seed);
  };
  step();  // warm-up
  auto t0 = Clock::now();
  for (auto _ : state) {
    step();
    benchmark::DoNotOptimize(q.grad().data());
  }
  // QKᵀ and PV forward, four products of the same size backward: 6 · 2·B·H·L²·E
  const double bh = double(state.range(0) * state.range(1)), l = double(state.range(2)), e = double(state.range(3));
  report_rate(state, 6.0 * 2.0 * bh * l * l * e * 1e-9, t0);
}
BENCHMARK(BM_AttentionForwardBackward)
    ->ArgNames({"B", "H", "L", "E"})
    ->Args({32, 8, 128, 64})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// ---- --core_check=DIR: the timed ops against PyTorch float64 references --------------------------
// DIR is written by `bench_core.py --check DIR`: per conv shape (batch 2) and for attention the
// inputs, output, a seed dL/dy and the input gradients. avgrad computes them in double (must agree
// to rounding) and in float (the timed type; float32 tolerance).

double rel_err(const Tensor<double, Cpu>& a, const Tensor<double, Cpu>& e) {
  AVGRAD_CHECK(a.shape() == e.shape(), "core_check", "shape ", a.shape(), " vs the reference's ", e.shape());
  const auto av = a.contiguous().to_vector(), ev = e.contiguous().to_vector();
  double worst = 0, scale = 1e-300;
  for (double v : ev) scale = std::max(scale, std::abs(v));
  for (std::size_t i = 0; i < av.size(); ++i) worst = std::max(worst, std::abs(av[i] - ev[i]));
  return worst / scale;
}

template <Floating T> Tensor<double, Cpu> as_double(const Tensor<T, Cpu>& t) { return t.template to<double>(); }

/// Runs `f(inputs…)` in T with gradients, backward with the seed; returns the worst relative error
/// over the output and each input gradient.
template <Floating T, class F> double check_case(const SafetensorsFile& file, const std::vector<std::string>& inputs,
                                                 const std::string& out, const std::vector<std::string>& grads, F f) {
  std::vector<Tensor<T, Cpu>> in;
  for (const auto& n : inputs) in.push_back(file.get<T>(n).requires_grad_());
  auto y = f(in);
  double worst = rel_err(as_double(y.detach()), file.get<double>(out));
  y.backward(file.get<T>("seed"));
  for (std::size_t i = 0; i < grads.size(); ++i)
    worst = std::max(worst, rel_err(as_double(in[i].grad()), file.get<double>(grads[i])));
  return worst;
}

int core_check(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".safetensors") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  AVGRAD_CHECK(!files.empty(), "core_check", "no .safetensors references in ", dir);
  bool ok = true;
  for (const auto& path : files) {
    const auto file = SafetensorsFile::open(path);
    double errs[2];
    if (path.stem() == "attention") {
      auto attn = [](const auto& in) { return scaled_dot_product_attention(in[0], in[1], in[2]); };
      errs[0] = check_case<double>(file, {"q", "k", "v"}, "out", {"gq", "gk", "gv"}, attn);
      errs[1] = check_case<float>(file, {"q", "k", "v"}, "out", {"gq", "gk", "gv"}, attn);
    } else {
      auto conv = [](const auto& in) {
        using Tt = std::remove_cvref_t<decltype(in[0])>;
        return in[0].dim() == 4 ? conv2d(in[0], in[1], Tt(), 1, 1) : conv3d(in[0], in[1], Tt(), 1, 1);
      };
      errs[0] = check_case<double>(file, {"x", "w"}, "y", {"gx", "gw"}, conv);
      errs[1] = check_case<float>(file, {"x", "w"}, "y", {"gx", "gw"}, conv);
    }
    const bool pass = errs[0] <= 1e-12 && errs[1] <= 1e-5;
    ok = ok && pass;
    std::printf("  %-44s double %.2e (limit 1e-12)  float %.2e (limit 1e-5)  %s\n", path.stem().c_str(), errs[0],
                errs[1], pass ? "ok" : "FAIL");
  }
  std::printf("%s\n", ok ? "avgrad and PyTorch agree" : "MISMATCH");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  return avgrad::bench::main_with_check(argc, argv,
                                        "--core_check=", [](const std::string& path) { return core_check(path); });
}
