// Parameter initialisers with PyTorch's conventions (fan computation, gains),
// so a model ported from PyTorch starts from the same distributions. Values come
// from avgrad's Philox stream: same statistics as torch.nn.init, not the same bits.
// All write in place under NoGradGuard and return the tensor.
#pragma once

#include <cmath>
#include <string_view>

#include "avgrad/ops/binary.hpp"

namespace avgrad::nn::init {

/// fan_in = size(1)·receptive field, fan_out = size(0)·receptive field, as torch.nn.init
/// (weights are (out, in, k…)); 1-D tensors use their length for both.
struct Fans {
  double in, out;
};
template <Floating T, Device D> Fans fans(const Tensor<T, D>& w) {
  AVGRAD_CHECK(w.dim() >= 1, "init", "fan computation needs rank >= 1, got shape ", w.shape());
  if (w.dim() == 1) return {static_cast<double>(w.size(0)), static_cast<double>(w.size(0))};
  double receptive = 1;
  for (int d = 2; d < w.dim(); ++d) receptive *= static_cast<double>(w.shape()[d]);
  return {static_cast<double>(w.size(1)) * receptive, static_cast<double>(w.size(0)) * receptive};
}

/// torch.nn.init.calculate_gain: linear/conv/sigmoid 1, tanh 5/3, relu √2,
/// leaky_relu √(2/(1+a²)), selu 3/4.
inline double gain(std::string_view nonlinearity, double param = 0.01) {
  if (nonlinearity == "linear" || nonlinearity == "conv" || nonlinearity == "sigmoid") return 1.0;
  if (nonlinearity == "tanh") return 5.0 / 3.0;
  if (nonlinearity == "relu") return std::sqrt(2.0);
  if (nonlinearity == "leaky_relu") return std::sqrt(2.0 / (1.0 + param * param));
  if (nonlinearity == "selu") return 0.75;
  throw Error("init::gain", detail::concat("unknown nonlinearity '", nonlinearity, "'"));
}

enum class FanMode { fan_in, fan_out };

template <Floating T, Device D> Tensor<T, D>& fill_from(Tensor<T, D>& w, const Tensor<T, D>& values) {
  NoGradGuard ng;
  return copy_(w, values);
}

template <Floating T, Device D>
Tensor<T, D>& uniform_(Tensor<T, D>& w, double lo, double hi, Generator& gen = default_generator()) {
  AVGRAD_CHECK(lo <= hi, "init::uniform_", "empty range [", lo, ", ", hi, ")");
  return fill_from(w, rand<T, D>(w.shape(), gen, lo, hi));
}
template <Floating T, Device D>
Tensor<T, D>& normal_(Tensor<T, D>& w, double mean, double std, Generator& gen = default_generator()) {
  AVGRAD_CHECK(std >= 0, "init::normal_", "negative std ", std);
  return fill_from(w, randn<T, D>(w.shape(), gen, mean, std));
}
template <Floating T, Device D> Tensor<T, D>& constant_(Tensor<T, D>& w, double v) {
  NoGradGuard ng;
  return fill_(w, static_cast<T>(v));
}
template <Floating T, Device D> Tensor<T, D>& zeros_(Tensor<T, D>& w) { return constant_(w, 0.0); }
template <Floating T, Device D> Tensor<T, D>& ones_(Tensor<T, D>& w) { return constant_(w, 1.0); }

/// U(±gain·√(3/fan)) (He et al.); `a` is the leaky-ReLU slope used in the gain.
template <Floating T, Device D>
Tensor<T, D>& kaiming_uniform_(Tensor<T, D>& w, double a = 0.0, FanMode mode = FanMode::fan_in,
                               std::string_view nonlinearity = "leaky_relu", Generator& gen = default_generator()) {
  auto f = fans(w);
  const double fan = mode == FanMode::fan_in ? f.in : f.out;
  AVGRAD_CHECK(fan > 0, "init::kaiming_uniform_", "zero fan for shape ", w.shape());
  const double bound = gain(nonlinearity, a) * std::sqrt(3.0 / fan);
  return uniform_(w, -bound, bound, gen);
}
/// N(0, (gain/√fan)²).
template <Floating T, Device D>
Tensor<T, D>& kaiming_normal_(Tensor<T, D>& w, double a = 0.0, FanMode mode = FanMode::fan_in,
                              std::string_view nonlinearity = "leaky_relu", Generator& gen = default_generator()) {
  auto f = fans(w);
  const double fan = mode == FanMode::fan_in ? f.in : f.out;
  AVGRAD_CHECK(fan > 0, "init::kaiming_normal_", "zero fan for shape ", w.shape());
  return normal_(w, 0.0, gain(nonlinearity, a) / std::sqrt(fan), gen);
}
/// U(±gain·√(6/(fan_in + fan_out))) (Glorot & Bengio).
template <Floating T, Device D>
Tensor<T, D>& xavier_uniform_(Tensor<T, D>& w, double g = 1.0, Generator& gen = default_generator()) {
  auto f = fans(w);
  const double bound = g * std::sqrt(6.0 / (f.in + f.out));
  return uniform_(w, -bound, bound, gen);
}
template <Floating T, Device D>
Tensor<T, D>& xavier_normal_(Tensor<T, D>& w, double g = 1.0, Generator& gen = default_generator()) {
  auto f = fans(w);
  return normal_(w, 0.0, g * std::sqrt(2.0 / (f.in + f.out)), gen);
}

/// N(mean, std²) truncated to [a, b], by inverse-CDF sampling as torch.nn.init.trunc_normal_.
template <Floating T, Device D> Tensor<T, D>& trunc_normal_(Tensor<T, D>& w, double mean = 0.0, double std = 1.0,
                                                            double a = -2.0, double b = 2.0,
                                                            Generator& gen = default_generator()) {
  AVGRAD_CHECK(std > 0 && a < b, "init::trunc_normal_", "need std > 0 and a < b, got std ", std, " [", a, ", ", b, "]");
  if constexpr (!std::same_as<D, Cpu>) {  // drawn on the host from the same stream, then moved
    auto host = Tensor<T, Cpu>::empty(w.shape());
    trunc_normal_(host, mean, std, a, b, gen);
    NoGradGuard no_grad;
    copy_(w, host.template to<D>());
    return w;
  } else {
    auto cdf = [](double x) { return 0.5 * (1.0 + std::erf(x / std::sqrt(2.0))); };
    const double lo = cdf((a - mean) / std), hi = cdf((b - mean) / std);
    auto u = rand<double, D>(w.shape(), gen, 2 * lo - 1, 2 * hi - 1);  // uniform on [2l−1, 2h−1]
    auto v = detail::map<T>(u, [=](double x) {
      // erfinv by Newton on erf (few steps from a good start): x ∈ (−1, 1)
      double y = 0.0;
      if (x > -1 && x < 1) {
        double t = std::log(1 - x * x);
        y = std::copysign(
            std::sqrt(std::sqrt(std::pow(4.330746750799873 + t / 2, 2) - t / 0.147) - (4.330746750799873 + t / 2)), x);
        for (int i = 0; i < 3; ++i) y -= (std::erf(y) - x) / (2 / std::sqrt(M_PI) * std::exp(-y * y));
      }
      double z = mean + std * std::sqrt(2.0) * y;
      return static_cast<T>(std::min(std::max(z, a), b));
    });
    return fill_from(w, v);
  }
}

}  // namespace avgrad::nn::init
