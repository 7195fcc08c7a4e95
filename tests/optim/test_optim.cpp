// Optimizers and clipping: 5-step trajectories of SGD / Adam / AdamW (every option,
// parameter groups, skipped parameters) against torch.optim in float64
// (fixtures/optim_reference.inc, tolerance 1e-12), clipping against torch.nn.utils,
// exact state_dict round trips, the fused loop on strided and large parameters,
// allocation-free steady-state steps, and error paths.
#include <omp.h>

#include <cstring>
#include <functional>
#include <memory>
#include <set>

#include "avgrad/core/allocator.hpp"
#include "avgrad/ops/reduce.hpp"
#include "avgrad/optim/adam.hpp"
#include "avgrad/optim/clip.hpp"
#include "avgrad/optim/schedule.hpp"
#include "avgrad/optim/sgd.hpp"
#include "optim/fixtures/optim_reference.inc"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::optim;
using namespace avgrad::testing;

namespace {

constexpr double kTorchTol = 1e-12;
constexpr int kSteps = 5;

TD ref(const std::vector<double>& v, const std::vector<std::int64_t>& shape) {
  return from_vector<double>(v, Shape(shape));
}
#define REF(name) ref(optim_ref::name, optim_ref::name##_shape)

/// A fresh leaf copy of x (type T).
template <class T> Tensor<T, Cpu> leaf_copy(const TD& x) {
  NoGradGuard no_grad;
  Tensor<T, Cpu> c = x.detach().to<T>().clone();
  c.requires_grad_();
  return c;
}

/// The fixture's loss at step k: 0.5·ΣA(W−C)² + 0.5·Σe(b−d)² + 0.3·ΣW⊙b + ΣN_k⊙W + Σn_k⊙b.
template <class T> Tensor<T, Cpu> loss_at(int k, const Tensor<T, Cpu>& W, const Tensor<T, Cpu>& b) {
  static const TD A = REF(A), C = REF(C), d = REF(d), e = REF(e), N = REF(N), n = REF(n);
  auto c = [](const TD& x) { return x.to<T>(); };
  auto dw = W - c(C), db = b - c(d);
  return 0.5 * sum(c(A) * (dw * dw)) + 0.5 * sum(c(e) * (db * db)) + 0.3 * sum(W * b) + sum(c(N.select(0, k)) * W) +
         sum(c(n.select(0, k)) * b);
}

template <class T> using MakeOpt = std::function<std::unique_ptr<Optimizer<T, Cpu>>(Tensor<T, Cpu>&, Tensor<T, Cpu>&)>;

/// Runs the fixture's 5 steps and compares W and b after each step with torch's.
template <class T> void expect_trajectory(const MakeOpt<T>& make, const std::vector<double>& want_W,
                                          const std::vector<double>& want_b, double tol = kTorchTol,
                                          std::set<int> drop_b = {}) {
  auto W = leaf_copy<T>(REF(W0));
  auto b = leaf_copy<T>(REF(b0));
  auto opt = make(W, b);
  ASSERT_EQ(want_W.size(), static_cast<std::size_t>(kSteps * 12));
  for (int k = 0; k < kSteps; ++k) {
    opt->zero_grad();
    loss_at<T>(k, W, b).backward();
    if (drop_b.count(k)) b.zero_grad();
    opt->step();
    auto w = W.to_vector(), bv = b.to_vector();
    for (int i = 0; i < 12; ++i)
      EXPECT_NEAR(double(w[i]), want_W[k * 12 + i], tol) << "W[" << i << "] after step " << k + 1;
    for (int i = 0; i < 4; ++i)
      EXPECT_NEAR(double(bv[i]), want_b[k * 4 + i], tol) << "b[" << i << "] after step " << k + 1;
  }
}
#define EXPECT_TRAJECTORY(T, name, make, ...) \
  expect_trajectory<T>(make, optim_ref::name##_W, optim_ref::name##_b __VA_OPT__(, ) __VA_ARGS__)

template <template <class, class> class Opt, class T = double, class Options> MakeOpt<T> make(Options o) {
  return [o](Tensor<T, Cpu>& W, Tensor<T, Cpu>& b) -> std::unique_ptr<Optimizer<T, Cpu>> {
    return std::make_unique<Opt<T, Cpu>>(std::vector<NamedParam<T, Cpu>>{{"W", W}, {"b", b}}, o);
  };
}

// ---- trajectories against torch.optim ------------------------------------------------

TEST(SGD, MatchesTorchPlain) { EXPECT_TRAJECTORY(double, sgd, make<SGD>(SGDOptions{.lr = 0.1})); }
TEST(SGD, MatchesTorchMomentum) {
  EXPECT_TRAJECTORY(double, sgd_momentum, make<SGD>(SGDOptions{.lr = 0.1, .momentum = 0.9}));
}
TEST(SGD, MatchesTorchDampeningAndWeightDecay) {
  EXPECT_TRAJECTORY(double, sgd_dampening,
                    make<SGD>(SGDOptions{.lr = 0.05, .momentum = 0.8, .dampening = 0.3, .weight_decay = 0.01}));
}
TEST(SGD, MatchesTorchNesterov) {
  EXPECT_TRAJECTORY(double, sgd_nesterov,
                    make<SGD>(SGDOptions{.lr = 0.05, .momentum = 0.9, .weight_decay = 0.1, .nesterov = true}));
}
TEST(Adam, MatchesTorchDefaults) { EXPECT_TRAJECTORY(double, adam, make<Adam>(AdamOptions{.lr = 0.1})); }
TEST(Adam, MatchesTorchL2AndAmsgrad) {
  EXPECT_TRAJECTORY(double, adam_amsgrad,
                    make<Adam>(AdamOptions{
                        .lr = 0.1, .beta1 = 0.8, .beta2 = 0.5, .eps = 1e-6, .weight_decay = 0.1, .amsgrad = true}));
}
TEST(AdamW, MatchesTorchDefaults) { EXPECT_TRAJECTORY(double, adamw, make<AdamW>(AdamWOptions{.lr = 0.1})); }
TEST(AdamW, MatchesTorchDecoupledDecayAndAmsgrad) {
  EXPECT_TRAJECTORY(
      double, adamw_amsgrad,
      make<AdamW>(AdamWOptions{.lr = 0.05, .beta1 = 0.85, .beta2 = 0.5, .weight_decay = 0.2, .amsgrad = true}));
}

TEST(Optimizer, FloatFollowsTheDoubleReference) {
  EXPECT_TRAJECTORY(float, sgd_nesterov,
                    (make<SGD, float>(SGDOptions{.lr = 0.05, .momentum = 0.9, .weight_decay = 0.1, .nesterov = true})),
                    2e-5);
  EXPECT_TRAJECTORY(float, adam_amsgrad,
                    (make<Adam, float>(AdamOptions{
                        .lr = 0.1, .beta1 = 0.8, .beta2 = 0.5, .eps = 1e-6, .weight_decay = 0.1, .amsgrad = true})),
                    2e-5);
}

TEST(ParamGroups, PerGroupOptionsMatchTorch) {
  EXPECT_TRAJECTORY(
      double, groups_sgd, MakeOpt<double>([](TD& W, TD& b) -> std::unique_ptr<Optimizer<double>> {
        GroupOptions gw, gb;
        gw.weight_decay = 0.05;
        gb.lr = 0.02;
        gb.momentum = 0.5;
        return std::make_unique<SGD<double>>(
            std::vector<ParamGroup<double>>{ParamGroup<double>({{"W", W}}, gw), ParamGroup<double>({{"b", b}}, gb)},
            SGDOptions{.lr = 0.1, .momentum = 0.9});
      }));
  EXPECT_TRAJECTORY(
      double, groups_adamw, MakeOpt<double>([](TD& W, TD& b) -> std::unique_ptr<Optimizer<double>> {
        GroupOptions gb;
        gb.lr = 0.01;
        gb.weight_decay = 0.3;
        return std::make_unique<AdamW<double>>(
            std::vector<ParamGroup<double>>{ParamGroup<double>({{"W", W}}), ParamGroup<double>({{"b", b}}, gb)},
            AdamWOptions{.lr = 0.1, .weight_decay = 0.0});
      }));
}

TEST(ParamGroups, ResolvedOptionsAndAddGroupLater) {
  auto w = leaf_copy<double>(REF(W0)), v = leaf_copy<double>(REF(b0)), u = leaf_copy<double>(REF(d));
  GroupOptions o;
  o.lr = 0.5;
  Adam<double> opt(std::vector<ParamGroup<double>>{ParamGroup<double>(std::vector<TD>{w}),
                                                   ParamGroup<double>(std::vector<TD>{v}, o)},
                   AdamOptions{.lr = 0.1, .beta2 = 0.99});
  ASSERT_EQ(opt.num_groups(), 2u);
  EXPECT_EQ(*opt.param_groups()[0].lr, 0.1);
  EXPECT_EQ(*opt.param_groups()[1].lr, 0.5);
  EXPECT_EQ(*opt.param_groups()[1].beta2, 0.99);
  EXPECT_FALSE(opt.param_groups()[0].momentum.has_value());
  // unnamed parameters are named by their overall index
  EXPECT_EQ(opt.param_groups()[0].params[0].first, "0");
  EXPECT_EQ(opt.param_groups()[1].params[0].first, "1");
  opt.add_param_group(ParamGroup<double>({{"u", u}}, o));
  EXPECT_EQ(opt.parameters().size(), 3u);
  EXPECT_EQ(*opt.param_groups()[2].eps, 1e-8);
  EXPECT_EQ(opt.step_count("u"), 0);
}

TEST(ParamGroups, ScheduledLrIsUsedByTheNextStep) {
  auto p = leaf_copy<double>(from_vector<double>({1.0, 2.0}));
  SGD<double> opt(std::vector<TD>{p}, SGDOptions{.lr = 0.1});
  p.set_grad(from_vector<double>({1.0, 1.0}));
  opt.step();
  expect_close(p, {0.9, 1.9}, 1e-15);
  opt.param_groups()[0].lr = 0.5;
  opt.step();
  expect_close(p, {0.4, 1.4}, 1e-15);
}

// ---- skipped parameters ---------------------------------------------------------------

TEST(Optimizer, SkipsParametersWithoutGradientAsTorch) {
  EXPECT_TRAJECTORY(double, skip_adam, make<Adam>(AdamOptions{.lr = 0.1}), kTorchTol, {2, 4});
  EXPECT_TRAJECTORY(double, skip_sgd, make<SGD>(SGDOptions{.lr = 0.1, .momentum = 0.9}), kTorchTol, {1, 3});
}

TEST(Optimizer, ParameterThatNeverGetsAGradientIsUntouched) {
  auto w = leaf_copy<double>(REF(W0)), frozen = leaf_copy<double>(REF(b0));
  const auto before = frozen.to_vector();
  Adam<double> opt(std::vector<NamedParam<double>>{{"w", w}, {"frozen", frozen}});
  for (int k = 0; k < 3; ++k) {
    opt.zero_grad();
    sum(w * w).backward();
    opt.step();
  }
  EXPECT_EQ(frozen.to_vector(), before);
  EXPECT_EQ(opt.step_count("w"), 3);
  EXPECT_EQ(opt.step_count("frozen"), 0);
  EXPECT_FALSE(opt.state_buffer("frozen", "exp_avg").defined());
  auto st = opt.state_dict();
  EXPECT_EQ(st.scalars.at("frozen.step"), "0");
  EXPECT_EQ(st.tensors.count("frozen.exp_avg"), 0u);
  EXPECT_EQ(st.tensors.count("w.exp_avg"), 1u);
}

TEST(Optimizer, ZeroGradSetsGradientsToNone) {
  auto w = leaf_copy<double>(REF(W0));
  SGD opt(std::vector<TD>{w});  // T and D deduced
  static_assert(std::is_same_v<decltype(opt), SGD<double, Cpu>>);
  sum(w).backward();
  ASSERT_TRUE(w.grad().defined());
  opt.zero_grad();
  EXPECT_FALSE(w.grad().defined());
}

// ---- the fused loop: strided, broadcast and large parameters ------------------------

TEST(FusedUpdate, StridedParameterAndGradientMatchContiguous) {
  Generator gen(7);
  TD base = randn<double>({5, 3}, gen), gbase = randn<double>({5, 3}, gen);
  TD pt = base.transpose(0, 1);  // (3,5) view, strides (1,3)
  pt.requires_grad_();
  TD pc = leaf_copy<double>(pt.contiguous());
  AdamW<double> a(std::vector<TD>{pt}, AdamWOptions{.lr = 0.1, .amsgrad = true});
  AdamW<double> c(std::vector<TD>{pc}, AdamWOptions{.lr = 0.1, .amsgrad = true});
  for (int k = 0; k < 3; ++k) {
    TD gt = (gbase * double(k + 1)).transpose(0, 1);  // strided gradient
    pt.set_grad(gt);
    pc.set_grad(gt.contiguous());
    a.step();
    c.step();
  }
  EXPECT_EQ(pt.to_vector(), pc.to_vector());
  // the view's storage is the base tensor's: the update reached it
  EXPECT_EQ(base.transpose(0, 1).to_vector(), pc.to_vector());
}

TEST(FusedUpdate, BroadcastGradientIsRead) {
  auto p = leaf_copy<double>(zeros<double>({2, 3}));
  SGD<double> opt(std::vector<TD>{p}, SGDOptions{.lr = 1.0, .momentum = 0.5});
  p.set_grad(from_vector<double>({1.0, 2.0, 3.0}).unsqueeze(0).expand({2, 3}));
  opt.step();
  expect_close(p, {-1, -2, -3, -1, -2, -3}, 0);
}

TEST(FusedUpdate, LargeParameterIsThreadCountIndependent) {
  const std::int64_t n = 3 * cpu::kParallelGrain + 17;
  Generator gen(11);
  TD init = randn<double>({n}, gen), grad = randn<double>({n}, gen);
  auto run = [&](int threads) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    TD p = leaf_copy<double>(init);
    Adam<double> opt(std::vector<TD>{p}, AdamOptions{.lr = 0.01, .weight_decay = 0.1, .amsgrad = true});
    for (int k = 0; k < 3; ++k) {
      p.set_grad(grad * double(k + 1));
      opt.step();
    }
    omp_set_num_threads(saved);
    return p.to_vector();
  };
  const auto one = run(1), many = run(4);
  EXPECT_EQ(one, many);
  // spot-check element i against the scalar formula
  for (std::int64_t i : {std::int64_t(0), n / 2, n - 1}) {
    double p = init.data()[i], m = 0, v = 0, vmax = 0;
    for (int k = 1; k <= 3; ++k) {
      double g = grad.data()[i] * k + 0.1 * p;
      m = 0.9 * m + 0.1 * g;
      v = 0.999 * v + 0.001 * g * g;
      vmax = std::max(vmax, v);
      p -= 0.01 / (1 - std::pow(0.9, k)) * m / (std::sqrt(vmax) / std::sqrt(1 - std::pow(0.999, k)) + 1e-8);
    }
    EXPECT_NEAR(one[static_cast<std::size_t>(i)], p, 1e-14) << "element " << i;
  }
}

// ---- no allocation in the steady state ---------------------------------------------------

TEST(Optimizer, SteadyStateStepAllocatesNothing) {
  Generator gen(3);
  TD w = leaf_copy<double>(randn<double>({64, 1024}, gen));  // > kParallelGrain: threaded path
  TD b = leaf_copy<double>(randn<double>({1024}, gen));
  TD x = randn<double>({8, 64}, gen);
  Adam<double> adam(std::vector<NamedParam<double>>{{"w", w}, {"b", b}}, AdamOptions{.amsgrad = true});
  auto train_step = [&] {
    adam.zero_grad();
    auto y = sum(x.unsqueeze(2) * w) + sum(b * b);
    y.backward();
    clip_grad_norm_(adam.parameters(), 1.0);
    adam.step();
  };
  train_step();  // creates the state buffers
  train_step();
  // the optimizer step and clipping themselves: no tensor allocation at all
  const auto before = cpu_memory_stats();
  for (int k = 0; k < 3; ++k) {
    clip_grad_norm_(std::vector<TD>{w, b}, 0.5, kInfNorm);
    clip_grad_value_(std::vector<TD>{w, b}, 0.1);
    adam.step();
  }
  EXPECT_EQ(cpu_memory_stats().allocations, before.allocations);
  // a whole training step (forward, backward, clip, step): served from the pool
  const auto sys = cpu_memory_stats().system_allocations;
  for (int k = 0; k < 3; ++k) train_step();
  EXPECT_EQ(cpu_memory_stats().system_allocations, sys);

  SGD<double> sgd(std::vector<TD>{w, b}, SGDOptions{.lr = 0.01, .momentum = 0.9, .nesterov = true});
  sgd.step();
  const auto sgd_before = cpu_memory_stats().allocations;
  for (int k = 0; k < 3; ++k) sgd.step();
  EXPECT_EQ(cpu_memory_stats().allocations, sgd_before);
}

// ---- state_dict: exact round trips -------------------------------------------------------

/// 5 straight steps vs 3 steps, state_dict, a new optimizer (and schedule) loading it, 2 more
/// steps: parameters must be bit-identical.
template <class Make> void expect_resume_bit_identical(Make make_opt, bool with_schedule) {
  auto fresh = [] { return std::pair{leaf_copy<double>(REF(W0)), leaf_copy<double>(REF(b0))}; };
  auto train = [](Optimizer<double>& opt, LRScheduler* sched, TD& W, TD& b, int from, int to) {
    for (int k = from; k < to; ++k) {
      opt.zero_grad();
      loss_at<double>(k, W, b).backward();
      opt.step();
      if (sched) sched->step();
    }
  };
  auto make_sched = [&](Optimizer<double>& opt) -> std::unique_ptr<LRScheduler> {
    if (!with_schedule) return nullptr;
    return std::make_unique<OneCycleLR>(opt, 0.2, OneCycleOptions{.total_steps = 8});
  };
  auto [W1, b1] = fresh();
  auto straight = make_opt(W1, b1);
  auto s1 = make_sched(*straight);
  train(*straight, s1.get(), W1, b1, 0, 5);

  auto [W2, b2] = fresh();
  auto first = make_opt(W2, b2);
  auto s2 = make_sched(*first);
  train(*first, s2.get(), W2, b2, 0, 3);
  auto state = first->state_dict();
  auto sched_state = s2 ? s2->state_dict() : std::map<std::string, std::string>{};
  first.reset();
  // the checkpoint holds plain copies: rebuild every tensor from its values
  for (auto& [k, t] : state.tensors) t = from_vector<double>(t.to_vector(), t.shape());
  auto resumed = make_opt(W2, b2);
  auto s3 = make_sched(*resumed);
  resumed->load_state_dict(state);
  if (s3) s3->load_state_dict(sched_state);
  train(*resumed, s3.get(), W2, b2, 3, 5);

  const auto w1 = W1.to_vector(), w2 = W2.to_vector(), v1 = b1.to_vector(), v2 = b2.to_vector();
  EXPECT_EQ(0, std::memcmp(w1.data(), w2.data(), w1.size() * sizeof(double)));
  EXPECT_EQ(0, std::memcmp(v1.data(), v2.data(), v1.size() * sizeof(double)));
  EXPECT_EQ(w1, w2);
  EXPECT_EQ(v1, v2);
}

TEST(StateDict, ResumeIsBitIdentical) {
  for (bool sched : {false, true}) {
    SCOPED_TRACE(sched ? "with OneCycleLR" : "no schedule");
    expect_resume_bit_identical(
        make<SGD>(SGDOptions{.lr = 0.05, .momentum = 0.9, .weight_decay = 0.1, .nesterov = true}), sched);
    expect_resume_bit_identical(make<Adam>(AdamOptions{.lr = 0.1, .beta2 = 0.5, .weight_decay = 0.1, .amsgrad = true}),
                                sched);
    expect_resume_bit_identical(make<AdamW>(AdamWOptions{.lr = 0.07, .weight_decay = 0.3}), sched);
  }
}

TEST(StateDict, KeysAndSnapshotSemantics) {
  auto W = leaf_copy<double>(REF(W0)), b = leaf_copy<double>(REF(b0));
  Adam<double> opt(std::vector<NamedParam<double>>{{"fc.weight", W}, {"fc.bias", b}}, AdamOptions{.lr = 0.1});
  for (int k = 0; k < 3; ++k) {
    opt.zero_grad();
    loss_at<double>(k, W, b).backward();
    opt.step();
  }
  auto st = opt.state_dict();
  std::set<std::string> tensor_keys, scalar_keys;
  for (const auto& [k, v] : st.tensors) tensor_keys.insert(k);
  for (const auto& [k, v] : st.scalars) scalar_keys.insert(k);
  EXPECT_EQ(tensor_keys, (std::set<std::string>{"fc.bias.exp_avg", "fc.bias.exp_avg_sq", "fc.weight.exp_avg",
                                                "fc.weight.exp_avg_sq"}));
  EXPECT_EQ(scalar_keys, (std::set<std::string>{"optimizer", "version", "param_groups", "param_groups.0.lr",
                                                "param_groups.0.weight_decay", "param_groups.0.beta1",
                                                "param_groups.0.beta2", "param_groups.0.eps", "param_groups.0.amsgrad",
                                                "fc.weight.group", "fc.weight.step", "fc.bias.group", "fc.bias.step"}));
  EXPECT_EQ(st.scalars["optimizer"], "Adam");
  EXPECT_EQ(st.scalars["fc.weight.step"], "3");
  EXPECT_EQ(st.scalars["param_groups.0.lr"], "0.1");
  EXPECT_EQ(st.scalars["param_groups.0.amsgrad"], "false");
  EXPECT_EQ(st.tensors["fc.weight.exp_avg"].shape(), W.shape());
  EXPECT_EQ(st.tensors["fc.weight.exp_avg"].to_vector(), opt.state_buffer("fc.weight", "exp_avg").to_vector());
  // a snapshot: changing it does not change the optimizer
  {
    NoGradGuard no_grad;
    fill_(st.tensors["fc.weight.exp_avg"], 42.0);
  }
  EXPECT_NE(opt.state_buffer("fc.weight", "exp_avg").to_vector()[0], 42.0);
  // loading copies in: the caller's tensors stay independent of the optimizer
  Adam<double> other(std::vector<NamedParam<double>>{{"fc.weight", W}, {"fc.bias", b}});
  other.load_state_dict(st);
  EXPECT_EQ(*other.param_groups()[0].lr, 0.1);
  EXPECT_EQ(other.step_count("fc.bias"), 3);
  EXPECT_EQ(other.state_buffer("fc.weight", "exp_avg").to_vector()[0], 42.0);
  EXPECT_FALSE(other.state_buffer("fc.weight", "exp_avg").storage() == st.tensors["fc.weight.exp_avg"].storage());
}

TEST(StateDict, ScalarsRoundTripExactly) {
  auto p = leaf_copy<double>(REF(b0));
  SGD<double> opt(std::vector<TD>{p}, SGDOptions{.lr = 0.1 + 0.2, .momentum = 1.0 / 3.0});
  opt.param_groups()[0].lr = 4.9406564584124654e-324;  // subnormal: still exact
  auto st = opt.state_dict();
  SGD<double> other(std::vector<TD>{p});
  other.load_state_dict(st);
  EXPECT_EQ(*other.param_groups()[0].lr, 4.9406564584124654e-324);
  EXPECT_EQ(*other.param_groups()[0].momentum, 1.0 / 3.0);
}

// ---- clipping against torch.nn.utils -------------------------------------------------------

std::vector<TD> clip_params() {
  std::vector<TD> ps;
  for (const TD& g : {REF(clip_g0), REF(clip_g1), REF(clip_g2)}) {
    TD p = leaf_copy<double>(zeros_like(g));
    p.set_grad(g.clone());
    ps.push_back(p);
  }
  return ps;
}
std::vector<double> all_grads(const std::vector<TD>& ps) {
  std::vector<double> out;
  for (const auto& p : ps)
    for (double v : p.grad().to_vector()) out.push_back(v);
  return out;
}

TEST(Clip, GradNormMatchesTorch) {
  struct Case {
    const char* tag;
    double max_norm, norm_type, total;
    const std::vector<double>& grads;
  };
  const Case cases[] = {
      {"l2", optim_ref::clip_l2_max_norm, 2.0, optim_ref::clip_l2_total, optim_ref::clip_l2_grads},
      {"l2_none", optim_ref::clip_l2_none_max_norm, 2.0, optim_ref::clip_l2_none_total, optim_ref::clip_l2_none_grads},
      {"inf", optim_ref::clip_inf_max_norm, kInfNorm, optim_ref::clip_inf_total, optim_ref::clip_inf_grads},
      {"l1", optim_ref::clip_l1_max_norm, 1.0, optim_ref::clip_l1_total, optim_ref::clip_l1_grads},
      {"l3", optim_ref::clip_l3_max_norm, 3.0, optim_ref::clip_l3_total, optim_ref::clip_l3_grads},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.tag);
    auto ps = clip_params();
    const double total = clip_grad_norm_(ps, c.max_norm, c.norm_type);
    EXPECT_NEAR(total, c.total, kTorchTol);
    const auto got = all_grads(ps);
    ASSERT_EQ(got.size(), c.grads.size());
    for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], c.grads[i], kTorchTol) << "element " << i;
  }
}

