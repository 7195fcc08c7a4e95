// Classification heads: latents to logits. Every head takes a pooled (B, D) or a
// sequence (B, L, D) latent and is callable on latents alone — the convexity metric
// runs interpolated latents through a head without the encoders.
//
//   ClassifierHead     — mean over the sequence → [dropout] → [Linear + ReLU] → Linear;
//                        single-label (softmax) or multi-label (sigmoid) by option.
//   IdentityHead       — the latent already is the logits (mean over the sequence), for
//                        models whose fusion sums per-modality logits (bench-av-small);
//   AttentionPoolHead  — the study's multi-label head: per-frame sigmoid class
//                        probabilities pooled over time by a per-class softmax attention,
//                        clamped to [ε, 1 − ε]; it returns logit(p), so sigmoid(logits)
//                        is the clamped probability and BCE-with-logits on its output is
//                        the reference's BCE on the clamped probabilities.
#pragma once

#include <optional>

#include "avgrad/models/blocks.hpp"
#include "avgrad/nn/dropout.hpp"
#include "avgrad/nn/linear.hpp"
#include "avgrad/ops/softmax.hpp"

namespace avgrad::models {

struct ClassifierHeadOptions {
  std::int64_t in_dim = 512;
  std::int64_t num_classes = 10;
  std::int64_t hidden = 0;  ///< width of a hidden Linear + ReLU before the classifier; 0: none
  double dropout = 0.0;     ///< applied to the pooled latent (and the hidden layer)
  bool multi_label = false;
};

template <Floating T, Device D = Cpu> class ClassifierHead : public nn::UnaryModule<T, D> {
  ClassifierHeadOptions o_;  ///< first: initialised before the layers it sizes

 public:
  explicit ClassifierHead(const ClassifierHeadOptions& o, Generator& gen = default_generator())
      : o_(o), dropout(o.dropout) {
    AVGRAD_CHECK(o.in_dim > 0 && o.num_classes > 0 && o.hidden >= 0, "ClassifierHead",
                 "in_dim and num_classes must be positive and hidden >= 0, got in_dim ", o.in_dim, ", num_classes ",
                 o.num_classes, ", hidden ", o.hidden);
    this->register_module("dropout", dropout);
    if (o.hidden > 0) {
      hidden.emplace(o.in_dim, o.hidden, true, gen);
      this->register_module("hidden", *hidden);
    }
    fc.emplace(o.hidden > 0 ? o.hidden : o.in_dim, o.num_classes, true, gen);
    this->register_module("fc", *fc);
  }
  /// z (B, D) or (B, L, D) → logits (B, K).
  Tensor<T, D> forward(const Tensor<T, D>& z) override {
    check_input(
        "ClassifierHead", z, [&](auto& t) { return (t.dim() == 2 || t.dim() == 3) && t.size(-1) == o_.in_dim; },
        detail::concat("a latent (B, ", o_.in_dim, ") or (B, L, ", o_.in_dim, ")"));
    auto h = dropout(pool_latent(z));
    if (hidden) h = dropout(relu((*hidden)(h)));
    return (*fc)(h);
  }
  std::int64_t in_dim() const { return o_.in_dim; }
  std::int64_t num_classes() const { return o_.num_classes; }
  bool multi_label() const { return o_.multi_label; }
  std::string describe() const override {
    return detail::concat("ClassifierHead(", o_.in_dim, " → ", o_.num_classes, o_.hidden ? ", hidden " : "",
                          o_.hidden ? std::to_string(o_.hidden) : "", o_.multi_label ? ", multi-label" : "", ")");
  }

  nn::Dropout<T, D> dropout;
  std::optional<nn::Linear<T, D>> hidden;
  std::optional<nn::Linear<T, D>> fc;
};

/// The identity on a (B, K) latent, the mean over the sequence of a (B, L, K) one: for models
/// whose fusion already produces logits (late fusion of per-modality classifiers). No parameters.
template <Floating T, Device D = Cpu> class IdentityHead : public nn::UnaryModule<T, D> {
 public:
  explicit IdentityHead(std::int64_t num_classes, bool multi_label = false)
      : num_classes_(num_classes), multi_label_(multi_label) {
    AVGRAD_CHECK(num_classes > 0, "IdentityHead", "num_classes must be positive, got ", num_classes);
  }
  Tensor<T, D> forward(const Tensor<T, D>& z) override {
    check_input(
        "IdentityHead", z, [&](auto& t) { return (t.dim() == 2 || t.dim() == 3) && t.size(-1) == num_classes_; },
        detail::concat("logits (B, ", num_classes_, ") or (B, L, ", num_classes_, ")"));
    return pool_latent(z);
  }
  std::int64_t in_dim() const { return num_classes_; }
  std::int64_t num_classes() const { return num_classes_; }
  bool multi_label() const { return multi_label_; }
  std::string describe() const override { return detail::concat("IdentityHead(", num_classes_, ")"); }

 private:
  std::int64_t num_classes_;
  bool multi_label_;
};

struct AttentionPoolHeadOptions {
  std::int64_t in_dim = 1024;
  std::int64_t num_classes = 527;  ///< AudioSet's label set
  double clamp_eps = 1e-7;         ///< probabilities are clamped to [eps, 1 − eps], as the reference
};

template <Floating T, Device D = Cpu> class AttentionPoolHead : public nn::UnaryModule<T, D> {
  AttentionPoolHeadOptions o_;  ///< first: initialised before the layers it sizes

 public:
  explicit AttentionPoolHead(const AttentionPoolHeadOptions& o, Generator& gen = default_generator())
      : o_(o), cla(o.in_dim, o.num_classes, true, gen), att(o.in_dim, o.num_classes, true, gen) {
    AVGRAD_CHECK(o.clamp_eps > 0 && o.clamp_eps < 0.5, "AttentionPoolHead", "clamp_eps must be in (0, 0.5), got ",
                 o.clamp_eps);
    this->register_module("cla", cla);
    this->register_module("att", att);
  }
  /// Clip probabilities (B, K) in [ε, 1 − ε]: Σ_t softmax_t(att(z))_t · sigmoid(cla(z))_t.
  /// A pooled latent (B, D) is one frame: its probabilities are sigmoid(cla(z)).
  Tensor<T, D> probabilities(const Tensor<T, D>& z) {
    check_input(
        "AttentionPoolHead", z, [&](auto& t) { return (t.dim() == 2 || t.dim() == 3) && t.size(-1) == o_.in_dim; },
        detail::concat("a latent (B, ", o_.in_dim, ") or (B, L, ", o_.in_dim, ")"));
    const auto seq = z.dim() == 3 ? z : z.unsqueeze(1);
    auto p = sum(softmax(att(seq), 1) * sigmoid(cla(seq)), {1});
    return clamp(p, o_.clamp_eps, 1.0 - o_.clamp_eps);
  }
  /// logit of the clamped probabilities, (B, K).
  Tensor<T, D> forward(const Tensor<T, D>& z) override {
    auto p = probabilities(z);
    return log(p) - log1p(-p);
  }
  std::int64_t in_dim() const { return o_.in_dim; }
  std::int64_t num_classes() const { return o_.num_classes; }
  bool multi_label() const { return true; }
  std::string describe() const override {
    return detail::concat("AttentionPoolHead(", o_.in_dim, " → ", o_.num_classes, ")");
  }

  nn::Linear<T, D> cla, att;
};

}  // namespace avgrad::models
