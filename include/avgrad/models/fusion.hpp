// Fusion layers: how an audio-visual model combines its two branches. Each satisfies
// models::Fusion — fuse(z_audio, z_video) → fused latent — and takes either latent
// undefined (a missing modality), treated as its MissingModality option says.
//
//   EarlyFusion<Stem>   inputs brought to one grid and concatenated, then one stem
//   MidFusion           intermediate features concatenated → Linear → transformer
//   LateFusion          z = Linear_a(z_a) + Linear_v(z_v) (the study's main model)
//   GatedFusion         learned per-sample modality weights (a gated multimodal unit)
//   BottleneckFusion    MBT: per-modality transformers exchanging a few shared tokens
// Super-late fusion (a weighted average of per-modality probabilities) combines two
// whole classifiers, so it lives in classifier.hpp as SuperLateEnsemble.
//
// Sequences of different lengths are aligned by TimeAlign: `shorter` averages the longer
// sequence down to the shorter one's length (the study's 100 audio frames onto 10 video
// frames); `pool` averages both over time first. A pooled (B, D) latent beside a (B, L, D)
// one is broadcast over L.
#pragma once

#include <memory>
#include <optional>
#include <utility>

#include "avgrad/models/blocks.hpp"
#include "avgrad/nn/init.hpp"
#include "avgrad/nn/linear.hpp"
#include "avgrad/nn/transformer.hpp"
#include "avgrad/ops/join.hpp"
#include "avgrad/ops/pool.hpp"

