// Binary elementwise ops with NumPy broadcasting, tensor–scalar forms, where(),
// comparisons (no gradient), and the in-place updates optimizers and attacks use.
// Backward of a broadcasting op sums the gradient back to each input's shape.
#pragma once

#include <cmath>

#include "avgrad/ops/unary.hpp"
#include "avgrad/ops/view.hpp"

namespace avgrad {

namespace detail {

/// z = f(a, b); da = sum_to(fa(a, b, g)), db = sum_to(fb(a, b, g)).
template <Floating T, Device D, class F, class FA, class FB>
Tensor<T, D> binary_op(const char* name, const Tensor<T, D>& a, const Tensor<T, D>& b, F f, FA da, FB db) {
  check_defined(a, name);
  check_defined(b, name);
  auto z = map<T>(a, b, f, name);
  if (!autograd::any_requires_grad<T, D>({&a, &b})) return z;
  autograd::Saved<T, D> sa(a), sb(b);
  Shape shape_a = a.shape(), shape_b = b.shape();
  return autograd::record<T, D>(name, z, {a, b}, [=](const Tensor<T, D>& g, const std::vector<bool>& need) {
    const auto& av = sa.get(name);
    const auto& bv = sb.get(name);
    autograd::Grads<T, D> out(2);
    if (need[0])
      out[0] = sum_to(map<T>(
                          g, av, bv, [da] AVGRAD_HOST_DEVICE(T gg, T x, T y) { return da(x, y, gg); }, name),
                      shape_a);
    if (need[1])
      out[1] = sum_to(map<T>(
                          g, av, bv, [db] AVGRAD_HOST_DEVICE(T gg, T x, T y) { return db(x, y, gg); }, name),
                      shape_b);
    return out;
  });
}

}  // namespace detail

// z = a ∘ b with broadcasting; a, b: broadcast-compatible shapes; z: broadcast shape.
template <Floating T, Device D> Tensor<T, D> add(const Tensor<T, D>& a, const Tensor<T, D>& b) {
  // d(a+b) = (g, g): no saved values needed, so skip the generic path's saves
  detail::check_defined(a, "add");
  detail::check_defined(b, "add");
  auto z = detail::map<T>(
      a, b, [] AVGRAD_HOST_DEVICE(T x, T y) { return x + y; }, "add");
  Shape sa = a.shape(), sb = b.shape();
  return autograd::record<T, D>("add", z, {a, b}, [=](const Tensor<T, D>& g, const std::vector<bool>& need) {
    return autograd::Grads<T, D>{need[0] ? detail::sum_to(g, sa) : Tensor<T, D>(),
                                 need[1] ? detail::sum_to(g, sb) : Tensor<T, D>()};
  });
}
template <Floating T, Device D> Tensor<T, D> sub(const Tensor<T, D>& a, const Tensor<T, D>& b) {
  detail::check_defined(a, "sub");
  detail::check_defined(b, "sub");
  auto z = detail::map<T>(
      a, b, [] AVGRAD_HOST_DEVICE(T x, T y) { return x - y; }, "sub");
  Shape sa = a.shape(), sb = b.shape();
  return autograd::record<T, D>("sub", z, {a, b}, [=](const Tensor<T, D>& g, const std::vector<bool>& need) {
    return autograd::Grads<T, D>{
        need[0] ? detail::sum_to(g, sa) : Tensor<T, D>(),
        need[1] ? detail::sum_to(detail::map<T>(g, [] AVGRAD_HOST_DEVICE(T v) { return -v; }), sb) : Tensor<T, D>()};
  });
}
template <Floating T, Device D> Tensor<T, D> mul(const Tensor<T, D>& a, const Tensor<T, D>& b) {
  // d(ab) = (g·b, g·a)
  return detail::binary_op(
      "mul", a, b, [] AVGRAD_HOST_DEVICE(T x, T y) { return x * y; },
      [] AVGRAD_HOST_DEVICE(T, T y, T g) { return g * y; }, [] AVGRAD_HOST_DEVICE(T x, T, T g) { return g * x; });
}
template <Floating T, Device D> Tensor<T, D> div(const Tensor<T, D>& a, const Tensor<T, D>& b) {
  // d(a/b) = (g/b, −g·a/b²)
  return detail::binary_op(
      "div", a, b, [] AVGRAD_HOST_DEVICE(T x, T y) { return x / y; },
      [] AVGRAD_HOST_DEVICE(T, T y, T g) { return g / y; },
      [] AVGRAD_HOST_DEVICE(T x, T y, T g) { return -g * x / (y * y); });
}
template <Floating T, Device D> Tensor<T, D> pow(const Tensor<T, D>& a, const Tensor<T, D>& b) {
  // d(a^b) = (g·b·a^(b−1), g·a^b·ln a); the ln term is taken as 0 where a^b = 0
  return detail::binary_op(
      "pow", a, b, [] AVGRAD_HOST_DEVICE(T x, T y) { return std::pow(x, y); },
      [] AVGRAD_HOST_DEVICE(T x, T y, T g) { return y == T(0) ? T(0) : g * y * std::pow(x, y - T(1)); },
      [] AVGRAD_HOST_DEVICE(T x, T y, T g) {
        T z = std::pow(x, y);
        return z == T(0) ? T(0) : g * z * std::log(x);
      });
}
/// Elementwise max; at ties the gradient is split evenly (as PyTorch).
template <Floating T, Device D> Tensor<T, D> maximum(const Tensor<T, D>& a, const Tensor<T, D>& b) {
  return detail::binary_op(
      "maximum", a, b, [] AVGRAD_HOST_DEVICE(T x, T y) { return x > y || std::isnan(x) ? x : y; },
      [] AVGRAD_HOST_DEVICE(T x, T y, T g) { return x > y ? g : (x == y ? g / T(2) : T(0)); },
      [] AVGRAD_HOST_DEVICE(T x, T y, T g) { return y > x ? g : (x == y ? g / T(2) : T(0)); });
}
template <Floating T, Device D> Tensor<T, D> minimum(const Tensor<T, D>& a, const Tensor<T, D>& b) {
  return detail::binary_op(
      "minimum", a, b, [] AVGRAD_HOST_DEVICE(T x, T y) { return x < y || std::isnan(x) ? x : y; },
      [] AVGRAD_HOST_DEVICE(T x, T y, T g) { return x < y ? g : (x == y ? g / T(2) : T(0)); },
      [] AVGRAD_HOST_DEVICE(T x, T y, T g) { return y < x ? g : (x == y ? g / T(2) : T(0)); });
}

/// out = mask ? a : b with broadcasting over all three; gradient flows to the chosen side.
template <Floating T, Device D>
Tensor<T, D> where(const Tensor<bool, D>& mask, const Tensor<T, D>& a, const Tensor<T, D>& b) {
  detail::check_defined(mask, "where");
  detail::check_defined(a, "where");
  detail::check_defined(b, "where");
  auto z = detail::map<T>(
      mask, a, b, [] AVGRAD_HOST_DEVICE(bool m, T x, T y) { return m ? x : y; }, "where");
  Shape sa = a.shape(), sb = b.shape();
  Tensor<bool, D> m = mask;
  return autograd::record<T, D>("where", z, {a, b}, [=](const Tensor<T, D>& g, const std::vector<bool>& need) {
    autograd::Grads<T, D> out(2);
    if (need[0])
      out[0] = detail::sum_to(detail::map<T>(
                                  m, g, [] AVGRAD_HOST_DEVICE(bool k, T v) { return k ? v : T(0); }, "where"),
                              sa);
    if (need[1])
      out[1] = detail::sum_to(detail::map<T>(
                                  m, g, [] AVGRAD_HOST_DEVICE(bool k, T v) { return k ? T(0) : v; }, "where"),
                              sb);
    return out;
  });
}

// ---- tensor–scalar forms (the scalar is a constant: no gradient) -------------
template <Floating T, Device D> Tensor<T, D> add(const Tensor<T, D>& a, double s) {
  return detail::unary_op("add_scalar", a, fn::AddScalar{s});
}
template <Floating T, Device D> Tensor<T, D> mul(const Tensor<T, D>& a, double s) {
  return detail::unary_op("mul_scalar", a, fn::MulScalar{s});
}
template <Floating T, Device D> Tensor<T, D> rsub(const Tensor<T, D>& a, double s) {  // s − a
  return detail::unary_op("rsub_scalar", a, fn::RsubScalar{s});
}
template <Floating T, Device D> Tensor<T, D> rdiv(const Tensor<T, D>& a, double s) {  // s / a
  return detail::unary_op("rdiv_scalar", a, fn::RdivScalar{s});
}

template <Floating T, Device D> Tensor<T, D> operator+(const Tensor<T, D>& a, const Tensor<T, D>& b) {
  return add(a, b);
}
template <Floating T, Device D> Tensor<T, D> operator-(const Tensor<T, D>& a, const Tensor<T, D>& b) {
  return sub(a, b);
}
template <Floating T, Device D> Tensor<T, D> operator*(const Tensor<T, D>& a, const Tensor<T, D>& b) {
  return mul(a, b);
}
template <Floating T, Device D> Tensor<T, D> operator/(const Tensor<T, D>& a, const Tensor<T, D>& b) {
  return div(a, b);
}
template <Floating T, Device D> Tensor<T, D> operator+(const Tensor<T, D>& a, double s) { return add(a, s); }
template <Floating T, Device D> Tensor<T, D> operator+(double s, const Tensor<T, D>& a) { return add(a, s); }
template <Floating T, Device D> Tensor<T, D> operator-(const Tensor<T, D>& a, double s) { return add(a, -s); }
template <Floating T, Device D> Tensor<T, D> operator-(double s, const Tensor<T, D>& a) { return rsub(a, s); }
template <Floating T, Device D> Tensor<T, D> operator*(const Tensor<T, D>& a, double s) { return mul(a, s); }
template <Floating T, Device D> Tensor<T, D> operator*(double s, const Tensor<T, D>& a) { return mul(a, s); }
template <Floating T, Device D> Tensor<T, D> operator/(const Tensor<T, D>& a, double s) { return mul(a, 1.0 / s); }
template <Floating T, Device D> Tensor<T, D> operator/(double s, const Tensor<T, D>& a) { return rdiv(a, s); }

// ---- comparisons: Tensor<bool>, no gradient -----------------------------------
#define AVGRAD_COMPARISON(NAME, OP)                                                                   \
  template <Element T, Device D> Tensor<bool, D> NAME(const Tensor<T, D>& a, const Tensor<T, D>& b) { \
    return detail::map<bool>(                                                                         \
        a, b, [] AVGRAD_HOST_DEVICE(T x, T y) { return x OP y; }, #NAME);                             \
  }                                                                                                   \
  template <Element T, Device D> Tensor<bool, D> NAME(const Tensor<T, D>& a, double s) {              \
    return detail::map<bool>(a, [s] AVGRAD_HOST_DEVICE(T x) { return static_cast<double>(x) OP s; }); \
  }
AVGRAD_COMPARISON(eq, ==)
AVGRAD_COMPARISON(ne, !=)
AVGRAD_COMPARISON(lt, <)
AVGRAD_COMPARISON(le, <=)
AVGRAD_COMPARISON(gt, >)
AVGRAD_COMPARISON(ge, >=)
#undef AVGRAD_COMPARISON

template <Device D> Tensor<bool, D> logical_not(const Tensor<bool, D>& a) {
  return detail::map<bool>(a, [] AVGRAD_HOST_DEVICE(bool x) { return !x; });
}
template <Device D> Tensor<bool, D> logical_and(const Tensor<bool, D>& a, const Tensor<bool, D>& b) {
  return detail::map<bool>(
      a, b, [] AVGRAD_HOST_DEVICE(bool x, bool y) { return x && y; }, "logical_and");
}
template <Device D> Tensor<bool, D> logical_or(const Tensor<bool, D>& a, const Tensor<bool, D>& b) {
  return detail::map<bool>(
      a, b, [] AVGRAD_HOST_DEVICE(bool x, bool y) { return x || y; }, "logical_or");
}
template <Floating T, Device D> Tensor<bool, D> isfinite(const Tensor<T, D>& a) {
  return detail::map<bool>(a, [] AVGRAD_HOST_DEVICE(T x) { return std::isfinite(x); });
}

// ---- in-place updates (outside the tape: optimizer steps, attack updates) ------
namespace detail {
template <Element T, Device D> void check_inplace(const Tensor<T, D>& x, const char* op) {
  check_defined(x, op);
  AVGRAD_CHECK(!(grad_enabled() && x.requires_grad()), op,
               "in-place update of a tensor that requires grad while grad mode is on; "
               "wrap it in NoGradGuard (optimizer and attack updates) or use the out-of-place op");
}
}  // namespace detail

/// x ← f(x, y) elementwise, y broadcast to x's shape. Returns x.
template <Element T, Device D, class F>
Tensor<T, D>& apply_(Tensor<T, D>& x, const Tensor<T, D>& y, F f, const char* op = "apply_") {
  detail::check_inplace(x, op);
  detail::check_defined(y, op);
  AVGRAD_CHECK(broadcast_shapes(x.shape(), y.shape(), op) == x.shape(), op, "cannot broadcast ", y.shape(), " into ",
               x.shape());
  backend::Loops<D>::map2(x.data(), x.strides(), x.data(), x.strides(), y.data(),
                          broadcast_strides(y.shape(), y.strides(), x.shape()), x.shape(), f);
  x.storage()->bump_version();
  return x;
}
/// x ← f(x) elementwise. Returns x.
template <Element T, Device D, class F> Tensor<T, D>& apply_(Tensor<T, D>& x, F f, const char* op = "apply_") {
  detail::check_inplace(x, op);
  backend::Loops<D>::map1(x.data(), x.strides(), x.data(), x.strides(), x.shape(), f);
  x.storage()->bump_version();
  return x;
}
template <Element T, Device D> Tensor<T, D>& copy_(Tensor<T, D>& x, const Tensor<T, D>& src) {
  return apply_(
      x, src, [] AVGRAD_HOST_DEVICE(T, T s) { return s; }, "copy_");
}
template <Element T, Device D> Tensor<T, D>& fill_(Tensor<T, D>& x, T v) {
  return apply_(
      x, [v] AVGRAD_HOST_DEVICE(T) { return v; }, "fill_");
}
template <Element T, Device D> Tensor<T, D>& zero_(Tensor<T, D>& x) { return fill_(x, T(0)); }
/// x ← x + alpha·y
template <Element T, Device D> Tensor<T, D>& add_(Tensor<T, D>& x, const Tensor<T, D>& y, double alpha = 1.0) {
  const T a = static_cast<T>(alpha);
  return apply_(
      x, y, [a] AVGRAD_HOST_DEVICE(T u, T v) { return u + a * v; }, "add_");
}
template <Element T, Device D> Tensor<T, D>& mul_(Tensor<T, D>& x, double s) {
  const T k = static_cast<T>(s);
  return apply_(
      x, [k] AVGRAD_HOST_DEVICE(T u) { return u * k; }, "mul_");
}
template <Element T, Device D> Tensor<T, D>& mul_(Tensor<T, D>& x, const Tensor<T, D>& y) {
  return apply_(
      x, y, [] AVGRAD_HOST_DEVICE(T u, T v) { return u * v; }, "mul_");
}
template <Floating T, Device D> Tensor<T, D>& clamp_(Tensor<T, D>& x, double lo, double hi) {
  AVGRAD_CHECK(!(lo > hi), "clamp_", "lower bound ", lo, " exceeds upper bound ", hi);
  const fn::Clamp f{lo, hi};
  return apply_(
      x, [f] AVGRAD_HOST_DEVICE(T u) { return f(u); }, "clamp_");
}

}  // namespace avgrad
