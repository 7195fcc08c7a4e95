// Learning-rate schedules: objects bound to an optimizer that set every group's lr
// from that group's base lr at a given step (or epoch — the unit is whatever the
// caller counts). Each schedule is a closed-form function lr_at(step, group), pure,
// so it can be plotted and tested; step() advances the counter and writes lr_at into
// the groups. Construction writes lr_at(0), as PyTorch's schedulers do.
//
// Invariant: after construction, step(), set_step() or load_state_dict(), every
// group's lr equals lr_at(last_step(), group) (and, for OneCycleLR with momentum
// cycling, its momentum / beta1 equals momentum_at). State = (last step, base lrs).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <numbers>
#include <string>
#include <vector>

#include "avgrad/optim/optimizer.hpp"

namespace avgrad::optim {

/// Base of every schedule. Base lrs are the groups' lr when the schedule is created
/// (create the schedule before loading a checkpoint into the optimizer, then load the
/// schedule's state too: it restores the base lrs and the step).
class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  virtual std::string_view name() const = 0;
  /// The lr of group `group` at step `step` (pure).
  virtual double lr_at(std::int64_t step, std::size_t group = 0) const = 0;

  /// Advances one step and writes the new lrs into the optimizer.
  void step() { set_step(last_step_ + 1); }
  /// Jumps to `step` (>= 0) and writes its lrs into the optimizer.
  void set_step(std::int64_t step) {
    AVGRAD_CHECK(step >= 0, name(), "negative step ", step);
    std::vector<double> lrs(base_lrs_.size());
    for (std::size_t i = 0; i < lrs.size(); ++i) lrs[i] = lr_at(step, i);  // may throw: nothing changed yet
    AVGRAD_CHECK(opt_->num_groups() == base_lrs_.size(), name(), "the optimizer has ", opt_->num_groups(),
                 " parameter groups, the schedule was made for ", base_lrs_.size());
    last_step_ = step;
    for (std::size_t i = 0; i < lrs.size(); ++i) opt_->group_options(i).lr = lrs[i];
    apply_extra(step);
  }

  std::int64_t last_step() const { return last_step_; }
  /// lr_at(last_step()) for every group.
  std::vector<double> last_lrs() const {
    std::vector<double> out;
    for (std::size_t i = 0; i < base_lrs_.size(); ++i) out.push_back(lr_at(last_step_, i));
    return out;
  }
  const std::vector<double>& base_lrs() const { return base_lrs_; }

  /// "scheduler" (type), "last_step", "base_lrs" (count), "base_lrs.<i>" (exact decimals).
  std::map<std::string, std::string> state_dict() const {
    std::map<std::string, std::string> out;
    out["scheduler"] = std::string(name());
    out["last_step"] = detail::format_int(last_step_);
    out["base_lrs"] = detail::format_int(static_cast<std::int64_t>(base_lrs_.size()));
    for (std::size_t i = 0; i < base_lrs_.size(); ++i)
      out["base_lrs." + std::to_string(i)] = detail::format_double(base_lrs_[i]);
    return out;
  }
  /// Restores a state_dict() and writes the lrs of the restored step into the optimizer.
  /// Throws avgrad::Error naming a missing, malformed or unexpected key; changes nothing then.
  void load_state_dict(const std::map<std::string, std::string>& in) {
    const char* op = "LRScheduler::load_state_dict";
    const std::string& type = detail::require_key(in, "scheduler", op);
    AVGRAD_CHECK(type == name(), op, "state saved by ", type, " cannot be loaded into ", name());
    const auto step = detail::parse_int(detail::require_key(in, "last_step", op), "last_step", op);
    AVGRAD_CHECK(step >= 0, op, "negative last_step ", step);
    const auto n = detail::parse_int(detail::require_key(in, "base_lrs", op), "base_lrs", op);
    AVGRAD_CHECK(n == static_cast<std::int64_t>(base_lrs_.size()), op, "state has ", n, " base lrs, the schedule has ",
                 base_lrs_.size(), " parameter groups");
    std::vector<double> base(base_lrs_.size());
    for (std::size_t i = 0; i < base.size(); ++i) {
      const std::string key = "base_lrs." + std::to_string(i);
      base[i] = detail::parse_double(detail::require_key(in, key, op), key, op);
    }
    for (const auto& [k, v] : in) {
      bool known = k == "scheduler" || k == "last_step" || k == "base_lrs";
      for (std::size_t i = 0; i < base.size() && !known; ++i) known = k == "base_lrs." + std::to_string(i);
      AVGRAD_CHECK(known, op, "unexpected key '", k, "' in state");
    }
    std::vector<double> old = std::exchange(base_lrs_, base);
    try {
      set_step(step);
    } catch (...) {
      base_lrs_ = std::move(old);
      throw;
    }
  }