namespace avgrad::models {

enum class TimeAlign { shorter, pool };

/// z (B, L, D) averaged onto L' steps along the sequence axis (adaptive average pooling).
template <Floating T, Device D> Tensor<T, D> resample_sequence(const Tensor<T, D>& z, std::int64_t length) {
  check_input(
      "resample_sequence", z, [](auto& t) { return t.dim() == 3; }, "a sequence (B, L, D)");
  if (z.size(1) == length) return z;
  return adaptive_avg_pool1d(z.transpose(1, 2), {length}).transpose(1, 2);
}

/// Two latents on a common time grid: both (B, L, ·), or both (B, ·) when both are pooled
/// or align is `pool`.
template <Floating T, Device D>
std::pair<Tensor<T, D>, Tensor<T, D>> align_sequences(Tensor<T, D> a, Tensor<T, D> b, TimeAlign align) {
  if (align == TimeAlign::pool) return {pool_latent(a), pool_latent(b)};
  if (a.dim() == 2 && b.dim() == 2) return {a, b};
  if (a.dim() == 2) a = a.unsqueeze(1).expand({a.size(0), b.size(1), a.size(1)});
  if (b.dim() == 2) b = b.unsqueeze(1).expand({b.size(0), a.size(1), b.size(1)});
  const std::int64_t L = std::min(a.size(1), b.size(1));
  return {resample_sequence(a, L), resample_sequence(b, L)};
}

/// What every fusion shares: its input and output widths, the missing-modality policy and,
/// for MissingModality::learned_token, the learned stand-ins "audio_missing" (D_a) and
/// "video_missing" (D_v).
template <Floating T, Device D = Cpu> class FusionBase : public nn::Module<T, D> {
 public:
  std::int64_t audio_dim() const { return audio_dim_; }
  std::int64_t video_dim() const { return video_dim_; }
  std::int64_t latent_dim() const { return latent_dim_; }
  MissingModality missing() const { return missing_; }

  Tensor<T, D> audio_missing, video_missing;

 protected:
  FusionBase(const char* name, std::int64_t audio_dim, std::int64_t video_dim, std::int64_t latent_dim,
             MissingModality missing, Generator& gen)
      : name_(name), audio_dim_(audio_dim), video_dim_(video_dim), latent_dim_(latent_dim), missing_(missing) {
    AVGRAD_CHECK(audio_dim > 0 && video_dim > 0 && latent_dim > 0, name, "dimensions must be positive, got audio ",
                 audio_dim, ", video ", video_dim, ", fused ", latent_dim);
    if (missing == MissingModality::learned_token) {
      audio_missing = Tensor<T, D>::empty({audio_dim});
      video_missing = Tensor<T, D>::empty({video_dim});
      nn::init::trunc_normal_(audio_missing, 0.0, 0.02, -2.0, 2.0, gen);
      nn::init::trunc_normal_(video_missing, 0.0, 0.02, -2.0, 2.0, gen);
      this->register_parameter("audio_missing", audio_missing);
      this->register_parameter("video_missing", video_missing);
    }
  }

  /// Checks a present latent: (B, dim) or (B, L, dim).
  void check_latent(Modality m, const Tensor<T, D>& z) const {
    const std::int64_t dim = m == Modality::audio ? audio_dim_ : video_dim_;
    check_input(
        name_, z, [&](auto& t) { return (t.dim() == 2 || t.dim() == 3) && t.size(-1) == dim; },
        detail::concat("the ", modality_name(m), " latent as (B, ", dim, ") or (B, L, ", dim, ")"));
  }
  /// Checks the pair (at least one present, same batch) and returns the batch size.
  std::int64_t check_pair(const Tensor<T, D>& za, const Tensor<T, D>& zv) const {
    AVGRAD_CHECK(za.defined() || zv.defined(), name_, "both modalities are missing");
    if (za.defined()) check_latent(Modality::audio, za);
    if (zv.defined()) check_latent(Modality::video, zv);
    AVGRAD_CHECK(!za.defined() || !zv.defined() || za.size(0) == zv.size(0), name_, "batch sizes differ: audio ",
                 za.size(0), ", video ", zv.size(0));
    return za.defined() ? za.size(0) : zv.size(0);
  }
  /// The (B, dim) stand-in for a missing modality: zeros or the learned token; undefined for skip.
  Tensor<T, D> stand_in(Modality m, std::int64_t batch) const {
    const std::int64_t dim = m == Modality::audio ? audio_dim_ : video_dim_;
    switch (missing_) {
      case MissingModality::zeros:
        return zeros<T, D>({batch, dim});
      case MissingModality::learned_token:
        return (m == Modality::audio ? audio_missing : video_missing).unsqueeze(0).expand({batch, dim});
      case MissingModality::skip:
        break;
    }
    return {};
  }
  /// z when present, else its stand-in.
  Tensor<T, D> or_stand_in(Modality m, const Tensor<T, D>& z, std::int64_t batch) const {
    return z.defined() ? z : stand_in(m, batch);
  }
  const char* name() const { return name_; }

 private:
  const char* name_;
  std::int64_t audio_dim_, video_dim_, latent_dim_;
  MissingModality missing_;
};

// ---- late fusion ----------------------------------------------------------------------

struct LateFusionOptions {
  std::int64_t audio_dim = 1024, video_dim = 1024;
  std::int64_t dim = 1024;  ///< the fused latent's width
  TimeAlign align = TimeAlign::shorter;
  MissingModality missing = MissingModality::skip;
  bool audio_bias = true, video_bias = true;  ///< bench-av-small's video classifier has no bias
};

/// z = audio_proj(z_a) + video_proj(z_v), on the aligned time grid. A skipped modality drops
/// its term (bias included); zeros leave its bias; a learned token goes through its projection.
template <Floating T, Device D = Cpu> class LateFusion : public FusionBase<T, D> {
 public:
  explicit LateFusion(const LateFusionOptions& o, Generator& gen = default_generator())
      : FusionBase<T, D>("LateFusion", o.audio_dim, o.video_dim, o.dim, o.missing, gen),
        o_(o),
        audio_proj(o.audio_dim, o.dim, o.audio_bias, gen),
        video_proj(o.video_dim, o.dim, o.video_bias, gen) {
    this->register_module("audio_proj", audio_proj);
    this->register_module("video_proj", video_proj);
  }
  Tensor<T, D> fuse(const Tensor<T, D>& za, const Tensor<T, D>& zv) {
    const std::int64_t B = this->check_pair(za, zv);
    auto a = this->or_stand_in(Modality::audio, za, B);
    auto v = this->or_stand_in(Modality::video, zv, B);
    if (!a.defined()) return o_.align == TimeAlign::pool ? pool_latent(video_proj(v)) : video_proj(v);
    if (!v.defined()) return o_.align == TimeAlign::pool ? pool_latent(audio_proj(a)) : audio_proj(a);
    auto [pa, pv] = align_sequences(audio_proj(a), video_proj(v), o_.align);
    return pa + pv;
  }
  std::string describe() const override {
    return detail::concat("LateFusion(audio ", o_.audio_dim, ", video ", o_.video_dim, " → ", o_.dim,
                          ", missing=", missing_modality_name(o_.missing), ")");
  }

 private:
  LateFusionOptions o_;

 public:
  nn::Linear<T, D> audio_proj, video_proj;
};

// ---- gated fusion -----------------------------------------------------------------------

struct GatedFusionOptions {
  std::int64_t audio_dim = 512, video_dim = 512;
  std::int64_t dim = 512;
  bool per_dim_gate = true;  ///< one gate per fused dimension, else one scalar per sample
  MissingModality missing = MissingModality::skip;
};

/// A gated multimodal unit (Arevalo et al. 2017) on pooled latents:
///   h_a = tanh(audio_proj(x_a)), h_v = tanh(video_proj(x_v)),
///   g = sigmoid(gate([x_a; x_v])), z = g·h_a + (1 − g)·h_v — g is the learned, per-sample
/// weight of the audio modality. A skipped modality gets weight 0.
template <Floating T, Device D = Cpu> class GatedFusion : public FusionBase<T, D> {
 public:
  explicit GatedFusion(const GatedFusionOptions& o, Generator& gen = default_generator())
      : FusionBase<T, D>("GatedFusion", o.audio_dim, o.video_dim, o.dim, o.missing, gen),
        o_(o),
        audio_proj(o.audio_dim, o.dim, true, gen),
        video_proj(o.video_dim, o.dim, true, gen),
        gate(o.audio_dim + o.video_dim, o.per_dim_gate ? o.dim : 1, true, gen) {
    this->register_module("audio_proj", audio_proj);
    this->register_module("video_proj", video_proj);
    this->register_module("gate", gate);
  }
  Tensor<T, D> fuse(const Tensor<T, D>& za, const Tensor<T, D>& zv) {
    const std::int64_t B = this->check_pair(za, zv);
    auto a = this->or_stand_in(Modality::audio, za, B);
    auto v = this->or_stand_in(Modality::video, zv, B);
    if (!a.defined()) return tanh(video_proj(pool_latent(v)));
    if (!v.defined()) return tanh(audio_proj(pool_latent(a)));
    auto xa = pool_latent(a), xv = pool_latent(v);
    auto g = sigmoid(gate(concat({xa, xv}, 1)));
    return g * tanh(audio_proj(xa)) + (1.0 - g) * tanh(video_proj(xv));
  }
  /// The audio weight g per sample, (B, dim) or (B, 1), for inspection (both modalities present).
  Tensor<T, D> gates(const Tensor<T, D>& za, const Tensor<T, D>& zv) {
    AVGRAD_CHECK(za.defined() && zv.defined(), "GatedFusion", "gates() needs both modalities");
    this->check_pair(za, zv);
    return sigmoid(gate(concat({pool_latent(za), pool_latent(zv)}, 1)));
  }
  std::string describe() const override {
    return detail::concat("GatedFusion(audio ", o_.audio_dim, ", video ", o_.video_dim, " → ", o_.dim,
                          o_.per_dim_gate ? ", per-dim gate" : ", scalar gate", ")");
  }

 private:
  GatedFusionOptions o_;

 public:
  nn::Linear<T, D> audio_proj, video_proj, gate;
};

// ---- mid fusion -------------------------------------------------------------------------

struct MidFusionOptions {
  std::int64_t audio_dim = 1024, video_dim = 2048;
  std::int64_t dim = 1024;  ///< the transformer's width
  std::int64_t num_heads = 8, dim_feedforward = 1024, layers = 2;
  bool share_weights = true;  ///< one layer applied `layers` times, as the study's transformer
  double dropout = 0.1;
  TimeAlign align = TimeAlign::shorter;
  MissingModality missing = MissingModality::zeros;  ///< skip is not possible: the features are concatenated
};

/// h = transformer(proj([z_a; z_v])): the two feature sequences, aligned in time, are
/// concatenated per step, projected to `dim` and run through a post-norm transformer;
/// output (B, L, dim). A missing modality's stand-in is repeated over the time steps.
template <Floating T, Device D = Cpu> class MidFusion : public FusionBase<T, D> {
 public:
  explicit MidFusion(const MidFusionOptions& o, Generator& gen = default_generator())
      : FusionBase<T, D>("MidFusion", o.audio_dim, o.video_dim, o.dim, o.missing, gen),
        o_(o),
        proj(o.audio_dim + o.video_dim, o.dim, true, gen),
        transformer(
            [&] {
              return std::make_unique<nn::TransformerEncoderLayer<T, D>>(
                  o.dim, o.num_heads, o.dim_feedforward, o.dropout, nn::TransformerActivation::relu, 1e-5, false, gen);
            },
            o.layers, nullptr, o.share_weights) {
    AVGRAD_CHECK(o.missing != MissingModality::skip, "MidFusion",
                 "missing = skip is impossible: mid fusion concatenates both feature sequences; use zeros or "
                 "learned_token");
    this->register_module("proj", proj);
    this->register_module("transformer", transformer);
  }
  Tensor<T, D> fuse(const Tensor<T, D>& za, const Tensor<T, D>& zv) {
    const std::int64_t B = this->check_pair(za, zv);
    auto a = this->or_stand_in(Modality::audio, za, B);
    auto v = this->or_stand_in(Modality::video, zv, B);
    auto [sa, sv] = align_sequences(a, v, o_.align);
    if (sa.dim() == 2) {  // both pooled: a sequence of one step
      sa = sa.unsqueeze(1);
      sv = sv.unsqueeze(1);
    }
    return transformer(proj(concat({sa, sv}, 2)));
  }
  std::string describe() const override {
    return detail::concat("MidFusion(audio ", o_.audio_dim, " + video ", o_.video_dim, " → ", o_.dim, ", ", o_.layers,
                          o_.share_weights ? " shared layers" : " layers", ")");
  }

 private:
  MidFusionOptions o_;

 public:
  nn::Linear<T, D> proj;
  nn::TransformerEncoder<T, D> transformer;
};

// ---- early fusion -----------------------------------------------------------------------

/// How early fusion puts the two inputs on one grid:
///   concat_time — the study's code: video features (B, T_v, D_v) are cut into rows of the
///                 audio's F bins, (B, T_v·D_v/F, F), and appended after the audio frames
///                 along time; the stem sees one (B, T_a + T_v·D_v/F, F) spectrogram-like input;
///   channels    — the video features, as an image (T_v, D_v), are averaged onto the audio's
///                 (T_a, F) grid and stacked with it as a second channel: (B, 2, T_a, F).
enum class EarlyLayout { concat_time, channels };

struct EarlyFusionOptions {
  EarlyLayout layout = EarlyLayout::concat_time;
  std::int64_t audio_frames = 400, num_bins = 64;    ///< the audio input (T_a, F)
  std::int64_t video_frames = 10, video_dim = 2048;  ///< the video input (T_v, D_v)
  /// zeros: a missing input is all zeros; learned_token: one learned value per modality fills it;
  /// skip (concat_time only): the stem sees the present input alone.
  MissingModality missing = MissingModality::zeros;
};

/// One stem over both inputs. The branches of the AVClassifier are InputPassthrough
/// encoders, so the per-modality "latents" of an early-fusion model are its inputs.
/// Stem: any Encoder taking (B, T, F) (concat_time) or (B, 2, T, F) (channels).
template <Encoder Stem> class EarlyFusion : public nn::Module<typename Stem::value_type, typename Stem::device_type> {
 public:
  using T = typename Stem::value_type;
  using D = typename Stem::device_type;
  using Tensor_ = Tensor<T, D>;

  EarlyFusion(const EarlyFusionOptions& o, std::unique_ptr<Stem> stem_module, Generator& gen = default_generator())
      : o_(o), stem_(std::move(stem_module)) {
    AVGRAD_CHECK(stem_ != nullptr, "EarlyFusion", "the stem is null");
    AVGRAD_CHECK(o.audio_frames > 0 && o.num_bins > 0 && o.video_frames > 0 && o.video_dim > 0, "EarlyFusion",
                 "input sizes must be positive, got audio (", o.audio_frames, ", ", o.num_bins, "), video (",
                 o.video_frames, ", ", o.video_dim, ")");
    AVGRAD_CHECK(o.layout == EarlyLayout::channels || o.video_dim % o.num_bins == 0, "EarlyFusion",
                 "concat_time cuts video features of width ", o.video_dim, " into rows of ", o.num_bins,
                 " bins: the width must be a multiple of the bin count");
    AVGRAD_CHECK(o.layout == EarlyLayout::concat_time || o.missing != MissingModality::skip, "EarlyFusion",
                 "missing = skip needs layout concat_time: the channels layout always has both channels");
    if (o.missing == MissingModality::learned_token) {
      audio_missing = Tensor_::empty({1});
      video_missing = Tensor_::empty({1});
      nn::init::trunc_normal_(audio_missing, 0.0, 0.02, -2.0, 2.0, gen);
      nn::init::trunc_normal_(video_missing, 0.0, 0.02, -2.0, 2.0, gen);
      this->register_parameter("audio_missing", audio_missing);
      this->register_parameter("video_missing", video_missing);
    }
    this->register_module("stem", *stem_);
  }

  /// xa (B, T_a, F) audio features, xv (B, T_v, D_v) video features → stem output.
  Tensor_ fuse(const Tensor_& xa, const Tensor_& xv) {
    AVGRAD_CHECK(xa.defined() || xv.defined(), "EarlyFusion", "both modalities are missing");
    if (xa.defined())
      check_input(
          "EarlyFusion", xa,
          [&](auto& t) { return t.dim() == 3 && t.size(1) == o_.audio_frames && t.size(2) == o_.num_bins; },
          detail::concat("audio features (B, ", o_.audio_frames, ", ", o_.num_bins, ")"));
    if (xv.defined())
      check_input(
          "EarlyFusion", xv,
          [&](auto& t) { return t.dim() == 3 && t.size(1) == o_.video_frames && t.size(2) == o_.video_dim; },
          detail::concat("video features (B, ", o_.video_frames, ", ", o_.video_dim, ")"));
    AVGRAD_CHECK(!xa.defined() || !xv.defined() || xa.size(0) == xv.size(0), "EarlyFusion",
                 "batch sizes differ: audio ", xa.size(0), ", video ", xv.size(0));
    const std::int64_t B = xa.defined() ? xa.size(0) : xv.size(0);
    auto a = xa.defined() ? xa : stand_in(Modality::audio, {B, o_.audio_frames, o_.num_bins});
    auto v = xv.defined() ? xv : stand_in(Modality::video, {B, o_.video_frames, o_.video_dim});
    if (o_.layout == EarlyLayout::concat_time) {
      if (v.defined()) v = v.reshape({B, o_.video_frames * o_.video_dim / o_.num_bins, o_.num_bins});
      if (!a.defined()) return stem_->forward(v);
      if (!v.defined()) return stem_->forward(a);
      return stem_->forward(concat({a, v}, 1));
    }
    auto v_grid = adaptive_avg_pool2d(v.unsqueeze(1), {o_.audio_frames, o_.num_bins});
    return stem_->forward(concat({a.unsqueeze(1), v_grid}, 1));
  }
  Stem& stem() { return *stem_; }
  std::int64_t audio_dim() const { return o_.num_bins; }
  std::int64_t video_dim() const { return o_.video_dim; }
  std::int64_t latent_dim() const { return stem_->latent_dim(); }
  MissingModality missing() const { return o_.missing; }
  std::string describe() const override {
    return detail::concat("EarlyFusion(", o_.layout == EarlyLayout::concat_time ? "concat_time" : "channels",
                          ", missing=", missing_modality_name(o_.missing), ")");
  }

  Tensor_ audio_missing, video_missing;

 private:
  Tensor_ stand_in(Modality m, const Shape& shape) const {
    switch (o_.missing) {
      case MissingModality::zeros:
        return zeros<T, D>(shape);
      case MissingModality::learned_token: {
        const auto& fill = m == Modality::audio ? audio_missing : video_missing;
        return fill.reshape({1, 1, 1}).expand(shape);
      }
      case MissingModality::skip:
        break;
    }
    return {};
  }

  EarlyFusionOptions o_;
  std::unique_ptr<Stem> stem_;
};

/// The branch encoder of an early-fusion model: its input unchanged, (B, L, dim) or (B, dim).
template <Floating T, Device D = Cpu> class InputPassthrough : public nn::UnaryModule<T, D> {
 public:
  explicit InputPassthrough(std::int64_t dim) : dim_(dim) {
    AVGRAD_CHECK(dim > 0, "InputPassthrough", "dim must be positive, got ", dim);
  }
  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    check_input(
        "InputPassthrough", x, [&](auto& t) { return (t.dim() == 2 || t.dim() == 3) && t.size(-1) == dim_; },
        detail::concat("(B, L, ", dim_, ") or (B, ", dim_, ")"));
    return x;
  }
  std::int64_t latent_dim() const { return dim_; }
  std::string describe() const override { return detail::concat("InputPassthrough(", dim_, ")"); }

