// nn::Module: the base of every layer and model. A module registers its
// parameters, buffers and child modules by name; everything recursive (dotted
// names such as "audio.conv3.weight", state dicts, train/eval, freezing,
// zero_grad, counting) is derived from those registrations.
//
// Modules hold pointers to their own members, so they are neither copyable nor
// movable: build them in place (members, std::make_unique) and pass references.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "avgrad/ops/binary.hpp"

namespace avgrad::nn {

/// Parameters and buffers by dotted name, as PyTorch's state_dict().
template <Floating T, Device D = Cpu> using StateDict = std::map<std::string, Tensor<T, D>>;

/// What load_state_dict found: keys the module has but the dict lacks, keys
/// the dict has but the module lacks, and shape mismatches ("name: (a) vs (b)").
struct LoadReport {
  std::vector<std::string> missing, unexpected, mismatched;
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string str() const {
    std::string s;
    auto list = [&](const char* what, const std::vector<std::string>& v) {
      if (v.empty()) return;
      s += s.empty() ? "" : "; ";
      s += what;
      for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : " ") + v[i];
    };
    list("missing keys:", missing);
    list("unexpected keys:", unexpected);
    list("shape mismatches:", mismatched);
    return s;
  }
};

template <Floating T, Device D = Cpu> class Module {
 public:
  using Tensor_ = Tensor<T, D>;
  using value_type = T;
  using device_type = D;

  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  Module(Module&&) = delete;
  Module& operator=(Module&&) = delete;

  /// A short description for printing (type and configuration), e.g. "Linear(128, 10)".
  virtual std::string describe() const { return "Module"; }

  // ---- traversal ---------------------------------------------------------------
  /// Every parameter of this module and its descendants, as (dotted name, tensor).
  std::vector<std::pair<std::string, Tensor_>> named_parameters() const {
    std::vector<std::pair<std::string, Tensor_>> out;
    visit("", [&](const std::string& prefix, const Module& m) {
      for (const auto& [n, p] : m.params_) out.emplace_back(prefix + n, *p);
    });
    return out;
  }
  std::vector<Tensor_> parameters() const {
    std::vector<Tensor_> out;
    for (auto& [n, p] : named_parameters()) out.push_back(p);
    return out;
  }
  /// Parameters that currently require grad (what an optimizer should update).
  std::vector<std::pair<std::string, Tensor_>> named_trainable_parameters() const {
    std::vector<std::pair<std::string, Tensor_>> out;
    for (auto& np : named_parameters())
      if (np.second.requires_grad()) out.push_back(np);
    return out;
  }
  std::vector<std::pair<std::string, Tensor_>> named_buffers() const {
    std::vector<std::pair<std::string, Tensor_>> out;
    visit("", [&](const std::string& prefix, const Module& m) {
      for (const auto& [n, b] : m.buffers_) out.emplace_back(prefix + n, *b);
    });
    return out;
  }
  /// This module ("") and every descendant, by dotted path.
  std::vector<std::pair<std::string, Module*>> named_modules() {
    std::vector<std::pair<std::string, Module*>> out;
    visit("", [&](const std::string& prefix, const Module& m) {
      out.emplace_back(prefix.empty() ? "" : prefix.substr(0, prefix.size() - 1), const_cast<Module*>(&m));
    });
    return out;
  }
  const std::vector<std::pair<std::string, Module*>>& children() const { return children_; }

  // ---- state ----------------------------------------------------------------------
  /// Parameters and buffers by dotted name; tensors share storage with the module.
  StateDict<T, D> state_dict() const {
    StateDict<T, D> out;
    for (auto& [n, p] : named_parameters()) out.emplace(n, p.detach());
    for (auto& [n, b] : named_buffers()) out.emplace(n, b.detach());
    return out;
  }

  /// Copies values from `dict` into the module's tensors (in place, so optimizers
  /// and views keep working). strict: any missing/unexpected/mismatched key throws
  /// an avgrad::Error listing them all; otherwise the report says what was skipped.
  LoadReport load_state_dict(const StateDict<T, D>& dict, bool strict = true) {
    LoadReport r;
    std::map<std::string, Tensor_> mine;
    for (auto& [n, p] : named_parameters()) mine.emplace(n, p);
    for (auto& [n, b] : named_buffers()) mine.emplace(n, b);
    for (const auto& [n, t] : mine) {
      auto it = dict.find(n);
      if (it == dict.end())
        r.missing.push_back(n);
      else if (!(it->second.shape() == t.shape()))
        r.mismatched.push_back(n + ": expected " + t.shape().str() + ", got " + it->second.shape().str());
    }
    for (const auto& [n, t] : dict)
      if (!mine.contains(n)) r.unexpected.push_back(n);
    AVGRAD_CHECK(!strict || r.ok(), "load_state_dict", r.str());
    NoGradGuard no_grad;
    for (auto& [n, t] : mine) {
      auto it = dict.find(n);
      if (it == dict.end() || !(it->second.shape() == t.shape())) continue;
      copy_(t, it->second);
    }
    return r;
  }

  /// The same from a state dict held on another device: a CPU checkpoint into the GPU
  /// twin of a model, or a GPU model's weights back into a CPU one. Modules are typed on
  /// their device, so moving a model is building its twin and loading this.
  template <Device E>
  requires(!std::same_as<E, D>) LoadReport load_state_dict(const StateDict<T, E>& dict, bool strict = true) {
    StateDict<T, D> moved;
    for (const auto& [n, t] : dict) moved.emplace(n, t.template to<D>());
    return load_state_dict(moved, strict);
  }

  // ---- modes ----------------------------------------------------------------------
  /// Training mode for this module and every descendant (dropout active, batch
  /// norm uses batch statistics and updates its running estimates).
  void train(bool on = true) {
    visit("", [&](const std::string&, const Module& m) { const_cast<Module&>(m).training_ = on; });
  }
  void eval() { train(false); }
  bool is_training() const { return training_; }

  /// Sets requires_grad on every parameter of the subtree; freeze() = requires_grad(false).
  void requires_grad(bool on) {
    for (auto& [n, p] : named_parameters()) {
      auto t = p;
      t.requires_grad_(on);
    }
  }
  void freeze() { requires_grad(false); }
  void unfreeze() { requires_grad(true); }

  /// Drops every parameter gradient (set to none).
  void zero_grad() {
    for (auto& [n, p] : named_parameters()) {
      auto t = p;
      t.zero_grad();
    }
  }

  /// Number of parameter elements (only trainable ones when asked).
  std::int64_t parameter_count(bool trainable_only = false) const {
    std::int64_t n = 0;
    for (auto& [name, p] : named_parameters())
      if (!trainable_only || p.requires_grad()) n += p.numel();
    return n;
  }

  /// The module tree with each module's description and parameter count.
  std::string summary() const {
    std::string s;
    visit("", [&](const std::string& prefix, const Module& m) {
      std::int64_t own = 0;
      for (const auto& [n, p] : m.params_) own += p->numel();
      const auto depth = static_cast<std::size_t>(std::count(prefix.begin(), prefix.end(), '.'));
      s += std::string(2 * depth, ' ') + (prefix.empty() ? "" : prefix.substr(0, prefix.size() - 1) + ": ") +
           m.describe() + (own ? detail::concat("  [", own, " params]") : "") + "\n";
    });
    return s + detail::concat("total parameters: ", parameter_count(), "\n");
  }

 protected:
  /// Registers a member tensor as a parameter (requires grad unless asked not to).
  /// The module keeps a pointer to the member: reassigning it is seen by traversals.
  Tensor_& register_parameter(const std::string& name, Tensor_& t, bool requires_grad = true) {
    check_name(name);
    AVGRAD_CHECK(t.defined(), "register_parameter", "parameter '", name, "' is undefined");
    if (requires_grad) t.requires_grad_();
    params_.emplace_back(name, &t);
    return t;
  }
  /// Registers a member tensor as a buffer: saved in the state dict, never trained.
  Tensor_& register_buffer(const std::string& name, Tensor_& t) {
    check_name(name);
    AVGRAD_CHECK(t.defined(), "register_buffer", "buffer '", name, "' is undefined");
    buffers_.emplace_back(name, &t);
    return t;
  }
  /// Registers a child module (a member, or one owned through a unique_ptr).
  template <class M> M& register_module(const std::string& name, M& child) {
    static_assert(std::is_base_of_v<Module, M>, "register_module expects an nn::Module of the same T and Device");
    check_name(name);
    children_.emplace_back(name, &child);
    child.training_ = training_;
    return child;
  }

 private:
  void check_name(const std::string& name) const {
    AVGRAD_CHECK(!name.empty() && name.find('.') == std::string::npos, "register", "invalid name '", name,
                 "': names are non-empty and contain no '.'");
    auto taken = [&](const auto& v) {
      for (const auto& [n, _] : v)
        if (n == name) return true;
      return false;
    };
    AVGRAD_CHECK(!taken(params_) && !taken(buffers_) && !taken(children_), "register", "name '", name,
                 "' is already registered in ", describe());
  }
  /// Pre-order walk: f(prefix, module), prefix "" for this module, "a.b." below.
  void visit(const std::string& prefix, const std::function<void(const std::string&, const Module&)>& f) const {
    f(prefix, *this);
    for (const auto& [n, c] : children_) c->visit(prefix + n + ".", f);
  }

  std::vector<std::pair<std::string, Tensor_*>> params_, buffers_;
  std::vector<std::pair<std::string, Module*>> children_;
  bool training_ = true;
};

/// A module mapping one tensor to one tensor: what Sequential chains.
template <Floating T, Device D = Cpu> class UnaryModule : public Module<T, D> {
 public:
  virtual Tensor<T, D> forward(const Tensor<T, D>& x) = 0;
  Tensor<T, D> operator()(const Tensor<T, D>& x) { return forward(x); }
};

}  // namespace avgrad::nn
