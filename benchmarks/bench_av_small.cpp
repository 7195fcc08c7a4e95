// bench-av-small workloads: W2 (a training step) and W4 (PGD-10 joint L∞, its forward and
// forward+backward); --check=FILE compares both with PyTorch on shared weights.
//
// W2: the model in train mode (batch-statistics BN); zero_grad, forward, mean cross entropy,
// backward to every parameter, SGD (lr 0.01, momentum 0.9) step. Inputs as W4's.
// W4: audio (32, 1, 128, 100) ε 0.1 step 0.01; video (32, 3, 8, 32, 32) ε 8/255 step 1/255 in the
// valid range [0, 1]; cross entropy summed over the batch; δ starts at 0 (no random start, so
// both frameworks do exactly the same arithmetic); the parameters are frozen, so every backward
// computes input gradients only. An attack is 10 forward+backward passes and one final forward.
//
//   BM_W4_Pgd10/threads              one whole attack (items/s = examples/s)
//   BM_W4_ForwardBackward/threads    one probe with gradient: forward, CE, backward to the inputs
//   BM_W4_Forward/threads            one forward + CE without a tape
//   BM_W2_TrainStep/threads          one training step (items/s = examples/s)
//
// Counters: conv_GFLOP/s, the convolutions' FLOPs over the whole time (the layers' other work is
// not counted, so this is a lower bound on the conv kernels' own rate), and frac_of_peak against
// the measured fp32 peak (benchmarks/roofline.hpp).
//
// The PyTorch side is benchmarks/torch/bench_av_small.py; benchmarks/compare.py runs both.
// `bench_av_small --check=FILE` (FILE written by `bench_av_small.py --write-check FILE`: the
// torch model's weights, the inputs, and in float64 its logits, input gradient and δ after one
// PGD step, and W2's loss, parameter gradients and state after two steps) loads the weights into
// avgrad's model, double and float, and compares, so the timed code is known to compute what
// the PyTorch side computes. Exit status 0 when they agree.
#include "avgrad/models/bench_av_small.hpp"
#include "avgrad/attacks/pgd.hpp"
#include "avgrad/data/safetensors.hpp"
#include "avgrad/ops/loss.hpp"
#include "avgrad/optim/sgd.hpp"
#include "main.hpp"
#include "roofline.hpp"

#include <benchmark/benchmark.h>
#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

using namespace avgrad;
using namespace avgrad::attacks;
using avgrad::bench::Clock;