 protected:
  explicit LRScheduler(OptimizerBase& opt) : opt_(&opt) {
    for (std::size_t i = 0; i < opt.num_groups(); ++i) {
      const auto& lr = opt.group_options(i).lr;
      AVGRAD_CHECK(lr.has_value(), "LRScheduler", "parameter group ", i, " has no lr");
      base_lrs_.push_back(*lr);
    }
  }
  /// Derived constructors call this last: validates and writes lr_at(0).
  void start() { set_step(0); }
  /// Extra per-step writes (momentum cycling).
  virtual void apply_extra(std::int64_t) {}
  void check_group(std::size_t group) const {
    AVGRAD_CHECK(group < base_lrs_.size(), name(), "group index ", group, " out of range for ", base_lrs_.size(),
                 " groups");
  }

  OptimizerBase* opt_;
  std::vector<double> base_lrs_;
  std::int64_t last_step_ = 0;
};

/// base · γ^⌊step / step_size⌋ (torch.optim.lr_scheduler.StepLR).
class StepLR final : public LRScheduler {
 public:
  StepLR(OptimizerBase& opt, std::int64_t step_size, double gamma = 0.1)
      : LRScheduler(opt), step_size_(step_size), gamma_(gamma) {
    AVGRAD_CHECK(step_size > 0, "StepLR", "step_size must be > 0, got ", step_size);
    start();
  }
  std::string_view name() const override { return "StepLR"; }
  double lr_at(std::int64_t step, std::size_t group = 0) const override {
    check_group(group);
    return base_lrs_[group] * std::pow(gamma_, static_cast<double>(step / step_size_));
  }

 private:
  std::int64_t step_size_;
  double gamma_;
};

/// base · γ^(number of milestones <= step) (torch MultiStepLR; a repeated milestone counts twice).
class MultiStepLR final : public LRScheduler {
 public:
  MultiStepLR(OptimizerBase& opt, std::vector<std::int64_t> milestones, double gamma = 0.1)
      : LRScheduler(opt), milestones_(std::move(milestones)), gamma_(gamma) {
    std::sort(milestones_.begin(), milestones_.end());
    start();
  }
  std::string_view name() const override { return "MultiStepLR"; }
  double lr_at(std::int64_t step, std::size_t group = 0) const override {
    check_group(group);
    const auto k = std::upper_bound(milestones_.begin(), milestones_.end(), step) - milestones_.begin();
    return base_lrs_[group] * std::pow(gamma_, static_cast<double>(k));
  }

 private:
  std::vector<std::int64_t> milestones_;
  double gamma_;
};

/// η_min + (base − η_min)·(1 + cos(π·step / T_max)) / 2 (torch CosineAnnealingLR; past
/// T_max the cosine continues, rising again, as PyTorch's).
class CosineAnnealingLR final : public LRScheduler {
 public:
  CosineAnnealingLR(OptimizerBase& opt, std::int64_t t_max, double eta_min = 0.0)
      : LRScheduler(opt), t_max_(t_max), eta_min_(eta_min) {
    AVGRAD_CHECK(t_max > 0, "CosineAnnealingLR", "T_max must be > 0, got ", t_max);
    start();
  }
  std::string_view name() const override { return "CosineAnnealingLR"; }
  double lr_at(std::int64_t step, std::size_t group = 0) const override {
    check_group(group);
    const double c = std::cos(std::numbers::pi * static_cast<double>(step) / static_cast<double>(t_max_));
    return eta_min_ + (base_lrs_[group] - eta_min_) * (1 + c) / 2;
  }

 private:
  std::int64_t t_max_;
  double eta_min_;
};

/// Options of WarmupDecayLR.
struct WarmupDecayOptions {
  std::int64_t warmup_steps = 0;  ///< W >= 0
  std::int64_t total_steps = 1;   ///< T >= max(W, 1)
  double start_factor = 0.0;      ///< lr at step 0 = start_factor · base
  double end_factor = 0.0;        ///< the floor: lr from step T on = end_factor · base
};

