// Position information for token sequences (B, L, D), batch first:
//   LearnedPositionalEmbedding  — a trained table (1, max_len, D) added to the tokens,
//                                  trunc_normal(std 0.02) as ViT/AST's pos_embed;
//   SinusoidalPositionalEncoding — the fixed table of Vaswani et al. (a buffer, no parameters);
//   ClassToken                   — a trained (1, 1, D) token prepended to every sequence
//                                  (ViT/AST's cls_token, or AST's dist_token).
// Parameter names default to the timm/AST ones and can be changed at construction.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "avgrad/nn/init.hpp"
#include "avgrad/nn/module.hpp"
#include "avgrad/ops/join.hpp"

namespace avgrad::nn {

template <Floating T, Device D = Cpu> class LearnedPositionalEmbedding : public UnaryModule<T, D> {
 public:
  /// A (1, max_len, dim) parameter named `name`, N(0, 0.02²) truncated to [−2, 2] (timm's trunc_normal_(std=.02)).
  LearnedPositionalEmbedding(std::int64_t max_len, std::int64_t dim, Generator& gen = default_generator(),
                             const std::string& name = "pos_embed")
      : max_len_(max_len), dim_(dim) {
    AVGRAD_CHECK(max_len > 0 && dim > 0, "LearnedPositionalEmbedding", "max_len and dim must be positive, got (",
                 max_len, ", ", dim, ")");
    weight = Tensor<T, D>::empty({1, max_len, dim});
    init::trunc_normal_(weight, 0.0, 0.02, -2.0, 2.0, gen);
    this->register_parameter(name, weight);
  }
  /// x (B, L, dim), L <= max_len → x + weight[:, :L].
  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    AVGRAD_CHECK(x.defined() && x.dim() == 3 && x.size(2) == dim_ && x.size(1) <= max_len_,
                 "LearnedPositionalEmbedding", "expected x (B, L <= ", max_len_, ", ", dim_, "), got ",
                 x.defined() ? x.shape().str() : std::string("undefined"));
    return x + weight.narrow(1, 0, x.size(1));
  }
  std::string describe() const override {
    return detail::concat("LearnedPositionalEmbedding(max_len=", max_len_, ", dim=", dim_, ")");
  }
  std::int64_t max_len() const { return max_len_; }
  std::int64_t dim() const { return dim_; }

  Tensor<T, D> weight;

 private:
  std::int64_t max_len_, dim_;
};

template <Floating T, Device D = Cpu> class SinusoidalPositionalEncoding : public UnaryModule<T, D> {
 public:
  /// Buffer "pe" (1, max_len, dim): pe[p, 2i] = sin(p / 10000^(2i/dim)),
  /// pe[p, 2i+1] = cos(p / 10000^(2i/dim)) (an odd dim ends with a sine column).
  SinusoidalPositionalEncoding(std::int64_t max_len, std::int64_t dim) : max_len_(max_len), dim_(dim) {
    AVGRAD_CHECK(max_len > 0 && dim > 0, "SinusoidalPositionalEncoding", "max_len and dim must be positive, got (",
                 max_len, ", ", dim, ")");
    std::vector<T> table(static_cast<std::size_t>(max_len * dim));
    for (std::int64_t p = 0; p < max_len; ++p)
      for (std::int64_t j = 0; j < dim; ++j) {
        const double freq = std::pow(10000.0, -static_cast<double>(j - j % 2) / static_cast<double>(dim));
        const double a = static_cast<double>(p) * freq;
        table[static_cast<std::size_t>(p * dim + j)] = static_cast<T>(j % 2 == 0 ? std::sin(a) : std::cos(a));
      }
    pe = from_vector<T, D>(table, Shape{1, max_len, dim});
    this->register_buffer("pe", pe);
  }
  /// x (B, L, dim), L <= max_len → x + pe[:, :L].
  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    AVGRAD_CHECK(x.defined() && x.dim() == 3 && x.size(2) == dim_ && x.size(1) <= max_len_,
                 "SinusoidalPositionalEncoding", "expected x (B, L <= ", max_len_, ", ", dim_, "), got ",
                 x.defined() ? x.shape().str() : std::string("undefined"));
    return x + pe.narrow(1, 0, x.size(1));
  }
  std::string describe() const override {
    return detail::concat("SinusoidalPositionalEncoding(max_len=", max_len_, ", dim=", dim_, ")");
  }

  Tensor<T, D> pe;

 private:
  std::int64_t max_len_, dim_;
};

template <Floating T, Device D = Cpu> class ClassToken : public UnaryModule<T, D> {
 public:
  /// A (1, 1, dim) parameter named `name`, trunc_normal(std 0.02) as AST's cls_token/dist_token.
  explicit ClassToken(std::int64_t dim, Generator& gen = default_generator(), const std::string& name = "cls_token")
      : dim_(dim) {
    AVGRAD_CHECK(dim > 0, "ClassToken", "dim must be positive, got ", dim);
    token = Tensor<T, D>::empty({1, 1, dim});
    init::trunc_normal_(token, 0.0, 0.02, -2.0, 2.0, gen);
    this->register_parameter(name, token);
  }
  /// x (B, L, dim) → (B, L + 1, dim) with the token at position 0 of every sequence.
  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    AVGRAD_CHECK(x.defined() && x.dim() == 3 && x.size(2) == dim_, "ClassToken", "expected x (B, L, ", dim_, "), got ",
                 x.defined() ? x.shape().str() : std::string("undefined"));
    return concat({token.expand({x.size(0), 1, dim_}), x}, 1);
  }
  std::string describe() const override { return detail::concat("ClassToken(dim=", dim_, ")"); }

  Tensor<T, D> token;

 private:
  std::int64_t dim_;
};

}  // namespace avgrad::nn
