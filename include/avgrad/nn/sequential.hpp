// nn::Sequential: an owning chain of one-tensor-to-one-tensor modules, applied in
// order. Children are registered as "0", "1", … as torch.nn.Sequential, so state
// dict keys read "0.weight", "2.running_mean" and load from torch unchanged.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "avgrad/nn/module.hpp"

namespace avgrad::nn {

template <Floating T, Device D = Cpu> class Sequential : public UnaryModule<T, D> {
 public:
  using Layer = UnaryModule<T, D>;

  Sequential() = default;
  /// Sequential(std::make_unique<Conv2d<T>>(…), std::make_unique<ReLU<T>>(), …).
  template <class... Ms> explicit Sequential(std::unique_ptr<Ms>... layers) { (push_back(std::move(layers)), ...); }

  /// Appends a layer (taking ownership) under the next index; returns it.
  template <class M> M& push_back(std::unique_ptr<M> layer) {
    static_assert(std::is_base_of_v<Layer, M>, "Sequential holds nn::UnaryModule<T, D> layers");
    AVGRAD_CHECK(layer != nullptr, "Sequential", "push_back of a null layer");
    M& ref = *layer;
    layers_.push_back(std::move(layer));
    this->register_module(std::to_string(layers_.size() - 1), static_cast<Layer&>(ref));
    return ref;
  }
  /// Builds a layer in place from its constructor arguments: emplace<Conv2d<T>>(1, 8, 3).
  template <class M, class... Args> M& emplace(Args&&... args) {
    return push_back(std::make_unique<M>(std::forward<Args>(args)...));
  }

  /// x through every layer in order (the identity when empty).
  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    Tensor<T, D> h = x;
    for (auto& layer : layers_) h = layer->forward(h);
    return h;
  }

  std::size_t size() const { return layers_.size(); }
  bool empty() const { return layers_.empty(); }
  Layer& operator[](std::size_t i) { return at(i); }
  Layer& at(std::size_t i) const {
    AVGRAD_CHECK(i < layers_.size(), "Sequential", "index ", i, " out of range for ", layers_.size(), " layers");
    return *layers_[i];
  }
  /// Layer i as its concrete type; throws when it is another type.
  template <class M> M& get(std::size_t i) const {
    auto* p = dynamic_cast<M*>(&at(i));
    AVGRAD_CHECK(p != nullptr, "Sequential", "layer ", i, " is ", at(i).describe(), ", not the requested type");
    return *p;
  }

  std::string describe() const override { return avgrad::detail::concat("Sequential(", layers_.size(), " layers)"); }

  /// torch's multi-line repr: "Sequential(\n  (0): Conv2d(…)\n  (1): ReLU()\n)",
  /// nested Sequentials indented one more level.
  std::string repr() const {
    std::string s = "Sequential(";
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      auto* seq = dynamic_cast<const Sequential*>(layers_[i].get());
      std::string child = seq ? seq->repr() : layers_[i]->describe();
      std::string indented;
      for (char c : child) indented += c == '\n' ? std::string("\n  ") : std::string(1, c);
      s += avgrad::detail::concat("\n  (", i, "): ", indented);
    }
    return s + (layers_.empty() ? ")" : "\n)");
  }

 private:
  std::vector<std::unique_ptr<Layer>> layers_;
};

}  // namespace avgrad::nn