TEST(Clip, GradValueMatchesTorch) {
  auto ps = clip_params();
  clip_grad_value_(ps, 0.4);
  const auto got = all_grads(ps);
  ASSERT_EQ(got.size(), optim_ref::clip_value_grads.size());
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], optim_ref::clip_value_grads[i]) << "element " << i;
}

TEST(Clip, SkipsMissingGradientsAndHandlesBroadcastOnes) {
  auto a = leaf_copy<double>(zeros<double>({2, 2})), none = leaf_copy<double>(zeros<double>({3}));
  a.set_grad(from_vector<double>({3.0, 4.0}).unsqueeze(0).expand({2, 2}));  // stride-0 rows
  const double total = clip_grad_norm_(std::vector<TD>{a, none}, 1.0);
  EXPECT_NEAR(total, std::sqrt(50.0), 1e-14);
  const double k = 1.0 / (std::sqrt(50.0) + 1e-6);
  expect_close(a.grad(), {3 * k, 4 * k, 3 * k, 4 * k}, 1e-15);
  EXPECT_FALSE(none.grad().defined());
  EXPECT_EQ(clip_grad_norm_(std::vector<TD>{none}, 1.0), 0.0);
}

TEST(Clip, NonFiniteTotal) {
  auto p = leaf_copy<double>(zeros<double>({3}));
  p.set_grad(from_vector<double>({1.0, std::nan(""), 2.0}));
  expect_error([&] { clip_grad_norm_(std::vector<TD>{p}, 1.0, 2.0, true); }, {"clip_grad_norm_", "nan"});
  // without the flag the gradients are scaled as torch does (by NaN)
  EXPECT_TRUE(std::isnan(clip_grad_norm_(std::vector<TD>{p}, 1.0)));
  for (double v : p.grad().to_vector()) EXPECT_TRUE(std::isnan(v));
  p.set_grad(from_vector<double>({1.0, INFINITY, 2.0}));
  expect_error([&] { clip_grad_norm_(std::vector<TD>{p}, 1.0, kInfNorm, true); }, {"clip_grad_norm_", "inf"});
}

