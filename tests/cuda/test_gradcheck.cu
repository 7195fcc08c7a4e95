// Gradcheck in double on the GPU for a sample of ops: the device's own backward against central
// differences of the device's forward (not against the CPU), so a GPU backward that agrees with
// a wrong GPU forward is caught too.
#include "cuda_twin.cuh"

using namespace avgrad;

namespace {

using Fn = std::function<Tensor<double, Cuda>(const std::vector<Tensor<double, Cuda>>&)>;

Tensor<double, Cuda> leaf(const Shape& s, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  Generator g(seed);
  auto x = rand<double, Cuda>(s, g, lo, hi);
  x.requires_grad_();
  return x;
}

void expect_gradcheck(const char* what, const Fn& f, const std::vector<Tensor<double, Cuda>>& in) {
  const auto r = gradcheck<double, Cuda>(f, in, {.max_elements = 48});
  EXPECT_TRUE(r.ok) << what << ":\n" << r.report;
  EXPECT_GT(r.checked, 0) << what;
}

TEST(CudaGradcheck, ElementwiseReductionsAndLinearAlgebra) {
  AVGRAD_REQUIRE_GPU();
  expect_gradcheck("exp · x / (1 + y²), broadcast",
                   [](const auto& v) { return exp(v[0]) * v[0] / (1.0 + v[1] * v[1]); },
                   {leaf({3, 4}, 1), leaf({4}, 2)});
  expect_gradcheck("sum and mean over axes", [](const auto& v) { return sum(v[0], {1}) + mean(v[0] * v[0], {1}); },
                   {leaf({5, 6}, 3)});
  expect_gradcheck("batched matmul", [](const auto& v) { return matmul(v[0], v[1]); },
                   {leaf({2, 3, 4}, 4), leaf({4, 5}, 5)});
  expect_gradcheck("log_softmax", [](const auto& v) { return log_softmax(v[0], 1); }, {leaf({4, 7}, 6, -3, 3)});
}

TEST(CudaGradcheck, NormalisationConvolutionAndAttention) {
  AVGRAD_REQUIRE_GPU();
  expect_gradcheck("layer_norm", [](const auto& v) { return layer_norm(v[0], {6}, v[1], v[2]); },
                   {leaf({3, 6}, 7), leaf({6}, 8), leaf({6}, 9)});
  expect_gradcheck("batch_norm, training",
                   [](const auto& v) {
                     using Tn = std::decay_t<decltype(v[0])>;
                     return batch_norm(v[0], v[1], v[2], Tn(), Tn(), true);
                   },
                   {leaf({4, 3, 5}, 10), leaf({3}, 11), leaf({3}, 12)});
  expect_gradcheck("conv2d, stride 2, padding 1, bias", [](const auto& v) { return conv2d(v[0], v[1], v[2], 2, 1); },
                   {leaf({2, 2, 5, 5}, 13), leaf({3, 2, 3, 3}, 14), leaf({3}, 15)});
  expect_gradcheck("avg_pool2d", [](const auto& v) { return avg_pool2d(v[0], 2, 1, 1); }, {leaf({1, 2, 4, 4}, 16)});
  expect_gradcheck("attention", [](const auto& v) { return scaled_dot_product_attention(v[0], v[1], v[2]); },
                   {leaf({2, 3, 4}, 17), leaf({2, 5, 4}, 18), leaf({2, 5, 3}, 19)});
  expect_gradcheck("cross entropy",
                   [](const auto& v) {
                     const auto y = from_vector<std::int64_t>({0, 2, 1}).template to<Cuda>();
                     return cross_entropy(v[0], y);
                   },
                   {leaf({3, 4}, 20)});
}

}  // namespace
