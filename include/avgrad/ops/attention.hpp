// Scaled dot-product attention, softmax(q·kᵀ·scale + mask)·v, with boolean or
// additive masks, a causal option and attention dropout. Composed from recorded
// ops (matmul, where, softmax, dropout), so its backward is theirs; rows whose
// keys are all masked return zeros (not NaN), the useful result for padding.
#pragma once

#include <limits>
#include <optional>

#include "avgrad/ops/dropout.hpp"
#include "avgrad/ops/linalg.hpp"
#include "avgrad/ops/softmax.hpp"

namespace avgrad {

template <Floating T, Device D = Cpu> struct AttentionOptions {
  Tensor<bool, D> mask{};        ///< broadcastable to (…, Lq, Lk); true = may attend
  Tensor<T, D> additive_mask{};  ///< broadcastable to (…, Lq, Lk); added to the scores
  bool causal = false;           ///< query i attends to keys j ≤ i (top-left aligned)
  double dropout_p = 0.0;        ///< attention-weight dropout, applied when training
  bool training = false;
  Generator* generator = nullptr;  ///< dropout stream; the default generator when null
  std::optional<double> scale{};   ///< defaults to 1/√E
};

/// q (…, Lq, E), k (…, Lk, E), v (…, Lk, Ev) → (…, Lq, Ev); batch dims broadcast.
/// Masks broadcast to (…, Lq, Lk). Gradients flow to q, k, v (and the additive mask).
template <Floating T, Device D> Tensor<T, D> scaled_dot_product_attention(const Tensor<T, D>& q, const Tensor<T, D>& k,
                                                                          const Tensor<T, D>& v,
                                                                          const AttentionOptions<T, D>& opt = {}) {
  const char* op = "scaled_dot_product_attention";
  detail::check_defined(q, op);
  detail::check_defined(k, op);
  detail::check_defined(v, op);
  AVGRAD_CHECK(q.dim() >= 2 && k.dim() >= 2 && v.dim() >= 2, op, "q, k, v need rank >= 2, got ", q.shape(), ", ",
               k.shape(), ", ", v.shape());
  AVGRAD_CHECK(q.size(-1) == k.size(-1), op, "q and k differ in width E: ", q.shape(), " vs ", k.shape());
  AVGRAD_CHECK(k.size(-2) == v.size(-2), op, "k and v differ in length Lk: ", k.shape(), " vs ", v.shape());
  AVGRAD_CHECK(opt.dropout_p >= 0.0 && opt.dropout_p <= 1.0, op, "dropout_p ", opt.dropout_p, " outside [0, 1]");
  const std::int64_t Lq = q.size(-2), Lk = k.size(-2);
  const double scale = opt.scale.value_or(1.0 / std::sqrt(static_cast<double>(q.size(-1))));

  auto scores = matmul(q, k.transpose(-2, -1)) * scale;  // (…, Lq, Lk)
  if (opt.additive_mask.defined()) {
    AVGRAD_CHECK(broadcast_shapes(opt.additive_mask.shape(), scores.shape(), op) == scores.shape(), op,
                 "additive mask of shape ", opt.additive_mask.shape(), " does not broadcast to scores ",
                 scores.shape());
    scores = scores + opt.additive_mask;
  }
  Tensor<bool, D> allowed = opt.mask;
  if (allowed.defined())
    AVGRAD_CHECK(broadcast_shapes(allowed.shape(), scores.shape(), op) == scores.shape(), op, "mask of shape ",
                 allowed.shape(), " does not broadcast to scores ", scores.shape());
  if (opt.causal) {
    auto host_tri = Tensor<bool, Cpu>::empty(Shape{Lq, Lk});  // built on the host, moved once
    for (std::int64_t i = 0; i < Lq; ++i)
      for (std::int64_t j = 0; j < Lk; ++j) host_tri.data()[i * Lk + j] = j <= i;
    auto tri = host_tri.template to<D>();
    allowed = allowed.defined() ? logical_and(allowed, tri) : tri;
  }
  Tensor<T, D> weights;
  if (allowed.defined()) {
    auto neg_inf = full<T, D>(Shape{}, -std::numeric_limits<T>::infinity());
    auto zero = zeros<T, D>(Shape{});
    // −inf before the softmax removes masked keys; the second where turns rows
    // with no allowed key (NaN after softmax) into zeros and blocks their gradient.
    weights = where(allowed, softmax(where(allowed, scores, neg_inf), -1), zero);
  } else {
    weights = softmax(scores, -1);
  }
  if (opt.training && opt.dropout_p > 0.0)
    weights = dropout(weights, opt.dropout_p, true, opt.generator ? *opt.generator : default_generator());
  return matmul(weights, v);  // (…, Lq, Ev)
}

}  // namespace avgrad