TEST(Clip, Errors) {
  auto ps = clip_params();
  expect_error([&] { clip_grad_norm_(ps, 1.0, 0.0); }, {"clip_grad_norm_", "norm_type"});
  expect_error([&] { clip_grad_norm_(ps, -1.0); }, {"clip_grad_norm_", "max_norm", "-1"});
  expect_error([&] { clip_grad_value_(ps, -0.5); }, {"clip_grad_value_", "-0.5"});
}

// ---- error paths -----------------------------------------------------------------------------

TEST(OptimizerErrors, InvalidOptions) {
  auto p = leaf_copy<double>(REF(b0));
  std::vector<TD> ps{p};
  expect_error([&] { (void)SGD<double>(ps, SGDOptions{.lr = -0.1}); }, {"SGD", "learning rate", "-0.1"});
  expect_error([&] { (void)Adam<double>(ps, AdamOptions{.lr = -1}); }, {"Adam", "learning rate", "-1"});
  expect_error([&] { (void)AdamW<double>(ps, AdamWOptions{.lr = std::nan("")}); }, {"AdamW", "learning rate"});
  expect_error([&] { (void)Adam<double>(ps, AdamOptions{.beta1 = 1.0}); }, {"Adam", "beta1", "[0, 1)"});
  expect_error([&] { (void)Adam<double>(ps, AdamOptions{.beta2 = -0.1}); }, {"Adam", "beta2", "-0.1"});
  expect_error([&] { (void)AdamW<double>(ps, AdamWOptions{.beta2 = 1.5}); }, {"AdamW", "beta2", "1.5"});
  expect_error([&] { (void)Adam<double>(ps, AdamOptions{.eps = -1e-8}); }, {"Adam", "eps"});
  expect_error([&] { (void)SGD<double>(ps, SGDOptions{.momentum = -0.9}); }, {"SGD", "momentum", "-0.9"});
  expect_error([&] { (void)SGD<double>(ps, SGDOptions{.weight_decay = -1}); }, {"SGD", "weight_decay"});
  expect_error([&] { (void)SGD<double>(ps, SGDOptions{.nesterov = true}); }, {"SGD", "Nesterov"});
  expect_error([&] { (void)SGD<double>(ps, SGDOptions{.momentum = 0.9, .dampening = 0.1, .nesterov = true}); },
               {"SGD", "Nesterov", "dampening 0.1"});
  // an option of another optimizer, and a bad option in the second group
  GroupOptions adam_only;
  adam_only.beta1 = 0.5;
  expect_error([&] { (void)SGD<double>(std::vector<ParamGroup<double>>{ParamGroup<double>(ps, adam_only)}); },
               {"SGD", "beta1", "does not apply"});
  GroupOptions bad;
  bad.lr = -3;
  auto q = leaf_copy<double>(REF(d));
  expect_error(
      [&] {
        (void)SGD<double>(
            std::vector<ParamGroup<double>>{ParamGroup<double>(ps), ParamGroup<double>(std::vector<TD>{q}, bad)});
      },
      {"SGD", "learning rate", "-3", "group 1"});
  // options changed after construction are checked by step()
  SGD<double> opt(ps);
  opt.param_groups()[0].lr = -1;
  p.set_grad(ones_like(p));
  expect_error([&] { opt.step(); }, {"SGD", "learning rate", "-1"});
  Adam<double> adam(ps);
  adam.param_groups()[0].beta1 = 1.0;
  expect_error([&] { adam.step(); }, {"Adam", "beta1"});
  adam.param_groups()[0].beta1 = 0.9;
  adam.param_groups()[0].eps.reset();
  expect_error([&] { adam.step(); }, {"Adam", "option 'eps' of parameter group 0 is unset"});
  opt.param_groups()[0].lr = 0.1;
  opt.param_groups()[0].amsgrad = true;
  expect_error([&] { opt.step(); }, {"SGD", "option 'amsgrad' of parameter group 0 does not apply to SGD"});
}

