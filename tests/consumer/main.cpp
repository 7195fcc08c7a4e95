// Builds against the installed headers and checks one gradient end to end.
#include <avgrad/avgrad.hpp>

#include <cmath>
#include <cstdio>

int main() {
  using namespace avgrad;
  auto x = from_vector<double>({0.5, -1.0, 2.0});
  x.requires_grad_();
  auto loss = sum(exp(x) * x);  // d/dx = e^x (1 + x)
  loss.backward();
  auto g = x.grad().to_vector();
  for (int i = 0; i < 3; ++i) {
    double xi = x.at({i}), want = std::exp(xi) * (1 + xi);
    if (std::abs(g[static_cast<std::size_t>(i)] - want) > 1e-12) {
      std::printf("consumer: gradient %d is %g, expected %g\n", i, g[static_cast<std::size_t>(i)], want);
      return 1;
    }
  }
  std::printf("consumer: ok\n");
  return 0;
}
