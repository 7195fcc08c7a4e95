// The backward engine: walks the tape from a root in dependency order and runs
// only the nodes that lead to a gradient someone asked for. backward() fills
// leaf .grad (accumulating); grad() returns gradients for chosen leaves only,
// leaving .grad untouched — what attacks use to get dL/dx on a trained model.
#pragma once

#include <algorithm>
#include <queue>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "avgrad/autograd/node.hpp"

namespace avgrad::autograd {

namespace detail {

struct GraphTask {
  std::unordered_map<Node*, int> dependencies;  ///< incoming edges from reachable nodes
  std::unordered_map<Node*, bool> needed;       ///< node leads to a wanted gradient
};

/// Collects reachable nodes and dependency counts; marks nodes that reach a target.
/// `targets` empty means every leaf accumulator is a target.
inline GraphTask plan(Node* root, const std::unordered_set<Node*>& targets) {
  GraphTask task;
  std::vector<Node*> order;  // DFS post-order (children before parents)
  std::vector<std::pair<Node*, std::size_t>> stack{{root, 0}};
  std::unordered_set<Node*> seen{root};
  task.dependencies[root] = 0;
  while (!stack.empty()) {
    auto& [node, i] = stack.back();
    if (i < node->next.size()) {
      Node* child = node->next[i++].get();
      if (!child) continue;
      ++task.dependencies[child];
      if (seen.insert(child).second) stack.push_back({child, 0});
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }
  for (Node* n : order) {
    bool need = targets.empty() ? n->is_accumulator() : targets.contains(n);
    for (auto& c : n->next)
      if (c && task.needed[c.get()]) need = true;
    task.needed[n] = need;
  }
  return task;
}

/// Runs the nodes of `task` from root. Nodes in `capture` are targets whose
/// pending gradients the caller collects afterwards, so they are not applied.
inline void execute(Node* root, GraphTask& task, bool retain_graph, const std::unordered_set<Node*>& capture) {
  // Ready nodes run latest-created first: a node created later can only feed
  // earlier ones, and this order keeps memory low on long chains.
  auto later = [](Node* a, Node* b) { return a->sequence() < b->sequence(); };
  std::priority_queue<Node*, std::vector<Node*>, decltype(later)> ready(later);
  ready.push(root);
  std::vector<Node*> ran;
  std::vector<bool> needed;
  try {
    while (!ready.empty()) {
      Node* node = ready.top();
      ready.pop();
      if (task.needed[node] && !capture.contains(node)) {
        needed.assign(node->next.size(), false);
        for (std::size_t i = 0; i < node->next.size(); ++i)
          needed[i] = node->next[i] && task.needed[node->next[i].get()];
        node->apply(needed);
      } else if (!capture.contains(node)) {
        node->clear_pending();
      }
      ran.push_back(node);
      for (auto& c : node->next)
        if (c && --task.dependencies[c.get()] == 0) ready.push(c.get());
    }
  } catch (...) {
    for (auto& [n, _] : task.dependencies) n->clear_pending();
    throw;
  }
  if (!retain_graph)
    for (Node* n : ran) n->release_saved();
}

}  // namespace detail

namespace detail {
/// The gradient that starts a sweep from `root`: `seed`, or 1 for a one-element root.
template <Floating T, Device D>
Tensor<T, D> seed_gradient(const Tensor<T, D>& root, const Tensor<T, D>& seed, const char* op) {
  if (!seed.defined()) {
    AVGRAD_CHECK(root.numel() == 1, op, "grad can be implicitly created only for one-element outputs; got shape ",
                 root.shape(), " (pass a seed gradient)");
    return ones<T, D>(root.shape());
  }
  AVGRAD_CHECK(seed.shape() == root.shape(), op, "seed gradient shape ", seed.shape(), " differs from output shape ",
               root.shape());
  return seed;
}
}  // namespace detail

/// Gradient of `root` with respect to every leaf that requires grad, accumulated
/// into the leaves' .grad. `seed` defaults to 1 for a one-element root.
template <Floating T, Device D>
void backward(const Tensor<T, D>& root, const Tensor<T, D>& seed = Tensor<T, D>(), BackwardOptions opts = {}) {
  AVGRAD_CHECK(root.defined(), "backward", "called on an undefined tensor");
  AVGRAD_CHECK(root.requires_grad(), "backward", "tensor of shape ", root.shape(),
               " does not require grad and has no grad_fn");
  Tensor<T, D> g = detail::seed_gradient(root, seed, "backward");
  NoGradGuard no_grad;  // backward formulas are not themselves recorded
  std::shared_ptr<Node> root_node = gradient_edge(root);
  static_cast<TypedNode<T, D>*>(root_node.get())->accumulate(g);
  auto task = detail::plan(root_node.get(), {});
  detail::execute(root_node.get(), task, opts.retain_graph, {});
}

/// Gradients of `root` with respect to `inputs` (leaves that require grad), returned
/// in order; nothing is written to any .grad and no other gradient is computed.
/// An input that `root` does not depend on gets a zero gradient.
template <Floating T, Device D>
std::vector<Tensor<T, D>> grad(const Tensor<T, D>& root, const std::vector<Tensor<T, D>>& inputs,
                               const Tensor<T, D>& seed = Tensor<T, D>(), BackwardOptions opts = {}) {
  AVGRAD_CHECK(root.defined() && root.requires_grad(), "grad", "output does not require grad");
  Tensor<T, D> g = detail::seed_gradient(root, seed, "grad");
  NoGradGuard no_grad;
  std::vector<std::shared_ptr<Node>> accs;
  std::unordered_set<Node*> targets;
  for (const auto& x : inputs) {
    AVGRAD_CHECK(x.defined() && x.is_leaf() && x.requires_grad(), "grad",
                 "every input must be a leaf that requires grad");
    accs.push_back(gradient_edge(x));
    targets.insert(accs.back().get());
  }
  std::shared_ptr<Node> root_node = gradient_edge(root);
  std::vector<Tensor<T, D>> out;
  if (targets.contains(root_node.get())) {  // grad of a leaf with respect to itself
    for (const auto& x : inputs) out.push_back(x.is_same(root) ? g.clone() : zeros_like(x));
    return out;
  }
  static_cast<TypedNode<T, D>*>(root_node.get())->accumulate(g);
  auto task = detail::plan(root_node.get(), targets);
  detail::execute(root_node.get(), task, opts.retain_graph, targets);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    auto* acc = static_cast<TypedNode<T, D>*>(accs[i].get());
    Tensor<T, D> gi = acc->take_pending();
    out.push_back(gi.defined() ? gi : zeros_like(inputs[i]));
  }
  return out;
}

}  // namespace avgrad::autograd

namespace avgrad {
template <Element T, Device D> void Tensor<T, D>::backward(const Tensor& seed, BackwardOptions opts) const {
  static_assert(Floating<T>, "backward() needs a floating-point tensor");
  autograd::backward(*this, seed, opts);
}
}  // namespace avgrad
