// Normalisation layers with PyTorch's parameter and buffer names and defaults.
#pragma once

#include "avgrad/nn/init.hpp"
#include "avgrad/nn/module.hpp"
#include "avgrad/ops/norm.hpp"

namespace avgrad::nn {

/// LayerNorm over the trailing `normalized_shape` dims; weight/bias of that shape
/// (ones/zeros), eps 1e-5, as torch.nn.LayerNorm.
template <Floating T, Device D = Cpu>
class LayerNorm : public UnaryModule<T, D> {
 public:
  explicit LayerNorm(const Shape& normalized_shape, double eps = 1e-5, bool elementwise_affine = true)
      : shape_(normalized_shape), eps_(eps) {
    AVGRAD_CHECK(normalized_shape.rank() >= 1 && normalized_shape.numel() > 0, "LayerNorm",
                 "normalized_shape must be non-empty, got ", normalized_shape);
    if (elementwise_affine) {
      weight = ones<T, D>(normalized_shape);
      bias = zeros<T, D>(normalized_shape);
      this->register_parameter("weight", weight);
      this->register_parameter("bias", bias);
    }
  }
  Tensor<T, D> forward(const Tensor<T, D>& x) override { return layer_norm(x, shape_, weight, bias, eps_); }
  std::string describe() const override { return detail::concat("LayerNorm(", shape_, ", eps=", eps_, ")"); }

  Tensor<T, D> weight, bias;

 private:
  Shape shape_;
  double eps_;
};

}  // namespace avgrad::nn
