// The optimizer machinery SGD, Adam and AdamW share: parameter groups with their own
// hyperparameters, per-parameter state keyed by parameter name, the step / zero_grad
// loop, the fused per-element update loop (the device seam), and an exact state
// save/restore. Parameters are Tensor handles sharing storage with the model that owns
// them, so updating them in place updates the model.
//
// Invariants: every parameter has a unique, non-empty name across all groups; after
// construction every option an optimizer uses is set in every group and no other option
// is; a parameter's state buffers are created at its first update, so step() allocates
// nothing afterwards; state_dict() + load_state_dict() restore an optimizer exactly
// (doubles are written as shortest round-trip decimals), so training continues
// bit-identically.
#pragma once

#include <array>
#include <charconv>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "avgrad/autograd/grad_mode.hpp"
#include "avgrad/backend/cpu/loops.hpp"
#include "avgrad/core/error.hpp"
#include "avgrad/core/tensor.hpp"
#include "avgrad/ops/view.hpp"

namespace avgrad::optim {

/// Hyperparameters of one parameter group. Unset fields take the optimizer's defaults
/// when the group is added; setting a field the optimizer does not use is an error.
/// Schedules and user code may change them between steps (param_groups()).
struct GroupOptions {
  std::optional<double> lr;            ///< learning rate, >= 0
  std::optional<double> weight_decay;  ///< >= 0; L2 (SGD, Adam) or decoupled (AdamW)
  // SGD
  std::optional<double> momentum;   ///< >= 0; 0 keeps no momentum buffer
  std::optional<double> dampening;  ///< buf = μ·buf + (1 − dampening)·g
  std::optional<bool> nesterov;     ///< needs momentum > 0 and dampening = 0
  // Adam, AdamW
  std::optional<double> beta1;  ///< in [0, 1)
  std::optional<double> beta2;  ///< in [0, 1)
  std::optional<double> eps;    ///< >= 0
  std::optional<bool> amsgrad;  ///< keep the running max of the second moment
};

/// A parameter and the name its state is saved under ("fc.weight").
template <Floating T, Device D = Cpu> using NamedParam = std::pair<std::string, Tensor<T, D>>;

/// Parameters sharing one set of hyperparameters.
template <Floating T, Device D = Cpu> struct ParamGroup : GroupOptions {
  std::vector<NamedParam<T, D>> params;

  ParamGroup() = default;
  /// Named parameters; an empty name is replaced by the parameter's overall index.
  explicit ParamGroup(std::vector<NamedParam<T, D>> named, GroupOptions options = {})
      : GroupOptions(options), params(std::move(named)) {}
  /// Unnamed parameters: each is named by its overall index ("0", "1", …) as in PyTorch.
  explicit ParamGroup(const std::vector<Tensor<T, D>>& tensors, GroupOptions options = {}) : GroupOptions(options) {
    for (const auto& t : tensors) params.emplace_back(std::string(), t);
  }
};

/// Optimizer state as two maps a checkpoint writer stores as they are (safetensors
/// tensors + string metadata):
///   tensors: "<param>.momentum_buffer" (SGD), "<param>.exp_avg", "<param>.exp_avg_sq",
///            "<param>.max_exp_avg_sq" (Adam/AdamW with amsgrad): copies, not the live buffers;
///   scalars: "optimizer" (type name), "version", "param_groups" (count),
///            "param_groups.<i>.<option>" (every option the optimizer uses, lr included),
///            "<param>.group" (group index), "<param>.step" (updates applied so far).
template <Floating T, Device D = Cpu> struct OptimizerState {
  std::map<std::string, Tensor<T, D>> tensors;
  std::map<std::string, std::string> scalars;
};

/// The type-independent face of an optimizer: what LR schedules need.
class OptimizerBase {
 public:
  virtual ~OptimizerBase() = default;
  virtual std::string_view name() const = 0;
  virtual std::size_t num_groups() const = 0;
  /// Hyperparameters of group i (mutable: schedules write lr, momentum, beta1 here).
  virtual GroupOptions& group_options(std::size_t i) = 0;
  virtual const GroupOptions& group_options(std::size_t i) const = 0;
};

namespace detail {

/// One GroupOptions field, for generic defaulting, checking and (de)serialisation.
struct OptionField {
  std::string_view name;
  std::optional<double> GroupOptions::*number;
  std::optional<bool> GroupOptions::*flag;
};
inline constexpr std::array<OptionField, 9> kOptionFields{{
    {"lr", &GroupOptions::lr, nullptr},
    {"weight_decay", &GroupOptions::weight_decay, nullptr},
    {"momentum", &GroupOptions::momentum, nullptr},
    {"dampening", &GroupOptions::dampening, nullptr},
    {"nesterov", nullptr, &GroupOptions::nesterov},
    {"beta1", &GroupOptions::beta1, nullptr},
    {"beta2", &GroupOptions::beta2, nullptr},
    {"eps", &GroupOptions::eps, nullptr},
    {"amsgrad", nullptr, &GroupOptions::amsgrad},
}};

inline bool option_set(const GroupOptions& g, const OptionField& f) {
  return f.number ? (g.*f.number).has_value() : (g.*f.flag).has_value();
}

/// Shortest decimal that parses back to the same double (so state round-trips exactly).
inline std::string format_double(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}
inline std::string format_int(std::int64_t v) { return std::to_string(v); }
inline std::string format_bool(bool v) { return v ? "true" : "false"; }

inline double parse_double(const std::string& s, const std::string& key, const char* op) {
  double v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  AVGRAD_CHECK(r.ec == std::errc() && r.ptr == s.data() + s.size(), op, "value '", s, "' of key '", key,
               "' is not a number");
  return v;
}
inline std::int64_t parse_int(const std::string& s, const std::string& key, const char* op) {
  std::int64_t v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  AVGRAD_CHECK(r.ec == std::errc() && r.ptr == s.data() + s.size(), op, "value '", s, "' of key '", key,
               "' is not an integer");
  return v;
}
inline bool parse_bool(const std::string& s, const std::string& key, const char* op) {
  AVGRAD_CHECK(s == "true" || s == "false", op, "value '", s, "' of key '", key, "' is not true/false");
  return s == "true";
}

/// The value of `key`, or an error naming the missing key.
inline const std::string& require_key(const std::map<std::string, std::string>& m, const std::string& key,
                                      const char* op) {
  auto it = m.find(key);
  AVGRAD_CHECK(it != m.end(), op, "missing key '", key, "' in state");
  return it->second;
}

}  // namespace detail
}  // namespace avgrad::optim

