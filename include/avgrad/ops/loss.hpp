// Loss functions: cross-entropy over class logits (class-index or soft targets,
// label smoothing, ignore_index, per-class weights), binary cross-entropy with
// logits (pos_weight, weight), and MSE / L1. Conventions follow PyTorch's
// torch.nn.functional, including how weighted means are normalised.
//
// Forward passes are fused and max-shifted (no softmax tensor is materialised);
// backward passes are closed forms derived below, and keep only the logits
// (shared with the caller, no copy) plus two scalars per position.
#pragma once

#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "avgrad/ops/reduce.hpp"
#include "avgrad/ops/softmax.hpp"

namespace avgrad {

/// How a loss combines its per-element (per-position) values.
enum class Reduction {
  none,  ///< one value per element / position, the input's batch layout
  mean,  ///< a scalar: the (weighted) mean, see each loss for its denominator
  sum,   ///< a scalar: the sum
};

/// Options of cross_entropy. Aggregate: `cross_entropy(x, y, {.ignore_index = 0, .label_smoothing = 0.1})`.
template <Floating T, Device D = Cpu> struct CrossEntropyOptions {
  /// (K) per-class weight w; undefined means all ones. A constant: it receives
  /// no gradient, and one that requires grad is rejected while grad mode is on.
  Tensor<T, D> weight{};
  /// Class-index targets equal to this contribute 0 and are left out of the mean.
  /// Soft targets accept only a negative value (PyTorch's rule).
  std::int64_t ignore_index = -100;
  Reduction reduction = Reduction::mean;
  /// ε in [0, 1]: the target becomes (1 − ε)·target + ε/K.
  double label_smoothing = 0.0;
};

/// Options of binary_cross_entropy_with_logits. Aggregate, like CrossEntropyOptions.
template <Floating T, Device D = Cpu> struct BceWithLogitsOptions {
  /// Rescales each element's loss; broadcast to the logits' shape (e.g. (B,1) or (K)).
  /// Undefined means 1. A constant (no gradient), like CrossEntropyOptions::weight.
  Tensor<T, D> weight{};
  Reduction reduction = Reduction::mean;
  /// p_k multiplies the positive term of class k (usually shape (K), the last
  /// dim); any shape broadcasting to the logits is accepted. Undefined means 1.
  Tensor<T, D> pos_weight{};
};

namespace fn {
/// ℓ(x, t; p, w) = w·[(1 − t)·x + (1 + (p − 1)·t)·softplus(−x)], which equals
/// w·[−p·t·log σ(x) − (1 − t)·log(1 − σ(x))] because −log σ(x) = softplus(−x) and
/// −log(1 − σ(x)) = x + softplus(−x). With p = 1 it is max(x,0) − x·t + log(1 + e^{−|x|}).
struct BceWithLogits {
  // softplus(−x) = log(1 + e^{−x}) = max(−x, 0) + log1p(e^{−|x|}): no overflow for any x
  template <class T> AVGRAD_HOST_DEVICE static T softplus_neg(T x) {
    return (x < T(0) ? -x : T(0)) + log1p(exp(-abs(x)));
  }
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x, T t, T p, T w) const {
    return w * ((T(1) - t) * x + (T(1) + (p - T(1)) * t) * softplus_neg(x));
  }
  // ∂ℓ/∂x = w·[(1 − t) − (1 + (p − 1)t)·σ(−x)]   (softplus(−x)' = −σ(−x))
  template <class T> AVGRAD_HOST_DEVICE T grad_x(T x, T t, T p, T w, T g) const {
    return g * w * ((T(1) - t) - (T(1) + (p - T(1)) * t) * Sigmoid{}(-x));
  }
  // ∂ℓ/∂t = w·[−x + (p − 1)·softplus(−x)]
  template <class T> AVGRAD_HOST_DEVICE T grad_t(T x, T, T p, T w, T g) const {
    return g * w * (-x + (p - T(1)) * softplus_neg(x));
  }
};
/// (a − b)²; ∂/∂a = 2(a − b), ∂/∂b = −2(a − b).
struct SquaredError {
  template <class T> AVGRAD_HOST_DEVICE T operator()(T a, T b) const { return (a - b) * (a - b); }
  template <class T> AVGRAD_HOST_DEVICE T grad_a(T a, T b, T g) const { return T(2) * (a - b) * g; }
};
/// |a − b|; ∂/∂a = sign(a − b) (0 at a = b, as PyTorch), ∂/∂b = −∂/∂a.
struct AbsoluteError {
  template <class T> AVGRAD_HOST_DEVICE T operator()(T a, T b) const { return abs(a - b); }
  template <class T> AVGRAD_HOST_DEVICE T grad_a(T a, T b, T g) const { return a > b ? g : (a < b ? -g : T(0)); }
};
}  // namespace fn

