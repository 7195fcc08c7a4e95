// Exact kNN benchmark, reference workload W5: k = 10 over N = 20000 float32 latents of D = 1024 (queries = base,
// exclude_self), 2 OpenMP threads. With --knn_check=DIR it instead reads DIR/x.npy and DIR/torch_idx.npy (written by
// benchmarks/torch/bench_knn.py), runs the same kNN and checks that the neighbour indices agree up to near-ties.
#include <benchmark/benchmark.h>

#include <omp.h>
#include "main.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "avgrad/data/npy.hpp"
#include "avgrad/metrics/knn.hpp"
#include "main.hpp"

using namespace avgrad;

namespace {

constexpr std::int64_t kN = 20000, kD = 1024, kK = 10;

void BM_W5_Knn(benchmark::State& state) {
  omp_set_num_threads(static_cast<int>(state.range(0)));
  Generator g(0);
  const auto x = randn<float>(Shape{kN, kD}, g);
  const metrics::KnnOptions opt{metrics::KnnMetric::l2, true, 1024};
  std::uint64_t flops = 0;
  for (auto _ : state) {
    const auto before = cpu::gemm_stats().flops;
    auto r = metrics::knn(x, x, kK, opt);
    flops += cpu::gemm_stats().flops - before;
    benchmark::DoNotOptimize(r.indices.data());
  }
  // The GEMM work actually done (the symmetric path computes about half of the 2·N²·D of a full distance matrix).
  state.counters["GFLOP/s"] = benchmark::Counter(static_cast<double>(flops) * 1e-9, benchmark::Counter::kIsRate);
  state.counters["full_GFLOP/s"] =
      benchmark::Counter(2.0 * kN * kN * kD * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

double l2(const float* a, const float* b, std::int64_t D) {
  double s = 0;
  for (std::int64_t c = 0; c < D; ++c) s += (static_cast<double>(a[c]) - b[c]) * (static_cast<double>(a[c]) - b[c]);
  return std::sqrt(s);
}

// Index disagreements are accepted when both candidates at that rank are at the same distance up to float rounding.
int check(const std::string& dir) {
  const auto x = load_npy<float>(dir + "/x.npy");
  const auto theirs = load_npy<std::int64_t>(dir + "/torch_idx.npy");
  const std::int64_t N = x.size(0), D = x.size(1), k = theirs.size(1);
  const auto r = metrics::knn(x, x, k, {metrics::KnnMetric::l2, true, 256});
  const auto ours = r.indices.to_vector();
  const auto ref = theirs.to_vector();
  const float* p = x.data();
  std::int64_t differ = 0, bad = 0;
  for (std::int64_t q = 0; q < N; ++q)
    for (std::int64_t t = 0; t < k; ++t) {
      const auto a = ours[static_cast<std::size_t>(q * k + t)], b = ref[static_cast<std::size_t>(q * k + t)];
      if (a == b) continue;
      ++differ;
      const double da = l2(p + q * D, p + a * D, D), db = l2(p + q * D, p + b * D, D);
      if (std::abs(da - db) > 1e-4 * std::max(da, db)) {
        if (++bad <= 5)
          std::printf("query %lld rank %lld: avgrad %lld (%.7g) vs torch %lld (%.7g)\n", (long long)q, (long long)t,
                      (long long)a, da, (long long)b, db);
      }
    }
  std::printf("knn check: N = %lld, D = %lld, k = %lld: %lld of %lld indices differ, %lld beyond near-ties\n",
              (long long)N, (long long)D, (long long)k, (long long)differ, (long long)(N * k), (long long)bad);
  return bad == 0 ? 0 : 1;
}

}  // namespace

BENCHMARK(BM_W5_Knn)->Arg(2)->Unit(benchmark::kSecond)->UseRealTime()->Iterations(1);

int main(int argc, char** argv) {
  return avgrad::bench::main_with_check(argc, argv, "--knn_check=", [](const std::string& dir) { return check(dir); });
}