namespace avgrad::detail {

/// One run of n elements of the fused loop: st[k] is operand k's stride (p, g, states…).
template <class T, class F, std::size_t... I>
void fused_run(T* p, const T* g, const std::array<T*, sizeof...(I)>& s, std::int64_t n,
               const std::array<std::int64_t, 2 + sizeof...(I)>& st, F f, std::index_sequence<I...>) {
  // f by value: its fields cannot alias the written arrays, so they stay in registers
  if (st[0] == 1 && st[1] == 1 && ((st[I + 2] == 1) && ...)) {
#pragma omp simd
    for (std::int64_t i = 0; i < n; ++i) f(p[i], g[i], s[I][i]...);
  } else {
    for (std::int64_t i = 0; i < n; ++i) f(p[i * st[0]], g[i * st[1]], s[I][i * st[I + 2]]...);
  }
}

/// The fused optimizer loop on the CPU (backend::Fused<D> is the device seam; the CUDA
/// backend runs the same functors): for every element i, f(p[i], g[i], s0[i], …) updates the
/// parameter and the state buffers in place from the gradient. p, g and every s have
/// p's shape; any strides (g may broadcast with stride 0, p and s must not overlap).
/// Elements are independent, so the result does not depend on the thread count.
template <Floating T, class F, class... S>
void fused_update(Tensor<T, Cpu>& p, const Tensor<T, Cpu>& g, const F& f, S&... states) {
  constexpr int N = 2 + static_cast<int>(sizeof...(S));
  auto layout = cpu::coalesce<N>(p.shape(), {p.strides(), g.strides(), states.strides()...});
  T* pp = p.data();
  const T* gp = g.data();
  std::array<T*, sizeof...(S)> sp{states.data()...};
  auto body = [=](const std::array<std::int64_t, N>& off, std::int64_t n, const std::array<std::int64_t, N>& st) {
    std::array<T*, sizeof...(S)> s = sp;
    if constexpr (sizeof...(S) > 0)  // stateless SGD has no state buffers to offset
      for (std::size_t k = 0; k < s.size(); ++k) s[k] += off[k + 2];
    fused_run(pp + off[0], gp + off[1], s, n, st, f, std::index_sequence_for<S...>{});
  };
  cpu::parallel_runs<N>(layout, body);
  p.storage()->bump_version();
}

}  // namespace avgrad::detail

