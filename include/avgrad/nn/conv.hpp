// Convolution layers: Conv1d, Conv2d, Conv3d and ConvTranspose2d, with PyTorch's
// parameter names, shapes, default initialisation and argument order, so a torch
// state_dict loads unchanged:
//   conv            weight (C_out, C_in/groups, k…),  bias (C_out)
//   conv transpose  weight (C_in, C_out/groups, k…),  bias (C_out)
// Both draw weight ~ kaiming_uniform(a = √5) = U(±1/√fan_in) and bias ~ U(±1/√fan_in)
// with fan_in = size(1)·Πk as torch computes it from the weight tensor (for the
// transpose that is C_out/groups·Πk, torch's convention, not the true fan-in).
// Inputs may be batched (N, C, spatial…) or unbatched (C, spatial…), as torch.
#pragma once

#include <cmath>
#include <string>

#include "avgrad/nn/activation.hpp"
#include "avgrad/nn/init.hpp"
#include "avgrad/nn/module.hpp"
#include "avgrad/ops/conv.hpp"

namespace avgrad::nn {

namespace repr {
template <int N> std::string py_tuple(const ConvArg<N>& a) { return py_tuple(a.v); }
/// Spatial dim letters for messages: "L", "H, W", "D, H, W".
template <int N> constexpr const char* spatial_letters() {
  if constexpr (N == 1)
    return "L";
  else if constexpr (N == 2)
    return "H, W";
  else
    return "D, H, W";
}
}  // namespace repr

/// Shared body of the conv layers over N spatial dims; `Transposed` selects the
/// transposed convolution (weight (C_in, C_out/groups, k…), output_padding).
template <int N, bool Transposed, Floating T, Device D> class ConvLayer : public UnaryModule<T, D> {
 public:
  /// x (N, C_in, spatial…) or (C_in, spatial…) → (N, C_out, out…) or (C_out, out…).
  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    AVGRAD_CHECK(x.defined(), name_, "undefined input");
    const bool batched = x.dim() == N + 2;
    AVGRAD_CHECK((batched || x.dim() == N + 1) && x.size(batched ? 1 : 0) == in_, name_, "expected input (N, ", in_,
                 ", ", repr::spatial_letters<N>(), ") or (", in_, ", ", repr::spatial_letters<N>(), ") with ", in_,
                 " input channels, got ", x.shape());
    const Tensor<T, D> xb = batched ? x : x.unsqueeze(0);
    if constexpr (!Transposed) {
      for (int i = 0; i < N; ++i) {
        const std::int64_t extent = xb.size(2 + i) + 2 * padding_[i], eff = dilation_[i] * (kernel_[i] - 1) + 1;
        AVGRAD_CHECK(eff <= extent, name_, "input ", x.shape(), " padded by ", repr::py_tuple(padding_),
                     " is smaller than the kernel ", repr::py_tuple(kernel_), " dilated by ", repr::py_tuple(dilation_),
                     " in spatial dim ", i);
      }
    }
    Tensor<T, D> y;
    if constexpr (Transposed) {
      static_assert(N == 2, "only ConvTranspose2d is provided");
      y = conv_transpose2d(xb, weight, bias, stride_, padding_, output_padding_, groups_, dilation_);
    } else if constexpr (N == 1) {
      y = conv1d(xb, weight, bias, stride_, padding_, dilation_, groups_);
    } else if constexpr (N == 2) {
      y = conv2d(xb, weight, bias, stride_, padding_, dilation_, groups_);
    } else {
      y = conv3d(xb, weight, bias, stride_, padding_, dilation_, groups_);
    }
    return batched ? y : y.squeeze(0);
  }

  /// As torch's repr: "Conv2d(1, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))";
  /// padding, dilation, output_padding, groups and bias appear only when not default.
  std::string describe() const override {
    std::string s = avgrad::detail::concat(name_, "(", in_, ", ", out_, ", kernel_size=", repr::py_tuple(kernel_),
                                           ", stride=", repr::py_tuple(stride_));
    auto all = [](const ConvArg<N>& a, std::int64_t v) {
      for (int i = 0; i < N; ++i)
        if (a[i] != v) return false;
      return true;
    };
    if (!all(padding_, 0)) s += ", padding=" + repr::py_tuple(padding_);
    if (!all(dilation_, 1)) s += ", dilation=" + repr::py_tuple(dilation_);
    if (!all(output_padding_, 0)) s += ", output_padding=" + repr::py_tuple(output_padding_);
    if (groups_ != 1) s += avgrad::detail::concat(", groups=", groups_);
    if (!bias.defined()) s += ", bias=False";
    return s + ")";
  }

  std::int64_t in_channels() const { return in_; }
  std::int64_t out_channels() const { return out_; }
  std::int64_t groups() const { return groups_; }
  const ConvArg<N>& kernel_size() const { return kernel_; }
  const ConvArg<N>& stride() const { return stride_; }
  const ConvArg<N>& padding() const { return padding_; }
  const ConvArg<N>& dilation() const { return dilation_; }
  const ConvArg<N>& output_padding() const { return output_padding_; }

  Tensor<T, D> weight, bias;

