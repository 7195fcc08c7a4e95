// Elementwise unary ops and activations. Each is a host/device functor with the
// forward value and its derivative (the CPU loop and the CUDA kernel share it);
// the backward is dx = g · f'(x), written via the input x and/or output y.
#pragma once

#include <cmath>

#include "avgrad/ops/detail/elementwise.hpp"

namespace avgrad {

namespace fn {
using std::abs, std::exp, std::log, std::log1p, std::sqrt, std::tanh, std::erf, std::sin, std::cos, std::pow,
    std::expm1;

// Each functor: operator()(x) -> y; grad(x, y, g) -> dL/dx. Derivations beside them.
struct Neg {
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x) const { return -x; }
  template <class T> AVGRAD_HOST_DEVICE T grad(T, T, T g) const { return -g; }  // d(-x) = -1
};
struct Abs {
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x) const { return abs(x); }
  // d|x| = sign(x); 0 at the kink, as PyTorch
  template <class T> AVGRAD_HOST_DEVICE T grad(T x, T, T g) const { return x > T(0) ? g : (x < T(0) ? -g : T(0)); }
};
struct Sign {
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x) const { return T((x > T(0)) - (x < T(0))); }
  template <class T> AVGRAD_HOST_DEVICE T grad(T, T, T) const { return T(0); }  // piecewise constant
};
struct Exp {
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x) const { return exp(x); }
  template <class T> AVGRAD_HOST_DEVICE T grad(T, T y, T g) const { return g * y; }  // (e^x)' = e^x = y
};
struct Log {
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x) const { return log(x); }
  template <class T> AVGRAD_HOST_DEVICE T grad(T x, T, T g) const { return g / x; }  // (ln x)' = 1/x
};
struct Log1p {
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x) const { return log1p(x); }
  template <class T> AVGRAD_HOST_DEVICE T grad(T x, T, T g) const { return g / (T(1) + x); }
};
struct Sqrt {
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x) const { return sqrt(x); }
  template <class T> AVGRAD_HOST_DEVICE T grad(T, T y, T g) const { return g / (T(2) * y); }  // 1/(2√x)
};
struct Rsqrt {
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x) const { return T(1) / sqrt(x); }
  // (x^-1/2)' = -x^-3/2 / 2 = -y³/2
  template <class T> AVGRAD_HOST_DEVICE T grad(T, T y, T g) const { return T(-0.5) * g * y * y * y; }
};
struct Square {
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x) const { return x * x; }
  template <class T> AVGRAD_HOST_DEVICE T grad(T x, T, T g) const { return T(2) * x * g; }
};
struct PowScalar {
  double p;
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x) const { return pow(x, T(p)); }
  // (x^p)' = p·x^(p-1); p = 0 gives 0 everywhere (no 0·inf at x = 0)
  template <class T> AVGRAD_HOST_DEVICE T grad(T x, T, T g) const {
    return p == 0.0 ? T(0) : g * T(p) * pow(x, T(p - 1.0));
  }
};
struct Relu {
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x) const { return x > T(0) ? x : T(0); }
  template <class T> AVGRAD_HOST_DEVICE T grad(T x, T, T g) const { return x > T(0) ? g : T(0); }
};
struct LeakyRelu {
  double slope;
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x) const { return x > T(0) ? x : T(slope) * x; }
  template <class T> AVGRAD_HOST_DEVICE T grad(T x, T, T g) const { return x > T(0) ? g : T(slope) * g; }
};
struct Elu {
  double alpha;
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x) const { return x > T(0) ? x : T(alpha) * expm1(x); }
  // x ≤ 0: (α(e^x − 1))' = α e^x = y + α
  template <class T> AVGRAD_HOST_DEVICE T grad(T x, T y, T g) const { return x > T(0) ? g : g * (y + T(alpha)); }
};
struct GeluErf {
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x) const {
    return T(0.5) * x * (T(1) + erf(x * T(0.70710678118654752440)));
  }
  // (x·Φ(x))' = Φ(x) + x·φ(x)
  template <class T> AVGRAD_HOST_DEVICE T grad(T x, T, T g) const {
    T cdf = T(0.5) * (T(1) + erf(x * T(0.70710678118654752440)));
    T pdf = T(0.39894228040143267794) * exp(T(-0.5) * x * x);
    return g * (cdf + x * pdf);
  }
};
struct GeluTanh {
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x) const {
    const T k = T(0.79788456080286535588);  // √(2/π)
    return T(0.5) * x * (T(1) + tanh(k * (x + T(0.044715) * x * x * x)));
  }
  // u = k(x + 0.044715x³): y' = ½(1 + tanh u) + ½x(1 − tanh²u)·k(1 + 3·0.044715x²)
  template <class T> AVGRAD_HOST_DEVICE T grad(T x, T, T g) const {
    const T k = T(0.79788456080286535588);
    T th = tanh(k * (x + T(0.044715) * x * x * x));
    return g * (T(0.5) * (T(1) + th) + T(0.5) * x * (T(1) - th * th) * k * (T(1) + T(3 * 0.044715) * x * x));
  }
};
struct Sigmoid {
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x) const {
    // branch keeps exp's argument ≤ 0: no overflow for large |x|
    if (x >= T(0)) return T(1) / (T(1) + exp(-x));
    T e = exp(x);
    return e / (T(1) + e);
  }
  template <class T> AVGRAD_HOST_DEVICE T grad(T, T y, T g) const { return g * y * (T(1) - y); }  // σ' = σ(1−σ)
};
struct Silu {
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x) const { return x * Sigmoid{}(x); }
  // (xσ)' = σ + xσ(1−σ)
  template <class T> AVGRAD_HOST_DEVICE T grad(T x, T, T g) const {
    T s = Sigmoid{}(x);
    return g * (s + x * s * (T(1) - s));
  }
};
struct Tanh {
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x) const { return tanh(x); }
  template <class T> AVGRAD_HOST_DEVICE T grad(T, T y, T g) const { return g * (T(1) - y * y); }  // 1 − tanh²
};
struct Softplus {
  double beta, threshold;
  // (1/β)·log(1 + e^{βx}); linear above threshold as PyTorch, for stability
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x) const {
    T bx = T(beta) * x;
    return bx > T(threshold) ? x : log1p(exp(bx)) / T(beta);
  }
  template <class T> AVGRAD_HOST_DEVICE T grad(T x, T, T g) const {  // σ(βx)
    T bx = T(beta) * x;
    return bx > T(threshold) ? g : g * Sigmoid{}(bx);
  }
};
struct Clamp {
  double lo, hi;
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x) const { return x < T(lo) ? T(lo) : (x > T(hi) ? T(hi) : x); }
  // passes the gradient inside [lo, hi] (boundaries included, as PyTorch)
  template <class T> AVGRAD_HOST_DEVICE T grad(T x, T, T g) const { return (x >= T(lo) && x <= T(hi)) ? g : T(0); }
};
struct Sin {
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x) const { return sin(x); }
  template <class T> AVGRAD_HOST_DEVICE T grad(T x, T, T g) const { return g * cos(x); }
};
struct Cos {
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x) const { return cos(x); }
  template <class T> AVGRAD_HOST_DEVICE T grad(T x, T, T g) const { return -g * sin(x); }
};
}  // namespace fn

