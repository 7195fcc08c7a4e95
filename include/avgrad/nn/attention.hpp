// nn::MultiheadAttention: torch.nn.MultiheadAttention with batch_first=True and
// kdim = vdim = embed_dim, with PyTorch's parameter names and initialisation so
// state dicts move between the two unchanged:
//   in_proj_weight (3E, E)  xavier_uniform   rows [0, E) project queries, [E, 2E) keys, [2E, 3E) values
//   in_proj_bias   (3E)     zeros            (absent when bias = false)
//   out_proj.weight (E, E)  Linear's default U(±1/√E)
//   out_proj.bias   (E)     zeros            (torch zeroes it after Linear's init)
//
// Masks follow PyTorch's conventions at this interface:
//   key_padding_mask (B, Lk) bool: true = this key is padding, ignore it;
//   attn_mask (Lq, Lk) or (B·H, Lq, Lk) bool: true = query i may NOT attend key j;
//   attn_mask_float, same shapes: added to the scaled scores (−inf blocks).
// ops::scaled_dot_product_attention takes the opposite boolean convention
// (true = may attend), so the boolean masks are negated and merged here, once.
// Unlike PyTorch, a query whose keys are all blocked by boolean masks gets a zero
// output (and zero weights) instead of NaN — the useful result for padded batches.
#pragma once

#include <cmath>
#include <utility>

#include "avgrad/nn/dropout.hpp"
#include "avgrad/nn/init.hpp"
#include "avgrad/nn/linear.hpp"
#include "avgrad/nn/module.hpp"
#include "avgrad/ops/attention.hpp"
#include "avgrad/ops/join.hpp"