TEST(OptimizerErrors, InvalidParameters) {
  auto p = leaf_copy<double>(REF(b0)), q = leaf_copy<double>(REF(d));
  expect_error([&] { (void)SGD<double>(std::vector<TD>{}); }, {"SGD", "empty parameter list"});
  expect_error([&] { (void)Adam<double>(std::vector<TD>{p, p}); }, {"Adam", "more than once"});
  expect_error(
      [&] {
        (void)Adam<double>(std::vector<NamedParam<double>>{{"x", p}, {"x", q}});
      },
      {"Adam", "'x'", "more than once"});
  expect_error([&] { (void)SGD<double>(std::vector<TD>{p * 2.0}); }, {"SGD", "not a leaf"});
  expect_error([&] { (void)SGD<double>(std::vector<TD>{TD()}); }, {"SGD", "undefined"});
  TD wide = leaf_copy<double>(zeros<double>({1, 3})).detach().expand({4, 3});
  expect_error([&] { (void)SGD<double>(std::vector<TD>{wide}); }, {"SGD", "broadcast view"});
  SGD<double> opt(std::vector<NamedParam<double>>{{"p", p}});
  p.set_grad(zeros<double>({2}));
  expect_error([&] { opt.step(); }, {"SGD", "gradient of shape", "'p'"});
}

