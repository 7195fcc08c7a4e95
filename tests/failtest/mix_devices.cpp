// Must not compile: a CPU tensor and a CUDA tensor never meet in one op.
#include "avgrad/ops/binary.hpp"

int main() {
  avgrad::Tensor<float, avgrad::Cpu> a;
  avgrad::Tensor<float, avgrad::Cuda> b;
  (void)(a + b);
}