namespace detail {

/// out[i] = f(in₀[i], …) over `shape` into a fresh contiguous tensor on the inputs' device;
/// every input is read with broadcast strides (callers check that its shape broadcasts).
template <Floating T, class F, class In0, class... In>
auto map_n(const Shape& shape, F f, const In0& in0, const In&... in) {
  using D = typename In0::device_type;
  constexpr std::size_t K = 1 + sizeof...(In);
  auto out = Tensor<T, D>::empty(shape);
  backend::Loops<D>::map_n(out.data(), out.strides(), shape, f, std::array<const T*, K>{in0.data(), in.data()...},
                           std::array<Strides, K>{broadcast_strides(in0.shape(), in0.strides(), shape),
                                                  broadcast_strides(in.shape(), in.strides(), shape)...});
  return out;
}

/// Sum of per-element losses divided by `denom` (mean) or 1 (sum); none passes through.
/// The sum runs in acc_t<T>; a zero denominator gives NaN, as PyTorch's empty mean.
template <Floating T, Device D> Tensor<T, D> reduce_loss(const Tensor<T, D>& per, Reduction r, double denom) {
  if (r == Reduction::none) return per;
  using A = acc_t<T>;
  std::vector<int> all;
  for (int d = 0; d < per.dim(); ++d) all.push_back(d);
  const A den = r == Reduction::mean ? static_cast<A>(denom) : A(1);
  return reduce<T, A>(
      per, all, false, A(0), [] AVGRAD_HOST_DEVICE(T v) { return static_cast<A>(v); },
      [] AVGRAD_HOST_DEVICE(A a, A b) { return a + b; },
      [den] AVGRAD_HOST_DEVICE(A a) { return static_cast<T>(a / den); });
}

/// The gradient g of a reduced loss, per element: g itself (none, any strides)
/// or the scalar g / denom (mean) or g (sum) broadcast, as a tensor of `shape`.
template <Floating T, Device D>
Tensor<T, D> loss_grad_per_element(const Tensor<T, D>& g, Reduction r, double denom, const Shape& shape) {
  if (r == Reduction::none) return g;
  if constexpr (std::same_as<D, Cpu>) {
    const T s = static_cast<T>(static_cast<double>(g.item()) / (r == Reduction::mean ? denom : 1.0));
    return full<T>(Shape{}, s).expand(shape);
  } else {  // the scalar stays on the device
    return (g * (r == Reduction::mean ? 1.0 / denom : 1.0)).reshape(Shape{}).expand(shape);
  }
}

/// Rejects loss weights that would need a gradient (they are constants here).
template <Floating T, Device D> void check_constant_weight(const Tensor<T, D>& w, const char* what, const char* op) {
  AVGRAD_CHECK(!(grad_enabled() && w.requires_grad()), op, what, " of shape ", w.shape(),
               " requires grad, but loss weights are constants (no gradient flows to them); pass ", what, ".detach()");
}

/// "(i,j,…)": the multi-index of flat row-major position `flat` in `shape`.
inline std::string position_string(std::int64_t flat, const Shape& shape) {
  std::vector<std::int64_t> idx(static_cast<std::size_t>(shape.rank()));
  for (int d = shape.rank() - 1; d >= 0; --d) {
    idx[static_cast<std::size_t>(d)] = shape[d] ? flat % shape[d] : 0;
    flat = shape[d] ? flat / shape[d] : 0;
  }
  std::string s = "(";
  for (std::size_t d = 0; d < idx.size(); ++d) {
    if (d) s += ',';
    s += std::to_string(idx[d]);
  }
  return s + ")";
}

/// Where the classes sit in cross-entropy logits: (K), (B,K) or (B,K,d1,…,dn).
struct ClassLayout {
  int axis;         ///< class axis: 1, or 0 for unbatched (K) logits
  std::int64_t K;   ///< number of classes
  Shape positions;  ///< logits' shape without the class axis: (), (B) or (B,d1,…,dn)
};

inline ClassLayout class_layout(const Shape& logits, const char* op) {
  AVGRAD_CHECK(logits.rank() >= 1, op, "logits must have shape (K), (B,K) or (B,K,d1,...), got a scalar");
  ClassLayout cl;
  cl.axis = logits.rank() >= 2 ? 1 : 0;
  cl.K = logits[cl.axis];
  AVGRAD_CHECK(cl.K >= 1, op, "logits of shape ", logits, " have no classes (K = 0 on axis ", cl.axis, ")");
  cl.positions = logits;
  cl.positions.erase(cl.axis);
  return cl;
}

/// Per-class weights as a host vector, checked against K; empty means all ones.
template <Floating T, Device D> std::vector<T> class_weights(const Tensor<T, D>& w, std::int64_t K, const char* op) {
  if (!w.defined()) return {};
  AVGRAD_CHECK(w.dim() == 1 && w.numel() == K, op, "weight must have shape (K) = (", K, "), got ", w.shape());
  check_constant_weight(w, "weight", op);
  return w.template to<Cpu>().to_vector();
}

/// Per-position log Σ_k e^{x_k} over the class axis, kept as its two parts (see
/// LineLse): contiguous tensors of the positions' shape.
template <Floating T> struct PositionLse { Tensor<T, Cpu> shift, log_sum; };

// ---- cross-entropy with class indices -------------------------------------------
//
// With log-probabilities z_k = x_k − lse, a per-class weight w (ones if none),
// smoothing ε and target class y, PyTorch's loss at one position is
//   ℓ = (1 − ε)·w_y·(−z_y) + (ε/K)·Σ_k w_k·(−z_k),
// and 0 at ignored positions. Writing a = (1 − ε)w_y, c_k = (ε/K)w_k, C = Σ_k c_k and
// p = softmax(x), ∂(−z_j)/∂x_k = p_k − δ_jk gives
//   ∂ℓ/∂x_k = a(p_k − δ_ky) + Σ_j c_j(p_k − δ_jk) = (a + C)·p_k − a·δ_ky − c_k,
// i.e. softmax − smoothed target when w ≡ 1. The mean divides Σℓ by Σ w_y over
// non-ignored positions (PyTorch's weighted mean), so each ∂ℓ is scaled by g/that.

/// Checks every target against [0, K) (ignore_index aside), serially and before any
/// parallel loop; returns the mean's denominator Σ w_y over non-ignored positions.
template <Floating T> double ce_check_targets(const std::int64_t* y, const Shape& positions, const Shape& logits,
                                              std::int64_t K, std::int64_t ignore, const std::vector<T>& w) {
  double denom = 0;
  const std::int64_t n = positions.numel();
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t c = y[i];
    if (c == ignore) continue;
    AVGRAD_CHECK(c >= 0 && c < K, "cross_entropy", "target value ", c, " at position ", position_string(i, positions),
                 " is out of range [0, ", K, ") for logits of shape ", logits, " (ignore_index = ", ignore, ")");
    denom += w.empty() ? 1.0 : static_cast<double>(w[static_cast<std::size_t>(c)]);
  }
  return denom;
}

