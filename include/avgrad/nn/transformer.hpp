// Transformer encoders with PyTorch's module and parameter names (batch_first):
//
// TransformerEncoderLayer — torch.nn.TransformerEncoderLayer: children self_attn,
//   linear1, dropout, linear2, norm1, norm2, dropout1, dropout2. With
//     sa(x) = dropout1(self_attn(x, x, x, masks)),  ff(x) = dropout2(linear2(dropout(act(linear1(x))))),
//   post-norm (norm_first = false): x = norm1(x + sa(x)); x = norm2(x + ff(x));
//   pre-norm  (norm_first = true):  x = x + sa(norm1(x)); x = x + ff(norm2(x)).
//
// TransformerEncoder — torch.nn.TransformerEncoder: layers.0 … layers.N−1, then an
//   optional final LayerNorm "norm". In shared mode (share_weights = true) one
//   layer is applied N times: the state dict holds it once, under "layers.0.*"
//   (a torch TransformerEncoder with num_layers = 1 has the same keys), and its
//   gradients accumulate over the N applications.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "avgrad/nn/attention.hpp"
#include "avgrad/nn/dropout.hpp"
#include "avgrad/nn/linear.hpp"
#include "avgrad/nn/module.hpp"
#include "avgrad/nn/normalization.hpp"
#include "avgrad/ops/unary.hpp"