namespace avgrad::backend {
/// The device seam of the optimizers' fused loop: update(p, g, f, states…) as
/// detail::fused_update. Fused<Cuda> lives in cuda/avgrad/cuda/optim.cuh.
template <Device D> struct Fused;
template <> struct Fused<Cpu> {
  template <class T, class F, class... S>
  static void update(Tensor<T, Cpu>& p, const Tensor<T, Cpu>& g, const F& f, S&... states) {
    detail::fused_update(p, g, f, states...);
  }
};
}  // namespace avgrad::backend

namespace avgrad::optim {

/// Base of SGD, Adam and AdamW. Contract:
///   step(): one update of every parameter whose .grad is defined (others are skipped
///           and keep their state, as PyTorch); hyperparameters are re-checked first;
///   zero_grad(): drops every .grad (set to none);
///   state_dict()/load_state_dict(): see OptimizerState; loading checks the optimizer type,
///           group layout, every name and shape, throws avgrad::Error naming the first
///           missing/mismatched/unexpected key, and changes nothing when it throws.
template <Floating T, Device D = Cpu> class Optimizer : public OptimizerBase {
 public:
  using TensorT = Tensor<T, D>;
  using Group = ParamGroup<T, D>;
  using State = OptimizerState<T, D>;

  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  std::string_view name() const override { return name_; }
  std::size_t num_groups() const override { return groups_.size(); }
  GroupOptions& group_options(std::size_t i) override { return group_at(i); }
  const GroupOptions& group_options(std::size_t i) const override { return group_at(i); }

  /// Groups with their hyperparameters (mutable). Change options freely; add
  /// parameters only through add_param_group, and do not rename them.
  std::vector<Group>& param_groups() { return groups_; }
  const std::vector<Group>& param_groups() const { return groups_; }

  /// Every parameter, group by group.
  std::vector<TensorT> parameters() const {
    std::vector<TensorT> out;
    for (const auto& g : groups_)
      for (const auto& [n, p] : g.params) out.push_back(p);
    return out;
  }

  /// Adds a group: unset options take this optimizer's defaults; names are checked.
  void add_param_group(Group group) {
    resolve(group, groups_.size());
    std::size_t index = 0;
    for (const auto& g : groups_) index += g.params.size();
    for (auto& [n, p] : group.params) {
      if (n.empty()) n = std::to_string(index);
      ++index;
    }
    std::vector<Group> all = groups_;
    all.push_back(group);
    check_params(all);
    groups_ = std::move(all);
    for (const auto& [n, p] : groups_.back().params) state_.try_emplace(n);
  }

  /// One optimisation step over every parameter with a defined gradient.
  void step() {
    NoGradGuard no_grad;
    for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
      Group& g = groups_[gi];
      check_group(g, gi);
      for (auto& [n, p] : g.params) {
        TensorT grad = p.grad();
        if (!grad.defined()) continue;
        AVGRAD_CHECK(grad.shape() == p.shape(), name_, "gradient of shape ", grad.shape(), " for parameter '", n,
                     "' of shape ", p.shape());
        auto it = state_.find(n);
        if (it == state_.end()) it = state_.try_emplace(n).first;
        update(g, it->second, p, grad);
      }
    }
  }

