// Tape nodes. A Node is type-erased so the engine can walk graphs that change
// dtype (to<double>()); each typed node owns the pending gradient of its output
// and pushes its inputs' gradients into its producers when applied.
//
// Invariants: a node's `next[i]` is null exactly when input i needs no gradient;
// gradients are accumulated (+=) into pending buffers and into leaf .grad.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "avgrad/autograd/grad_mode.hpp"
#include "avgrad/core/tensor.hpp"

namespace avgrad {
namespace detail {
template <Element T, Device D> Tensor<T, D> add_into(const Tensor<T, D>& a, const Tensor<T, D>& b);  // ops/binary.hpp
}  // namespace detail

namespace autograd {

inline std::uint64_t next_sequence_number() {
  thread_local std::uint64_t seq = 0;
  return ++seq;
}

class Node {
 public:
  Node() : sequence_(next_sequence_number()) {}
  virtual ~Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  virtual std::string_view name() const = 0;
  /// Consumes the pending gradient and pushes input gradients into `next`.
  /// `needed[i]` says whether input i leads to any gradient the caller wants.
  virtual void apply(const std::vector<bool>& needed) = 0;
  /// Frees saved tensors (after a backward without retain_graph).
  virtual void release_saved() {}
  virtual bool has_pending() const = 0;
  virtual void clear_pending() = 0;
  /// Leaf accumulators end a path.
  virtual bool is_accumulator() const { return false; }

  std::uint64_t sequence() const noexcept { return sequence_; }
  std::vector<std::shared_ptr<Node>> next;  ///< producers of the inputs (null: no grad)

