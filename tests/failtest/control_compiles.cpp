// Must compile: the control case, so a broken include path cannot pass the failtests.
#include "avgrad/ops/binary.hpp"

int main() {
  auto a = avgrad::zeros<float>({2});
  (void)(a * a);
}