 private:
  std::int64_t dim_;
};

// ---- attention-bottleneck fusion ----------------------------------------------------------

struct BottleneckFusionOptions {
  std::int64_t audio_dim = 768, video_dim = 768;
  std::int64_t dim = 768, num_heads = 12, dim_feedforward = 3072;
  std::int64_t depth = 4;         ///< transformer layers per modality
  std::int64_t fusion_layer = 2;  ///< layers [fusion_layer, depth) exchange through the bottleneck
  std::int64_t bottleneck_tokens = 4;
  double dropout = 0.0;
};

/// Attention bottlenecks (Nagrani et al. 2021, MBT): each modality's token sequence runs
/// through its own pre-norm transformer layers; from `fusion_layer` on, a few bottleneck
/// tokens are appended to both sequences, each modality's layer updates its copy, and the
/// copies are averaged — cross-modal information flows only through the bottleneck.
/// Output: the mean of the two modalities' mean-pooled, layer-normed tokens, (B, dim).
/// Inputs are token sequences (B, N_m, D_m), projected to dim when D_m differs. A missing
/// modality is skipped (the bottleneck is then updated by the present one alone).
template <Floating T, Device D = Cpu> class BottleneckFusion : public FusionBase<T, D> {
 public:
  explicit BottleneckFusion(const BottleneckFusionOptions& o, Generator& gen = default_generator())
      : FusionBase<T, D>("BottleneckFusion", o.audio_dim, o.video_dim, o.dim, MissingModality::skip, gen),
        o_(o),
        audio_norm(Shape{o.dim}, 1e-6),
        video_norm(Shape{o.dim}, 1e-6) {
    AVGRAD_CHECK(o.depth >= 1 && o.fusion_layer >= 0 && o.fusion_layer < o.depth && o.bottleneck_tokens >= 1,
                 "BottleneckFusion",
                 "need depth >= 1, 0 <= fusion_layer < depth and bottleneck_tokens >= 1, got depth ", o.depth,
                 ", fusion_layer ", o.fusion_layer, ", bottleneck_tokens ", o.bottleneck_tokens);
    if (o.audio_dim != o.dim) {
      audio_proj.emplace(o.audio_dim, o.dim, true, gen);
      this->register_module("audio_proj", *audio_proj);
    }
    if (o.video_dim != o.dim) {
      video_proj.emplace(o.video_dim, o.dim, true, gen);
      this->register_module("video_proj", *video_proj);
    }
    bottleneck = Tensor<T, D>::empty({1, o.bottleneck_tokens, o.dim});
    nn::init::trunc_normal_(bottleneck, 0.0, 0.02, -2.0, 2.0, gen);
    this->register_parameter("bottleneck", bottleneck);
    for (std::int64_t l = 0; l < o.depth; ++l) {
      audio_layers.add(make_layer(gen));
      video_layers.add(make_layer(gen));
    }
    this->register_module("audio_layers", audio_layers);
    this->register_module("video_layers", video_layers);
    this->register_module("audio_norm", audio_norm);
    this->register_module("video_norm", video_norm);
  }

  Tensor<T, D> fuse(const Tensor<T, D>& za, const Tensor<T, D>& zv) {
    auto [xa, xv] = streams(za, zv);
    if (!xv.defined()) return mean(xa, {1});
    if (!xa.defined()) return mean(xv, {1});
    return (mean(xa, {1}) + mean(xv, {1})) * 0.5;
  }
  /// Each modality's final, layer-normed token stream (B, N_m, dim); undefined when missing.
  std::pair<Tensor<T, D>, Tensor<T, D>> streams(const Tensor<T, D>& za, const Tensor<T, D>& zv) {
    const std::int64_t B = this->check_pair(za, zv);
    for (const auto* z : {&za, &zv})
      if (z->defined())
        check_input(
            "BottleneckFusion", *z, [](auto& t) { return t.dim() == 3; }, "token sequences (B, N, D)");
    Tensor<T, D> xa = za.defined() ? (audio_proj ? (*audio_proj)(za) : za) : Tensor<T, D>{};
    Tensor<T, D> xv = zv.defined() ? (video_proj ? (*video_proj)(zv) : zv) : Tensor<T, D>{};
    Tensor<T, D> b;
    for (std::int64_t l = 0; l < o_.depth; ++l) {
      const auto i = static_cast<std::size_t>(l);
      if (l < o_.fusion_layer) {
        if (xa.defined()) xa = audio_layers.at(i)(xa);
        if (xv.defined()) xv = video_layers.at(i)(xv);
        continue;
      }
      if (!b.defined()) b = bottleneck.expand({B, o_.bottleneck_tokens, o_.dim});
      Tensor<T, D> ba, bv;
      if (xa.defined()) std::tie(xa, ba) = with_bottleneck(audio_layers.at(i), xa, b);
      if (xv.defined()) std::tie(xv, bv) = with_bottleneck(video_layers.at(i), xv, b);
      b = ba.defined() && bv.defined() ? (ba + bv) * 0.5 : ba.defined() ? ba : bv;
    }
    return {xa.defined() ? audio_norm(xa) : xa, xv.defined() ? video_norm(xv) : xv};
  }
  std::string describe() const override {
    return detail::concat("BottleneckFusion(dim ", o_.dim, ", depth ", o_.depth, ", fusion from layer ",
                          o_.fusion_layer, ", ", o_.bottleneck_tokens, " bottleneck tokens)");
  }

 private:
  std::unique_ptr<nn::TransformerEncoderLayer<T, D>> make_layer(Generator& gen) const {
    return std::make_unique<nn::TransformerEncoderLayer<T, D>>(o_.dim, o_.num_heads, o_.dim_feedforward, o_.dropout,
                                                               nn::TransformerActivation::gelu, 1e-6, true, gen);
  }
  /// One layer over [x; b]; returns the updated x and this modality's copy of b.
  static std::pair<Tensor<T, D>, Tensor<T, D>> with_bottleneck(nn::TransformerEncoderLayer<T, D>& layer,
                                                               const Tensor<T, D>& x, const Tensor<T, D>& b) {
    const std::int64_t N = x.size(1);
    auto y = layer(concat({x, b}, 1));
    return {y.narrow(1, 0, N), y.narrow(1, N, b.size(1))};
  }

  BottleneckFusionOptions o_;

 public:
  std::optional<nn::Linear<T, D>> audio_proj, video_proj;
  Tensor<T, D> bottleneck;
  nn::EncoderLayerList<T, D> audio_layers, video_layers;
  nn::LayerNorm<T, D> audio_norm, video_norm;
};

}  // namespace avgrad::models