 private:
  std::uint64_t sequence_;
};

/// A node whose output is a Tensor<T, D>: it owns that output's pending gradient.
template <Floating T, Device D> class TypedNode : public Node {
 public:
  explicit TypedNode(Shape out_shape) : out_shape_(out_shape) {}

  /// pending += g. g must have the output's shape (a backward bug otherwise).
  void accumulate(const Tensor<T, D>& g) {
    AVGRAD_CHECK(g.shape() == out_shape_, name(), "gradient of shape ", g.shape(), " does not match output shape ",
                 out_shape_);
    pending_ = pending_.defined() ? detail::add_into(pending_, g) : g;
  }
  bool has_pending() const override { return pending_.defined(); }
  void clear_pending() override { pending_ = Tensor<T, D>(); }
  Tensor<T, D> take_pending() { return std::exchange(pending_, Tensor<T, D>()); }
  const Shape& out_shape() const noexcept { return out_shape_; }

 protected:
  Tensor<T, D> pending_;
  Shape out_shape_;
};

/// Ends every path at a leaf: adds the arriving gradient into leaf.grad.
template <Floating T, Device D> class AccumulateGrad final : public TypedNode<T, D> {
 public:
  explicit AccumulateGrad(const std::shared_ptr<detail::TensorImpl<T, D>>& leaf)
      : TypedNode<T, D>(leaf->shape), leaf_(leaf) {}
  std::string_view name() const override { return "AccumulateGrad"; }
  bool is_accumulator() const override { return true; }
  void apply(const std::vector<bool>&) override {
    auto g = this->take_pending();
    auto leaf = leaf_.lock();
    if (!leaf || !g.defined()) return;
    if (leaf->grad) {
      NoGradGuard no_grad;
      leaf->grad = detail::add_into(Tensor<T, D>(leaf->grad), g).impl_ptr();
    } else {
      // Own the buffer: the arriving gradient may alias a saved tensor or another grad.
      const bool sole_owner = g.is_contiguous() && g.impl_ptr().use_count() == 1 && g.storage().use_count() == 1;
      leaf->grad = sole_owner ? g.impl_ptr() : g.clone().impl_ptr();
    }
  }
  std::shared_ptr<detail::TensorImpl<T, D>> leaf() const { return leaf_.lock(); }

 private:
  std::weak_ptr<detail::TensorImpl<T, D>> leaf_;
};

/// The edge an op records for input x: its producer, its leaf accumulator, or null.
template <Floating T, Device D> std::shared_ptr<Node> gradient_edge(const Tensor<T, D>& x) {
  auto* impl = x.impl();
  if (impl->grad_fn) return impl->grad_fn;
  if (!impl->requires_grad) return nullptr;
  if (auto acc = impl->grad_accumulator.lock()) return acc;
  auto acc = std::make_shared<AccumulateGrad<T, D>>(x.impl_ptr());
  impl->grad_accumulator = acc;
  return acc;
}

/// A tensor captured for backward. Stored without history (no reference cycle
/// through the output's own node) and with the storage version at save time, so
/// an in-place write between forward and backward is reported, not silently used.
template <Element T, Device D> class Saved {
 public:
  Saved() = default;
  explicit Saved(const Tensor<T, D>& t)
      : t_(t.defined() ? t.detach() : Tensor<T, D>()), version_(t.defined() ? t.storage()->version() : 0) {}
  const Tensor<T, D>& get(std::string_view op) const {
    AVGRAD_CHECK(!t_.defined() || t_.storage()->version() == version_, op,
                 "a tensor saved for backward was modified in place after the forward pass");
    return t_;
  }
  bool defined() const noexcept { return t_.defined(); }

 private:
  Tensor<T, D> t_;
  std::uint64_t version_ = 0;
};

/// Input gradients of an op: one per input, undefined where not needed.
template <Floating T, Device D> using Grads = std::vector<Tensor<T, D>>;

/// The node of a differentiable op: a name and a backward closure that maps the
/// output gradient to the input gradients (skipping inputs with needed[i] false).
template <Floating T, Device D> class FunctionNode final : public TypedNode<T, D> {
 public:
  using Backward = std::function<Grads<T, D>(const Tensor<T, D>& grad_out, const std::vector<bool>& needed)>;
  FunctionNode(std::string_view name, Shape out_shape, Backward fn)
      : TypedNode<T, D>(out_shape), name_(name), fn_(std::move(fn)) {}

  std::string_view name() const override { return name_; }
  void apply(const std::vector<bool>& needed) override {
    AVGRAD_CHECK(static_cast<bool>(fn_), name_,
                 "backward through a graph a second time, but its saved tensors were freed; "
                 "pass retain_graph=true to the first backward");
    auto g = this->take_pending();
    if (!g.defined()) return;
    Grads<T, D> grads = fn_(g, needed);
    AVGRAD_CHECK(grads.size() == this->next.size(), name_, "backward returned ", grads.size(), " gradients for ",
                 this->next.size(), " inputs");
    for (std::size_t i = 0; i < grads.size(); ++i) {
      if (!needed[i] || !grads[i].defined()) continue;
      static_cast<TypedNode<T, D>*>(this->next[i].get())->accumulate(grads[i]);
    }
  }
  void release_saved() override { fn_ = nullptr; }

 private:
  std::string name_;
  Backward fn_;
};

/// True when an op on these inputs must record a node.
template <Floating T, Device D> bool any_requires_grad(std::initializer_list<const Tensor<T, D>*> inputs) {
  if (!grad_enabled()) return false;
  for (auto* x : inputs)
    if (x && x->defined() && x->requires_grad()) return true;
  return false;
}

/// Attaches a backward node to `out` when grad mode is on and some input needs
/// grad; returns `out`. `backward(g, needed)` returns one gradient per input.
template <Floating T, Device D, class F>
Tensor<T, D> record(std::string_view name, Tensor<T, D> out, const std::vector<Tensor<T, D>>& inputs, F&& backward) {
  if (!grad_enabled()) return out;
  bool any = false;
  for (const auto& x : inputs) any = any || (x.defined() && x.requires_grad());
  if (!any) return out;
  auto node = std::make_shared<FunctionNode<T, D>>(name, out.shape(), std::forward<F>(backward));
  node->next.reserve(inputs.size());
  for (const auto& x : inputs) node->next.push_back(x.defined() ? gradient_edge(x) : nullptr);
  out.impl()->grad_fn = std::move(node);
  return out;
}

}  // namespace autograd
}  // namespace avgrad