/// Linear warm-up from start_factor·base to base over W steps, then decay to
/// end_factor·base at step T (linear or half-cosine), constant after T:
///   s < W:      base · (f0 + (1 − f0)·s/W)
///   W <= s < T: base · (1 + (f1 − 1)·q) [linear]  or  base · (f1 + (1 − f1)·(1 + cos πq)/2) [cosine],
///               q = (s − W)/(T − W)
///   s >= T:     base · f1
class WarmupDecayLR : public LRScheduler {
 public:
  enum class Decay { linear, cosine };

  WarmupDecayLR(OptimizerBase& opt, WarmupDecayOptions o, Decay decay) : LRScheduler(opt), o_(o), decay_(decay) {
    AVGRAD_CHECK(o.warmup_steps >= 0 && o.total_steps >= 1 && o.total_steps >= o.warmup_steps, name(),
                 "need 0 <= warmup_steps <= total_steps and total_steps >= 1, got warmup_steps ", o.warmup_steps,
                 ", total_steps ", o.total_steps);
    AVGRAD_CHECK(o.start_factor >= 0 && o.end_factor >= 0, name(), "start_factor ", o.start_factor, " and end_factor ",
                 o.end_factor, " must be >= 0");
    start();
  }
  std::string_view name() const override {
    return decay_ == Decay::linear ? "LinearWarmupLinearDecayLR" : "LinearWarmupCosineDecayLR";
  }
  double lr_at(std::int64_t step, std::size_t group = 0) const override {
    check_group(group);
    return base_lrs_[group] * factor(step);
  }
  /// The multiplier of the base lr at `step`.
  double factor(std::int64_t step) const {
    const auto s = static_cast<double>(step), w = static_cast<double>(o_.warmup_steps),
               t = static_cast<double>(o_.total_steps);
    if (step < o_.warmup_steps) return o_.start_factor + (1.0 - o_.start_factor) * s / w;
    if (step >= o_.total_steps) return o_.end_factor;
    const double q = (s - w) / (t - w);
    if (decay_ == Decay::linear) return 1.0 + (o_.end_factor - 1.0) * q;
    return o_.end_factor + (1.0 - o_.end_factor) * (1.0 + std::cos(std::numbers::pi * q)) / 2.0;
  }

 private:
  WarmupDecayOptions o_;
  Decay decay_;
};

/// Linear warm-up, then linear decay to the floor (the study's recipe).
class LinearWarmupLinearDecayLR final : public WarmupDecayLR {
 public:
  LinearWarmupLinearDecayLR(OptimizerBase& opt, WarmupDecayOptions o) : WarmupDecayLR(opt, o, Decay::linear) {}
};
/// Linear warm-up, then half-cosine decay to the floor.
class LinearWarmupCosineDecayLR final : public WarmupDecayLR {
 public:
  LinearWarmupCosineDecayLR(OptimizerBase& opt, WarmupDecayOptions o) : WarmupDecayLR(opt, o, Decay::cosine) {}
};

/// Options of OneCycleLR (PyTorch's defaults).
struct OneCycleOptions {
  std::int64_t total_steps = 0;   ///< > 0; stepping past it throws
  double pct_start = 0.3;         ///< fraction of steps spent increasing the lr, in [0, 1]
  bool cosine = true;             ///< anneal by half-cosine (false: linearly)
  double div_factor = 25.0;       ///< initial lr = max_lr / div_factor
  double final_div_factor = 1e4;  ///< min lr = initial lr / final_div_factor
  bool three_phase = false;       ///< up, back down to the initial lr, then to the min lr
  bool cycle_momentum = true;     ///< cycle momentum (SGD) or beta1 (Adam) inversely to the lr
  double base_momentum = 0.85;
  double max_momentum = 0.95;
};

