// Activation modules (ReLU, LeakyReLU, GELU, SiLU, Sigmoid, Tanh, ELU, Softplus),
// Identity and Flatten, with PyTorch's defaults and reprs. Each wraps the
// elementwise op of ops/unary.hpp (or a view), so it has no parameters.
//
// Also home of the small repr helpers the layer headers share (Python's float
// and tuple spelling), so describe() strings read as torch prints its modules.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

#include "avgrad/nn/module.hpp"
#include "avgrad/ops/unary.hpp"
#include "avgrad/ops/view.hpp"

namespace avgrad::nn {

namespace repr {

/// A double as Python's repr() writes it: shortest round-trip digits, "1.0" for
/// integral values, scientific with a two-digit exponent ("1e-05") when the
/// decimal point lies before the 4th leading zero or beyond 16 digits.
inline std::string py_float(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);  // "-d.ddde±XX", shortest
  std::string s(buf, res.ptr);
  const bool neg = s[0] == '-';
  if (neg) s.erase(0, 1);
  const auto e = s.find('e');
  const int exp10 = std::stoi(s.substr(e + 1));
  std::string digits;
  for (char c : s.substr(0, e))
    if (c != '.') digits += c;
  const int point = exp10 + 1;  // value = 0.digits × 10^point
  const auto nd = static_cast<int>(digits.size());
  std::string out;
  if (point > -4 && point <= 16) {
    if (point <= 0)
      out = "0." + std::string(static_cast<std::size_t>(-point), '0') + digits;
    else if (point >= nd)
      out = digits + std::string(static_cast<std::size_t>(point - nd), '0') + ".0";
    else
      out = digits.substr(0, static_cast<std::size_t>(point)) + "." + digits.substr(static_cast<std::size_t>(point));
  } else {
    out = digits.substr(0, 1) + (nd > 1 ? "." + digits.substr(1) : std::string());
    char eb[16];
    std::snprintf(eb, sizeof eb, "e%c%02d", exp10 < 0 ? '-' : '+', std::abs(exp10));
    out += eb;
  }
  return neg ? "-" + out : out;
}

/// An integral double as a Python int ("20"), anything else as py_float: for
/// arguments torch declares as int by default (Softplus's beta, threshold).
inline std::string py_number(double v) {
  if (std::isfinite(v) && v == std::trunc(v) && std::abs(v) < 1e15) return std::to_string(static_cast<std::int64_t>(v));
  return py_float(v);
}

inline const char* py_bool(bool b) { return b ? "True" : "False"; }

/// Integers as a Python tuple: "(3, 3)", "(3,)".
template <class Container> std::string py_tuple(const Container& c) {
  std::string s = "(";
  std::size_t i = 0;
  for (auto v : c) s += (i++ ? ", " : "") + std::to_string(static_cast<std::int64_t>(v));
  return s + (i == 1 ? ",)" : ")");
}

}  // namespace repr

/// max(x, 0).
template <Floating T, Device D = Cpu> class ReLU : public UnaryModule<T, D> {
 public:
  Tensor<T, D> forward(const Tensor<T, D>& x) override { return relu(x); }
  std::string describe() const override { return "ReLU()"; }
};

/// x for x > 0, negative_slope·x otherwise (default 0.01).
template <Floating T, Device D = Cpu> class LeakyReLU : public UnaryModule<T, D> {
 public:
  explicit LeakyReLU(double negative_slope = 0.01) : slope_(negative_slope) {}
  Tensor<T, D> forward(const Tensor<T, D>& x) override { return leaky_relu(x, slope_); }
  std::string describe() const override { return "LeakyReLU(negative_slope=" + repr::py_float(slope_) + ")"; }
  double negative_slope() const { return slope_; }

 private:
  double slope_;
};

