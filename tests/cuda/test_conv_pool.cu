// Convolutions through cuDNN (1-d, 2-d, 3-d, grouped, strided, dilated, transposed, with
// and without bias; heuristic and benchmarked algorithms) and through the im2col fallback,
// and the pooling kernels (max with its argmax routing, average with both divisors,
// adaptive bins, ceil_mode) against the CPU twin, forward and backward.
#include "cuda_twin.cuh"

using namespace avgrad;
using avgrad::testing::close_to_cpu;

namespace {

using avgrad::testing::leaf;
template <class F> void twin(const std::string& what, const std::vector<Tensor<float, Cpu>>& in, F f,
                             double rtol = 1e-4, double atol = 1e-4) {
  avgrad::testing::twin_of(what, in, f, rtol, atol);
}

TEST(CudaConv, Conv1d2d3dForwardAndBackward) {
  AVGRAD_REQUIRE_GPU();
  twin("conv1d, stride 2, padding 1, bias", {leaf({3, 4, 20}, 1), leaf({6, 4, 5}, 2), leaf({6}, 3)},
       [](const auto& v) { return conv1d(v[0], v[1], v[2], 2, 1); });
  twin("conv2d 3x3, padding 1", {leaf({2, 3, 9, 11}, 4), leaf({5, 3, 3, 3}, 5), leaf({5}, 6)},
       [](const auto& v) { return conv2d(v[0], v[1], v[2], 1, 1); });
  twin("conv2d, per-dim stride, dilation 2, groups 2, no bias", {leaf({2, 4, 12, 10}, 7), leaf({6, 2, 3, 2}, 8)},
       [](const auto& v) {
         using Tn = std::decay_t<decltype(v[0])>;
         return conv2d(v[0], v[1], Tn(), {2, 1}, {1, 0}, 2, 2);
       });
  twin("conv2d 1x1 (pointwise)", {leaf({2, 8, 5, 5}, 9), leaf({4, 8, 1, 1}, 10)}, [](const auto& v) {
    using Tn = std::decay_t<decltype(v[0])>;
    return conv2d(v[0], v[1], Tn());
  });
  twin("conv3d 3x3x3, stride (1, 2, 2), padding 1",
       {leaf({2, 3, 5, 8, 8}, 11), leaf({4, 3, 3, 3, 3}, 12), leaf({4}, 13)}, [](const auto& v) {
         return conv3d(v[0], v[1], v[2], {1, 2, 2}, 1);
       });
  twin("depthwise conv2d", {leaf({2, 6, 7, 7}, 14), leaf({6, 1, 3, 3}, 15)}, [](const auto& v) {
    using Tn = std::decay_t<decltype(v[0])>;
    return conv2d(v[0], v[1], Tn(), 1, 1, 1, 6);
  });
  twin("strided (non-contiguous) input", {leaf({2, 3, 9, 11}, 16), leaf({5, 3, 3, 3}, 17)}, [](const auto& v) {
    using Tn = std::decay_t<decltype(v[0])>;
    return conv2d(v[0].transpose(2, 3), v[1], Tn(), 1, 1);
  });
}

TEST(CudaConv, TransposedConvolutions) {
  AVGRAD_REQUIRE_GPU();
  twin("conv_transpose2d, stride 2, output_padding 1, bias",
       {leaf({2, 4, 5, 6}, 20), leaf({4, 3, 3, 3}, 21), leaf({3}, 22)},
       [](const auto& v) { return conv_transpose2d(v[0], v[1], v[2], 2, 1, 1); });
  twin("conv_transpose1d, groups 2", {leaf({2, 4, 9}, 23), leaf({4, 3, 4}, 24)}, [](const auto& v) {
    using Tn = std::decay_t<decltype(v[0])>;
    return conv_transpose1d(v[0], v[1], Tn(), 2, 0, 0, 2);
  });
  twin("conv_transpose3d", {leaf({1, 2, 3, 4, 4}, 25), leaf({2, 3, 2, 2, 2}, 26)}, [](const auto& v) {
    using Tn = std::decay_t<decltype(v[0])>;
    return conv_transpose3d(v[0], v[1], Tn(), 2);
  });
}

TEST(CudaConv, BenchmarkModeAndDoubleAgree) {
  AVGRAD_REQUIRE_GPU();
  cuda::set_conv_benchmark(true);
  twin("benchmarked algorithms", {leaf({4, 8, 16, 16}, 30), leaf({16, 8, 3, 3}, 31), leaf({16}, 32)},
       [](const auto& v) { return conv2d(v[0], v[1], v[2], 1, 1); });
  cuda::set_conv_benchmark(false);
  Generator g(33);
  auto x = randn<double>({2, 3, 7, 7}, g), w = randn<double>({4, 3, 3, 3}, g);
  x.requires_grad_();
  w.requires_grad_();
  avgrad::testing::twin_of<double>(
      "double precision", {x, w},
      [](const auto& v) {
        using Tn = std::decay_t<decltype(v[0])>;
        return conv2d(v[0], v[1], Tn(), 2, 1);
      },
      1e-12, 1e-12);
}

TEST(CudaConv, Im2colFallbackMatchesTheCpu) {
  AVGRAD_REQUIRE_GPU();
  cuda::set_conv_path(cuda::ConvPath::im2col);
  twin("fallback conv2d, groups 2, stride (2, 1), dilation 2, bias",
       {leaf({2, 4, 12, 10}, 50), leaf({6, 2, 3, 2}, 51), leaf({6}, 52)}, [](const auto& v) {
         return conv2d(v[0], v[1], v[2], {2, 1}, {1, 0}, 2, 2);
       });
  twin("fallback conv3d", {leaf({2, 3, 5, 8, 8}, 53), leaf({4, 3, 3, 3, 3}, 54)}, [](const auto& v) {
    using Tn = std::decay_t<decltype(v[0])>;
    return conv3d(v[0], v[1], Tn(), {1, 2, 2}, 1);
  });
  twin("fallback conv_transpose2d", {leaf({2, 4, 5, 6}, 55), leaf({4, 3, 3, 3}, 56), leaf({3}, 57)},
       [](const auto& v) { return conv_transpose2d(v[0], v[1], v[2], 2, 1, 1); });
  twin("fallback conv1d", {leaf({3, 4, 20}, 58), leaf({6, 4, 5}, 59)}, [](const auto& v) {
    using Tn = std::decay_t<decltype(v[0])>;
    return conv1d(v[0], v[1], Tn(), 2, 1);
  });
  cuda::set_conv_path(cuda::ConvPath::cudnn);
}

TEST(CudaPool, MaxAndAveragePoolsForwardAndBackward) {
  AVGRAD_REQUIRE_GPU();
  auto x2 = leaf({2, 3, 9, 10}, 40);
  twin("max_pool2d 2x2", {x2}, [](const auto& v) { return max_pool2d(v[0], 2); });
  twin("max_pool2d 3x3, stride 2, padding 1, ceil_mode", {x2},
       [](const auto& v) { return max_pool2d(v[0], 3, 2, 1, 1, true); });
  twin("max_pool2d, dilation 2", {x2}, [](const auto& v) { return max_pool2d(v[0], 2, 1, 0, 2); });
  twin("max_pool1d", {leaf({2, 3, 17}, 41)}, [](const auto& v) { return max_pool1d(v[0], 3, 2); });
  twin("max_pool3d (1, 2, 2)", {leaf({2, 2, 4, 6, 6}, 42)}, [](const auto& v) { return max_pool3d(v[0], {1, 2, 2}); });
  twin("avg_pool2d 3x3, stride 2, padding 1 (count_include_pad)", {x2},
       [](const auto& v) { return avg_pool2d(v[0], 3, 2, 1); });
  twin("avg_pool2d, padding excluded, ceil_mode", {x2},
       [](const auto& v) { return avg_pool2d(v[0], 3, 2, 1, true, false); });
  twin("avg_pool3d", {leaf({1, 2, 4, 5, 6}, 43)}, [](const auto& v) { return avg_pool3d(v[0], 2); });
  twin("adaptive_avg_pool2d to (4, 3)", {x2}, [](const auto& v) { return adaptive_avg_pool2d(v[0], {4, 3}); });
  twin("adaptive_max_pool2d to (2, 4)", {x2}, [](const auto& v) { return adaptive_max_pool2d(v[0], {2, 4}); });
  twin("max_pool2d of a transposed view", {x2}, [](const auto& v) { return max_pool2d(v[0].transpose(2, 3), 2); });
}

TEST(CudaPool, TiesAndNanFollowTheCpuRule) {
  AVGRAD_REQUIRE_GPU();
  auto x = from_vector<float>({1, 3, 3, 2, std::nanf(""), 0, 5, 5}, {1, 1, 2, 4});
  x.requires_grad_();
  twin("ties go to the first maximum, NaN wins", {x}, [](const auto& v) { return max_pool2d(v[0], {1, 2}); });
}

}  // namespace