// y = f(x) elementwise; x: any shape, any strides; y: same shape, contiguous.
template <Floating T, Device D> Tensor<T, D> neg(const Tensor<T, D>& x) {
  return detail::unary_op("neg", x, fn::Neg{});
}
template <Floating T, Device D> Tensor<T, D> abs(const Tensor<T, D>& x) {
  return detail::unary_op("abs", x, fn::Abs{});
}
template <Floating T, Device D> Tensor<T, D> sign(const Tensor<T, D>& x) {
  return detail::unary_op("sign", x, fn::Sign{});
}
template <Floating T, Device D> Tensor<T, D> exp(const Tensor<T, D>& x) {
  return detail::unary_op("exp", x, fn::Exp{});
}
template <Floating T, Device D> Tensor<T, D> log(const Tensor<T, D>& x) {
  return detail::unary_op("log", x, fn::Log{});
}
template <Floating T, Device D> Tensor<T, D> log1p(const Tensor<T, D>& x) {
  return detail::unary_op("log1p", x, fn::Log1p{});
}
template <Floating T, Device D> Tensor<T, D> sqrt(const Tensor<T, D>& x) {
  return detail::unary_op("sqrt", x, fn::Sqrt{});
}
template <Floating T, Device D> Tensor<T, D> rsqrt(const Tensor<T, D>& x) {
  return detail::unary_op("rsqrt", x, fn::Rsqrt{});
}
template <Floating T, Device D> Tensor<T, D> square(const Tensor<T, D>& x) {
  return detail::unary_op("square", x, fn::Square{});
}
template <Floating T, Device D> Tensor<T, D> pow(const Tensor<T, D>& x, double p) {
  return detail::unary_op("pow", x, fn::PowScalar{p});
}
template <Floating T, Device D> Tensor<T, D> relu(const Tensor<T, D>& x) {
  return detail::unary_op("relu", x, fn::Relu{});
}
template <Floating T, Device D> Tensor<T, D> leaky_relu(const Tensor<T, D>& x, double slope = 0.01) {
  return detail::unary_op("leaky_relu", x, fn::LeakyRelu{slope});
}
template <Floating T, Device D> Tensor<T, D> elu(const Tensor<T, D>& x, double alpha = 1.0) {
  return detail::unary_op("elu", x, fn::Elu{alpha});
}
enum class GeluApprox { none, tanh };
template <Floating T, Device D> Tensor<T, D> gelu(const Tensor<T, D>& x, GeluApprox approx = GeluApprox::none) {
  return approx == GeluApprox::none ? detail::unary_op("gelu", x, fn::GeluErf{})
                                    : detail::unary_op("gelu_tanh", x, fn::GeluTanh{});
}
template <Floating T, Device D> Tensor<T, D> silu(const Tensor<T, D>& x) {
  return detail::unary_op("silu", x, fn::Silu{});
}
template <Floating T, Device D> Tensor<T, D> sigmoid(const Tensor<T, D>& x) {
  return detail::unary_op("sigmoid", x, fn::Sigmoid{});
}
template <Floating T, Device D> Tensor<T, D> tanh(const Tensor<T, D>& x) {
  return detail::unary_op("tanh", x, fn::Tanh{});
}
template <Floating T, Device D>
Tensor<T, D> softplus(const Tensor<T, D>& x, double beta = 1.0, double threshold = 20.0) {
  AVGRAD_CHECK(beta > 0, "softplus", "beta must be positive, got ", beta);
  return detail::unary_op("softplus", x, fn::Softplus{beta, threshold});
}
/// Clamps into [lo, hi]; pass ±infinity for a one-sided clamp.
template <Floating T, Device D> Tensor<T, D> clamp(const Tensor<T, D>& x, double lo, double hi) {
  AVGRAD_CHECK(!(lo > hi), "clamp", "lower bound ", lo, " exceeds upper bound ", hi);
  return detail::unary_op("clamp", x, fn::Clamp{lo, hi});
}
template <Floating T, Device D> Tensor<T, D> sin(const Tensor<T, D>& x) {
  return detail::unary_op("sin", x, fn::Sin{});
}
template <Floating T, Device D> Tensor<T, D> cos(const Tensor<T, D>& x) {
  return detail::unary_op("cos", x, fn::Cos{});
}

template <Floating T, Device D> Tensor<T, D> operator-(const Tensor<T, D>& x) { return neg(x); }

}  // namespace avgrad

namespace avgrad::fn {
struct AddScalar {
  double s;
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x) const { return x + T(s); }
  template <class T> AVGRAD_HOST_DEVICE T grad(T, T, T g) const { return g; }
};
struct MulScalar {
  double s;
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x) const { return x * T(s); }
  template <class T> AVGRAD_HOST_DEVICE T grad(T, T, T g) const { return g * T(s); }
};
struct RsubScalar {
  double s;
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x) const { return T(s) - x; }
  template <class T> AVGRAD_HOST_DEVICE T grad(T, T, T g) const { return -g; }
};
struct RdivScalar {
  double s;
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x) const { return T(s) / x; }
  template <class T> AVGRAD_HOST_DEVICE T grad(T x, T y, T g) const { return -g * y / x; }  // (s/x)' = −s/x² = −y/x
};
}  // namespace avgrad::fn