/// x·Φ(x) (approximate none) or its tanh approximation.
template <Floating T, Device D = Cpu> class GELU : public UnaryModule<T, D> {
 public:
  explicit GELU(GeluApprox approximate = GeluApprox::none) : approx_(approximate) {}
  Tensor<T, D> forward(const Tensor<T, D>& x) override { return gelu(x, approx_); }
  std::string describe() const override {
    return approx_ == GeluApprox::none ? "GELU(approximate='none')" : "GELU(approximate='tanh')";
  }
  GeluApprox approximate() const { return approx_; }

 private:
  GeluApprox approx_;
};

/// x·σ(x).
template <Floating T, Device D = Cpu> class SiLU : public UnaryModule<T, D> {
 public:
  Tensor<T, D> forward(const Tensor<T, D>& x) override { return silu(x); }
  std::string describe() const override { return "SiLU()"; }
};

template <Floating T, Device D = Cpu> class Sigmoid : public UnaryModule<T, D> {
 public:
  Tensor<T, D> forward(const Tensor<T, D>& x) override { return sigmoid(x); }
  std::string describe() const override { return "Sigmoid()"; }
};

template <Floating T, Device D = Cpu> class Tanh : public UnaryModule<T, D> {
 public:
  Tensor<T, D> forward(const Tensor<T, D>& x) override { return tanh(x); }
  std::string describe() const override { return "Tanh()"; }
};

/// x for x > 0, alpha·(eˣ − 1) otherwise (default alpha 1).
template <Floating T, Device D = Cpu> class ELU : public UnaryModule<T, D> {
 public:
  explicit ELU(double alpha = 1.0) : alpha_(alpha) {}
  Tensor<T, D> forward(const Tensor<T, D>& x) override { return elu(x, alpha_); }
  std::string describe() const override { return "ELU(alpha=" + repr::py_float(alpha_) + ")"; }
  double alpha() const { return alpha_; }

 private:
  double alpha_;
};

/// log(1 + e^{βx})/β, linear where βx > threshold (defaults β = 1, threshold 20).
template <Floating T, Device D = Cpu> class Softplus : public UnaryModule<T, D> {
 public:
  explicit Softplus(double beta = 1.0, double threshold = 20.0) : beta_(beta), threshold_(threshold) {
    AVGRAD_CHECK(beta > 0, "Softplus", "beta must be positive, got ", beta);
  }
  Tensor<T, D> forward(const Tensor<T, D>& x) override { return softplus(x, beta_, threshold_); }
  std::string describe() const override {
    return "Softplus(beta=" + repr::py_number(beta_) + ", threshold=" + repr::py_number(threshold_) + ")";
  }

 private:
  double beta_, threshold_;
};

/// Returns its input (the same tensor handle).
template <Floating T, Device D = Cpu> class Identity : public UnaryModule<T, D> {
 public:
  Tensor<T, D> forward(const Tensor<T, D>& x) override { return x; }
  std::string describe() const override { return "Identity()"; }
};

/// Merges dims start_dim…end_dim (negative counts from the end) into one; a view
/// where the layout allows. Defaults (1, −1): (N, …) → (N, rest).
template <Floating T, Device D = Cpu> class Flatten : public UnaryModule<T, D> {
 public:
  explicit Flatten(std::int64_t start_dim = 1, std::int64_t end_dim = -1) : start_(start_dim), end_(end_dim) {}
  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    AVGRAD_CHECK(x.defined(), "Flatten", "undefined input");
    const std::int64_t r = std::max(x.dim(), 1);
    const std::int64_t a = start_ < 0 ? start_ + r : start_, b = end_ < 0 ? end_ + r : end_;
    AVGRAD_CHECK(a >= 0 && a < r && b >= 0 && b < r && a <= b, "Flatten", "start_dim=", start_, ", end_dim=", end_,
                 " do not name an ordered range of dims of input ", x.shape());
    return x.flatten(start_, end_);
  }
  std::string describe() const override {
    return avgrad::detail::concat("Flatten(start_dim=", start_, ", end_dim=", end_, ")");
  }

 private:
  std::int64_t start_, end_;
};

}  // namespace avgrad::nn
