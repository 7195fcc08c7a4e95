// Adam (L2 weight decay added to the gradient) and AdamW (decoupled weight decay),
// optionally AMSGrad, with torch.optim.Adam's bias correction and exact order of
// operations, as one fused elementwise pass per parameter (host/device functor).
#pragma once

#include <cmath>

#include "avgrad/optim/optimizer.hpp"

namespace avgrad::fn {

/// One Adam/AdamW update of one element at step t (counted from 1), PyTorch's order:
///   AdamW: p = p·(1 − lr·wd);   Adam: g = g + wd·p (when wd != 0);
///   m = β1·m + (1 − β1)·g;   v = β2·v + (1 − β2)·g·g;   (AMSGrad: v̂ = max(v̂, v), used for v)
///   p = p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + eps).
/// The five-argument form is AMSGrad (v̂ is the extra buffer).
template <class T> struct AdamUpdate {
  T beta1, beta2, one_minus_beta1, one_minus_beta2;
  T l2;     ///< Adam's weight decay (0 for AdamW)
  T decay;  ///< AdamW's factor 1 − lr·wd
  bool decoupled;
  T step_size;   ///< lr / (1 − β1^t)
  T bias2_sqrt;  ///< √(1 − β2^t)
  T eps;

  // Branch-free (selects, unconditional loads and stores) so the CPU loop vectorises.
  AVGRAD_HOST_DEVICE T moments(T& p, T g, T& m, T& v) const {
    const T q = decoupled ? p * decay : p;
    g = l2 != T(0) ? g + l2 * q : g;
    m = m * beta1 + one_minus_beta1 * g;
    v = v * beta2 + one_minus_beta2 * g * g;
    p = q;
    return v;
  }
  AVGRAD_HOST_DEVICE void apply(T& p, T m, T v) const {
    using std::sqrt;
    const T denom = sqrt(v) / bias2_sqrt + eps;
    p = p + (-step_size) * m / denom;
  }
  AVGRAD_HOST_DEVICE void operator()(T& p, T g, T& m, T& v) const { apply(p, m, moments(p, g, m, v)); }
  AVGRAD_HOST_DEVICE void operator()(T& p, T g, T& m, T& v, T& vmax) const {
    const T vt = moments(p, g, m, v), old = vmax;
    vmax = (!(old >= vt) && old == old) ? vt : old;  // max that propagates NaN, as torch.maximum
    apply(p, m, vmax);
  }
};

}  // namespace avgrad::fn

namespace avgrad::optim {

/// Defaults of Adam's options (a group may override each).
struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
  bool amsgrad = false;
};
/// Defaults of AdamW's options: as Adam but weight_decay 1e-2 (PyTorch's default).
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
  bool amsgrad = false;
};

namespace detail {

/// The shared body of Adam (Decoupled = false) and AdamW (true). State per parameter:
/// "exp_avg", "exp_avg_sq" and, with amsgrad, "max_exp_avg_sq"; the step count is
/// per parameter (a skipped parameter's bias correction does not advance).
/// Options: lr >= 0, β1, β2 in [0, 1), eps >= 0, weight_decay >= 0.
template <Floating T, Device D, bool Decoupled> class AdamFamily : public Optimizer<T, D> {
 public:
  using Base = Optimizer<T, D>;

 protected:
  using typename Base::Group;
  using typename Base::ParamState;
  using typename Base::TensorT;

  static constexpr const char* kName = Decoupled ? "AdamW" : "Adam";

  template <class Options> explicit AdamFamily(const Options& o)
      : Base(kName, defaults(o), {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}) {}

  void check_options(const GroupOptions& g, std::size_t i) const override {
    check_nonnegative(kName, "learning rate", *g.lr, i);
    check_unit_interval(kName, "beta1", *g.beta1, i);
    check_unit_interval(kName, "beta2", *g.beta2, i);
    check_nonnegative(kName, "eps", *g.eps, i);
    check_nonnegative(kName, "weight_decay", *g.weight_decay, i);
  }
  bool buffer_required(std::size_t slot, const GroupOptions& g, std::int64_t step) const override {
    return step > 0 && (slot < 2 || *g.amsgrad);
  }
  void update(const Group& g, ParamState& s, TensorT& p, const TensorT& grad) override {
    const double lr = *g.lr, wd = *g.weight_decay, b1 = *g.beta1, b2 = *g.beta2;
    for (std::size_t k = 0; k < (*g.amsgrad ? 3u : 2u); ++k)
      if (!s.buffers[k].defined()) s.buffers[k] = zeros_like(p);
    ++s.step;
    const auto t = static_cast<double>(s.step);
    fn::AdamUpdate<T> f{static_cast<T>(b1),
                        static_cast<T>(b2),
                        static_cast<T>(1.0 - b1),
                        static_cast<T>(1.0 - b2),
                        static_cast<T>(Decoupled ? 0.0 : wd),
                        static_cast<T>(1.0 - lr * wd),
                        Decoupled,
                        static_cast<T>(lr / (1.0 - std::pow(b1, t))),
                        static_cast<T>(std::sqrt(1.0 - std::pow(b2, t))),
                        static_cast<T>(*g.eps)};
    if (*g.amsgrad)
      ::avgrad::backend::Fused<D>::update(p, grad, f, s.buffers[0], s.buffers[1], s.buffers[2]);
    else
      ::avgrad::backend::Fused<D>::update(p, grad, f, s.buffers[0], s.buffers[1]);
  }

 private:
  template <class Options> static GroupOptions defaults(const Options& o) {
    GroupOptions g;
    g.lr = o.lr;
    g.weight_decay = o.weight_decay;
    g.beta1 = o.beta1;
    g.beta2 = o.beta2;
    g.eps = o.eps;
    g.amsgrad = o.amsgrad;
    return g;
  }
};

}  // namespace detail

/// torch.optim.Adam: weight decay as L2 added to the gradient.
template <Floating T, Device D = Cpu> class Adam final : public detail::AdamFamily<T, D, false> {
 public:
  explicit Adam(const std::vector<Tensor<T, D>>& params, AdamOptions o = {}) : detail::AdamFamily<T, D, false>(o) {
    this->init(detail::one_group(params));
  }
  explicit Adam(std::vector<NamedParam<T, D>> params, AdamOptions o = {}) : detail::AdamFamily<T, D, false>(o) {
    this->init(detail::one_group(std::move(params)));
  }
  explicit Adam(std::vector<ParamGroup<T, D>> groups, AdamOptions o = {}) : detail::AdamFamily<T, D, false>(o) {
    this->init(std::move(groups));
  }
};

/// torch.optim.AdamW: decoupled weight decay, p ← p·(1 − lr·wd) before the Adam step.
template <Floating T, Device D = Cpu> class AdamW final : public detail::AdamFamily<T, D, true> {
 public:
  explicit AdamW(const std::vector<Tensor<T, D>>& params, AdamWOptions o = {}) : detail::AdamFamily<T, D, true>(o) {
    this->init(detail::one_group(params));
  }
  explicit AdamW(std::vector<NamedParam<T, D>> params, AdamWOptions o = {}) : detail::AdamFamily<T, D, true>(o) {
    this->init(detail::one_group(std::move(params)));
  }
  explicit AdamW(std::vector<ParamGroup<T, D>> groups, AdamWOptions o = {}) : detail::AdamFamily<T, D, true>(o) {
    this->init(std::move(groups));
  }
};

}  // namespace avgrad::optim
