// Batch, layer and group normalisation (training and eval, running statistics, with
// and without affine parameters), dropout (the very mask the CPU draws) and scaled
// dot-product attention (masks, causal, dropout) against the CPU twin.
#include "cuda_twin.cuh"

using namespace avgrad;
using avgrad::testing::close_to_cpu;
using avgrad::testing::expect_twin;

namespace {

using avgrad::testing::leaf;
template <class F> void twin(const std::string& what, const std::vector<Tensor<float, Cpu>>& in, F f,
                             double rtol = 2e-5, double atol = 2e-5) {
  avgrad::testing::twin_of(what, in, f, rtol, atol);
}

TEST(CudaNorm, BatchNormTrainingAndEvalForwardAndBackward) {
  AVGRAD_REQUIRE_GPU();
  auto x = leaf({6, 5, 4, 3}, 1, 2.0, 3.0);  // a mean far from 0 exercises the variance's precision
  auto w = leaf({5}, 2), b = leaf({5}, 3);
  twin("training, affine", {x, w, b}, [](const auto& v) {
    using Tn = std::decay_t<decltype(v[0])>;
    return batch_norm(v[0], v[1], v[2], Tn(), Tn(), true);
  });
  twin("training, no affine, rank 2", {leaf({9, 5}, 4)}, [](const auto& v) {
    using Tn = std::decay_t<decltype(v[0])>;
    return batch_norm(v[0], Tn(), Tn(), Tn(), Tn(), true);
  });
  Generator g(5);
  auto rm = randn<float>({5}, g), rv = rand<float>({5}, g, 0.5, 2.0);
  twin("eval with running statistics", {x, w, b}, [&](const auto& v) {
    using Tn = std::decay_t<decltype(v[0])>;
    using D = typename Tn::device_type;
    return batch_norm(v[0], v[1], v[2], Tn(rm.to<D>()), Tn(rv.to<D>()), false);
  });
  twin("strided input", {x}, [](const auto& v) {
    using Tn = std::decay_t<decltype(v[0])>;
    return batch_norm(v[0].transpose(2, 3), Tn(), Tn(), Tn(), Tn(), true);
  });
}

TEST(CudaNorm, BatchNormUpdatesRunningStatisticsAsTheCpu) {
  AVGRAD_REQUIRE_GPU();
  Generator g(6);
  auto x = randn<float>({4, 3, 7}, g, 1.0, 3.0);
  auto rm = zeros<float>({3}), rv = ones<float>({3});
  auto rm_g = rm.to<Cuda>(), rv_g = rv.to<Cuda>();
  for (int step = 0; step < 3; ++step) {
    batch_norm(x, Tensor<float>(), Tensor<float>(), rm, rv, true, 0.2);
    batch_norm(x.to<Cuda>(), Tensor<float, Cuda>(), Tensor<float, Cuda>(), rm_g, rv_g, true, 0.2);
  }
  EXPECT_TRUE(close_to_cpu(rm_g, rm, 1e-5, 1e-6));
  EXPECT_TRUE(close_to_cpu(rv_g, rv, 1e-5, 1e-6));
}

TEST(CudaNorm, LayerAndGroupNormForwardAndBackward) {
  AVGRAD_REQUIRE_GPU();
  auto x = leaf({4, 6, 10}, 7, 1.5, -2.0);
  auto w1 = leaf({10}, 8), b1 = leaf({10}, 9), w2 = leaf({6, 10}, 10);
  twin("layer_norm over the last dim", {x, w1, b1}, [](const auto& v) { return layer_norm(v[0], {10}, v[1], v[2]); });
  twin("layer_norm over two dims, weight only", {x, w2}, [](const auto& v) { return layer_norm(v[0], {6, 10}, v[1]); });
  twin("layer_norm of a transposed view", {x}, [](const auto& v) { return layer_norm(v[0].transpose(0, 1), {10}); });
  twin("layer_norm of long rows", {leaf({3, 3000}, 11)}, [](const auto& v) { return layer_norm(v[0], {3000}); });
  auto img = leaf({3, 6, 5, 4}, 12), wc = leaf({6}, 13), bc = leaf({6}, 14);
  for (std::int64_t groups : {1, 2, 3, 6})
    twin("group_norm, groups " + std::to_string(groups), {img, wc, bc},
         [groups](const auto& v) { return group_norm(v[0], groups, v[1], v[2]); });
}

TEST(CudaDropout, DrawsTheCpuMaskAndItsBackward) {
  AVGRAD_REQUIRE_GPU();
  auto x = leaf({33, 65}, 15);
  for (double p : {0.1, 0.5, 0.9}) {
    Generator gc(99), gg(99);
    expect_twin<float>(
        "p = " + std::to_string(p), {x}, [&](const auto& v) { return dropout(v[0], p, true, gc); },
        [&](const auto& v) { return dropout(v[0], p, true, gg); }, 1e-6, 0.0);
    EXPECT_EQ(gc.offset(), gg.offset()) << "both twins advance their generator alike";
  }
  Generator gc(3), gg(3);
  expect_twin<float>(
      "strided input", {x}, [&](const auto& v) { return dropout(v[0].transpose(0, 1), 0.3, true, gc); },
      [&](const auto& v) { return dropout(v[0].transpose(0, 1), 0.3, true, gg); }, 1e-6, 0.0);
}

TEST(CudaAttention, MasksCausalAndDropoutMatchTheCpu) {
  AVGRAD_REQUIRE_GPU();
  auto q = leaf({2, 3, 5, 8}, 20), k = leaf({2, 3, 7, 8}, 21), v = leaf({2, 3, 7, 4}, 22);
  twin("plain", {q, k, v}, [](const auto& t) { return scaled_dot_product_attention(t[0], t[1], t[2]); });
  auto qs = leaf({2, 6, 8}, 23), ks = leaf({2, 6, 8}, 24), vs = leaf({2, 6, 4}, 25);
  twin("causal", {qs, ks, vs}, [](const auto& t) {
    using Tn = std::decay_t<decltype(t[0])>;
    AttentionOptions<float, typename Tn::device_type> o;
    o.causal = true;
    return scaled_dot_product_attention(t[0], t[1], t[2], o);
  });
  // key padding: the last two keys of batch 1 masked, and one query row with no key at all
  auto keep = Tensor<bool, Cpu>::empty({2, 1, 1, 7});
  for (int i = 0; i < 14; ++i) keep.data()[i] = !(i >= 12);
  twin("key padding mask", {q, k, v}, [&](const auto& t) {
    using Tn = std::decay_t<decltype(t[0])>;
    using D = typename Tn::device_type;
    AttentionOptions<float, D> o;
    o.mask = keep.to<D>();
    return scaled_dot_product_attention(t[0], t[1], t[2], o);
  });
  auto none = zeros<bool>({2, 1, 1, 7});
  twin("rows with no key give zeros", {q, k, v}, [&](const auto& t) {
    using Tn = std::decay_t<decltype(t[0])>;
    using D = typename Tn::device_type;
    AttentionOptions<float, D> o;
    o.mask = none.to<D>();
    return scaled_dot_product_attention(t[0], t[1], t[2], o);
  });
  Generator gc(5), gg(5);
  expect_twin<float>(
      "attention dropout", {q, k, v},
      [&](const auto& t) {
        AttentionOptions<float, Cpu> o{.dropout_p = 0.25, .training = true, .generator = &gc};
        return scaled_dot_product_attention(t[0], t[1], t[2], o);
      },
      [&](const auto& t) {
        AttentionOptions<float, Cuda> o{.dropout_p = 0.25, .training = true, .generator = &gg};
        return scaled_dot_product_attention(t[0], t[1], t[2], o);
      },
      2e-5, 2e-5);
}

}  // namespace
