// nn::Dropout: inverted dropout active in training mode only, drawing its masks
// from a generator the caller can seed (the default generator otherwise).
#pragma once

#include "avgrad/nn/module.hpp"
#include "avgrad/ops/dropout.hpp"

namespace avgrad::nn {

template <Floating T, Device D = Cpu> class Dropout : public UnaryModule<T, D> {
 public:
  explicit Dropout(double p = 0.5, Generator* gen = nullptr) : p_(p), gen_(gen) {
    AVGRAD_CHECK(p >= 0.0 && p <= 1.0, "Dropout", "p must be in [0, 1], got ", p);
  }
  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    return dropout(x, p_, this->is_training(), gen_ ? *gen_ : default_generator());
  }
  std::string describe() const override { return detail::concat("Dropout(p=", p_, ")"); }
  double p() const { return p_; }
  void set_generator(Generator* gen) { gen_ = gen; }

 private:
  double p_;
  Generator* gen_;
};

}  // namespace avgrad::nn
