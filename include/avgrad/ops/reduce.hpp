// Reductions over any set of axes (empty = all) with keepdim: sum, mean,
// var/std, amax/amin (+ argmax/argmin), logsumexp, L1/L2/L∞ norms, and cumsum.
// Float sums accumulate in double. Backward broadcasts g back over the reduced axes.
#pragma once

#include <cmath>
#include <limits>

#include "avgrad/ops/binary.hpp"

namespace avgrad {

using Axes = std::vector<std::int64_t>;

namespace detail {

/// g of a reduction's output shape, viewed with the reduced axes as extent 1
/// and expanded to the input shape (no copy).
template <Floating T, Device D>
Tensor<T, D> expand_reduced(const Tensor<T, D>& g, const Shape& in, const std::vector<int>& axes) {
  Shape kept = reduced_shape(in, axes, true);
  return g.reshape(kept).expand(in);
}

template <Element T, Device D>
Tensor<T, D> sum_kernel(const Tensor<T, D>& x, const std::vector<int>& axes, bool keepdim) {
  using A = acc_t<T>;
  return reduce<T, A>(
      x, axes, keepdim, A(0), [] AVGRAD_HOST_DEVICE(T v) { return static_cast<A>(v); },
      [] AVGRAD_HOST_DEVICE(A a, A b) { return a + b; }, [] AVGRAD_HOST_DEVICE(A a) { return static_cast<T>(a); });
}

}  // namespace detail

/// Sum over `axes` (all when empty). x: any shape; out: reduced shape.
template <Floating T, Device D> Tensor<T, D> sum(const Tensor<T, D>& x, const Axes& axes = {}, bool keepdim = false) {
  detail::check_defined(x, "sum");
  auto ax = detail::normalize_axes(axes, x.dim(), "sum");
  auto y = detail::sum_kernel(x, ax, keepdim);
  Shape in = x.shape();
  // d(Σx) = g broadcast over the reduced axes
  return autograd::record<T, D>("sum", y, {x}, [=](const Tensor<T, D>& g, const std::vector<bool>&) {
    return autograd::Grads<T, D>{detail::expand_reduced(g, in, ax)};
  });
}

/// Mean over `axes` (all when empty).
template <Floating T, Device D> Tensor<T, D> mean(const Tensor<T, D>& x, const Axes& axes = {}, bool keepdim = false) {
  detail::check_defined(x, "mean");
  auto ax = detail::normalize_axes(axes, x.dim(), "mean");
  std::int64_t n = 1;
  for (int a : ax) n *= x.shape()[a];
  AVGRAD_CHECK(n > 0, "mean", "mean over an empty set of elements (shape ", x.shape(), ")");
  using A = acc_t<T>;
  const A inv = A(1) / static_cast<A>(n);
  auto y = detail::reduce<T, A>(
      x, ax, keepdim, A(0), [] AVGRAD_HOST_DEVICE(T v) { return static_cast<A>(v); },
      [] AVGRAD_HOST_DEVICE(A a, A b) { return a + b; },
      [inv] AVGRAD_HOST_DEVICE(A a) { return static_cast<T>(a * inv); });
  Shape in = x.shape();
  // d(mean) = g / n broadcast
  return autograd::record<T, D>("mean", y, {x}, [=](const Tensor<T, D>& g, const std::vector<bool>&) {
    return autograd::Grads<T, D>{detail::expand_reduced(g * static_cast<double>(inv), in, ax)};
  });
}

namespace detail {
template <Floating T, Device D, bool Max>
Tensor<T, D> extreme(const char* name, const Tensor<T, D>& x, const Axes& axes, bool keepdim) {
  check_defined(x, name);
  auto ax = normalize_axes(axes, x.dim(), name);
  for (int a : ax) AVGRAD_CHECK(x.shape()[a] > 0, name, "reduction over an empty axis of shape ", x.shape());
  const T init = Max ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::infinity();
  // NaN wins, as in PyTorch: a NaN input must not vanish into a max.
  auto y = reduce<T, T>(
      x, ax, keepdim, init, [] AVGRAD_HOST_DEVICE(T v) { return v; },
      [] AVGRAD_HOST_DEVICE(T a, T b) { return (std::isnan(a) || (Max ? a > b : a < b)) ? a : b; },
      [] AVGRAD_HOST_DEVICE(T a) { return a; });
  if (!autograd::any_requires_grad<T, D>({&x})) return y;
  autograd::Saved<T, D> sx(x), sy(y);
  Shape in = x.shape();
  // d(max) = g split evenly over the positions attaining the max
  return autograd::record<T, D>(name, y, {x}, [=](const Tensor<T, D>& g, const std::vector<bool>&) {
    const auto& xv = sx.get(name);
    auto yb = expand_reduced(sy.get(name), in, ax);
    auto hit = map<T>(
        xv, yb, [] AVGRAD_HOST_DEVICE(T a, T b) { return a == b ? T(1) : T(0); }, name);
    auto count = expand_reduced(sum_kernel(hit, ax, true), in, ax);
    auto gb = expand_reduced(g, in, ax);
    return autograd::Grads<T, D>{map<T>(
        hit, count, gb, [] AVGRAD_HOST_DEVICE(T h, T c, T gg) { return h * gg / c; }, name)};
  });
}
}  // namespace detail

/// Maximum / minimum values over `axes` (all when empty).
template <Floating T, Device D> Tensor<T, D> amax(const Tensor<T, D>& x, const Axes& axes = {}, bool keepdim = false) {
  return detail::extreme<T, D, true>("amax", x, axes, keepdim);
}
template <Floating T, Device D> Tensor<T, D> amin(const Tensor<T, D>& x, const Axes& axes = {}, bool keepdim = false) {
  return detail::extreme<T, D, false>("amin", x, axes, keepdim);
}
template <Floating T, Device D> Tensor<T, D> max(const Tensor<T, D>& x, const Axes& axes = {}, bool keepdim = false) {
  return amax(x, axes, keepdim);
}
template <Floating T, Device D> Tensor<T, D> min(const Tensor<T, D>& x, const Axes& axes = {}, bool keepdim = false) {
  return amin(x, axes, keepdim);
}

namespace detail {
template <Element T, bool Max>
Tensor<std::int64_t, Cpu> arg_extreme(const char* name, const Tensor<T, Cpu>& x, std::int64_t axis, bool keepdim) {
  check_defined(x, name);
  const int a = normalize_axis(axis, x.dim(), name);
  const std::int64_t n = x.shape()[a];
  AVGRAD_CHECK(n > 0, name, "empty axis ", a, " in shape ", x.shape());
  // Move `axis` last; each output scans one line; first occurrence wins; NaN wins.
  Shape order;
  for (int d = 0; d < x.dim(); ++d)
    if (d != a) order.push_back(d);
  order.push_back(a);
  auto xp = x.detach().permute(order);
  const std::int64_t stride = xp.strides().back();
  Shape kept = xp.shape();
  kept.erase(kept.rank() - 1);
  Strides kst = xp.strides();
  kst.erase(kst.rank() - 1);
  auto out = Tensor<std::int64_t, Cpu>::empty(reduced_shape(x.shape(), {a}, keepdim));
  std::int64_t* o = out.data();
  const T* base = xp.data();
  std::int64_t i = 0;
  for_each_offset(kept, kst, [&](std::int64_t off) {
    const T* p = base + off;
    std::int64_t best = 0;
    for (std::int64_t k = 1; k < n; ++k) {
      T v = p[k * stride], b = p[best * stride];
      if constexpr (Floating<T>) {
        if (std::isnan(b)) break;
        if (std::isnan(v)) {
          best = k;
          break;
        }
      }
      if (Max ? v > b : v < b) best = k;
    }
    o[i++] = best;
  });
  return out;
}
}  // namespace detail

/// Index of the first maximum / minimum along `axis`.
template <Element T>
Tensor<std::int64_t, Cpu> argmax(const Tensor<T, Cpu>& x, std::int64_t axis, bool keepdim = false) {
  return detail::arg_extreme<T, true>("argmax", x, axis, keepdim);
}
template <Element T>
Tensor<std::int64_t, Cpu> argmin(const Tensor<T, Cpu>& x, std::int64_t axis, bool keepdim = false) {
  return detail::arg_extreme<T, false>("argmin", x, axis, keepdim);
}

/// Variance over `axes` with Bessel-style `correction` (1 = unbiased, as torch.var).
template <Floating T, Device D>
Tensor<T, D> var(const Tensor<T, D>& x, const Axes& axes = {}, bool keepdim = false, int correction = 1) {
  detail::check_defined(x, "var");
  auto ax = detail::normalize_axes(axes, x.dim(), "var");
  std::int64_t n = 1;
  for (int a : ax) n *= x.shape()[a];
  AVGRAD_CHECK(n - correction > 0, "var", "needs more than ", correction, " elements per reduction, got ", n,
               " (shape ", x.shape(), ")");
  // Two-pass (x − mean)² is stable; composing recorded ops gives the exact VJP
  // dx = g · 2(x − mean)/(n − correction) (the mean's own term sums to zero).
  auto centered = x - mean(x, axes, true);
  return sum(square(centered), axes, keepdim) * (1.0 / static_cast<double>(n - correction));
}
/// Standard deviation (named std_dev: a function named std would shadow namespace std).
template <Floating T, Device D>
Tensor<T, D> std_dev(const Tensor<T, D>& x, const Axes& axes = {}, bool keepdim = false, int correction = 1) {
  return sqrt(var(x, axes, keepdim, correction));
}

/// log Σ exp(x) over `axes`, shifted by the max so large inputs do not overflow.
template <Floating T, Device D>
Tensor<T, D> logsumexp(const Tensor<T, D>& x, const Axes& axes = {}, bool keepdim = false) {
  detail::check_defined(x, "logsumexp");
  auto ax = detail::normalize_axes(axes, x.dim(), "logsumexp");
  Tensor<T, D> m;
  {
    NoGradGuard ng;
    m = amax(x.detach(), axes, true);
    // an all −inf slice has max −inf: shift by 0 instead to get −inf, not NaN
    m = detail::map<T>(m, [] AVGRAD_HOST_DEVICE(T v) { return std::isfinite(v) ? v : T(0); });
  }
  // with m constant, d/dx [m + log Σ e^{x−m}] = softmax(x): exact gradient
  auto s = log(sum(exp(x - m), axes, true)) + m;
  return keepdim ? s : s.reshape(detail::reduced_shape(x.shape(), ax, false));
}

/// p-norm over `axes`: p = 1, 2, or infinity.
template <Floating T, Device D>
Tensor<T, D> norm(const Tensor<T, D>& x, double p = 2.0, const Axes& axes = {}, bool keepdim = false) {
  detail::check_defined(x, "norm");
  if (p == 1.0) return sum(abs(x), axes, keepdim);
  if (std::isinf(p) && p > 0) return amax(abs(x), axes, keepdim);
  AVGRAD_CHECK(p == 2.0, "norm", "supported orders are 1, 2 and infinity; got ", p);
  auto ax = detail::normalize_axes(axes, x.dim(), "norm");
  using A = acc_t<T>;
  auto y = detail::reduce<T, A>(
      x, ax, keepdim, A(0), [] AVGRAD_HOST_DEVICE(T v) { return static_cast<A>(v) * static_cast<A>(v); },
      [] AVGRAD_HOST_DEVICE(A a, A b) { return a + b; },
      [] AVGRAD_HOST_DEVICE(A a) { return static_cast<T>(std::sqrt(a)); });
  if (!autograd::any_requires_grad<T, D>({&x})) return y;
  autograd::Saved<T, D> sx(x), sy(y);
  Shape in = x.shape();
  // d‖x‖ = g · x / ‖x‖, taken as 0 where ‖x‖ = 0 (subgradient, as PyTorch)
  return autograd::record<T, D>("norm", y, {x}, [=](const Tensor<T, D>& g, const std::vector<bool>&) {
    auto yb = detail::expand_reduced(sy.get("norm"), in, ax);
    auto gb = detail::expand_reduced(g, in, ax);
    return autograd::Grads<T, D>{detail::map<T>(
        sx.get("norm"), yb, gb, [] AVGRAD_HOST_DEVICE(T xv, T n, T gg) { return n == T(0) ? T(0) : gg * xv / n; },
        "norm")};
  });
}

namespace detail {
/// Inclusive prefix sum along axis `a` (reverse = suffix sum), fresh contiguous output.
template <Element T> Tensor<T, Cpu> cumsum_kernel(const Tensor<T, Cpu>& x, int a, bool reverse) {
  auto out = Tensor<T, Cpu>::empty(x.shape());
  const std::int64_t n = x.shape()[a];
  Shape lines = x.shape();
  lines[a] = 1;
  const std::int64_t xs = x.strides()[a], os = out.strides()[a];
  const T* xp = x.data();
  T* op = out.data();
  // walk the lines: same multi-index over both layouts
  std::vector<std::int64_t> xoffs, ooffs;
  for_each_offset(lines, x.strides(), [&](std::int64_t o) { xoffs.push_back(o); });
  for_each_offset(lines, out.strides(), [&](std::int64_t o) { ooffs.push_back(o); });
  const auto L = static_cast<std::int64_t>(xoffs.size());
#pragma omp parallel for if (L * n > 65536)
  for (std::int64_t l = 0; l < L; ++l) {
    acc_t<T> acc = 0;
    for (std::int64_t k = 0; k < n; ++k) {
      std::int64_t i = reverse ? n - 1 - k : k;
      acc += static_cast<acc_t<T>>(xp[xoffs[l] + i * xs]);
      op[ooffs[l] + i * os] = static_cast<T>(acc);
    }
  }
  return out;
}
}  // namespace detail

/// Inclusive cumulative sum along `axis`.
template <Floating T, Device D> Tensor<T, D> cumsum(const Tensor<T, D>& x, std::int64_t axis) {
  detail::check_defined(x, "cumsum");
  const int a = normalize_axis(axis, x.dim(), "cumsum");
  auto y = detail::cumsum_kernel(x, a, false);
  // y_i = Σ_{j≤i} x_j  ⇒  dx_j = Σ_{i≥j} g_i (reverse cumsum)
  return autograd::record<T, D>("cumsum", y, {x}, [a](const Tensor<T, D>& g, const std::vector<bool>&) {
    return autograd::Grads<T, D>{detail::cumsum_kernel(g, a, true)};
  });
}

}  // namespace avgrad

