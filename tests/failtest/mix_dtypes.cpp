// Must not compile: float and double tensors are not silently promoted.
#include "avgrad/ops/binary.hpp"

int main() {
  auto a = avgrad::zeros<float>({2});
  auto b = avgrad::zeros<double>({2});
  (void)(a * b);
}