  /// Drops every parameter's gradient (set to none, PyTorch's default).
  void zero_grad() {
    for (auto& g : groups_)
      for (auto& [n, p] : g.params) p.zero_grad();
  }

  /// Updates applied to parameter `name` so far (0 before its first update).
  std::int64_t step_count(const std::string& name) const { return state_of(name).step; }
  /// The live state buffer `buffer` ("exp_avg", …) of parameter `name`; undefined
  /// before the parameter's first update (or when the optimizer keeps none).
  TensorT state_buffer(const std::string& name, std::string_view buffer) const {
    const ParamState& s = state_of(name);
    for (std::size_t k = 0; k < buffer_names_.size(); ++k)
      if (buffer_names_[k] == buffer) return s.buffers[k];
    AVGRAD_CHECK(false, name_, "no state buffer '", buffer, "' in ", name_);
    return TensorT();
  }

  /// A snapshot of the state (buffers are copied); see OptimizerState for the keys.
  State state_dict() const {
    check_params(groups_);
    State out;
    out.scalars["optimizer"] = std::string(name_);
    out.scalars["version"] = "1";
    out.scalars["param_groups"] = detail::format_int(static_cast<std::int64_t>(groups_.size()));
    for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
      const Group& g = groups_[gi];
      const std::string prefix = "param_groups." + std::to_string(gi) + ".";
      for (const auto& f : detail::kOptionFields) {
        if (!detail::option_set(defaults_, f)) continue;
        out.scalars[prefix + std::string(f.name)] =
            f.number ? detail::format_double(*(g.*f.number)) : detail::format_bool(*(g.*f.flag));
      }
      for (const auto& [n, p] : g.params) {
        static const ParamState kNoState;
        auto it = state_.find(n);
        const ParamState& s = it == state_.end() ? kNoState : it->second;
        out.scalars[n + ".group"] = detail::format_int(static_cast<std::int64_t>(gi));
        out.scalars[n + ".step"] = detail::format_int(s.step);
        NoGradGuard no_grad;
        for (std::size_t k = 0; k < buffer_names_.size(); ++k)
          if (s.buffers[k].defined()) out.tensors[n + "." + std::string(buffer_names_[k])] = s.buffers[k].clone();
      }
    }
    return out;
  }

  /// Restores a state_dict(): group options (lr included), step counts and buffers
  /// (copied in). Every key is checked before anything changes.
  void load_state_dict(const State& in) {
    const char* op = "load_state_dict";
    const auto& scalars = in.scalars;
    const std::string& type = detail::require_key(scalars, "optimizer", op);
    AVGRAD_CHECK(type == name_, op, "optimizer state saved by ", type, " cannot be loaded into ", name_);
    const std::string& version = detail::require_key(scalars, "version", op);
    AVGRAD_CHECK(version == "1", op, "unsupported optimizer state version '", version, "'");
    const auto ngroups = detail::parse_int(detail::require_key(scalars, "param_groups", op), "param_groups", op);
    AVGRAD_CHECK(ngroups == static_cast<std::int64_t>(groups_.size()), op, "state has ", ngroups,
                 " parameter groups, the optimizer has ", groups_.size());
    check_params(groups_);

    std::set<std::string> used_scalars{"optimizer", "version", "param_groups"};
    std::set<std::string> used_tensors;
    std::vector<GroupOptions> options(groups_.size());
    std::map<std::string, ParamState> states;
    for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
      GroupOptions& o = options[gi];
      const std::string prefix = "param_groups." + std::to_string(gi) + ".";
      for (const auto& f : detail::kOptionFields) {
        if (!detail::option_set(defaults_, f)) continue;
        const std::string key = prefix + std::string(f.name);
        const std::string& v = detail::require_key(scalars, key, op);
        if (f.number)
          o.*f.number = detail::parse_double(v, key, op);
        else
          o.*f.flag = detail::parse_bool(v, key, op);
        used_scalars.insert(key);
      }
      check_group(o, gi);
      for (const auto& [n, p] : groups_[gi].params) {
        const std::string gkey = n + ".group", skey = n + ".step";
        const auto saved_group = detail::parse_int(detail::require_key(scalars, gkey, op), gkey, op);
        AVGRAD_CHECK(saved_group == static_cast<std::int64_t>(gi), op, "parameter '", n, "' is in group ", gi,
                     " of the optimizer but in group ", saved_group, " of the state");
        ParamState s;
        s.step = detail::parse_int(detail::require_key(scalars, skey, op), skey, op);
        AVGRAD_CHECK(s.step >= 0, op, "negative step count ", s.step, " for key '", skey, "'");
        used_scalars.insert(gkey);
        used_scalars.insert(skey);
        for (std::size_t k = 0; k < buffer_names_.size(); ++k) {
          const std::string key = n + "." + std::string(buffer_names_[k]);
          auto it = in.tensors.find(key);
          if (it == in.tensors.end()) {
            AVGRAD_CHECK(!buffer_required(k, o, s.step), op, "missing key '", key, "' in state (parameter '", n,
                         "' has taken ", s.step, " steps)");
            continue;
          }
          AVGRAD_CHECK(it->second.defined(), op, "tensor '", key, "' is undefined");
          AVGRAD_CHECK(it->second.shape() == p.shape(), op, "tensor '", key, "' has shape ", it->second.shape(),
                       ", parameter '", n, "' has shape ", p.shape());
          used_tensors.insert(key);
          NoGradGuard no_grad;
          s.buffers[k] = it->second.detach().clone();
        }
        states.emplace(n, std::move(s));
      }
    }
    for (const auto& [k, v] : scalars) AVGRAD_CHECK(used_scalars.count(k), op, "unexpected key '", k, "' in state");
    for (const auto& [k, v] : in.tensors)
      AVGRAD_CHECK(used_tensors.count(k), op, "unexpected tensor '", k, "' in state");

    // commit: nothing above changed the optimizer
    for (std::size_t gi = 0; gi < groups_.size(); ++gi)
      for (const auto& f : detail::kOptionFields) {
        if (!detail::option_set(defaults_, f)) continue;
        if (f.number)
          groups_[gi].*f.number = options[gi].*f.number;
        else
          groups_[gi].*f.flag = options[gi].*f.flag;
      }
    state_.clear();
    for (auto& [n, s] : states) state_.emplace(n, std::move(s));
  }

 protected:
  static constexpr std::size_t kMaxBuffers = 3;

  /// Per-parameter state: updates applied, and the optimizer's buffers by slot.
  struct ParamState {
    std::int64_t step = 0;
    std::array<TensorT, kMaxBuffers> buffers;
  };

  /// `defaults` sets exactly the options this optimizer uses; `buffers` names its state slots.
  Optimizer(std::string_view name, GroupOptions defaults, std::vector<std::string_view> buffers)
      : name_(name), defaults_(defaults), buffer_names_(std::move(buffers)) {}

  /// Adds the constructor's groups (derived constructors call this, so checks dispatch).
  void init(std::vector<Group> groups) {
    for (auto& g : groups) add_param_group(std::move(g));
    std::size_t n = 0;
    for (const auto& g : groups_) n += g.params.size();
    AVGRAD_CHECK(n > 0, name_, "optimizer got an empty parameter list");
  }

  /// Throws avgrad::Error when a group's options are invalid (group `index`).
  virtual void check_options(const GroupOptions& g, std::size_t index) const = 0;
  /// Whether state slot `slot` must exist for a parameter that took `step` steps in a group with `g`.
  virtual bool buffer_required(std::size_t slot, const GroupOptions& g, std::int64_t step) const = 0;
  /// One update of parameter p (state s) with gradient `grad` of p's shape.
  virtual void update(const Group& g, ParamState& s, TensorT& p, const TensorT& grad) = 0;

 private:
  Group& group_at(std::size_t i) {
    AVGRAD_CHECK(i < groups_.size(), name_, "group index ", i, " out of range for ", groups_.size(), " groups");
    return groups_[i];
  }
  const Group& group_at(std::size_t i) const {
    AVGRAD_CHECK(i < groups_.size(), name_, "group index ", i, " out of range for ", groups_.size(), " groups");
    return groups_[i];
  }
  const ParamState& state_of(const std::string& name) const {
    auto it = state_.find(name);
    AVGRAD_CHECK(it != state_.end(), name_, "no parameter named '", name, "'");
    return it->second;
  }

  /// Fills unset options from the defaults, then checks the group.
  void resolve(GroupOptions& g, std::size_t index) const {
    for (const auto& f : detail::kOptionFields) {
      if (!detail::option_set(defaults_, f)) continue;
      if (f.number && !(g.*f.number)) g.*f.number = defaults_.*f.number;
      if (f.flag && !(g.*f.flag)) g.*f.flag = defaults_.*f.flag;
    }
    check_group(g, index);
  }
  /// Every option this optimizer uses is set (and valid), no other option is.
  void check_group(const GroupOptions& g, std::size_t index) const {
    for (const auto& f : detail::kOptionFields) {
      const bool used = detail::option_set(defaults_, f), set = detail::option_set(g, f);
      AVGRAD_CHECK(used == set, name_, "option '", f.name, "' of parameter group ", index,
                   used ? " is unset" : " does not apply to ", used ? "" : name_);
    }
    check_options(g, index);
  }

  /// Parameters: defined, leaves, not broadcast views, unique names and tensors.
  void check_params(const std::vector<Group>& groups) const {
    std::set<std::string_view> names;
    std::set<std::pair<const void*, std::int64_t>> places;
    for (const auto& g : groups)
      for (const auto& [n, p] : g.params) {
        AVGRAD_CHECK(!n.empty(), name_, "parameter with an empty name");
        AVGRAD_CHECK(p.defined(), name_, "parameter '", n, "' is an undefined tensor");
        AVGRAD_CHECK(p.is_leaf(), name_, "parameter '", n, "' is not a leaf (it has a grad_fn)");
        for (int d = 0; d < p.dim(); ++d)
          AVGRAD_CHECK(p.strides()[d] != 0 || p.shape()[d] <= 1, name_, "parameter '", n,
                       "' is a broadcast view (stride 0 in shape ", p.shape(), "); pass a contiguous tensor");
        AVGRAD_CHECK(names.insert(n).second, name_, "parameter name '", n, "' appears more than once");
        AVGRAD_CHECK(p.numel() == 0 || places.emplace(p.storage().get(), p.offset()).second, name_, "parameter '", n,
                     "' appears more than once (same storage and offset)");
      }
  }

  std::string_view name_;
  GroupOptions defaults_;
  std::vector<std::string_view> buffer_names_;
  std::vector<Group> groups_;
  std::map<std::string, ParamState, std::less<>> state_;
};

namespace detail {

/// Named groups from a constructor's plain tensor list / named list.
template <Floating T, Device D> std::vector<ParamGroup<T, D>> one_group(const std::vector<Tensor<T, D>>& params) {
  return {ParamGroup<T, D>(params)};
}
template <Floating T, Device D> std::vector<ParamGroup<T, D>> one_group(std::vector<NamedParam<T, D>> params) {
  return {ParamGroup<T, D>(std::move(params))};
}

/// Option checks naming the op, option, value and group (NaN fails every check).
inline void check_nonnegative(const char* op, std::string_view option, double v, std::size_t group) {
  AVGRAD_CHECK(v >= 0, op, "invalid ", option, " ", v, " in parameter group ", group, ": expected a value >= 0");
}
inline void check_unit_interval(const char* op, std::string_view option, double v, std::size_t group) {
  AVGRAD_CHECK(v >= 0 && v < 1, op, "invalid ", option, " ", v, " in parameter group ", group,
               ": expected a value in [0, 1)");
}

}  // namespace detail
}  // namespace avgrad::optim