/// Per-position losses ℓ (contiguous, positions' shape) and the lse parts.
template <Floating T> Tensor<T, Cpu> ce_index_forward(const Tensor<T, Cpu>& x, const ClassLayout& cl,
                                                      const std::int64_t* y, std::int64_t ignore,
                                                      const std::vector<T>& w, double eps, PositionLse<T>& lse) {
  auto loss = Tensor<T, Cpu>::empty(cl.positions);
  lse.shift = Tensor<T, Cpu>::empty(cl.positions);
  lse.log_sum = Tensor<T, Cpu>::empty(cl.positions);
  const auto xo = line_offsets(x.shape(), x.strides(), cl.axis);
  const std::int64_t K = cl.K, xs = x.strides()[cl.axis], n = static_cast<std::int64_t>(xo.size());
  const T* xp = x.data();
  T *lp = loss.data(), *sp = lse.shift.data(), *gp = lse.log_sum.data();
  const T keep = static_cast<T>(1.0 - eps), spread = static_cast<T>(eps / static_cast<double>(K));
#pragma omp parallel for if (parallel_lines(n * K))
  for (std::int64_t i = 0; i < n; ++i) {
    const T* p = xp + xo[static_cast<std::size_t>(i)];
    const auto [shift, log_sum] = line_logsumexp(p, K, xs);
    sp[i] = shift;
    gp[i] = log_sum;
    const std::int64_t c = y[i];
    if (c == ignore) {
      lp[i] = T(0);
      continue;
    }
    // −z_k = log_sum − (x_k − shift) ≥ 0: a sum of non-negative terms, no cancellation
    const T wy = w.empty() ? T(1) : w[static_cast<std::size_t>(c)];
    T l = keep * wy * (log_sum - (p[c * xs] - shift));
    if (eps > 0) {
      acc_t<T> s = 0;
      for (std::int64_t k = 0; k < K; ++k)
        s += static_cast<acc_t<T>>((w.empty() ? T(1) : w[static_cast<std::size_t>(k)]) *
                                   (log_sum - (p[k * xs] - shift)));
      l += spread * static_cast<T>(s);
    }
    lp[i] = l;
  }
  return loss;
}

