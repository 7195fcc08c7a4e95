// Tensor<T, Cuda> against its CPU twin: transfers, factories (the same Philox stream),
// the caching allocator, unary/binary/broadcast ops and reductions, forward and backward.
// Compiled by nvcc only; every test skips, saying so, when no GPU is present.
#include "cuda_twin.cuh"

using namespace avgrad;
using avgrad::testing::close_to_cpu;

namespace {

using avgrad::testing::leaf;

/// The same expression on both devices: `F` is a generic lambda over the input vector.
template <class F> void twin(const std::string& what, const std::vector<Tensor<float, Cpu>>& in, F f,
                             double rtol = 1e-5, double atol = 1e-6) {
  avgrad::testing::twin_of(what, in, f, rtol, atol);
}

TEST(CudaTensor, RoundTripKeepsValuesShapesAndDtypes) {
  AVGRAD_REQUIRE_GPU();
  Generator g(1);
  auto x = randn<float>({3, 4, 5}, g);
  EXPECT_TRUE(close_to_cpu(x.to<Cuda>(), x, 0, 0));
  auto view = x.permute({2, 0, 1}).slice(0, 1, 5, 2);  // non-contiguous, offset
  EXPECT_TRUE(close_to_cpu(view.to<Cuda>(), view, 0, 0));
  auto labels = from_vector<std::int64_t>({3, 1, 4, 1, 5});
  EXPECT_EQ(labels.to<Cuda>().to<Cpu>().to_vector(), labels.to_vector());
  auto d = from_vector<double>({1e-300, 2.5, -7.0});
  EXPECT_EQ(d.to<Cuda>().to<Cpu>().to_vector(), d.to_vector());
  auto empty_t = empty<float>({0, 3});
  EXPECT_EQ(empty_t.to<Cuda>().shape(), (Shape{0, 3}));
  EXPECT_TRUE(x.to<Cpu>().is_same(x)) << "to<Cpu>() of a host tensor is the tensor itself";
}

TEST(CudaTensor, MovingALeafKeepsRequiresGradAndANonLeafIsRefused) {
  AVGRAD_REQUIRE_GPU();
  auto w = leaf({4}, 2);
  auto wg = w.to<Cuda>();
  EXPECT_TRUE(wg.requires_grad());
  EXPECT_TRUE(wg.is_leaf());
  auto y = w * w;
  try {
    (void)y.to<Cuda>();
    FAIL() << "moving a non-leaf must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("non-leaf"), std::string::npos) << e.what();
  }
}

TEST(CudaTensor, FactoriesMatchTheCpuStream) {
  AVGRAD_REQUIRE_GPU();
  EXPECT_TRUE(close_to_cpu(zeros<float, Cuda>({7, 3}), zeros<float>({7, 3}), 0, 0));
  EXPECT_TRUE(close_to_cpu(full<float, Cuda>({1000}, 2.5f), full<float>({1000}, 2.5f), 0, 0));
  Generator a(42), b(42);
  a.advance(5);
  b.advance(5);
  EXPECT_TRUE(close_to_cpu(rand<float, Cuda>({513}, a, -1, 3), rand<float>({513}, b, -1, 3), 0, 0));
  EXPECT_TRUE(close_to_cpu(randn<float, Cuda>({257, 3}, a), randn<float>({257, 3}, b), 1e-6, 1e-6));
  EXPECT_EQ(a.offset(), b.offset()) << "both devices advance the generator alike";
  EXPECT_TRUE(close_to_cpu(arange<float, Cuda>(2, 9, 0.5), arange<float>(2, 9, 0.5), 0, 0));
  EXPECT_TRUE(close_to_cpu(eye<float, Cuda>(4, 6), eye<float>(4, 6), 0, 0));
}

TEST(CudaTensor, PoisonExposesUnwrittenMemory) {
  AVGRAD_REQUIRE_GPU();
  auto t = empty<float, Cuda>({64}).to<Cpu>().to_vector();
  for (float v : t) ASSERT_TRUE(std::isnan(v)) << "poisoning is on in the CUDA tests";
}

TEST(CudaTensor, AllocatorReusesBlocksInASteadyLoop) {
  AVGRAD_REQUIRE_GPU();
  auto x = randn<float, Cuda>({256, 256});
  for (int i = 0; i < 3; ++i) (void)(exp(x) + x);  // warm the cache
  cudaDeviceSynchronize();
  const auto before = cuda::memory_stats();
  for (int i = 0; i < 20; ++i) (void)(exp(x) + x);
  const auto after = cuda::memory_stats();
  EXPECT_EQ(after.system_allocations, before.system_allocations) << "a steady loop must be served from the cache";
  EXPECT_GT(after.allocations, before.allocations);
  EXPECT_EQ(after.in_use, before.in_use);
  cuda::empty_cache();
  EXPECT_EQ(cuda::memory_stats().reserved, cuda::memory_stats().in_use);
}

TEST(CudaTensor, BlocksUsedOnASecondStreamWaitForIt) {
  AVGRAD_REQUIRE_GPU();
  auto side = cuda::Stream::create();
  void* first = nullptr;
  {
    auto x = full<float, Cuda>({1 << 20}, 1.0f);
    first = x.data();
    {
      cuda::StreamGuard on(side);
      auto y = x * x;  // reads x on the side stream
      x.storage()->record_stream(side.get());
    }
  }
  side.synchronize();
  auto z = empty<float, Cuda>({1 << 20});
  EXPECT_EQ(static_cast<void*>(z.data()), first) << "once the side stream is done the block is reused";
}

TEST(CudaOps, UnaryForwardAndBackward) {
  AVGRAD_REQUIRE_GPU();
  auto x = leaf({33, 17}, 3, 2.0);
  twin("exp", {x}, [](const auto& v) { return exp(v[0]); });
  twin("tanh", {x}, [](const auto& v) { return tanh(v[0]); });
  twin("sigmoid", {x}, [](const auto& v) { return sigmoid(v[0]); });
  twin("relu", {x}, [](const auto& v) { return relu(v[0]); });
  twin("gelu", {x}, [](const auto& v) { return gelu(v[0]); });
  twin("silu", {x}, [](const auto& v) { return silu(v[0]); });
  twin("abs", {x}, [](const auto& v) { return abs(v[0]); });
  twin("square", {x}, [](const auto& v) { return square(v[0]); });
  twin("clamp", {x}, [](const auto& v) { return clamp(v[0], -0.5, 1.0); });
  auto pos = leaf({50}, 4);
  twin("log(exp)", {pos}, [](const auto& v) { return log(exp(v[0]) + 1.0); });
  twin("sqrt", {pos}, [](const auto& v) { return sqrt(square(v[0]) + 0.1); });
}

TEST(CudaOps, BinaryWithBroadcastingForwardAndBackward) {
  AVGRAD_REQUIRE_GPU();
  auto a = leaf({4, 1, 6}, 5), b = leaf({3, 1}, 6), c = leaf({4, 3, 6}, 7);
  twin("add", {a, b}, [](const auto& v) { return v[0] + v[1]; });
  twin("sub", {a, c}, [](const auto& v) { return v[0] - v[1]; });
  twin("mul", {a, b}, [](const auto& v) { return v[0] * v[1]; });
  twin("div", {c, b}, [](const auto& v) { return v[0] / (square(v[1]) + 1.0); });
  twin("maximum", {a, c}, [](const auto& v) { return maximum(v[0], v[1]); });
  twin("scalar forms", {a}, [](const auto& v) { return 2.0 * v[0] - 1.5; });
  twin("transposed operand", {c}, [](const auto& v) { return v[0].transpose(0, 2) * 3.0; });
}

TEST(CudaOps, ReductionsForwardAndBackward) {
  AVGRAD_REQUIRE_GPU();
  auto x = leaf({6, 70, 9}, 8);
  twin(
      "sum all", {x}, [](const auto& v) { return sum(v[0]); }, 1e-5, 1e-4);
  twin("sum axis 1", {x}, [](const auto& v) { return sum(v[0], {1}); });
  twin("sum axes 0,2 keepdim", {x}, [](const auto& v) { return sum(v[0], {0, 2}, true); });
  twin("mean", {x}, [](const auto& v) { return mean(v[0], {-1}); });
  twin("amax", {x}, [](const auto& v) { return amax(v[0], {1}); });
  twin("amin", {x}, [](const auto& v) { return amin(v[0], {0}); });
  twin("norm", {x}, [](const auto& v) { return norm(v[0], 2.0, {2}); });
  twin("logsumexp", {x}, [](const auto& v) { return logsumexp(v[0], {1}); });
  auto big = leaf({3, 200000}, 9);
  twin(
      "long rows", {big}, [](const auto& v) { return sum(v[0], {1}); }, 1e-5, 1e-3);
  auto many = leaf({50000, 4}, 10);
  twin("short rows", {many}, [](const auto& v) { return mean(v[0], {1}); });
}

TEST(CudaOps, InPlaceUpdates) {
  AVGRAD_REQUIRE_GPU();
  Generator g(11);
  auto x = randn<float>({40, 8}, g), y = randn<float>({8}, g);
  auto xg = x.to<Cuda>(), yg = y.to<Cuda>();
  add_(x, y, 0.5);
  add_(xg, yg, 0.5);
  clamp_(x, -0.3, 0.3);
  clamp_(xg, -0.3, 0.3);
  mul_(x, 2.0);
  mul_(xg, 2.0);
  EXPECT_TRUE(close_to_cpu(xg, x));
  EXPECT_TRUE(all_finite(xg));
  fill_(xg, std::numeric_limits<float>::infinity());
  EXPECT_FALSE(all_finite(xg));
}

}  // namespace
