// matmul, bmm and linear on cuBLAS against the CPU twin, forward and backward: plain,
// transposed views read in place, broadcast batches, batch reductions, bias, and the
// double-precision path; TF32 stays off unless asked for; bfloat16/float16 GEMMs (cublasGemmEx)
// against the CPU's rounding of the operands, and the 16-bit casts bit for bit.
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

TEST(CudaLinalg, SixteenBitCastsMatchTheCpuBitForBit) {
  AVGRAD_REQUIRE_GPU();
  // every bit pattern decodes alike
  auto pb = Tensor<bfloat16>::empty({1 << 16});
  auto ph = Tensor<float16>::empty({1 << 16});
  for (std::uint32_t i = 0; i < (1u << 16); ++i) {
    pb.data()[i] = bfloat16::from_bits(static_cast<std::uint16_t>(i));
    ph.data()[i] = float16::from_bits(static_cast<std::uint16_t>(i));
  }
  EXPECT_TRUE(close_to_cpu(cast<float>(pb.to<Cuda>()), cast<float>(pb), 0, 0)) << "bfloat16 → float";
  EXPECT_TRUE(close_to_cpu(cast<float>(ph.to<Cuda>()), cast<float>(ph), 0, 0)) << "float16 → float";
  // floats of every magnitude (subnormal to overflowing float16) round alike
  Generator g(17);
  const auto x = randn<float>({1 << 15}, g) * exp(randn<float>({1 << 15}, g) * 8.0f);
  const auto b_gpu = cast<bfloat16>(x.to<Cuda>()).to<Cpu>(), b_cpu = cast<bfloat16>(x);
  const auto h_gpu = cast<float16>(x.to<Cuda>()).to<Cpu>(), h_cpu = cast<float16>(x);
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    ASSERT_EQ(b_gpu.data()[i].bits, b_cpu.data()[i].bits) << "bfloat16 of " << x.data()[i];
    ASSERT_EQ(h_gpu.data()[i].bits, h_cpu.data()[i].bits) << "float16 of " << x.data()[i];
  }
}

TEST(CudaLinalg, ReducedPrecisionMatchesTheCpuRounding) {
  AVGRAD_REQUIRE_GPU();
  // Both devices multiply the same rounded operands exactly and accumulate in float: only the
  // order of the sums differs.
  const double rt = 1e-5, at = 1e-5;
  auto a = leaf<float>({37, 64}, 31), b = leaf<float>({64, 23}, 32), bt = leaf<float>({23, 64}, 33);
  auto ba = leaf<float>({5, 1, 7, 40}, 34), bb = leaf<float>({3, 40, 4}, 35);
  auto p = leaf<float>({4, 6, 48}, 36), q = leaf<float>({4, 48, 3}, 37);
  auto x = leaf<float>({2, 7, 33}, 38), w = leaf<float>({17, 33}, 39), bias = leaf<float>({17}, 40);
  for (MatmulPrecision precision : {MatmulPrecision::bfloat16, MatmulPrecision::float16}) {
    SCOPED_TRACE(matmul_precision_name(precision));
    MatmulPrecisionGuard guard(precision);
    twin<float>(
        "matrix", {a, b}, [](const auto& v) { return matmul(v[0], v[1]); }, rt, at);
    twin<float>(
        "transposed view", {a, bt}, [](const auto& v) { return matmul(v[0], v[1].t()); }, rt, at);
    twin<float>(
        "broadcast batch", {ba, bb}, [](const auto& v) { return matmul(v[0], v[1]); }, rt, at);
    twin<float>(
        "bmm (strided batched)", {p, q}, [](const auto& v) { return bmm(v[0], v[1]); }, rt, at);
    twin<float>(
        "linear + bias", {x, w, bias}, [](const auto& v) { return linear(v[0], v[1], v[2]); }, rt, at);
    // and the lowered product is not the float32 one
    const auto exact = matmul(a.detach(), b.detach(), MatmulPrecision::float32);
    const auto lowered = matmul(a.detach().to<Cuda>(), b.detach().to<Cuda>()).to<Cpu>();
    EXPECT_FALSE(close_to_cpu(lowered.to<Cuda>(), exact, 1e-6, 1e-6)) << "the guard lowers the GPU product";
  }
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
