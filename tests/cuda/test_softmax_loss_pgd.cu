// softmax / log_softmax (forward, backward, any axis, strided input, extreme logits),
// cross-entropy (index and soft targets, every option) and the fused PGD update (L∞, L2
// with active masks, L1 through the host) against the CPU twin.
#include "cuda_twin.cuh"

using namespace avgrad;
using avgrad::testing::close_to_cpu;
using avgrad::testing::expect_twin;

namespace {

using avgrad::testing::leaf;
template <class F> void twin(const std::string& what, const std::vector<Tensor<float, Cpu>>& in, F f) {
  avgrad::testing::twin_of(what, in, f, 1e-5, 1e-6);
}

TEST(CudaSoftmax, EveryAxisForwardAndBackward) {
  AVGRAD_REQUIRE_GPU();
  auto x = leaf({5, 7, 40}, 1, 3.0);
  for (int axis : {0, 1, 2}) {
    twin("softmax axis " + std::to_string(axis), {x}, [axis](const auto& v) { return softmax(v[0], axis); });
    twin("log_softmax axis " + std::to_string(axis), {x}, [axis](const auto& v) { return log_softmax(v[0], axis); });
  }
  twin("transposed input", {x}, [](const auto& v) { return log_softmax(v[0].transpose(0, 2), -1); });
  auto wide = leaf({3, 5000}, 2);
  twin("long lines", {wide}, [](const auto& v) { return softmax(v[0], -1); });
}

TEST(CudaSoftmax, ExtremeLogitsStayFinite) {
  AVGRAD_REQUIRE_GPU();
  auto x = from_vector<float>({1e30f, -1e30f, 0.0f, -std::numeric_limits<float>::infinity(), 5.0f, 5.0f}, {2, 3});
  EXPECT_TRUE(close_to_cpu(log_softmax(x.to<Cuda>()), log_softmax(x)));
  EXPECT_TRUE(close_to_cpu(softmax(x.to<Cuda>()), softmax(x)));
  auto all_neg_inf = full<float>({1, 4}, -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(close_to_cpu(softmax(all_neg_inf.to<Cuda>()), softmax(all_neg_inf)))
      << "NaN exactly where the CPU has it";
}

TEST(CudaLoss, CrossEntropyMatchesTheFusedCpuKernel) {
  AVGRAD_REQUIRE_GPU();
  auto x = leaf({8, 6}, 20, 2.0);
  auto y = from_vector<std::int64_t>({0, 5, 2, 2, -100, 1, 3, 4});
  auto yg = y.to<Cuda>();
  auto w = from_vector<float>({1, 2, 0.5f, 1, 3, 0.25f});
  auto wg = w.to<Cuda>();
  for (Reduction red : {Reduction::mean, Reduction::sum, Reduction::none}) {
    CrossEntropyOptions<float> oc{.weight = w, .reduction = red, .label_smoothing = 0.1};
    CrossEntropyOptions<float, Cuda> og{.weight = wg, .reduction = red, .label_smoothing = 0.1};
    expect_twin<float>(
        "index targets", {x}, [&](const auto& v) { return cross_entropy(v[0], y, oc); },
        [&](const auto& v) { return cross_entropy(v[0], yg, og); }, 1e-5, 1e-6);
  }
  auto t = softmax(leaf({8, 6}, 21).detach());
  t.requires_grad_();
  expect_twin<float>(
      "soft targets", {x, t}, [](const auto& v) { return cross_entropy(v[0], v[1]); },
      [](const auto& v) { return cross_entropy(v[0], v[1]); }, 1e-5, 1e-6);
  auto bad = from_vector<std::int64_t>({0, 9, 0, 0, 0, 0, 0, 0}).to<Cuda>();
  EXPECT_THROW((void)cross_entropy(x.detach().to<Cuda>(), bad), Error) << "targets are checked as on the CPU";
}

struct PgdCase {
  attacks::Norm norm;
  double eps, step, lo, hi;
};

void check_pgd(const PgdCase& c, bool with_mask) {
  Generator g(7);
  const Shape s{6, 3, 50};
  auto x = rand<float>(s, g);
  auto grad = randn<float>(s, g);
  auto zero_row = grad.select(0, 3);  // example 3 has a zero gradient: it must not move
  fill_(zero_row, 0.0f);
  auto delta = rand<float>(s, g, -0.05, 0.05);
  attacks::Budget bud;
  bud.norm = c.norm;
  bud.eps = c.eps;
  bud.lo = c.lo;
  bud.hi = c.hi;
  std::vector<char> active{1, 0, 1, 1, 0, 1};
  auto dg = delta.to<Cuda>();
  attacks::pgd_step_(delta, grad, x, bud, c.step, with_mask ? &active : nullptr);
  attacks::pgd_step_(dg, grad.to<Cuda>(), x.to<Cuda>(), bud, c.step, with_mask ? &active : nullptr);
  EXPECT_TRUE(close_to_cpu(dg, delta, 1e-5, 1e-7)) << "norm " << attacks::norm_name(c.norm) << ", mask " << with_mask;
}

TEST(CudaPgd, FusedUpdateMatchesTheCpuSteps) {
  AVGRAD_REQUIRE_GPU();
  const double inf = std::numeric_limits<double>::infinity();
  for (bool mask : {false, true}) {
    check_pgd({attacks::Norm::linf, 0.03, 0.01, 0.0, 1.0}, mask);
    check_pgd({attacks::Norm::linf, 0.5, 0.2, -inf, inf}, mask);
    check_pgd({attacks::Norm::l2, 0.5, 0.1, 0.0, 1.0}, mask);
    check_pgd({attacks::Norm::l2, 0.05, 1.0, -inf, inf}, mask);
    check_pgd({attacks::Norm::l1, 2.0, 0.5, 0.0, 1.0}, mask);
  }
}

TEST(CudaPgd, ZeroGradientDoesNotMoveAndShapesAreChecked) {
  AVGRAD_REQUIRE_GPU();
  auto x = full<float, Cuda>({2, 8}, 0.5f);
  auto d = zeros<float, Cuda>({2, 8});
  attacks::Budget bud;
  bud.norm = attacks::Norm::l2;
  bud.eps = 1.0;
  attacks::pgd_step_(d, zeros<float, Cuda>({2, 8}), x, bud, 0.3);
  EXPECT_TRUE(close_to_cpu(d, zeros<float>({2, 8}), 0, 0));
  auto wrong = zeros<float, Cuda>({2, 9});
  EXPECT_THROW(attacks::pgd_step_(d, wrong, x, bud, 0.3), Error);
  std::vector<char> short_mask{1};
  EXPECT_THROW(attacks::pgd_step_(d, zeros<float, Cuda>({2, 8}), x, bud, 0.3, &short_mask), Error);
}

}  // namespace