/// dx for the class-index loss; gpos holds ∂L/∂ℓ per position (positions' shape).
template <Floating T> Tensor<T, Cpu> ce_index_backward(const Tensor<T, Cpu>& x, const ClassLayout& cl,
                                                       const std::int64_t* y, std::int64_t ignore,
                                                       const std::vector<T>& w, double eps, const PositionLse<T>& lse,
                                                       const Tensor<T, Cpu>& gpos) {
  auto dx = Tensor<T, Cpu>::empty(x.shape());
  const auto xo = line_offsets(x.shape(), x.strides(), cl.axis);
  const auto dxo = line_offsets(dx.shape(), dx.strides(), cl.axis);
  std::vector<std::int64_t> go;
  go.reserve(xo.size());
  for_each_offset(gpos.shape(), gpos.strides(), [&](std::int64_t o) { go.push_back(o); });
  const std::int64_t K = cl.K, xs = x.strides()[cl.axis], ds = dx.strides()[cl.axis];
  const auto n = static_cast<std::int64_t>(xo.size());
  const T* xp = x.data();
  const T *sp = lse.shift.data(), *lp = lse.log_sum.data(), *gp = gpos.data();
  T* dp = dx.data();
  const T keep = static_cast<T>(1.0 - eps), spread = static_cast<T>(eps / static_cast<double>(K));
  T wsum = static_cast<T>(K);
  if (!w.empty()) {
    acc_t<T> s = 0;
    for (T v : w) s += static_cast<acc_t<T>>(v);
    wsum = static_cast<T>(s);
  }
  const T C = spread * wsum;
#pragma omp parallel for if (parallel_lines(n * K))
  for (std::int64_t i = 0; i < n; ++i) {
    const auto u = static_cast<std::size_t>(i);
    const T* p = xp + xo[u];
    T* d = dp + dxo[u];
    const std::int64_t c = y[i];
    if (c == ignore) {
      for (std::int64_t k = 0; k < K; ++k) d[k * ds] = T(0);
      continue;
    }
    const T g = gp[go[u]], shift = sp[i], log_sum = lp[i];
    const T a = keep * (w.empty() ? T(1) : w[static_cast<std::size_t>(c)]);
    for (std::int64_t k = 0; k < K; ++k) {
      const T prob = std::exp((p[k * xs] - shift) - log_sum);
      const T ck = spread * (w.empty() ? T(1) : w[static_cast<std::size_t>(k)]);
      d[k * ds] = g * ((a + C) * prob - (k == c ? a : T(0)) - ck);
    }
  }
  return dx;
}

// ---- cross-entropy with soft (probability) targets ------------------------------
//
// With t' = (1 − ε)t + ε/K, ℓ = −Σ_k w_k t'_k z_k. Since ∂z_j/∂x_k = δ_jk − p_k,
//   ∂ℓ/∂x_k = p_k·Σ_j w_j t'_j − w_k t'_k      (= p − t' when w ≡ 1 and Σt' = 1)
//   ∂ℓ/∂t_k = −(1 − ε)·w_k·z_k.
// The mean divides by the number of positions (PyTorch), not by a weight sum.

template <Floating T> Tensor<T, Cpu> ce_soft_forward(const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& t,
                                                     const ClassLayout& cl, const std::vector<T>& w, double eps,
                                                     PositionLse<T>& lse) {
  auto loss = Tensor<T, Cpu>::empty(cl.positions);
  lse.shift = Tensor<T, Cpu>::empty(cl.positions);
  lse.log_sum = Tensor<T, Cpu>::empty(cl.positions);
  const auto xo = line_offsets(x.shape(), x.strides(), cl.axis);
  const auto to = line_offsets(t.shape(), t.strides(), cl.axis);
  const std::int64_t K = cl.K, xs = x.strides()[cl.axis], ts = t.strides()[cl.axis];
  const auto n = static_cast<std::int64_t>(xo.size());
  const T *xp = x.data(), *tp = t.data();
  T *lp = loss.data(), *sp = lse.shift.data(), *gp = lse.log_sum.data();
  const T keep = static_cast<T>(1.0 - eps), spread = static_cast<T>(eps / static_cast<double>(K));
#pragma omp parallel for if (parallel_lines(n * K))
  for (std::int64_t i = 0; i < n; ++i) {
    const auto u = static_cast<std::size_t>(i);
    const T *p = xp + xo[u], *q = tp + to[u];
    const auto [shift, log_sum] = line_logsumexp(p, K, xs);
    sp[i] = shift;
    gp[i] = log_sum;
    acc_t<T> s = 0;
    for (std::int64_t k = 0; k < K; ++k) {
      const T wk = w.empty() ? T(1) : w[static_cast<std::size_t>(k)];
      s += static_cast<acc_t<T>>(wk * (keep * q[k * ts] + spread) * (log_sum - (p[k * xs] - shift)));
    }
    lp[i] = static_cast<T>(s);
  }
  return loss;
}

