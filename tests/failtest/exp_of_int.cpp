// Must not compile: transcendental ops are defined for floating tensors only.
#include "avgrad/ops/unary.hpp"

int main() {
  auto a = avgrad::zeros<std::int32_t>({2});
  (void)avgrad::exp(a);
}
