// The cross-entropy that devices without a fused kernel run (log_softmax, a target matrix
// and a sum, differentiated by autograd) against the fused CPU kernels, on the CPU: values
// and gradients for every option — weights, label smoothing, ignore_index, reductions,
// spatial positions, unbatched logits, soft targets — and the same target errors.
#include <gtest/gtest.h>

#include "avgrad/autograd/engine.hpp"
#include "avgrad/ops/loss.hpp"

using namespace avgrad;

namespace {

Tensor<double> values(const Shape& s, std::uint64_t seed, double scale = 2.0) {
  Generator g(seed);
  return randn<double>(s, g, 0.0, scale);
}

void expect_same(const Tensor<double>& a, const Tensor<double>& b, const std::string& what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  auto x = a.to_vector(), y = b.to_vector();
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i]) && std::isnan(y[i])) continue;
    ASSERT_NEAR(x[i], y[i], 1e-12 * (1 + std::abs(y[i]))) << what << " at " << i;
  }
}

/// Fused and composed losses and their logits' gradients for one set of options.
void compare_index(const Shape& logits_shape, const std::vector<std::int64_t>& y, const Shape& y_shape,
                   CrossEntropyOptions<double> opt, const std::string& what) {
  SCOPED_TRACE(what);
  auto x1 = values(logits_shape, 1);
  x1.requires_grad_();
  auto x2 = x1.detach().clone();
  x2.requires_grad_();
  auto target = from_vector<std::int64_t>(y, y_shape);
  auto fused = cross_entropy(x1, target, opt);
  auto composed = detail::ce_index_by_ops(x2, target, detail::class_layout(x2.shape(), "test"), opt);
  expect_same(composed.detach(), fused.detach(), "loss");
  auto seed = values(fused.shape(), 2);
  fused.backward(seed);
  composed.backward(seed);
  expect_same(x2.grad(), x1.grad(), "gradient");
}

TEST(CrossEntropyByOps, IndexTargetsMatchTheFusedKernel) {
  const std::vector<std::int64_t> y{2, 0, 4, 1, 4, 3};
  compare_index({6, 5}, y, {6}, {}, "plain mean");
  compare_index({6, 5}, y, {6}, {.reduction = Reduction::sum}, "sum");
  compare_index({6, 5}, y, {6}, {.reduction = Reduction::none}, "none");
  compare_index({6, 5}, y, {6}, {.label_smoothing = 0.2}, "smoothing");
  auto w = from_vector<double>({0.5, 2.0, 1.0, 0.1, 3.0});
  compare_index({6, 5}, y, {6}, {.weight = w, .label_smoothing = 0.1}, "weights and smoothing");
  compare_index({6, 5}, {2, -100, 4, -100, 4, 3}, {6}, {.weight = w}, "ignored positions");
  compare_index({6, 5}, {1, 1, 1, 1, 1, 1}, {6}, {.ignore_index = 1}, "all ignored: NaN mean");
  compare_index({2, 5, 3}, y, {2, 3}, {.reduction = Reduction::none, .label_smoothing = 0.3}, "spatial positions");
  compare_index({5}, {3}, {}, {}, "unbatched");
}

TEST(CrossEntropyByOps, SoftTargetsMatchTheFusedKernel) {
  for (double eps : {0.0, 0.25}) {
    for (bool weighted : {false, true}) {
      CrossEntropyOptions<double> opt{.label_smoothing = eps};
      if (weighted) opt.weight = from_vector<double>({1.0, 0.5, 2.0, 0.25});
      SCOPED_TRACE("eps " + std::to_string(eps) + (weighted ? ", weighted" : ""));
      auto x1 = values({3, 4, 2}, 3);
      x1.requires_grad_();
      auto t1 = softmax(values({3, 4, 2}, 4), 1);
      t1.requires_grad_();
      auto x2 = x1.detach().clone(), t2 = t1.detach().clone();
      x2.requires_grad_();
      t2.requires_grad_();
      auto fused = cross_entropy(x1, t1, opt);
      auto composed = detail::ce_soft_by_ops(x2, t2, detail::class_layout(x2.shape(), "test"), opt);
      expect_same(composed.detach(), fused.detach(), "loss");
      fused.backward();
      composed.backward();
      expect_same(x2.grad(), x1.grad(), "logits' gradient");
      expect_same(t2.grad(), t1.grad(), "target's gradient");
    }
  }
}

TEST(CrossEntropyByOps, BadTargetsAreNamedAsByTheKernel) {
  auto x = values({3, 4}, 5);
  auto y = from_vector<std::int64_t>({0, 7, 1});
  try {
    (void)detail::ce_index_by_ops(x, y, detail::class_layout(x.shape(), "test"), CrossEntropyOptions<double>{});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("target value 7 at position"), std::string::npos) << e.what();
  }
}

}  // namespace