namespace avgrad::nn {

/// The feed-forward nonlinearity of a transformer layer: ReLU or exact (erf) GELU, as torch's "relu"/"gelu".
enum class TransformerActivation { relu, gelu };

template <Floating T, Device D = Cpu> class TransformerEncoderLayer : public UnaryModule<T, D> {
 public:
  using Tensor_ = Tensor<T, D>;

  /// torch.nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, activation,
  /// layer_norm_eps, batch_first=True, norm_first); `gen` draws the initial weights.
  TransformerEncoderLayer(std::int64_t d_model, std::int64_t nhead, std::int64_t dim_feedforward = 2048,
                          double dropout = 0.1, TransformerActivation activation = TransformerActivation::relu,
                          double layer_norm_eps = 1e-5, bool norm_first = false, Generator& gen = default_generator())
      : self_attn(d_model, nhead, dropout, true, gen),
        linear1(d_model, dim_feedforward, true, gen),
        dropout(dropout),
        linear2(dim_feedforward, d_model, true, gen),
        norm1(Shape{d_model}, layer_norm_eps),
        norm2(Shape{d_model}, layer_norm_eps),
        dropout1(dropout),
        dropout2(dropout),
        activation_(activation),
        norm_first_(norm_first) {
    this->register_module("self_attn", self_attn);
    this->register_module("linear1", linear1);
    this->register_module("dropout", this->dropout);
    this->register_module("linear2", linear2);
    this->register_module("norm1", norm1);
    this->register_module("norm2", norm2);
    this->register_module("dropout1", dropout1);
    this->register_module("dropout2", dropout2);
  }

  /// src (B, L, E) → (B, L, E); masks in PyTorch's conventions (see nn/attention.hpp).
  Tensor_ forward(const Tensor_& src, const AttentionMasks<T, D>& masks) {
    AVGRAD_CHECK(src.defined() && src.dim() == 3 && src.size(2) == self_attn.embed_dim(), "TransformerEncoderLayer",
                 "expected src (B, L, ", self_attn.embed_dim(), ") (batch_first), got ",
                 src.defined() ? src.shape().str() : std::string("undefined"));
    Tensor_ x = src;
    if (norm_first_) {
      x = x + sa_block(norm1(x), masks);
      x = x + ff_block(norm2(x));
    } else {
      x = norm1(x + sa_block(x, masks));
      x = norm2(x + ff_block(x));
    }
    return x;
  }
  /// As torch's forward(src, src_mask, src_key_padding_mask), in the order
  /// (src, src_key_padding_mask (B, L) true = padding, src_mask (L, L) true = blocked).
  Tensor_ forward(const Tensor_& src, const Tensor<bool, D>& src_key_padding_mask,
                  const Tensor<bool, D>& src_mask = {}) {
    return forward(src, AttentionMasks<T, D>{src_key_padding_mask, src_mask, {}});
  }
  Tensor_ forward(const Tensor_& src) override { return forward(src, AttentionMasks<T, D>{}); }

  using UnaryModule<T, D>::operator();
  Tensor_ operator()(const Tensor_& src, const AttentionMasks<T, D>& masks) { return forward(src, masks); }
  Tensor_ operator()(const Tensor_& src, const Tensor<bool, D>& src_key_padding_mask,
                     const Tensor<bool, D>& src_mask = {}) {
    return forward(src, src_key_padding_mask, src_mask);
  }

  std::string describe() const override {
    return detail::concat("TransformerEncoderLayer(d_model=", self_attn.embed_dim(), ", nhead=", self_attn.num_heads(),
                          ", dim_feedforward=", linear1.out_features(), ", dropout=", dropout.p(),
                          ", activation=", activation_ == TransformerActivation::relu ? "relu" : "gelu",
                          norm_first_ ? ", norm_first" : "", ")");
  }
  bool norm_first() const { return norm_first_; }
  TransformerActivation activation() const { return activation_; }
  std::int64_t d_model() const { return self_attn.embed_dim(); }
  /// Every dropout of the layer (attention weights included) draws from `gen` (default generator when null).
  void set_generator(Generator* gen) {
    self_attn.set_generator(gen);
    dropout.set_generator(gen);
    dropout1.set_generator(gen);
    dropout2.set_generator(gen);
  }

  MultiheadAttention<T, D> self_attn;
  Linear<T, D> linear1;
  Dropout<T, D> dropout;
  Linear<T, D> linear2;
  LayerNorm<T, D> norm1, norm2;
  Dropout<T, D> dropout1, dropout2;

 private:
  Tensor_ sa_block(const Tensor_& x, const AttentionMasks<T, D>& masks) { return dropout1(self_attn(x, x, x, masks)); }
  Tensor_ ff_block(const Tensor_& x) {
    auto h = linear1(x);
    h = activation_ == TransformerActivation::relu ? relu(h) : gelu(h);
    return dropout2(linear2(dropout(h)));
  }

  TransformerActivation activation_;
  bool norm_first_;
};

/// The "layers" container of TransformerEncoder: children named "0", "1", … (torch's ModuleList keys).
template <Floating T, Device D = Cpu> class EncoderLayerList : public Module<T, D> {
 public:
  void add(std::unique_ptr<TransformerEncoderLayer<T, D>> layer) {
    AVGRAD_CHECK(layer != nullptr, "TransformerEncoder", "the layer factory returned null");
    items_.push_back(std::move(layer));
    this->register_module(std::to_string(items_.size() - 1), *items_.back());
  }
  TransformerEncoderLayer<T, D>& at(std::size_t i) { return *items_.at(i); }
  std::size_t size() const { return items_.size(); }
  std::string describe() const override { return detail::concat("ModuleList(", items_.size(), ")"); }

 private:
  std::vector<std::unique_ptr<TransformerEncoderLayer<T, D>>> items_;
};

template <Floating T, Device D = Cpu> class TransformerEncoder : public UnaryModule<T, D> {
 public:
  using Tensor_ = Tensor<T, D>;
  using Layer = TransformerEncoderLayer<T, D>;
  using LayerFactory = std::function<std::unique_ptr<Layer>()>;

  /// num_layers layers from `make_layer` (called num_layers times, or once when
  /// share_weights), then `norm` (may be null) as the final normalisation.
  TransformerEncoder(const LayerFactory& make_layer, std::int64_t num_layers,
                     std::unique_ptr<LayerNorm<T, D>> norm = nullptr, bool share_weights = false)
      : num_layers_(num_layers), shared_(share_weights), norm_(std::move(norm)) {
    AVGRAD_CHECK(num_layers >= 1, "TransformerEncoder", "num_layers must be >= 1, got ", num_layers);
    AVGRAD_CHECK(static_cast<bool>(make_layer), "TransformerEncoder", "empty layer factory");
    const std::int64_t distinct = share_weights ? 1 : num_layers;
    for (std::int64_t i = 0; i < distinct; ++i) layers_.add(make_layer());
    for (std::size_t i = 1; i < layers_.size(); ++i)
      AVGRAD_CHECK(layers_.at(i).d_model() == layers_.at(0).d_model(), "TransformerEncoder", "layer ", i,
                   " has d_model ", layers_.at(i).d_model(), ", layer 0 has ", layers_.at(0).d_model());
    this->register_module("layers", layers_);
    if (norm_) this->register_module("norm", *norm_);
  }

  /// src (B, L, E) → (B, L, E): every layer in turn with the same masks, then the final norm.
  Tensor_ forward(const Tensor_& src, const AttentionMasks<T, D>& masks) {
    Tensor_ x = src;
    for (std::int64_t i = 0; i < num_layers_; ++i) x = layer(i).forward(x, masks);
    return norm_ ? norm_->forward(x) : x;
  }
  Tensor_ forward(const Tensor_& src, const Tensor<bool, D>& src_key_padding_mask, const Tensor<bool, D>& mask = {}) {
    return forward(src, AttentionMasks<T, D>{src_key_padding_mask, mask, {}});
  }
  Tensor_ forward(const Tensor_& src) override { return forward(src, AttentionMasks<T, D>{}); }

  using UnaryModule<T, D>::operator();
  Tensor_ operator()(const Tensor_& src, const AttentionMasks<T, D>& masks) { return forward(src, masks); }
  Tensor_ operator()(const Tensor_& src, const Tensor<bool, D>& src_key_padding_mask,
                     const Tensor<bool, D>& mask = {}) {
    return forward(src, src_key_padding_mask, mask);
  }

  /// The layer applied i-th (the single shared layer for every i in shared mode).
  Layer& layer(std::int64_t i) {
    AVGRAD_CHECK(i >= 0 && i < num_layers_, "TransformerEncoder", "layer index ", i, " outside [0, ", num_layers_, ")");
    return layers_.at(shared_ ? 0 : static_cast<std::size_t>(i));
  }
  /// The final norm, or null.
  LayerNorm<T, D>* norm() { return norm_.get(); }
  std::int64_t num_layers() const { return num_layers_; }
  bool shares_weights() const { return shared_; }
  /// Every dropout in every layer draws from `gen` (default generator when null).
  void set_generator(Generator* gen) {
    for (std::size_t i = 0; i < layers_.size(); ++i) layers_.at(i).set_generator(gen);
  }
  std::string describe() const override {
    return detail::concat("TransformerEncoder(num_layers=", num_layers_, shared_ ? ", shared weights" : "",
                          norm_ ? ", final norm" : "", ")");
  }

 private:
  std::int64_t num_layers_;
  bool shared_;
  EncoderLayerList<T, D> layers_;
  std::unique_ptr<LayerNorm<T, D>> norm_;
};

}  // namespace avgrad::nn