/// dx and/or dt of the soft-target loss (undefined where not wanted).
template <Floating T>
std::pair<Tensor<T, Cpu>, Tensor<T, Cpu>> ce_soft_backward(const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& t,
                                                           const ClassLayout& cl, const std::vector<T>& w, double eps,
                                                           const PositionLse<T>& lse, const Tensor<T, Cpu>& gpos,
                                                           bool want_x, bool want_t) {
  Tensor<T, Cpu> dx = want_x ? Tensor<T, Cpu>::empty(x.shape()) : Tensor<T, Cpu>();
  Tensor<T, Cpu> dt = want_t ? Tensor<T, Cpu>::empty(x.shape()) : Tensor<T, Cpu>();
  const auto xo = line_offsets(x.shape(), x.strides(), cl.axis);
  const auto to = line_offsets(t.shape(), t.strides(), cl.axis);
  const auto oo = line_offsets(x.shape(), contiguous_strides(x.shape()), cl.axis);  // dx and dt layout
  std::vector<std::int64_t> go;
  go.reserve(xo.size());
  for_each_offset(gpos.shape(), gpos.strides(), [&](std::int64_t o) { go.push_back(o); });
  const std::int64_t K = cl.K, xs = x.strides()[cl.axis], ts = t.strides()[cl.axis];
  const std::int64_t os = contiguous_strides(x.shape())[cl.axis];
  const auto n = static_cast<std::int64_t>(xo.size());
  const T *xp = x.data(), *tp = t.data(), *sp = lse.shift.data(), *lp = lse.log_sum.data(), *gp = gpos.data();
  T* dxp = want_x ? dx.data() : nullptr;
  T* dtp = want_t ? dt.data() : nullptr;
  const T keep = static_cast<T>(1.0 - eps), spread = static_cast<T>(eps / static_cast<double>(K));
#pragma omp parallel for if (parallel_lines(n * K))
  for (std::int64_t i = 0; i < n; ++i) {
    const auto u = static_cast<std::size_t>(i);
    const T *p = xp + xo[u], *q = tp + to[u];
    const T g = gp[go[u]], shift = sp[i], log_sum = lp[i];
    auto wk = [&](std::int64_t k) { return w.empty() ? T(1) : w[static_cast<std::size_t>(k)]; };
    if (dxp) {
      acc_t<T> s = 0;  // Σ_j w_j t'_j
      for (std::int64_t k = 0; k < K; ++k) s += static_cast<acc_t<T>>(wk(k) * (keep * q[k * ts] + spread));
      const T S = static_cast<T>(s);
      T* d = dxp + oo[u];
      for (std::int64_t k = 0; k < K; ++k) {
        const T prob = std::exp((p[k * xs] - shift) - log_sum);
        d[k * os] = g * (prob * S - wk(k) * (keep * q[k * ts] + spread));
      }
    }
    if (dtp) {
      T* d = dtp + oo[u];
      for (std::int64_t k = 0; k < K; ++k) d[k * os] = g * keep * wk(k) * (log_sum - (p[k * xs] - shift));
    }
  }
  return {dx, dt};
}

}  // namespace detail

/// Cross-entropy between class logits and class-index targets, as
namespace detail {

// ---- cross-entropy composed from ops (any device) ----------------------------------
//
// The same losses as the fused CPU kernels above, written as log_softmax, a product with
// a (smoothed, weighted) target matrix M and a sum over the class axis:
//   ℓ_p = −Σ_k M_pk·z_pk,  M_pk = (1 − ε)·w_y·δ_{k,y_p} + (ε/K)·w_k  (0 for ignored p),
// so autograd through ops that every device has gives the gradient. A device without its
// own cross-entropy kernel runs this; tests compare it with the CPU kernels on the CPU.

/// The weights as a tensor broadcasting along the class axis of logits of rank r.
template <Floating T, Device D> Tensor<T, D> class_axis_tensor(const std::vector<T>& w, const ClassLayout& cl, int r) {
  Shape s;
  for (int d = 0; d < r; ++d) s.push_back(d == cl.axis ? cl.K : 1);
  return from_vector<T>(w, s).template to<D>();
}

template <Floating T, Device D> Tensor<T, D> ce_reduce_by_ops(const Tensor<T, D>& per, Reduction red, double denom) {
  if (red == Reduction::none) return per;
  auto total = sum(per);
  return red == Reduction::mean ? div(total, full<T, D>(Shape{}, static_cast<T>(denom))) : total;
}

template <Floating T, Device D>
Tensor<T, D> ce_index_by_ops(const Tensor<T, D>& logits, const Tensor<std::int64_t, D>& target, const ClassLayout& cl,
                             const CrossEntropyOptions<T, D>& opt) {
  const auto w = class_weights(opt.weight, cl.K, "cross_entropy");
  const auto y = target.template to<Cpu>().contiguous();  // targets are checked on the host
  const double denom = ce_check_targets(y.data(), cl.positions, logits.shape(), cl.K, opt.ignore_index, w);
  // M in the logits' layout: position p, class k at (p's leading index, k, p's trailing index)
  const std::int64_t K = cl.K, P = cl.positions.numel();
  const std::int64_t outer = cl.axis == 0 ? 1 : logits.size(0), inner = P / std::max<std::int64_t>(outer, 1);
  const double eps = opt.label_smoothing;
  // the mean's 1/denom goes into M, so an ignored position's gradient is exactly 0 even when
  // every position is ignored (denom 0: the loss is NaN, as PyTorch's, and the gradient 0)
  const bool mean = opt.reduction == Reduction::mean;
  const double scale = mean && denom > 0 ? 1.0 / denom : 1.0;
  std::vector<T> m(static_cast<std::size_t>(P * K), T(0));
  for (std::int64_t o = 0; o < outer; ++o)
    for (std::int64_t i = 0; i < inner; ++i) {
      const std::int64_t c = y.data()[o * inner + i];
      if (c == opt.ignore_index) continue;
      for (std::int64_t k = 0; k < K; ++k) {
        const double wk = w.empty() ? 1.0 : static_cast<double>(w[static_cast<std::size_t>(k)]);
        double v = eps / static_cast<double>(K) * wk;
        if (k == c) v += (1.0 - eps) * wk;
        m[static_cast<std::size_t>((o * K + k) * inner + i)] = static_cast<T>(v * scale);
      }
    }
  auto M = from_vector<T>(m, logits.shape()).template to<D>();
  auto per = neg(sum(mul(M, log_softmax(logits, cl.axis)), {cl.axis}));
  if (opt.reduction == Reduction::none) return per;
  auto total = sum(per);
  if (mean && !(denom > 0)) total = add(total, full<T, D>(Shape{}, std::numeric_limits<T>::quiet_NaN()));
  return total;
}

template <Floating T, Device D> Tensor<T, D> ce_soft_by_ops(const Tensor<T, D>& logits, const Tensor<T, D>& target,
                                                            const ClassLayout& cl,
                                                            const CrossEntropyOptions<T, D>& opt) {
  const auto w = class_weights(opt.weight, cl.K, "cross_entropy");
  const double eps = opt.label_smoothing;
  Tensor<T, D> t = eps > 0 ? add(mul(target, 1.0 - eps), eps / static_cast<double>(cl.K)) : target;
  if (!w.empty()) t = mul(t, class_axis_tensor<T, D>(w, cl, logits.dim()));
  auto per = neg(sum(mul(t, log_softmax(logits, cl.axis)), {cl.axis}));
  return ce_reduce_by_ops(per, opt.reduction, static_cast<double>(cl.positions.numel()));
}

}  // namespace detail