/// An Adam optimizer over (fc.weight, fc.bias) after 2 steps, and its state.
struct Trained {
  TD W = leaf_copy<double>(REF(W0)), b = leaf_copy<double>(REF(b0));
  Adam<double> opt{std::vector<NamedParam<double>>{{"fc.weight", W}, {"fc.bias", b}}, AdamOptions{.amsgrad = true}};
  OptimizerState<double> state;
  Trained() {
    for (int k = 0; k < 2; ++k) {
      opt.zero_grad();
      loss_at<double>(k, W, b).backward();
      opt.step();
    }
    state = opt.state_dict();
  }
};

TEST(OptimizerErrors, LoadStateDictNamesTheProblem) {
  Trained t;
  Adam<double> fresh(std::vector<NamedParam<double>>{{"fc.weight", t.W}, {"fc.bias", t.b}});
  auto without = [&](const std::string& key) {
    auto s = t.state;
    if (!s.tensors.erase(key)) {
      EXPECT_EQ(s.scalars.erase(key), 1u) << key;
    }
    return s;
  };
  for (const char* key :
       {"fc.weight.exp_avg", "fc.bias.exp_avg_sq", "fc.weight.max_exp_avg_sq", "fc.bias.step", "fc.weight.group",
        "param_groups.0.lr", "param_groups.0.amsgrad", "optimizer", "param_groups"}) {
    SCOPED_TRACE(key);
    expect_error([&] { fresh.load_state_dict(without(key)); },
                 {"load_state_dict", std::string("missing key '") + key + "'"});
  }
  {
    auto s = t.state;
    s.tensors["fc.bias.exp_avg"] = zeros<double>({5});
    expect_error([&] { fresh.load_state_dict(s); }, {"'fc.bias.exp_avg'", "(5)", "(4)"});
  }
  {
    auto s = t.state;
    s.tensors["fc.wieght.exp_avg"] = zeros<double>({3, 4});
    expect_error([&] { fresh.load_state_dict(s); }, {"unexpected tensor 'fc.wieght.exp_avg'"});
    s = t.state;
    s.scalars["fc.wieght.step"] = "1";
    expect_error([&] { fresh.load_state_dict(s); }, {"unexpected key 'fc.wieght.step'"});
  }
  {
    auto s = t.state;
    s.scalars["param_groups.0.lr"] = "fast";
    expect_error([&] { fresh.load_state_dict(s); }, {"'param_groups.0.lr'", "not a number"});
    s = t.state;
    s.scalars["param_groups.0.beta1"] = "1";
    expect_error([&] { fresh.load_state_dict(s); }, {"beta1", "[0, 1)"});
    s = t.state;
    s.scalars["fc.bias.group"] = "1";
    expect_error([&] { fresh.load_state_dict(s); }, {"'fc.bias'", "group 1 of the state"});
  }
  // another optimizer type, another layout
  AdamW<double> adamw(std::vector<NamedParam<double>>{{"fc.weight", t.W}, {"fc.bias", t.b}});
  expect_error([&] { adamw.load_state_dict(t.state); }, {"optimizer state saved by Adam cannot be loaded into AdamW"});
  Adam<double> renamed(std::vector<NamedParam<double>>{{"weight", t.W}, {"fc.bias", t.b}});
  expect_error([&] { renamed.load_state_dict(t.state); }, {"missing key 'weight.group'"});
  Adam<double> two_groups(std::vector<ParamGroup<double>>{ParamGroup<double>({{"fc.weight", t.W}}),
                                                          ParamGroup<double>({{"fc.bias", t.b}})});
  expect_error([&] { two_groups.load_state_dict(t.state); }, {"state has 1 parameter groups, the optimizer has 2"});
}