namespace avgrad::nn {

/// The optional masks of an attention call, in PyTorch's conventions (see the file comment).
template <Floating T, Device D = Cpu> struct AttentionMasks {
  Tensor<bool, D> key_padding_mask{};  ///< (B, Lk); true = padding, ignored
  Tensor<bool, D> attn_mask{};         ///< (Lq, Lk) or (B·H, Lq, Lk); true = NOT allowed
  Tensor<T, D> attn_mask_float{};      ///< (Lq, Lk) or (B·H, Lq, Lk); added to the scores
};

/// A causal mask in PyTorch's boolean convention: (L, L), true above the diagonal
/// (query i may not attend keys j > i).
template <Device D = Cpu> Tensor<bool, D> causal_attn_mask(std::int64_t L) {
  AVGRAD_CHECK(L >= 0, "causal_attn_mask", "negative length ", L);
  auto i = arange<double, D>(static_cast<double>(L));
  return gt(i.reshape({1, L}), i.reshape({L, 1}));
}

template <Floating T, Device D = Cpu> class MultiheadAttention : public Module<T, D> {
 public:
  using Tensor_ = Tensor<T, D>;

  /// embed_dim E split over num_heads H (E % H == 0, head width E/H); dropout on
  /// the attention weights in training mode; bias: in_proj_bias and out_proj.bias.
  MultiheadAttention(std::int64_t embed_dim, std::int64_t num_heads, double dropout = 0.0, bool bias = true,
                     Generator& gen = default_generator())
      : out_proj(check_args(embed_dim, num_heads, dropout), embed_dim, bias, gen),
        E_(embed_dim),
        H_(num_heads),
        p_(dropout) {
    in_proj_weight = Tensor_::empty({3 * embed_dim, embed_dim});
    init::xavier_uniform_(in_proj_weight, 1.0, gen);
    this->register_parameter("in_proj_weight", in_proj_weight);
    if (bias) {
      in_proj_bias = zeros<T, D>({3 * embed_dim});
      this->register_parameter("in_proj_bias", in_proj_bias);
      init::zeros_(out_proj.bias);
    }
    this->register_module("out_proj", out_proj);
  }

  /// query (B, Lq, E), key (B, Lk, E), value (B, Lk, E) → (B, Lq, E).
  /// Masks as AttentionMasks; self-attention (query, key, value the same tensor)
  /// runs one packed projection GEMM instead of three.
  Tensor_ forward(const Tensor_& query, const Tensor_& key, const Tensor_& value,
                  const AttentionMasks<T, D>& masks = {}) {
    return attend(query, key, value, masks, false, true).first;
  }
  /// Torch-style convenience: boolean key_padding_mask (B, Lk) and attn_mask (true = blocked).
  Tensor_ forward(const Tensor_& query, const Tensor_& key, const Tensor_& value,
                  const Tensor<bool, D>& key_padding_mask, const Tensor<bool, D>& attn_mask = {}) {
    return forward(query, key, value, AttentionMasks<T, D>{key_padding_mask, attn_mask, {}});
  }
  /// As forward, also returning the attention weights (after dropout, as torch):
  /// averaged over heads (B, Lq, Lk) when average_attn_weights, else (B, H, Lq, Lk).
  /// Gradients flow through both results.
  std::pair<Tensor_, Tensor_> forward_with_weights(const Tensor_& query, const Tensor_& key, const Tensor_& value,
                                                   const AttentionMasks<T, D>& masks = {},
                                                   bool average_attn_weights = true) {
    return attend(query, key, value, masks, true, average_attn_weights);
  }

  Tensor_ operator()(const Tensor_& query, const Tensor_& key, const Tensor_& value,
                     const AttentionMasks<T, D>& masks = {}) {
    return forward(query, key, value, masks);
  }
  Tensor_ operator()(const Tensor_& query, const Tensor_& key, const Tensor_& value,
                     const Tensor<bool, D>& key_padding_mask, const Tensor<bool, D>& attn_mask = {}) {
    return forward(query, key, value, key_padding_mask, attn_mask);
  }

  std::string describe() const override {
    return detail::concat("MultiheadAttention(embed_dim=", E_, ", num_heads=", H_, ", dropout=", p_,
                          in_proj_bias.defined() ? "" : ", bias=false", ")");
  }
  std::int64_t embed_dim() const { return E_; }
  std::int64_t num_heads() const { return H_; }
  std::int64_t head_dim() const { return E_ / H_; }
  double dropout() const { return p_; }
  /// The stream attention dropout draws from (the default generator when null).
  void set_generator(Generator* gen) { gen_ = gen; }

  Tensor_ in_proj_weight, in_proj_bias;
  Linear<T, D> out_proj;

 private:
  static std::int64_t check_args(std::int64_t E, std::int64_t H, double p) {
    AVGRAD_CHECK(E > 0 && H > 0 && E % H == 0, "MultiheadAttention", "embed_dim ", E,
                 " must be positive and divisible by num_heads ", H);
    AVGRAD_CHECK(p >= 0.0 && p <= 1.0, "MultiheadAttention", "dropout must be in [0, 1], got ", p);
    return E;
  }

  /// Rows [i·E, (i+1)·E) of the packed projection (a view; undefined bias stays undefined).
  Tensor_ w_part(int i) const { return in_proj_weight.narrow(0, i * E_, E_); }
  Tensor_ b_part(int i) const { return in_proj_bias.defined() ? in_proj_bias.narrow(0, i * E_, E_) : Tensor_(); }

  /// (B, L, E) → (B, H, L, E/H) (a view).
  Tensor_ split_heads(const Tensor_& x) const {
    return x.reshape({x.size(0), x.size(1), H_, E_ / H_}).permute({0, 2, 1, 3});
  }

  /// A torch attn_mask of shape (Lq, Lk) or (B·H, Lq, Lk) as a tensor broadcastable
  /// to the scores (B, H, Lq, Lk).
  template <Element M> Tensor<M, D> mask_to_scores(const Tensor<M, D>& m, std::int64_t B, std::int64_t Lq,
                                                   std::int64_t Lk, const char* what) const {
    const bool ok2 = m.dim() == 2 && m.size(0) == Lq && m.size(1) == Lk;
    const bool ok3 = m.dim() == 3 && m.size(0) == B * H_ && m.size(1) == Lq && m.size(2) == Lk;
    AVGRAD_CHECK(ok2 || ok3, "MultiheadAttention", what, " must be (Lq, Lk) = (", Lq, ", ", Lk,
                 ") or (B·H, Lq, Lk) = (", B * H_, ", ", Lq, ", ", Lk, "), got ", m.shape());
    return ok2 ? m : m.reshape({B, H_, Lq, Lk});
  }

  std::pair<Tensor_, Tensor_> attend(const Tensor_& query, const Tensor_& key, const Tensor_& value,
                                     const AttentionMasks<T, D>& masks, bool need_weights, bool average) {
    const char* op = "MultiheadAttention";
    detail::check_defined(query, op);
    detail::check_defined(key, op);
    detail::check_defined(value, op);
    AVGRAD_CHECK(query.dim() == 3 && key.dim() == 3 && value.dim() == 3 && query.size(2) == E_ && key.size(2) == E_ &&
                     value.size(2) == E_,
                 op, "expected query, key, value (B, L, ", E_, ") (batch_first), got ", query.shape(), ", ",
                 key.shape(), ", ", value.shape());
    const std::int64_t B = query.size(0), Lq = query.size(1), Lk = key.size(1);
    AVGRAD_CHECK(key.size(0) == B && value.size(0) == B && value.size(1) == Lk, op,
                 "query, key, value disagree in batch or key length: ", query.shape(), ", ", key.shape(), ", ",
                 value.shape());

    // ---- projections: one packed GEMM for self-attention, three otherwise
    Tensor_ q, k, v;
    if (query.is_same(key) && key.is_same(value)) {
      auto qkv = linear(query, in_proj_weight, in_proj_bias)  // (B, L, 3E) → (3, B, H, L, E/H)
                     .reshape({B, Lq, 3, H_, E_ / H_})
                     .permute({2, 0, 3, 1, 4});
      q = qkv.select(0, 0);
      k = qkv.select(0, 1);
      v = qkv.select(0, 2);
    } else {
      q = split_heads(linear(query, w_part(0), b_part(0)));
      k = split_heads(linear(key, w_part(1), b_part(1)));
      v = split_heads(linear(value, w_part(2), b_part(2)));
    }

    // ---- masks: torch's "true = blocked" → scaled_dot_product_attention's "true = allowed"
    AttentionOptions<T, D> opt;
    if (masks.key_padding_mask.defined()) {
      const auto& kpm = masks.key_padding_mask;
      AVGRAD_CHECK(kpm.dim() == 2 && kpm.size(0) == B && kpm.size(1) == Lk, op, "key_padding_mask must be (B, Lk) = (",
                   B, ", ", Lk, "), got ", kpm.shape());
      opt.mask = logical_not(kpm).reshape({B, 1, 1, Lk});
    }
    if (masks.attn_mask.defined()) {
      auto allowed = logical_not(mask_to_scores(masks.attn_mask, B, Lq, Lk, "attn_mask"));
      opt.mask = opt.mask.defined() ? logical_and(opt.mask, allowed) : allowed;
    }
    if (masks.attn_mask_float.defined())
      opt.additive_mask = mask_to_scores(masks.attn_mask_float, B, Lq, Lk, "attn_mask_float");
    opt.dropout_p = p_;
    opt.training = this->is_training();
    opt.generator = gen_;

    // ---- attention per head; with need_weights, v is extended by an identity
    // block so one call returns softmax·v and the (dropped-out) weights together
    const std::int64_t Dh = E_ / H_;
    Tensor_ heads, weights;
    if (need_weights) {
      auto id = eye<T, D>(Lk).expand({B, H_, Lk, Lk});
      auto both = scaled_dot_product_attention(q, k, concat({v, id}, -1), opt);  // (B, H, Lq, Dh + Lk)
      heads = both.narrow(-1, 0, Dh);
      weights = both.narrow(-1, Dh, Lk);
      if (average) weights = mean(weights, {1});
    } else {
      heads = scaled_dot_product_attention(q, k, v, opt);  // (B, H, Lq, Dh)
    }
    auto merged = heads.permute({0, 2, 1, 3}).reshape({B, Lq, E_});
    return {out_proj(merged), weights};
  }

  std::int64_t E_, H_;
  double p_;
  Generator* gen_ = nullptr;
};

}  // namespace avgrad::nn
