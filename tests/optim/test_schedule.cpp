// LR schedules: StepLR, MultiStepLR, CosineAnnealingLR and OneCycleLR (lr and the
// cycled momentum / beta1) step by step against torch.optim.lr_scheduler
// (fixtures/schedule_reference.inc, tolerance 1e-12); the warm-up + decay schedules
// against their formula; lr_at purity, state save/load and error paths.
#include <cmath>
#include <numbers>

#include "avgrad/optim/adam.hpp"
#include "avgrad/optim/schedule.hpp"
#include "avgrad/optim/sgd.hpp"
#include "optim/fixtures/schedule_reference.inc"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::optim;
using namespace avgrad::testing;

namespace {

constexpr double kTorchTol = 1e-12;

/// Two groups with base lr 0.1 and 0.02, as the fixture's optimizers.
struct Setup {
  TD w = zeros<double>({2}), v = zeros<double>({2});
  std::vector<ParamGroup<double>> groups() {
    GroupOptions a, b;
    a.lr = 0.1;
    b.lr = 0.02;
    return {ParamGroup<double>({{"w", w}}, a), ParamGroup<double>({{"v", v}}, b)};
  }
};
struct SgdSetup : Setup {
  SGD<double> opt{groups(), SGDOptions{.lr = 0.1, .momentum = 0.9}};
};
struct AdamSetup : Setup {
  Adam<double> opt{groups(), AdamOptions{.lr = 0.1}};
};

/// Steps the schedule through the fixture's rows: the groups' lr after s steps (and
/// lr_at(s)) must equal row s; `momentum` rows likewise for the cycled momentum/beta1.
void expect_schedule(Optimizer<double>& opt, LRScheduler& sched, const std::vector<double>& want_lr,
                     const std::vector<std::int64_t>& shape, const std::vector<double>* want_momentum = nullptr) {
  const std::int64_t rows = shape[0];
  ASSERT_EQ(shape[1], 2);
  for (std::int64_t s = 0; s < rows; ++s) {
    if (s > 0) sched.step();
    ASSERT_EQ(sched.last_step(), s);
    for (std::size_t g = 0; g < 2; ++g) {
      const double want = want_lr[static_cast<std::size_t>(s * 2) + g];
      EXPECT_NEAR(*opt.param_groups()[g].lr, want, kTorchTol) << "group " << g << " step " << s;
      EXPECT_EQ(sched.lr_at(s, g), *opt.param_groups()[g].lr);
      if (want_momentum) {
        const auto& go = opt.param_groups()[g];
        const double got = go.beta1 ? *go.beta1 : *go.momentum;
        EXPECT_NEAR(got, (*want_momentum)[static_cast<std::size_t>(s * 2) + g], kTorchTol)
            << "momentum of group " << g << " step " << s;
      }
    }
  }
}
#define EXPECT_SCHEDULE(opt, sched, name, ...) \
  expect_schedule(opt, sched, schedule_ref::name##_lr, schedule_ref::name##_lr_shape __VA_OPT__(, ) __VA_ARGS__)

TEST(Schedule, StepLRMatchesTorch) {
  SgdSetup s;
  StepLR sched(s.opt, 3, 0.5);
  EXPECT_SCHEDULE(s.opt, sched, step);
}

TEST(Schedule, MultiStepLRMatchesTorch) {
  SgdSetup s;
  MultiStepLR sched(s.opt, {9, 5, 2, 5}, 0.3);  // unsorted, 5 twice: decays by γ² there
  EXPECT_SCHEDULE(s.opt, sched, multistep);
}

TEST(Schedule, CosineAnnealingLRMatchesTorchPastTMax) {
  SgdSetup s;
  CosineAnnealingLR sched(s.opt, 10, 0.001);
  EXPECT_SCHEDULE(s.opt, sched, cosine);
}

TEST(Schedule, OneCycleLRMatchesTorchWithMomentum) {
  SgdSetup s;
  OneCycleLR sched(s.opt, std::vector<double>{0.5, 0.1}, OneCycleOptions{.total_steps = 20});
  EXPECT_SCHEDULE(s.opt, sched, onecycle, &schedule_ref::onecycle_momentum);
  expect_error([&] { sched.step(); }, {"OneCycleLR", "step 21", "total_steps 20"});
  EXPECT_EQ(sched.last_step(), 20);  // a failed step changes nothing
}

TEST(Schedule, OneCycleLRThreePhaseLinearMatchesTorchWithBeta1) {
  AdamSetup s;
  OneCycleLR sched(s.opt, 0.3,
                   OneCycleOptions{.total_steps = 16,
                                   .pct_start = 0.25,
                                   .cosine = false,
                                   .div_factor = 10.0,
                                   .final_div_factor = 100.0,
                                   .three_phase = true,
                                   .base_momentum = 0.8,
                                   .max_momentum = 0.9});
  EXPECT_SCHEDULE(s.opt, sched, onecycle3, &schedule_ref::onecycle3_momentum);
  EXPECT_FALSE(s.opt.param_groups()[0].momentum.has_value());
}

TEST(Schedule, WarmupLinearDecayFollowsTheFormula) {
  SgdSetup s;
  LinearWarmupLinearDecayLR sched(s.opt, {.warmup_steps = 4, .total_steps = 10, .end_factor = 0.1});
  // base 0.1 (group 0): 0 → 0.1 over 4 steps, then linearly to 0.01 at step 10, flat after
  const double want[] = {0.0,
                         0.025,
                         0.05,
                         0.075,
                         0.1,
                         0.1 * (1 - 0.9 / 6),
                         0.1 * (1 - 0.9 * 2 / 6),
                         0.1 * (1 - 0.9 * 3 / 6),
                         0.1 * (1 - 0.9 * 4 / 6),
                         0.1 * (1 - 0.9 * 5 / 6),
                         0.01,
                         0.01,
                         0.01};
  for (std::int64_t k = 0; k < 13; ++k) {
    if (k > 0) sched.step();
    EXPECT_NEAR(*s.opt.param_groups()[0].lr, want[k], 1e-15) << "step " << k;
    EXPECT_NEAR(*s.opt.param_groups()[1].lr, want[k] / 5, 1e-15) << "step " << k;
  }
}

TEST(Schedule, WarmupCosineDecayFollowsTheFormula) {
  SgdSetup s;
  LinearWarmupCosineDecayLR sched(s.opt,
                                  {.warmup_steps = 3, .total_steps = 9, .start_factor = 0.1, .end_factor = 0.05});
  const double pi = std::numbers::pi;
  for (std::int64_t k = 0; k <= 12; ++k) {
    double f;
    if (k < 3)
      f = 0.1 + 0.9 * double(k) / 3;
    else if (k < 9)
      f = 0.05 + 0.95 * 0.5 * (1 + std::cos(pi * double(k - 3) / 6));
    else
      f = 0.05;
    EXPECT_NEAR(sched.lr_at(k, 0), 0.1 * f, 1e-15) << "step " << k;
    EXPECT_NEAR(sched.lr_at(k, 1), 0.02 * f, 1e-15) << "step " << k;
  }
  EXPECT_EQ(sched.lr_at(3), 0.1);  // the peak is the base lr exactly
  EXPECT_NEAR(sched.lr_at(6), 0.1 * (0.05 + 0.95 / 2), 1e-15);
  // no warm-up: starts at the base lr
  SgdSetup t;
  LinearWarmupLinearDecayLR none(t.opt, {.warmup_steps = 0, .total_steps = 4});
  EXPECT_EQ(*t.opt.param_groups()[0].lr, 0.1);
  EXPECT_EQ(none.lr_at(2), 0.05);
  EXPECT_EQ(none.lr_at(4), 0.0);
}

TEST(Schedule, LrAtIsPureAndSetStepJumps) {
  SgdSetup s;
  CosineAnnealingLR sched(s.opt, 10);
  const double at7 = sched.lr_at(7, 1);
  EXPECT_EQ(sched.last_step(), 0);
  EXPECT_EQ(*s.opt.param_groups()[1].lr, 0.02);  // lr_at wrote nothing
  sched.set_step(7);
  EXPECT_EQ(*s.opt.param_groups()[1].lr, at7);
  EXPECT_EQ(sched.last_lrs(), (std::vector<double>{sched.lr_at(7, 0), at7}));
  EXPECT_EQ(sched.base_lrs(), (std::vector<double>{0.1, 0.02}));
}

TEST(Schedule, StateRoundTripResumesTheSchedule) {
  SgdSetup a;
  OneCycleLR first(a.opt, 0.4, OneCycleOptions{.total_steps = 30});
  for (int k = 0; k < 11; ++k) first.step();
  const auto state = first.state_dict();
  EXPECT_EQ(state.at("scheduler"), "OneCycleLR");
  EXPECT_EQ(state.at("last_step"), "11");

  // resume: a new optimizer (whose lr is whatever the checkpoint set) and a new schedule
  SgdSetup b;
  b.opt.param_groups()[0].lr = 123.0;
  OneCycleLR second(b.opt, 0.4, OneCycleOptions{.total_steps = 30});
  second.load_state_dict(state);
  EXPECT_EQ(second.last_step(), 11);
  for (int k = 0; k < 5; ++k) {
    first.step();
    second.step();
    for (std::size_t g = 0; g < 2; ++g) {
      EXPECT_EQ(*a.opt.param_groups()[g].lr, *b.opt.param_groups()[g].lr);
      EXPECT_EQ(*a.opt.param_groups()[g].momentum, *b.opt.param_groups()[g].momentum);
    }
  }
  // base lrs travel with the state: a schedule made from a mid-training lr is corrected
  SgdSetup c;
  c.opt.param_groups()[0].lr = 0.0123;
  StepLR sa(c.opt, 2, 0.5);
  EXPECT_EQ(sa.base_lrs()[0], 0.0123);
  SgdSetup d;
  StepLR sb(d.opt, 2, 0.5);
  sb.step();
  sb.step();
  sa.load_state_dict(sb.state_dict());
  EXPECT_EQ(sa.base_lrs()[0], 0.1);
  EXPECT_EQ(*c.opt.param_groups()[0].lr, 0.05);
}

TEST(Schedule, Errors) {
  SgdSetup s;
  expect_error([&] { StepLR(s.opt, 0); }, {"StepLR", "step_size", "0"});
  expect_error([&] { CosineAnnealingLR(s.opt, -2); }, {"CosineAnnealingLR", "T_max", "-2"});
  expect_error([&] { LinearWarmupLinearDecayLR(s.opt, {.warmup_steps = 5, .total_steps = 4}); },
               {"LinearWarmupLinearDecayLR", "warmup_steps 5", "total_steps 4"});
  expect_error([&] { OneCycleLR(s.opt, 0.1, OneCycleOptions{}); }, {"OneCycleLR", "total_steps"});
  expect_error([&] { OneCycleLR(s.opt, 0.1, OneCycleOptions{.total_steps = 10, .pct_start = 1.5}); },
               {"OneCycleLR", "pct_start", "1.5"});
  expect_error(
      [&] {
        OneCycleLR(s.opt, std::vector<double>{0.1, 0.2, 0.3}, OneCycleOptions{.total_steps = 10});
      },
      {"OneCycleLR", "expected 1 or 2 max lrs, got 3"});
  // 0.1·10 − 1 = 0: the warm-up phase has no length (PyTorch divides by zero there)
  expect_error([&] { OneCycleLR(s.opt, 0.1, OneCycleOptions{.total_steps = 10, .pct_start = 0.1}); },
               {"OneCycleLR", "zero length"});
  StepLR sched(s.opt, 2);
  expect_error([&] { sched.set_step(-1); }, {"StepLR", "negative step"});
  expect_error([&] { sched.lr_at(0, 2); }, {"StepLR", "group index 2"});
  auto state = sched.state_dict();
  auto without = state;
  without.erase("base_lrs.1");
  expect_error([&] { sched.load_state_dict(without); }, {"missing key 'base_lrs.1'"});
  auto extra = state;
  extra["gamma"] = "0.1";
  expect_error([&] { sched.load_state_dict(extra); }, {"unexpected key 'gamma'"});
  MultiStepLR other(s.opt, {1});
  expect_error([&] { other.load_state_dict(state); }, {"state saved by StepLR cannot be loaded into MultiStepLR"});
  auto bad = state;
  bad["last_step"] = "x";
  expect_error([&] { sched.load_state_dict(bad); }, {"'last_step'", "not an integer"});
}

}  // namespace
