// nn::Linear: y = x·Wᵀ + b, with PyTorch's parameter names (weight (OUT, IN),
// bias (OUT)) and default initialisation (kaiming_uniform(a=√5) → U(±1/√IN) for
// both), so state dicts move between the two unchanged.
#pragma once

#include <cmath>

#include "avgrad/nn/init.hpp"
#include "avgrad/nn/module.hpp"
#include "avgrad/ops/linalg.hpp"

namespace avgrad::nn {

template <Floating T, Device D = Cpu> class Linear : public UnaryModule<T, D> {
 public:
  /// in_features → out_features; no bias when `bias` is false.
  Linear(std::int64_t in_features, std::int64_t out_features, bool bias = true, Generator& gen = default_generator())
      : in_(in_features), out_(out_features) {
    AVGRAD_CHECK(in_features > 0 && out_features > 0, "Linear", "features must be positive, got (", in_features, ", ",
                 out_features, ")");
    weight = Tensor<T, D>::empty({out_features, in_features});
    init::kaiming_uniform_(weight, std::sqrt(5.0), init::FanMode::fan_in, "leaky_relu", gen);
    this->register_parameter("weight", weight);
    if (bias) {
      this->bias = Tensor<T, D>::empty({out_features});
      const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
      init::uniform_(this->bias, -bound, bound, gen);
      this->register_parameter("bias", this->bias);
    }
  }

  /// x (…, IN) → (…, OUT).
  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    AVGRAD_CHECK(x.defined() && x.dim() >= 1 && x.size(-1) == in_, "Linear", "expected input (…, ", in_, "), got ",
                 x.defined() ? x.shape().str() : std::string("undefined"));
    return linear(x, weight, bias);
  }
  std::string describe() const override {
    return detail::concat("Linear(", in_, ", ", out_, bias.defined() ? "" : ", bias=false", ")");
  }
  std::int64_t in_features() const { return in_; }
  std::int64_t out_features() const { return out_; }

  Tensor<T, D> weight, bias;

 private:
  std::int64_t in_, out_;
};

}  // namespace avgrad::nn
