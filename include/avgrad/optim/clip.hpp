// Gradient clipping as torch.nn.utils: clip_grad_norm_ rescales all gradients
// together so that their joint p-norm is at most max_norm; clip_grad_value_ clamps
// each element. Both act on .grad in place and skip parameters without a gradient.
// No tensor is allocated (sums run over the gradients' memory, accumulating in
// double), so clipping inside a steady-state training loop costs no allocation.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "avgrad/optim/optimizer.hpp"

namespace avgrad::optim {

/// The norm_type of the maximum norm (L∞).
inline constexpr double kInfNorm = std::numeric_limits<double>::infinity();

namespace detail {

namespace fn {
/// |v|^p (p finite) or |v| (p = ∞), in double; and the fold: a sum, or a max where NaN wins.
struct NormPowerLoad {
  double p;
  bool inf;
  template <class T> AVGRAD_HOST_DEVICE double operator()(T v) const {
    const double a = v < T(0) ? -static_cast<double>(v) : static_cast<double>(v);
    return inf ? a : (p == 2.0 ? a * a : (p == 1.0 ? a : ::pow(a, p)));
  }
};
struct NormPowerCombine {
  bool inf;
  AVGRAD_HOST_DEVICE double operator()(double acc, double v) const {
    if (!inf) return acc + v;
    return (v > acc || v != v) ? v : acc;
  }
};
}  // namespace fn

/// Σ|g|^p or max|g| of one device gradient: one device reduction, one number back.
template <Floating T, Device D> double grad_norm_power(const Tensor<T, D>& g, double p) {
  const bool inf = std::isinf(p);
  auto out = Tensor<double, D>::empty(Shape{});
  backend::Loops<D>::reduce(g.data(), Shape{}, Strides{}, g.shape(), g.strides(), out.data(), 0.0,
                            fn::NormPowerLoad{p, inf}, fn::NormPowerCombine{inf}, ::avgrad::detail::Identity{});
  return out.template to<Cpu>().item();
}

/// Σ|g|^p (p finite) or max|g| (p = ∞) of one gradient, in double. NaN propagates.
/// Large contiguous gradients are summed in fixed chunks (parallel) merged in order,
/// so the value does not depend on the thread count.
template <Floating T> double grad_norm_power(const Tensor<T, Cpu>& g, double p) {
  const bool inf = std::isinf(p);
  auto load = [p, inf](T v) -> double {
    const double a = std::abs(static_cast<double>(v));
    return inf ? a : (p == 2.0 ? a * a : (p == 1.0 ? a : std::pow(a, p)));
  };
  auto combine = [inf](double acc, double v) {
    if (!inf) return acc + v;
    return (v > acc || v != v) ? v : acc;  // NaN wins
  };
  const std::int64_t n = g.numel();
  if (!g.is_contiguous()) {
    double acc = 0;
    const T* d = g.data();
    for_each_offset(g.shape(), g.strides(), [&](std::int64_t off) { acc = combine(acc, load(d[off])); });
    return acc;
  }
  constexpr std::int64_t kMaxChunks = 256;
  const std::int64_t chunk = std::max(cpu::kParallelGrain, (n + kMaxChunks - 1) / kMaxChunks);
  const std::int64_t chunks = (n + chunk - 1) / chunk;
  std::array<double, kMaxChunks> partial{};
  const T* d = g.data();
#pragma omp parallel for if (chunks > 1 && !omp_in_parallel())
  for (std::int64_t c = 0; c < chunks; ++c) {
    double acc = 0;
    const std::int64_t e = std::min(n, (c + 1) * chunk);
    for (std::int64_t i = c * chunk; i < e; ++i) acc = combine(acc, load(d[i]));
    partial[static_cast<std::size_t>(c)] = acc;
  }
  double acc = 0;
  for (std::int64_t c = 0; c < chunks; ++c) acc = combine(acc, partial[static_cast<std::size_t>(c)]);
  return acc;
}

/// g ← g·k in place; a broadcast (stride-0) gradient is first replaced by a copy.
template <Floating T, Device D, class F> void rewrite_grad(Tensor<T, D>& param, F f) {
  Tensor<T, D> g = param.grad();
  for (int d = 0; d < g.dim(); ++d)
    if (g.strides()[d] == 0 && g.shape()[d] > 1) {
      NoGradGuard no_grad;
      g = g.clone();
      param.set_grad(g);
      break;
    }
  backend::Loops<D>::map1(g.data(), g.strides(), g.data(), g.strides(), g.shape(), f);
  g.storage()->bump_version();
}

}  // namespace detail

/// Scales every gradient by max_norm / (total + 1e-6) when that is below 1, where total is
/// the p-norm of all gradients together (p = norm_type > 0, or kInfNorm), computed as
/// PyTorch does: the p-norm of the per-gradient p-norms. Returns total (0 when no
/// parameter has a gradient). A NaN/Inf total throws avgrad::Error when
/// error_if_nonfinite; otherwise the gradients are scaled as PyTorch would (by NaN or 0).
template <Floating T, Device D> double clip_grad_norm_(const std::vector<Tensor<T, D>>& params, double max_norm,
                                                       double norm_type = 2.0, bool error_if_nonfinite = false) {
  AVGRAD_CHECK(norm_type > 0, "clip_grad_norm_", "norm_type must be > 0 or kInfNorm, got ", norm_type);
  AVGRAD_CHECK(max_norm >= 0, "clip_grad_norm_", "max_norm must be >= 0, got ", max_norm);
  const bool inf = std::isinf(norm_type);
  double acc = 0;
  bool any = false;
  for (const auto& p : params) {
    const Tensor<T, D> g = p.grad();
    if (!g.defined()) continue;
    any = true;
    const double s = detail::grad_norm_power(g, norm_type);
    if (inf)
      acc = (s > acc || s != s) ? s : acc;
    else {
      // this gradient's norm, raised back to p (as torch.norm of the stacked norms)
      const double norm = norm_type == 2.0 ? std::sqrt(s) : (norm_type == 1.0 ? s : std::pow(s, 1.0 / norm_type));
      acc += norm_type == 2.0 ? norm * norm : (norm_type == 1.0 ? norm : std::pow(norm, norm_type));
    }
  }
  if (!any) return 0.0;
  const double total =
      inf ? acc : (norm_type == 2.0 ? std::sqrt(acc) : (norm_type == 1.0 ? acc : std::pow(acc, 1.0 / norm_type)));
  AVGRAD_CHECK(!(error_if_nonfinite && !std::isfinite(total)), "clip_grad_norm_", "the total norm of order ", norm_type,
               " of the gradients is ", total,
               ", so they cannot be clipped; pass error_if_nonfinite = false to scale them anyway");
  const double coef = max_norm / (total + 1e-6);
  if (coef >= 1.0) return total;  // PyTorch multiplies by min(coef, 1): a no-op here
  const T k = static_cast<T>(coef);
  for (auto p : params)
    if (p.grad().defined()) detail::rewrite_grad(p, [k] AVGRAD_HOST_DEVICE(T v) { return v * k; });
  return total;
}

/// As above for named parameters (a module's named_parameters()).
template <Floating T, Device D> double clip_grad_norm_(const std::vector<NamedParam<T, D>>& params, double max_norm,
                                                       double norm_type = 2.0, bool error_if_nonfinite = false) {
  std::vector<Tensor<T, D>> plain;
  plain.reserve(params.size());
  for (const auto& [n, p] : params) plain.push_back(p);
  return clip_grad_norm_(plain, max_norm, norm_type, error_if_nonfinite);
}

/// Clamps every gradient element to [−clip, clip] (clip >= 0); NaN stays NaN.
template <Floating T, Device D> void clip_grad_value_(const std::vector<Tensor<T, D>>& params, double clip) {
  AVGRAD_CHECK(clip >= 0, "clip_grad_value_", "clip value must be >= 0, got ", clip);
  const T c = static_cast<T>(clip);
  for (auto p : params)
    if (p.grad().defined())
      detail::rewrite_grad(p, [c] AVGRAD_HOST_DEVICE(T v) { return v < -c ? -c : (v > c ? c : v); });
}
template <Floating T, Device D> void clip_grad_value_(const std::vector<NamedParam<T, D>>& params, double clip) {
  std::vector<Tensor<T, D>> plain;
  for (const auto& [n, p] : params) plain.push_back(p);
  clip_grad_value_(plain, clip);
}

}  // namespace avgrad::optim