/// torch.nn.functional.cross_entropy: logits (B,K), (B,K,d1,…,dn) or (K);
/// target int64 of the logits' shape without K: (B), (B,d1,…,dn) or ().
/// Returns that positions' shape (Reduction::none; ignored positions are 0) or a
/// scalar: sum, or mean = Σℓ / Σ_{not ignored} w_target (the count when no
/// weight; NaN when every position is ignored, as PyTorch).
/// Throws on shape mismatches, a weight not of shape (K), ε outside [0, 1], and
/// any target outside [0, K) other than ignore_index (naming value and position).
/// NaN/Inf logits propagate into the loss and gradient. Gradient: logits only.
template <Floating T, Device D> Tensor<T, D> cross_entropy(const Tensor<T, D>& logits,
                                                           const Tensor<std::int64_t, D>& target,
                                                           const CrossEntropyOptions<T, D>& opt = {}) {
  const char* op = "cross_entropy";
  detail::check_defined(logits, op);
  detail::check_defined(target, op);
  const auto cl = detail::class_layout(logits.shape(), op);
  AVGRAD_CHECK(target.shape() == cl.positions, op, "class-index target of shape ", target.shape(),
               " does not match logits of shape ", logits.shape(), ": expected ", cl.positions,
               " (the logits' shape without the class axis ", cl.axis, ")");
  AVGRAD_CHECK(opt.label_smoothing >= 0.0 && opt.label_smoothing <= 1.0, op, "label_smoothing must be in [0, 1], got ",
               opt.label_smoothing);
  if constexpr (!std::same_as<D, Cpu>) {  // devices without a fused kernel
    return detail::ce_index_by_ops(logits, target, cl, opt);
  } else {
    const auto w = detail::class_weights(opt.weight, cl.K, op);
    const Tensor<std::int64_t, D> y = target.contiguous();
    const double denom = detail::ce_check_targets(y.data(), cl.positions, logits.shape(), cl.K, opt.ignore_index, w);
    detail::PositionLse<T> lse;
    const double eps = opt.label_smoothing;
    const std::int64_t ignore = opt.ignore_index;
    const Reduction red = opt.reduction;
    auto per = detail::ce_index_forward(logits, cl, y.data(), ignore, w, eps, lse);
    auto out = detail::reduce_loss(per, red, denom);
    if (!autograd::any_requires_grad<T, D>({&logits})) return out;
    autograd::Saved<T, D> sx(logits);
    autograd::Saved<std::int64_t, D> sy(y);
    return autograd::record<T, D>(op, out, {logits}, [=](const Tensor<T, D>& g, const std::vector<bool>&) {
      auto gpos = detail::loss_grad_per_element(g, red, denom, cl.positions);
      return autograd::Grads<T, D>{
          detail::ce_index_backward(sx.get(op), cl, sy.get(op).data(), ignore, w, eps, lse, gpos)};
    });
  }
}

