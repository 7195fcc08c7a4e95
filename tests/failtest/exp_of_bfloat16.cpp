// Must not compile: bfloat16 is a storage type, not a Floating one — ops and autograd take
// float or double (cast<float> first).
#include "avgrad/ops/unary.hpp"

int main() {
  auto a = avgrad::zeros<avgrad::bfloat16>({2});
  (void)avgrad::exp(a);
}
