// Must not compile: integer tensors cannot take part in autodiff.
#include "avgrad/core/tensor.hpp"

int main() {
  auto t = avgrad::zeros<std::int64_t>({3});
  t.requires_grad_();
}