/// Cross-entropy with soft targets (class probabilities), as PyTorch's
/// probability-target form: target has the logits' shape; per position
/// ℓ = −Σ_k w_k t'_k log softmax(x)_k with t' = (1 − ε)t + ε/K. The mean divides
/// by the number of positions (B·d1·…·dn). Targets are not checked to sum to 1.
/// Gradients flow to logits and to target (e.g. a teacher's output).
template <Floating T, Device D> Tensor<T, D> cross_entropy(const Tensor<T, D>& logits, const Tensor<T, D>& target,
                                                           const CrossEntropyOptions<T, D>& opt = {}) {
  const char* op = "cross_entropy";
  detail::check_defined(logits, op);
  detail::check_defined(target, op);
  const auto cl = detail::class_layout(logits.shape(), op);
  AVGRAD_CHECK(target.shape() == logits.shape(), op, "soft (probability) target of shape ", target.shape(),
               " must have the logits' shape ", logits.shape(), "; class-index targets are Tensor<int64>");
  AVGRAD_CHECK(opt.ignore_index < 0, op, "ignore_index (", opt.ignore_index,
               ") is not supported with soft (probability) targets");
  AVGRAD_CHECK(opt.label_smoothing >= 0.0 && opt.label_smoothing <= 1.0, op, "label_smoothing must be in [0, 1], got ",
               opt.label_smoothing);
  if constexpr (!std::same_as<D, Cpu>) {  // devices without a fused kernel
    return detail::ce_soft_by_ops(logits, target, cl, opt);
  } else {
    const auto w = detail::class_weights(opt.weight, cl.K, op);
    detail::PositionLse<T> lse;
    const double eps = opt.label_smoothing;
    const Reduction red = opt.reduction;
    const double denom = static_cast<double>(cl.positions.numel());
    auto per = detail::ce_soft_forward(logits, target, cl, w, eps, lse);
    auto out = detail::reduce_loss(per, red, denom);
    if (!autograd::any_requires_grad<T, D>({&logits, &target})) return out;
    autograd::Saved<T, D> sx(logits), st(target);
    return autograd::record<T, D>(op, out, {logits, target}, [=](const Tensor<T, D>& g, const std::vector<bool>& need) {
      auto gpos = detail::loss_grad_per_element(g, red, denom, cl.positions);
      auto [dx, dt] = detail::ce_soft_backward(sx.get(op), st.get(op), cl, w, eps, lse, gpos, need[0], need[1]);
      return autograd::Grads<T, D>{dx, dt};
    });
  }
}

/// Any other target dtype is a compile-time error with a readable message.
template <Floating T, Device D, Element I>
requires(!std::same_as<I, std::int64_t> &&
         !std::same_as<I, T>) Tensor<T, D> cross_entropy(const Tensor<T, D>&, const Tensor<I, D>&,
                                                         const CrossEntropyOptions<T, D>& = {}) {
  static_assert(sizeof(I) == 0,
                "cross_entropy: target must be Tensor<std::int64_t> (class indices) or have the logits' "
                "floating type (probabilities); convert it with .to<...>()");
  return {};
}

