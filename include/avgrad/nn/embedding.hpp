// nn::Embedding: a lookup table of num_embeddings rows of width embedding_dim,
// with torch.nn.Embedding's parameter name (weight (num, dim)), initialisation
// N(0, 1) and padding_idx: that row starts at zero and never receives a gradient
// (its output positions are cut from the graph), though it is still looked up.
#pragma once

#include <optional>

#include "avgrad/nn/activation.hpp"
#include "avgrad/nn/init.hpp"
#include "avgrad/nn/module.hpp"
#include "avgrad/ops/index.hpp"

namespace avgrad::nn {

template <Floating T, Device D = Cpu> class Embedding : public Module<T, D> {
 public:
  /// padding_idx may be negative (counted from the end, as torch); it is stored
  /// normalised to [0, num_embeddings).
  Embedding(std::int64_t num_embeddings, std::int64_t embedding_dim, std::optional<std::int64_t> padding_idx = {},
            Generator& gen = default_generator())
      : num_(num_embeddings), dim_(embedding_dim) {
    AVGRAD_CHECK(num_embeddings > 0 && embedding_dim > 0, "Embedding",
                 "num_embeddings and embedding_dim must be positive, got (", num_embeddings, ", ", embedding_dim, ")");
    if (padding_idx) {
      AVGRAD_CHECK(*padding_idx >= -num_embeddings && *padding_idx < num_embeddings, "Embedding", "padding_idx ",
                   *padding_idx, " must be within [", -num_embeddings, ", ", num_embeddings, ")");
      padding_ = *padding_idx < 0 ? *padding_idx + num_embeddings : *padding_idx;
    }
    weight = Tensor<T, D>::empty({num_embeddings, embedding_dim});
    init::normal_(weight, 0.0, 1.0, gen);
    if (padding_) {
      NoGradGuard no_grad;
      auto row = weight.select(0, *padding_);
      zero_(row);
    }
    this->register_parameter("weight", weight);
  }

  /// indices (any shape, entries in [0, num_embeddings)) → (…, embedding_dim):
  /// rows of weight picked by index_select, whose backward scatter-adds into weight.
  Tensor<T, D> forward(const Tensor<std::int64_t, D>& indices) {
    AVGRAD_CHECK(indices.defined(), "Embedding", "undefined indices");
    const auto flat = indices.reshape(Shape{indices.numel()});
    for (std::int64_t v : flat.to_vector())
      AVGRAD_CHECK(v >= 0 && v < num_, "Embedding", "index ", v, " out of range for ", num_,
                   " embeddings (indices of shape ", indices.shape(), ")");
    Tensor<T, D> rows = index_select(weight, 0, flat);  // (M, dim)
    if (padding_ && rows.requires_grad()) {
      // the padding row's picks keep their values but carry no gradient
      const auto is_pad = eq(flat, static_cast<double>(*padding_)).reshape(Shape{flat.numel(), 1});
      rows = where(is_pad, rows.detach(), rows);
    }
    Shape out = indices.shape();
    out.push_back(dim_);
    return rows.reshape(out);
  }
  Tensor<T, D> operator()(const Tensor<std::int64_t, D>& indices) { return forward(indices); }

  /// As torch: "Embedding(10, 3)", "Embedding(10, 3, padding_idx=0)".
  std::string describe() const override {
    const std::string pad = padding_ ? avgrad::detail::concat(", padding_idx=", *padding_) : std::string();
    return avgrad::detail::concat("Embedding(", num_, ", ", dim_, pad, ")");
  }
  std::int64_t num_embeddings() const { return num_; }
  std::int64_t embedding_dim() const { return dim_; }
  std::optional<std::int64_t> padding_idx() const { return padding_; }

  Tensor<T, D> weight;  ///< (num_embeddings, embedding_dim)

 private:
  std::int64_t num_, dim_;
  std::optional<std::int64_t> padding_;
};

}  // namespace avgrad::nn