 protected:
  ConvLayer(const char* name, std::int64_t in, std::int64_t out, ConvArg<N> kernel, ConvArg<N> stride,
            ConvArg<N> padding, ConvArg<N> output_padding, ConvArg<N> dilation, std::int64_t groups, bool has_bias,
            Generator& gen)
      : name_(name),
        in_(in),
        out_(out),
        groups_(groups),
        kernel_(kernel),
        stride_(stride),
        padding_(padding),
        dilation_(dilation),
        output_padding_(output_padding) {
    AVGRAD_CHECK(in > 0 && out > 0, name, "channels must be positive, got (", in, ", ", out, ")");
    AVGRAD_CHECK(groups > 0 && in % groups == 0 && out % groups == 0, name, "groups = ", groups,
                 " must be positive and divide in_channels ", in, " and out_channels ", out);
    auto check_arg = [&](const ConvArg<N>& a, const char* what, std::int64_t min) {
      AVGRAD_CHECK(a.given == N, name, what, " needs 1 or ", N, " values, got ", a.given);
      for (int i = 0; i < N; ++i) AVGRAD_CHECK(a[i] >= min, name, what, " must be >= ", min, ", got ", a.shape());
    };
    check_arg(kernel, "kernel_size", 1);
    check_arg(stride, "stride", 1);
    check_arg(padding, "padding", 0);
    check_arg(dilation, "dilation", 1);
    check_arg(output_padding, "output_padding", 0);
    for (int i = 0; i < N; ++i)
      AVGRAD_CHECK(output_padding[i] < stride[i] || output_padding[i] < dilation[i], name, "output_padding ",
                   output_padding.shape(), " must be smaller than stride ", stride.shape(), " or dilation ",
                   dilation.shape());
    Shape ws = Transposed ? Shape{in, out / groups} : Shape{out, in / groups};
    for (int i = 0; i < N; ++i) ws.push_back(kernel[i]);
    weight = Tensor<T, D>::empty(ws);
    init::kaiming_uniform_(weight, std::sqrt(5.0), init::FanMode::fan_in, "leaky_relu", gen);
    this->register_parameter("weight", weight);
    if (has_bias) {
      bias = Tensor<T, D>::empty({out});
      const double bound = 1.0 / std::sqrt(init::fans(weight).in);
      init::uniform_(bias, -bound, bound, gen);
      this->register_parameter("bias", bias);
    }
  }

 private:
  const char* name_;
  std::int64_t in_, out_, groups_;
  ConvArg<N> kernel_, stride_, padding_, dilation_, output_padding_;
};

/// torch.nn.Conv1d: x (N, C_in, L) → (N, C_out, L_out).
template <Floating T, Device D = Cpu> class Conv1d : public ConvLayer<1, false, T, D> {
 public:
  Conv1d(std::int64_t in_channels, std::int64_t out_channels, ConvArg<1> kernel_size, ConvArg<1> stride = 1,
         ConvArg<1> padding = 0, ConvArg<1> dilation = 1, std::int64_t groups = 1, bool bias = true,
         Generator& gen = default_generator())
      : ConvLayer<1, false, T, D>("Conv1d", in_channels, out_channels, kernel_size, stride, padding, 0, dilation,
                                  groups, bias, gen) {}
};

/// torch.nn.Conv2d: x (N, C_in, H, W) → (N, C_out, H_out, W_out); per-dim
/// arguments take one value or {h, w}.
template <Floating T, Device D = Cpu> class Conv2d : public ConvLayer<2, false, T, D> {
 public:
  Conv2d(std::int64_t in_channels, std::int64_t out_channels, ConvArg<2> kernel_size, ConvArg<2> stride = 1,
         ConvArg<2> padding = 0, ConvArg<2> dilation = 1, std::int64_t groups = 1, bool bias = true,
         Generator& gen = default_generator())
      : ConvLayer<2, false, T, D>("Conv2d", in_channels, out_channels, kernel_size, stride, padding, 0, dilation,
                                  groups, bias, gen) {}
};

/// torch.nn.Conv3d: x (N, C_in, D, H, W) → (N, C_out, D_out, H_out, W_out).
template <Floating T, Device D = Cpu> class Conv3d : public ConvLayer<3, false, T, D> {
 public:
  Conv3d(std::int64_t in_channels, std::int64_t out_channels, ConvArg<3> kernel_size, ConvArg<3> stride = 1,
         ConvArg<3> padding = 0, ConvArg<3> dilation = 1, std::int64_t groups = 1, bool bias = true,
         Generator& gen = default_generator())
      : ConvLayer<3, false, T, D>("Conv3d", in_channels, out_channels, kernel_size, stride, padding, 0, dilation,
                                  groups, bias, gen) {}
};

/// torch.nn.ConvTranspose2d (argument order as torch): x (N, C_in, H, W) →
/// (N, C_out, H_out, W_out), H_out = (H − 1)·s − 2p + d(kH − 1) + output_padding + 1.
template <Floating T, Device D = Cpu> class ConvTranspose2d : public ConvLayer<2, true, T, D> {
 public:
  ConvTranspose2d(std::int64_t in_channels, std::int64_t out_channels, ConvArg<2> kernel_size, ConvArg<2> stride = 1,
                  ConvArg<2> padding = 0, ConvArg<2> output_padding = 0, std::int64_t groups = 1, bool bias = true,
                  ConvArg<2> dilation = 1, Generator& gen = default_generator())
      : ConvLayer<2, true, T, D>("ConvTranspose2d", in_channels, out_channels, kernel_size, stride, padding,
                                 output_padding, dilation, groups, bias, gen) {}
};

}  // namespace avgrad::nn