namespace {

constexpr std::int64_t kBatch = 32, kClasses = 10;

ThreatModel w4_threat() {
  return ThreatModel::joint(Budget{.norm = Norm::linf, .eps = 0.1, .step = 0.01},
                            Budget{.norm = Norm::linf, .eps = 8.0 / 255, .step = 1.0 / 255, .lo = 0.0, .hi = 1.0});
}

Pgd<float> w4_pgd(int steps = 10) {
  return Pgd<float>(PgdOptions{.steps = steps, .restarts = 1, .random_start = false, .early_stop = false});
}

struct W4 {
  std::unique_ptr<models::BenchAvSmall<float>> model;
  AVInput<float> x;
  Labels<float> y;
};

// Seeded model and batch: fbank-scale gaussian audio, video pixels uniform in [0, 1].
/// Convolution FLOPs of one bench-av-small forward per example (a multiply-add counts 2):
/// `first` gets the share of the two first layers, whose input gradient a training step skips.
double conv_flops_per_example(double* first = nullptr) {
  double total = 0, firsts = 0;
  std::int64_t h = 128, w = 100, cin = 1;  // audio (1, 128, 100), 3×3, 2×2 pools
  for (std::int64_t c : {32, 64, 128, 128}) {
    const double f = 2.0 * double(c * cin * 9 * h * w);
    firsts += cin == 1 ? f : 0;
    total += f;
    h /= 2, w /= 2, cin = c;
  }
  std::int64_t t = 8, vh = 32, vw = 32;  // video (3, 8, 32, 32), 3×3×3, pools (1,2,2), (2,2,2), (2,2,2)
  cin = 3;
  for (std::int64_t c : {32, 64, 128}) {
    const double f = 2.0 * double(c * cin * 27 * t * vh * vw);
    firsts += cin == 3 ? f : 0;
    total += f;
    t = c == 32 ? t : t / 2, vh /= 2, vw /= 2, cin = c;
  }
  if (first) *first = firsts;
  return total;
}

/// GFLOP/s of the convolutions (`passes` forward-sized conv computations per example per
/// iteration) and the fraction of the machine's measured peak; the layers' other work is not counted.
void report_conv_rate(benchmark::State& state, double flops_per_iteration, Clock::time_point t0) {
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const double gflop = flops_per_iteration * 1e-9 * static_cast<double>(state.iterations());
  state.counters["conv_GFLOP/s"] = benchmark::Counter(gflop, benchmark::Counter::kIsRate);
  state.counters["frac_of_peak"] = gflop / secs / bench::peak_gflops();
}

W4& w4() {
  static W4 w = [] {
    Generator g(4);
    W4 s;
    s.model = models::bench_av_small<float>(kClasses, g);
    s.model->eval();
    s.x = {randn<float>(Shape{kBatch, 1, 128, 100}, g), rand<float>(Shape{kBatch, 3, 8, 32, 32}, g, 0.0, 1.0)};
    auto labels = Tensor<std::int64_t, Cpu>::empty({kBatch});
    for (std::int64_t b = 0; b < kBatch; ++b) labels.data()[b] = (b * 7) % kClasses;
    s.y = {labels, {}};
    return s;
  }();
  return w;
}

void BM_W4_Pgd10(benchmark::State& state) {
  omp_set_num_threads(static_cast<int>(state.range(0)));
  auto& w = w4();
  const auto pgd = w4_pgd();
  const auto tm = w4_threat();
  pgd.run(*w.model, w.x, w.y, tm);  // untimed: fills the allocator's cache, as in a running attack loop
  bench::peak_gflops();
  const auto t0 = Clock::now();
  for (auto _ : state) {
    auto r = pgd.run(*w.model, w.x, w.y, tm);
    benchmark::DoNotOptimize(r.delta.audio.data());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  report_conv_rate(state, 21.0 * kBatch * conv_flops_per_example(), t0);  // 10 × (forward + input gradient) + forward
}

template <bool Grad> void probe_bench(benchmark::State& state) {
  omp_set_num_threads(static_cast<int>(state.range(0)));
  auto& w = w4();
  FrozenParameters frozen(*w.model);  // as inside Pgd::run: no weight gradients
  const auto objective = Objective<float>::of(LossKind::cross_entropy);
  const Perturbation<float> delta{zeros<float>(w.x.audio.shape()), zeros<float>(w.x.video.shape())};
  probe(*w.model, w.x, delta, w.y, objective, Grad);  // untimed warm-up (allocator cache)
  bench::peak_gflops();
  const auto t0 = Clock::now();
  for (auto _ : state) {
    auto p = probe(*w.model, w.x, delta, w.y, objective, Grad);
    benchmark::DoNotOptimize(p.logits.data());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  report_conv_rate(state, (Grad ? 2.0 : 1.0) * kBatch * conv_flops_per_example(), t0);
}
void BM_W4_ForwardBackward(benchmark::State& s) { probe_bench<true>(s); }
void BM_W4_Forward(benchmark::State& s) { probe_bench<false>(s); }

// ---- W2 ---------------------------------------------------------------------------------------

/// W2's optimizer over every parameter of `model`, by name (as torch.optim.SGD over parameters()).
template <Floating T> optim::SGD<T> w2_optimizer(models::BenchAvSmall<T>& model) {
  return optim::SGD<T>(model.named_parameters(), optim::SGDOptions{.lr = 0.01, .momentum = 0.9});
}

/// One W2 step; returns the loss.
template <Floating T> Tensor<T, Cpu> w2_step(models::BenchAvSmall<T>& model, optim::SGD<T>& opt, const AVInput<T>& x,
                                             const Tensor<std::int64_t, Cpu>& y) {
  opt.zero_grad();
  auto loss = cross_entropy(model.forward(x).logits, y);
  loss.backward();
  opt.step();
  return loss.detach();
}

void BM_W2_TrainStep(benchmark::State& state) {
  omp_set_num_threads(static_cast<int>(state.range(0)));
  auto& w = w4();
  Generator g(4);
  auto model = models::bench_av_small<float>(kClasses, g);  // its own copy: W4's stays frozen in eval mode
  model->load_state_dict(w.model->state_dict());
  model->train();
  auto opt = w2_optimizer(*model);
  w2_step(*model, opt, w.x, w.y.classes);  // untimed: momentum buffers, allocator cache
  bench::peak_gflops();
  const auto t0 = Clock::now();
  for (auto _ : state) benchmark::DoNotOptimize(w2_step(*model, opt, w.x, w.y.classes).data());
  state.SetItemsProcessed(state.iterations() * kBatch);
  double first = 0;
  const double f = conv_flops_per_example(&first);
  report_conv_rate(state, kBatch * (3.0 * f - first), t0);  // forward, weight and input gradients (none for the inputs)
}

// ---- --check=FILE ---------------------------------------------------------------------------
//
// The reference is float64 (see bench_av_small.py): avgrad's double model must match it to
// rounding, every sign of the first PGD step included. The float model — the one timed — is
// held to float32 tolerances, and a few disagreements are expected and allowed: in a batch this
// size some max-pool windows hold two values within float32 rounding of each other, and which
// one wins (so where that window's gradient goes) depends on how the convolution rounded. One
// such window in the last audio block moves the input gradient over its whole receptive field
// (≈ 0.3% of the audio input), so up to 1% of gradient entries may differ; the signs of the PGD
// step, which is what the attack uses, must agree almost everywhere.

template <Floating T> std::vector<double> values(const Tensor<T, Cpu>& t) {
  auto v = t.contiguous().to_vector();
  return {v.begin(), v.end()};
}
int sgn(double v) { return (v > 0) - (v < 0); }

struct Comparison {
  double worst = 0;        ///< max |a − e| / max |e|
  std::int64_t off = 0;    ///< entries with |a − e| > 1e-3 · max |e|
  std::int64_t flips = 0;  ///< entries whose sign differs
  std::int64_t n = 0;
};
Comparison compare(const std::vector<double>& a, const std::vector<double>& e) {
  AVGRAD_CHECK(a.size() == e.size(), "check", a.size(), " values vs ", e.size(), " in the reference");
  Comparison c;
  c.n = static_cast<std::int64_t>(a.size());
  double scale = 0;
  for (double v : e) scale = std::max(scale, std::abs(v));
  scale = std::max(scale, 1e-300);
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d = std::abs(a[i] - e[i]) / scale;
    c.worst = std::max(c.worst, d);
    c.off += d > 1e-3;
    c.flips += sgn(a[i]) != sgn(e[i]);
  }
  return c;
}

template <Floating T> bool check_as(const SafetensorsFile& f, const char* type) {
  const bool exact = std::is_same_v<T, double>;
  Generator g(0);
  auto model = models::bench_av_small<T>(kClasses, g);
  nn::StateDict<T> sd;
  for (const auto& n : f.names())
    if (n.rfind("state.", 0) == 0) sd[n.substr(6)] = f.get<T>(n);
  model->load_state_dict(sd);  // strict: names and shapes must match torch's module
  model->eval();
  const AVInput<T> x{f.get<T>("audio"), f.get<T>("video")};
  const Labels<T> y{f.get<std::int64_t>("labels"), {}};
  AVGRAD_CHECK(x.audio.shape() == Shape({kBatch, 1, 128, 100}) && x.video.shape() == Shape({kBatch, 3, 8, 32, 32}),
               "check", "the file's inputs are not W4's shapes: ", x.audio.shape(), ", ", x.video.shape());
  bool ok = true;
  auto report = [&](const std::string& what, double value, double limit) {
    const bool pass = value <= limit;
    ok = ok && pass;
    std::printf("  %-6s %-44s %10.3g  (limit %.0e) %s\n", type, what.c_str(), value, limit, pass ? "ok" : "FAIL");
  };
  Probe<T> p;
  {
    FrozenParameters frozen(*model);
    const Perturbation<T> zero{zeros<T>(x.audio.shape()), zeros<T>(x.video.shape())};
    p = probe(*model, x, zero, y, Objective<T>::of(LossKind::cross_entropy), true);
  }
  report("logits: max err / max |logit|", compare(values(p.logits), values(f.get<double>("logits"))).worst,
         exact ? 1e-9 : 1e-4);
  const auto r = Pgd<T>(PgdOptions{.steps = 1, .restarts = 1, .random_start = false}).run(*model, x, y, w4_threat());
  for (const std::string m : {"audio", "video"}) {
    const auto gc = compare(values(m == "audio" ? p.grad.audio : p.grad.video), values(f.get<double>("grad." + m)));
    const auto dc = compare(values(m == "audio" ? r.delta.audio : r.delta.video), values(f.get<double>("delta1." + m)));
    if (exact) {
      report("grad " + m + ": max err / max |g|", gc.worst, 1e-9);
      report("PGD step 1 δ " + m + ": signs that differ", static_cast<double>(dc.flips), 0);
    } else {
      std::printf("  %-6s grad %s: max err / max |g| %.3g; δ after step 1: %lld of %lld signs differ\n", type,
                  m.c_str(), gc.worst, static_cast<long long>(dc.flips), static_cast<long long>(dc.n));
      report("grad " + m + ": fraction off by > 1e-3 max |g|", static_cast<double>(gc.off) / gc.n, 1e-2);
      report("PGD step 1 δ " + m + ": fraction of signs that differ", static_cast<double>(dc.flips) / dc.n, 1e-4);
    }
  }

  // W2 from the same weights: loss and every gradient of step 1, the whole state after step 2.
  // The float model meets the same max-pool near-ties as in W4 (a tie decided the other way moves
  // one gradient entry), so for float the share of entries off by more than 1e-3 of the largest
  // is bounded, as for W4's input gradients; double must agree everywhere.
  model->train();
  auto opt = w2_optimizer(*model);
  const auto loss = w2_step(*model, opt, x, y.classes);
  report("W2 loss: relative error", compare(values(loss), values(f.get<double>("w2.loss"))).worst, exact ? 1e-9 : 1e-4);
  auto against = [&](const std::vector<std::pair<std::string, Tensor<T, Cpu>>>& tensors, const std::string& prefix,
                     const std::string& what) {
    double worst = 0;
    std::int64_t off = 0, n = 0;
    for (const auto& [name, t] : tensors) {
      const auto c = compare(values(t), values(f.get<double>(prefix + name)));
      worst = std::max(worst, c.worst);
      off += c.off;
      n += c.n;
    }
    if (exact) {
      report(what + ": worst max err / max |v|", worst, 1e-9);
    } else {
      std::printf("  %-6s %s: worst max err / max |v| %.3g\n", type, what.c_str(), worst);
      report(what + ": fraction off by > 1e-3 max |v|", static_cast<double>(off) / static_cast<double>(n), 1e-2);
    }
  };
  std::vector<std::pair<std::string, Tensor<T, Cpu>>> grads;
  for (const auto& [n, p] : model->named_parameters()) grads.emplace_back(n, p.grad());
  against(grads, "w2.grad.", "W2 parameter gradients");
  w2_step(*model, opt, x, y.classes);
  const auto after = model->state_dict();
  against({after.begin(), after.end()}, "w2.state.", "W2 state after two SGD steps");
  return ok;
}

int check(const std::string& path) {
  const auto f = SafetensorsFile::open(path);
  std::printf("check against %s (PyTorch float64)\n", path.c_str());
  const bool ok_double = check_as<double>(f, "double");
  const bool ok_float = check_as<float>(f, "float");
  std::printf("%s\n", ok_double && ok_float ? "avgrad and PyTorch agree" : "MISMATCH");
  return ok_double && ok_float ? 0 : 1;
}

}  // namespace

BENCHMARK(BM_W4_Pgd10)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_W4_ForwardBackward)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_W4_Forward)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_W2_TrainStep)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

int main(int argc, char** argv) {
  return avgrad::bench::main_with_check(argc, argv, "--check=", [](const std::string& path) { return check(path); });
}
