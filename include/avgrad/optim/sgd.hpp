// Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2
// weight decay, in torch.optim.SGD's exact order of operations, as one fused
// elementwise pass per parameter (the functor is host/device for the CUDA backend).
#pragma once

#include "avgrad/optim/optimizer.hpp"

namespace avgrad::fn {

/// One SGD update of one element, PyTorch's order:
///   d = g + wd·p;  buf = d on the first step, else μ·buf + (1 − dampening)·d;
///   d = nesterov ? d + μ·buf : buf;  p = p − lr·d.
/// The two-argument form is the momentum-free update (no buffer).
template <class T> struct SgdUpdate {
  T lr, weight_decay, momentum, one_minus_dampening;
  bool nesterov, first;

  AVGRAD_HOST_DEVICE void operator()(T& p, T g) const {
    const T d = weight_decay != T(0) ? g + weight_decay * p : g;
    p = p + (-lr) * d;
  }
  // Branch-free (selects, unconditional loads and stores) so the CPU loop vectorises.
  AVGRAD_HOST_DEVICE void operator()(T& p, T g, T& buf) const {
    T d = weight_decay != T(0) ? g + weight_decay * p : g;
    const T b = first ? d : buf * momentum + one_minus_dampening * d;
    d = nesterov ? d + momentum * b : b;
    buf = b;
    p = p + (-lr) * d;
  }
};

}  // namespace avgrad::fn

namespace avgrad::optim {

/// Defaults of SGD's options (a group may override each).
struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
};

/// torch.optim.SGD. State per parameter: "momentum_buffer" (only while momentum != 0).
/// Options: lr >= 0, momentum >= 0, weight_decay >= 0; nesterov needs momentum > 0 and
/// dampening 0.
template <Floating T, Device D = Cpu> class SGD final : public Optimizer<T, D> {
 public:
  using Base = Optimizer<T, D>;

  explicit SGD(const std::vector<Tensor<T, D>>& params, SGDOptions o = {})
      : Base("SGD", defaults(o), {"momentum_buffer"}) {
    this->init(detail::one_group(params));
  }
  explicit SGD(std::vector<NamedParam<T, D>> params, SGDOptions o = {})
      : Base("SGD", defaults(o), {"momentum_buffer"}) {
    this->init(detail::one_group(std::move(params)));
  }
  explicit SGD(std::vector<ParamGroup<T, D>> groups, SGDOptions o = {})
      : Base("SGD", defaults(o), {"momentum_buffer"}) {
    this->init(std::move(groups));
  }

 protected:
  using typename Base::Group;
  using typename Base::ParamState;
  using typename Base::TensorT;

  void check_options(const GroupOptions& g, std::size_t i) const override {
    detail::check_nonnegative("SGD", "learning rate", *g.lr, i);
    detail::check_nonnegative("SGD", "momentum", *g.momentum, i);
    detail::check_nonnegative("SGD", "weight_decay", *g.weight_decay, i);
    AVGRAD_CHECK(!*g.nesterov || (*g.momentum > 0 && *g.dampening == 0), "SGD",
                 "Nesterov momentum needs momentum > 0 and dampening 0 (parameter group ", i, " has momentum ",
                 *g.momentum, ", dampening ", *g.dampening, ")");
  }
  bool buffer_required(std::size_t, const GroupOptions& g, std::int64_t step) const override {
    return step > 0 && *g.momentum != 0;
  }
  void update(const Group& g, ParamState& s, TensorT& p, const TensorT& grad) override {
    fn::SgdUpdate<T> f{static_cast<T>(*g.lr),
                       static_cast<T>(*g.weight_decay),
                       static_cast<T>(*g.momentum),
                       static_cast<T>(1.0 - *g.dampening),
                       *g.nesterov,
                       false};
    if (*g.momentum != 0) {
      TensorT& buf = s.buffers[0];
      f.first = !buf.defined();
      if (f.first) buf = zeros_like(p);  // read (and ignored) on the first step
      ::avgrad::backend::Fused<D>::update(p, grad, f, buf);
    } else {
      ::avgrad::backend::Fused<D>::update(p, grad, f);
    }
    ++s.step;
  }

 private:
  static GroupOptions defaults(const SGDOptions& o) {
    GroupOptions g;
    g.lr = o.lr;
    g.weight_decay = o.weight_decay;
    g.momentum = o.momentum;
    g.dampening = o.dampening;
    g.nesterov = o.nesterov;
    return g;
  }
};

}  // namespace avgrad::optim
