// Building blocks shared by the CNN encoders: convolution + batch norm + ReLU, the
// ResNet basic block (2-D and 3-D), and the reshapes that turn a feature map into a
// latent sequence over time. Child names follow torchvision (conv1, bn1, downsample.0)
// so state dicts line up with PyTorch models built the same way.
#pragma once

#include <memory>

#include "avgrad/models/concepts.hpp"
#include "avgrad/nn/conv.hpp"
#include "avgrad/nn/normalization.hpp"
#include "avgrad/nn/sequential.hpp"
#include "avgrad/ops/binary.hpp"
#include "avgrad/ops/conv.hpp"
#include "avgrad/ops/reduce.hpp"
#include "avgrad/ops/unary.hpp"

namespace avgrad::models {

namespace blocks_detail {
template <int N, Floating T, Device D> struct ConvTypes;
template <Floating T, Device D> struct ConvTypes<2, T, D> {
  using Conv = nn::Conv2d<T, D>;
  using Norm = nn::BatchNorm2d<T, D>;
};
template <Floating T, Device D> struct ConvTypes<3, T, D> {
  using Conv = nn::Conv3d<T, D>;
  using Norm = nn::BatchNorm3d<T, D>;
};
}  // namespace blocks_detail

/// N-d convolution (no bias: the norm follows) → BatchNorm → optional ReLU; "same"
/// padding k/2 per axis. Children "conv", "bn".
///
/// In eval mode (BN normalising with its running statistics) the norm is folded into the
/// convolution: γ(W⋆x − μ)/√(σ² + ε) + β = (W·s)⋆x + (β − μ·s) with s = γ/√(σ² + ε) per output
/// channel, so the map is written once instead of three times (conv, BN, ReLU). The fold is
/// built from differentiable ops on the parameters, so gradients reach W, γ and β as without it.
/// `forward_pooled` applies a max-pool between the norm and the ReLU: the two commute (ReLU is
/// monotone), and pooling first leaves the ReLU a 4× (2-D) or 8× (3-D) smaller map.
template <int N, Floating T, Device D = Cpu> class ConvBnAct : public nn::UnaryModule<T, D> {
 public:
  using Conv = typename blocks_detail::ConvTypes<N, T, D>::Conv;
  using Norm = typename blocks_detail::ConvTypes<N, T, D>::Norm;

  ConvBnAct(std::int64_t in, std::int64_t out, ConvArg<N> kernel = 3, ConvArg<N> stride = 1, bool relu = true,
            Generator& gen = default_generator())
      : conv(in, out, kernel, stride, same_padding(kernel), 1, 1, false, gen), bn(out), relu_(relu) {
    this->register_module("conv", conv);
    this->register_module("bn", bn);
  }
  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    auto y = normalized(x);
    return relu_ ? relu(y) : y;
  }
  /// act(pool(bn(conv(x)))) for a max-pool `pool` (any monotone map commuting with ReLU).
  template <class Pool> Tensor<T, D> forward_pooled(const Tensor<T, D>& x, Pool&& pool) {
    auto y = pool(normalized(x));
    return relu_ ? relu(y) : y;
  }
  /// bn(conv(x)), folded into one convolution in eval mode.
  Tensor<T, D> normalized(const Tensor<T, D>& x) {
    if (bn.is_training() || !bn.running_mean.defined()) return bn(conv(x));
    AVGRAD_CHECK(x.dim() == N + 2, "ConvBnAct", "expected a batched input of rank ", N + 2, ", got ", x.shape());
    auto scale = rsqrt(bn.running_var + bn.eps());  // (Co); buffers: no gradient
    if (bn.weight.defined()) scale = scale * bn.weight;
    auto shift = bn.bias.defined() ? bn.bias - bn.running_mean * scale : -(bn.running_mean * scale);
    Shape per_channel(std::vector<std::int64_t>(static_cast<std::size_t>(N + 2), 1));
    per_channel[0] = conv.out_channels();
    const auto w = conv.weight * scale.reshape(per_channel);  // (Co, C, k…)
    if constexpr (N == 2)
      return conv2d(x, w, shift, conv.stride(), conv.padding(), conv.dilation(), conv.groups());
    else
      return conv3d(x, w, shift, conv.stride(), conv.padding(), conv.dilation(), conv.groups());
  }
  std::string describe() const override {
    return detail::concat("ConvBnAct", N, "d(", conv.in_channels(), " → ", conv.out_channels(), relu_ ? ", relu" : "",
                          ")");
  }