namespace avgrad {

/// True when |a − b| ≤ atol + rtol·|b| everywhere (shapes broadcast, as numpy.allclose);
/// NaNs compare unequal unless equal_nan.
template <Floating T, Device D> bool allclose(const Tensor<T, D>& a, const Tensor<T, D>& b, double rtol = 1e-5,
                                              double atol = 1e-8, bool equal_nan = false) {
  detail::check_defined(a, "allclose");
  detail::check_defined(b, "allclose");
  if constexpr (!std::same_as<D, Cpu>) {  // a yes/no answer: compared on the host
    return allclose(a.detach().template to<Cpu>(), b.detach().template to<Cpu>(), rtol, atol, equal_nan);
  } else {
    NoGradGuard ng;
    auto bad = detail::map<bool>(
        a.detach(), b.detach(),
        [=](T x, T y) {
          if (std::isnan(x) || std::isnan(y)) return !(equal_nan && std::isnan(x) && std::isnan(y));
          if (x == y) return false;  // equal infinities
          return !(std::abs(static_cast<double>(x) - static_cast<double>(y)) <=
                   atol + rtol * std::abs(static_cast<double>(y)));
        },
        "allclose");
    for (bool v : bad.to_vector())
      if (v) return false;
    return true;
  }
}

/// True when every element is finite.
template <Floating T, Device D> bool all_finite(const Tensor<T, D>& x) {
  detail::check_defined(x, "all_finite");
  auto n = detail::reduce<std::int64_t, std::int64_t>(
      x, detail::normalize_axes({}, x.dim(), "all_finite"), false, std::int64_t{0},
      [] AVGRAD_HOST_DEVICE(T v) { return std::int64_t{!std::isfinite(v)}; },
      [] AVGRAD_HOST_DEVICE(std::int64_t p, std::int64_t q) { return p + q; },
      [] AVGRAD_HOST_DEVICE(std::int64_t p) { return p; });
  return n.template to<Cpu>().item() == 0;
}

/// Throws avgrad::Error naming `what` and the first non-finite element's index
/// when x holds NaN or ±inf (inputs to attacks, losses, data files).
template <Floating T, Device D> void check_finite(const Tensor<T, D>& x, const std::string& what) {
  if (all_finite(x)) return;
  auto v = x.template to<Cpu>().to_vector();
  for (std::size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i]))
      throw Error(what,
                  detail::concat("non-finite value ", v[i], " at flat index ", i, " of tensor of shape ", x.shape()));
}

}  // namespace avgrad