/// Binary cross-entropy on logits, multi-label, as
/// torch.nn.functional.binary_cross_entropy_with_logits: targets (probabilities
/// in [0, 1], not checked) have the logits' shape (any, e.g. (B,K));
/// ℓ = w·[−p·t·log σ(x) − (1 − t)·log(1 − σ(x))], evaluated stably (see
/// fn::BceWithLogits). weight and pos_weight broadcast to the logits' shape
/// (pos_weight typically (K)); shapes that do not are rejected. none keeps the
/// logits' shape; mean divides by its element count. Gradients: logits and targets.
template <Floating T, Device D>
Tensor<T, D> binary_cross_entropy_with_logits(const Tensor<T, D>& logits, const Tensor<T, D>& targets,
                                              const BceWithLogitsOptions<T, D>& opt = {}) {
  const char* op = "binary_cross_entropy_with_logits";
  detail::check_defined(logits, op);
  detail::check_defined(targets, op);
  const Shape shape = logits.shape();
  AVGRAD_CHECK(targets.shape() == shape, op, "targets of shape ", targets.shape(), " must have the logits' shape ",
               shape);
  auto constant = [&](const Tensor<T, D>& v, const char* what) {
    if (!v.defined()) return full<T, D>(Shape{}, T(1));
    const bool fits = v.dim() <= shape.rank() && [&] {
      for (int i = 1; i <= v.dim(); ++i)
        if (v.shape()[v.dim() - i] != 1 && v.shape()[v.dim() - i] != shape[shape.rank() - i]) return false;
      return true;
    }();
    AVGRAD_CHECK(fits, op, what, " of shape ", v.shape(), " does not broadcast to logits of shape ", shape,
                 shape.rank() ? detail::concat(" (expected (K) = (", shape.back(), ") or a broadcastable shape)") : "");
    detail::check_constant_weight(v, what, op);
    return v.detach();
  };
  const Tensor<T, D> pw = constant(opt.pos_weight, "pos_weight");
  const Tensor<T, D> w = constant(opt.weight, "weight");
  const Reduction red = opt.reduction;
  const double denom = static_cast<double>(shape.numel());
  auto per = detail::map_n<T>(
      shape, [] AVGRAD_HOST_DEVICE(T x, T t, T p, T v) { return fn::BceWithLogits{}(x, t, p, v); }, logits, targets, pw,
      w);
  auto out = detail::reduce_loss(per, red, denom);
  if (!autograd::any_requires_grad<T, D>({&logits, &targets})) return out;
  autograd::Saved<T, D> sx(logits), st(targets), spw(pw), sw(w);
  return autograd::record<T, D>(op, out, {logits, targets}, [=](const Tensor<T, D>& g, const std::vector<bool>& need) {
    auto ge = detail::loss_grad_per_element(g, red, denom, shape);
    const auto &x = sx.get(op), &t = st.get(op), &p = spw.get(op), &v = sw.get(op);
    autograd::Grads<T, D> out(2);
    if (need[0])
      out[0] = detail::map_n<T>(
          shape,
          [] AVGRAD_HOST_DEVICE(T gg, T xx, T tt, T pp, T ww) {
            return fn::BceWithLogits{}.grad_x(xx, tt, pp, ww, gg);
          },
          ge, x, t, p, v);
    if (need[1])
      out[1] = detail::map_n<T>(
          shape,
          [] AVGRAD_HOST_DEVICE(T gg, T xx, T tt, T pp, T ww) {
            return fn::BceWithLogits{}.grad_t(xx, tt, pp, ww, gg);
          },
          ge, x, t, p, v);
    return out;
  });
}

namespace detail {
/// The shared body of mse_loss and l1_loss: ℓ = f(a, b) elementwise, reduced;
/// da = f.grad_a(a, b, g), db = −da (both losses depend on a − b only).
template <Floating T, Device D, class F>
Tensor<T, D> pointwise_loss(const char* op, const Tensor<T, D>& a, const Tensor<T, D>& b, Reduction red, F f) {
  check_defined(a, op);
  check_defined(b, op);
  AVGRAD_CHECK(a.shape() == b.shape(), op, "input of shape ", a.shape(), " and target of shape ", b.shape(),
               " differ (no broadcasting in losses)");
  const Shape shape = a.shape();
  const double denom = static_cast<double>(shape.numel());
  auto out = reduce_loss(map_n<T>(
                             shape, [f] AVGRAD_HOST_DEVICE(T u, T v) { return f(u, v); }, a, b),
                         red, denom);
  if (!autograd::any_requires_grad<T, D>({&a, &b})) return out;
  autograd::Saved<T, D> sa(a), sb(b);
  return autograd::record<T, D>(op, out, {a, b}, [=](const Tensor<T, D>& g, const std::vector<bool>& need) {
    auto ge = loss_grad_per_element(g, red, denom, shape);
    const auto &av = sa.get(op), &bv = sb.get(op);
    autograd::Grads<T, D> grads(2);
    if (need[0])
      grads[0] = map_n<T>(
          shape, [f] AVGRAD_HOST_DEVICE(T gg, T u, T v) { return f.grad_a(u, v, gg); }, ge, av, bv);
    if (need[1])
      grads[1] = map_n<T>(
          shape, [f] AVGRAD_HOST_DEVICE(T gg, T u, T v) { return -f.grad_a(u, v, gg); }, ge, av, bv);
    return grads;
  });
}
}  // namespace detail

/// Mean squared error ℓ = (input − target)², as torch.nn.functional.mse_loss.
/// input and target: the same shape (no broadcasting; a mismatch throws).
/// Reduction none keeps the shape; mean divides by the element count.
template <Floating T, Device D>
Tensor<T, D> mse_loss(const Tensor<T, D>& input, const Tensor<T, D>& target, Reduction reduction = Reduction::mean) {
  return detail::pointwise_loss("mse_loss", input, target, reduction, fn::SquaredError{});
}

/// Mean absolute error ℓ = |input − target|, as torch.nn.functional.l1_loss
/// (gradient sign(input − target), 0 where they are equal). Shapes as mse_loss.
template <Floating T, Device D>
Tensor<T, D> l1_loss(const Tensor<T, D>& input, const Tensor<T, D>& target, Reduction reduction = Reduction::mean) {
  return detail::pointwise_loss("l1_loss", input, target, reduction, fn::AbsoluteError{});
}

}  // namespace avgrad