  Conv conv;
  Norm bn;

 private:
  static ConvArg<N> same_padding(const ConvArg<N>& k) {
    ConvArg<N> p(0);
    for (int i = 0; i < N; ++i) p.v[static_cast<std::size_t>(i)] = k[i] / 2;
    return p;
  }
  bool relu_;
};

/// ResNet basic block: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)) with 3×…×3
/// convolutions, the first strided; the shortcut is the identity, or a strided 1×…×1
/// conv + BN ("downsample.0", "downsample.1") when the stride or the width changes.
template <int N, Floating T, Device D = Cpu> class BasicBlock : public nn::UnaryModule<T, D> {
 public:
  using Conv = typename blocks_detail::ConvTypes<N, T, D>::Conv;
  using Norm = typename blocks_detail::ConvTypes<N, T, D>::Norm;

  BasicBlock(std::int64_t in, std::int64_t out, ConvArg<N> stride = 1, Generator& gen = default_generator())
      : conv1(in, out, 3, stride, 1, 1, 1, false, gen), bn1(out), conv2(out, out, 3, 1, 1, 1, 1, false, gen), bn2(out) {
    this->register_module("conv1", conv1);
    this->register_module("bn1", bn1);
    this->register_module("conv2", conv2);
    this->register_module("bn2", bn2);
    bool strided = false;
    for (int i = 0; i < N; ++i) strided = strided || stride[i] != 1;
    if (strided || in != out) {
      downsample.template emplace<Conv>(in, out, 1, stride, 0, 1, 1, false, gen);
      downsample.template emplace<Norm>(out);
      this->register_module("downsample", downsample);
    }
  }
  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    auto h = relu(bn1(conv1(x)));
    h = bn2(conv2(h));
    return relu(h + (downsample.empty() ? x : downsample(x)));
  }
  std::string describe() const override {
    return detail::concat("BasicBlock", N, "d(", conv1.in_channels(), " → ", conv1.out_channels(),
                          ", stride=", conv1.stride().shape(), ")");
  }

  Conv conv1;
  Norm bn1;
  Conv conv2;
  Norm bn2;
  nn::Sequential<T, D> downsample;  ///< empty for an identity shortcut
};

/// A 2-D feature map (B, C, T, F) as a sequence over time: the mean over frequency, (B, T, C).
template <Floating T, Device D> Tensor<T, D> freq_mean_sequence(const Tensor<T, D>& x) {
  check_input(
      "freq_mean_sequence", x, [](auto& t) { return t.dim() == 4; }, "a feature map (B, C, T, F)");
  return mean(x, {3}).transpose(1, 2);
}

/// A 2-D feature map (B, C, T, F) as a sequence over time with channels and frequency
/// flattened, (B, T, C·F) — the study's stem output (512 channels × 2 bins = 1024).
template <Floating T, Device D> Tensor<T, D> freq_flatten_sequence(const Tensor<T, D>& x) {
  check_input(
      "freq_flatten_sequence", x, [](auto& t) { return t.dim() == 4; }, "a feature map (B, C, T, F)");
  const std::int64_t B = x.size(0), C = x.size(1), Tn = x.size(2), F = x.size(3);
  return x.permute({0, 2, 1, 3}).reshape({B, Tn, C * F});
}

/// A 3-D feature map (B, C, T, H, W) as a sequence over time: the spatial mean, (B, T, C).
template <Floating T, Device D> Tensor<T, D> spatial_mean_sequence(const Tensor<T, D>& x) {
  check_input(
      "spatial_mean_sequence", x, [](auto& t) { return t.dim() == 5; }, "a feature map (B, C, T, H, W)");
  return mean(x, {3, 4}).transpose(1, 2);
}

/// Mean over the sequence axis of a (B, L, D) latent; a pooled (B, D) latent is returned as is.
template <Floating T, Device D> Tensor<T, D> pool_latent(const Tensor<T, D>& z) {
  check_input(
      "pool_latent", z, [](auto& t) { return t.dim() == 2 || t.dim() == 3; }, "a latent (B, D) or (B, L, D)");
  return z.dim() == 3 ? mean(z, {1}) : z;
}

}  // namespace avgrad::models