TEST(OptimizerErrors, FailedLoadChangesNothing) {
  Trained t;
  // reference: continue the trained optimizer for one step
  auto W = t.W.detach().clone(), b = t.b.detach().clone();
  auto ref_W = leaf_copy<double>(W), ref_b = leaf_copy<double>(b);
  Adam<double> ref_opt(std::vector<NamedParam<double>>{{"fc.weight", ref_W}, {"fc.bias", ref_b}},
                       AdamOptions{.amsgrad = true});
  ref_opt.load_state_dict(t.state);
  auto broken = t.state;
  broken.scalars["param_groups.0.lr"] = "0.5";
  broken.tensors.erase("fc.bias.exp_avg");
  EXPECT_THROW(t.opt.load_state_dict(broken), Error);
  EXPECT_EQ(*t.opt.param_groups()[0].lr, 1e-3);
  for (auto* o : {static_cast<Optimizer<double>*>(&t.opt), static_cast<Optimizer<double>*>(&ref_opt)}) {
    o->zero_grad();
  }
  loss_at<double>(2, t.W, t.b).backward();
  loss_at<double>(2, ref_W, ref_b).backward();
  t.opt.step();
  ref_opt.step();
  EXPECT_EQ(t.W.to_vector(), ref_W.to_vector());
  EXPECT_EQ(t.b.to_vector(), ref_b.to_vector());
}

}  // namespace
