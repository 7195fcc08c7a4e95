// matmul, bmm and linear on cuBLAS against the CPU twin, forward and backward: plain,
// transposed views read in place, broadcast batches, batch reductions, bias, and the
// double-precision path; TF32 stays off unless asked for.
#include "cuda_twin.cuh"

using namespace avgrad;
using avgrad::testing::close_to_cpu;

namespace {

using avgrad::testing::leaf;

template <class T, class F>
void twin(const std::string& what, const std::vector<Tensor<T, Cpu>>& in, F f, double rtol, double atol) {
  avgrad::testing::twin_of<T>(what, in, f, rtol, atol);
}

TEST(CudaLinalg, MatmulShapesForwardAndBackward) {
  AVGRAD_REQUIRE_GPU();
  const double rt = 1e-5, at = 1e-5;
  auto a = leaf<float>({37, 19}, 1), b = leaf<float>({19, 23}, 2);
  twin<float>(
      "matrix", {a, b}, [](const auto& v) { return matmul(v[0], v[1]); }, rt, at);
  auto bt = leaf<float>({23, 19}, 3);
  twin<float>(
      "transposed view", {a, bt}, [](const auto& v) { return matmul(v[0], v[1].t()); }, rt, at);
  auto v1 = leaf<float>({19}, 4);
  twin<float>(
      "matrix-vector", {a, v1}, [](const auto& v) { return matmul(v[0], v[1]); }, rt, at);
  twin<float>(
      "vector-vector", {v1, v1}, [](const auto& v) { return matmul(v[0], v[1]); }, rt, at);
  auto ba = leaf<float>({5, 1, 7, 9}, 5), bb = leaf<float>({3, 9, 4}, 6);
  twin<float>(
      "broadcast batch", {ba, bb}, [](const auto& v) { return matmul(v[0], v[1]); }, rt, at);
  auto x3 = leaf<float>({6, 8, 9}, 7), w = leaf<float>({9, 5}, 8);
  twin<float>(
      "batch folded into rows", {x3, w}, [](const auto& v) { return matmul(v[0], v[1]); }, rt, at);
  auto p = leaf<float>({4, 6, 8}, 9), q = leaf<float>({4, 8, 3}, 10);
  twin<float>(
      "bmm", {p, q}, [](const auto& v) { return bmm(v[0], v[1]); }, rt, at);
  twin<float>(
      "bmm of permuted", {p, q}, [](const auto& v) { return bmm(v[1].transpose(1, 2), v[0].transpose(1, 2)); }, rt, at);
}

TEST(CudaLinalg, LinearWithAndWithoutBias) {
  AVGRAD_REQUIRE_GPU();
  auto x = leaf<float>({2, 7, 33}, 11), w = leaf<float>({17, 33}, 12), b = leaf<float>({17}, 13);
  twin<float>(
      "linear + bias", {x, w, b}, [](const auto& v) { return linear(v[0], v[1], v[2]); }, 1e-5, 1e-5);
  twin<float>(
      "linear", {x, w}, [](const auto& v) { return linear(v[0], v[1]); }, 1e-5, 1e-5);
  twin<float>(
      "linear of a transposed input", {x, w}, [](const auto& v) { return linear(v[0].transpose(0, 1), v[1]); }, 1e-5,
      1e-5);
}

TEST(CudaLinalg, DoublePrecision) {
  AVGRAD_REQUIRE_GPU();
  auto a = leaf<double>({31, 29}, 14), b = leaf<double>({29, 3}, 15);
  twin<double>(
      "dgemm", {a, b}, [](const auto& v) { return matmul(v[0], v[1]); }, 1e-12, 1e-12);
}

TEST(CudaLinalg, Tf32IsOptIn) {
  AVGRAD_REQUIRE_GPU();
  EXPECT_FALSE(cuda::allow_tf32());
  Generator g(16);
  auto a = randn<float>({256, 256}, g), b = randn<float>({256, 256}, g);
  auto ref = matmul(a, b);
  EXPECT_TRUE(close_to_cpu(matmul(a.to<Cuda>(), b.to<Cuda>()), ref, 1e-5, 1e-4)) << "FP32 must be full precision";
  cuda::set_allow_tf32(true);
  auto fast = matmul(a.to<Cuda>(), b.to<Cuda>());
  cuda::set_allow_tf32(false);
  EXPECT_TRUE(close_to_cpu(fast, ref, 1e-2, 1e-1)) << "TF32 keeps about 3 decimal digits";
}

TEST(CudaLinalg, ShapeErrorsAreClear) {
  AVGRAD_REQUIRE_GPU();
  auto a = zeros<float, Cuda>({3, 4}), b = zeros<float, Cuda>({5, 6});
  try {
    (void)matmul(a, b);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("inner dims differ"), std::string::npos) << e.what();
  }
}

}  // namespace