/// torch.optim.lr_scheduler.OneCycleLR. The schedule's base lrs are the peak (max) lrs,
/// one per group (a single value applies to every group).
class OneCycleLR final : public LRScheduler {
 public:
  OneCycleLR(OptimizerBase& opt, std::vector<double> max_lrs, OneCycleOptions o) : LRScheduler(opt), o_(o) {
    AVGRAD_CHECK(o.total_steps > 0, "OneCycleLR", "total_steps must be > 0, got ", o.total_steps);
    AVGRAD_CHECK(o.pct_start >= 0 && o.pct_start <= 1, "OneCycleLR", "pct_start must be in [0, 1], got ", o.pct_start);
    AVGRAD_CHECK(max_lrs.size() == 1 || max_lrs.size() == base_lrs_.size(), "OneCycleLR", "expected 1 or ",
                 base_lrs_.size(), " max lrs, got ", max_lrs.size());
    for (std::size_t i = 0; i < base_lrs_.size(); ++i) base_lrs_[i] = max_lrs[max_lrs.size() == 1 ? 0 : i];
    const double total = static_cast<double>(o.total_steps), up = o.pct_start * total - 1;
    if (o.three_phase)
      phases_ = {{up, Lr::initial, Lr::max, o.max_momentum, o.base_momentum},
                 {2 * o.pct_start * total - 2, Lr::max, Lr::initial, o.base_momentum, o.max_momentum},
                 {total - 1, Lr::initial, Lr::min, o.max_momentum, o.max_momentum}};
    else
      phases_ = {{up, Lr::initial, Lr::max, o.max_momentum, o.base_momentum},
                 {total - 1, Lr::max, Lr::min, o.base_momentum, o.max_momentum}};
    if (o.cycle_momentum)
      for (std::size_t i = 0; i < base_lrs_.size(); ++i) {
        const GroupOptions& g = opt.group_options(i);
        AVGRAD_CHECK(g.beta1 || g.momentum, "OneCycleLR", "cycle_momentum needs an optimizer with momentum or beta1 (",
                     opt.name(), " has neither)");
      }
    start();
  }
  OneCycleLR(OptimizerBase& opt, double max_lr, OneCycleOptions o) : OneCycleLR(opt, std::vector<double>{max_lr}, o) {}

  std::string_view name() const override { return "OneCycleLR"; }
  double lr_at(std::int64_t step, std::size_t group = 0) const override {
    check_group(group);
    const double max = base_lrs_[group], initial = max / o_.div_factor, min = initial / o_.final_div_factor;
    auto pick = [&](Lr w) { return w == Lr::initial ? initial : (w == Lr::max ? max : min); };
    return at(step, [&](const Phase& ph, double pct) { return anneal(pick(ph.lr_from), pick(ph.lr_to), pct); });
  }
  /// The momentum (SGD) or beta1 (Adam) written at `step` when cycle_momentum is on.
  double momentum_at(std::int64_t step) const {
    return at(step, [&](const Phase& ph, double pct) { return anneal(ph.mom_from, ph.mom_to, pct); });
  }

 private:
  enum class Lr { initial, max, min };
  struct Phase {
    double end_step;
    Lr lr_from, lr_to;
    double mom_from, mom_to;
  };

  double anneal(double from, double to, double pct) const {
    if (o_.cosine) return to + (from - to) / 2.0 * (std::cos(std::numbers::pi * pct) + 1);
    return (to - from) * pct + from;
  }
  /// Finds the phase of `step` (PyTorch's rule) and evaluates f(phase, pct).
  template <class F> double at(std::int64_t step, F f) const {
    AVGRAD_CHECK(step <= o_.total_steps, "OneCycleLR", "step ", step, " is past total_steps ", o_.total_steps);
    const auto s = static_cast<double>(step);
    double start = 0;
    for (std::size_t i = 0; i < phases_.size(); ++i) {
      const Phase& ph = phases_[i];
      if (s <= ph.end_step || i + 1 == phases_.size()) {
        AVGRAD_CHECK(ph.end_step != start, "OneCycleLR", "phase ", i, " has zero length (total_steps ", o_.total_steps,
                     ", pct_start ", o_.pct_start, ")");
        return f(ph, (s - start) / (ph.end_step - start));
      }
      start = ph.end_step;
    }
    return 0;  // unreachable: the last phase always matches
  }
  void apply_extra(std::int64_t step) override {
    if (!o_.cycle_momentum) return;
    const double m = momentum_at(step);
    for (std::size_t i = 0; i < opt_->num_groups(); ++i) {
      GroupOptions& g = opt_->group_options(i);
      if (g.beta1)
        g.beta1 = m;
      else
        g.momentum = m;
    }
  }

  OneCycleOptions o_;
  std::vector<Phase> phases_;
};

}  // namespace avgrad::optim
