// Video encoders for the video slot of an audio-visual model: clips (B, C, T, H, W) or
// precomputed frame features (B, T, D) in, a latent sequence over time (B, T', D) or a
// pooled latent (B, D) out, with D = latent_dim() whatever the input extents.
//
//   FrameCnnEncoder        — a 2-D ResNet applied to every frame, then a temporal stage;
//   Conv3dEncoder          — the conv3d + BN + ReLU + max-pool stack of bench-av-small's video branch;
//   R2Plus1dEncoder        — R(2+1)D (Tran et al. 2018), torchvision's layout and child names;
//   VivitEncoder           — a ViViT/TimeSformer-style transformer with factorised space-time attention;
//   FeatureSequenceEncoder — the study's AudioSet video branch over 10×2048 frame features.
//
// Every encoder's options default to the full (reference) size; Options::small() is a
// version that trains in seconds on two CPU cores. Options are checked at construction
// and inputs on every call, with errors naming the encoder and expected vs got shapes.
#pragma once

#include <array>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "avgrad/models/blocks.hpp"
#include "avgrad/models/concepts.hpp"
#include "avgrad/nn/activation.hpp"
#include "avgrad/nn/attention.hpp"
#include "avgrad/nn/conv.hpp"
#include "avgrad/nn/dropout.hpp"
#include "avgrad/nn/linear.hpp"
#include "avgrad/nn/normalization.hpp"
#include "avgrad/nn/patch.hpp"
#include "avgrad/nn/positional.hpp"
#include "avgrad/nn/sequential.hpp"
#include "avgrad/nn/transformer.hpp"
#include "avgrad/ops/pool.hpp"
#include "avgrad/ops/reduce.hpp"
#include "avgrad/ops/unary.hpp"

namespace avgrad::models {

namespace video_detail {
/// "(64, 128, 256)" for messages and describe().
inline std::string list(const std::vector<std::int64_t>& v) {
  std::string s = "(";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + ")";
}
inline std::string list(const std::array<std::int64_t, 3>& v) {
  return list(std::vector<std::int64_t>(v.begin(), v.end()));
}

/// Widths and block counts of a ResNet-style stage list: same length, all positive.
inline void check_stages(const char* who, const std::vector<std::int64_t>& widths,
                         const std::vector<std::int64_t>& blocks) {
  AVGRAD_CHECK(!widths.empty() && widths.size() == blocks.size(), who,
               "widths and blocks must be non-empty and of the same length, got widths ", list(widths), " and blocks ",
               list(blocks));
  for (std::size_t i = 0; i < widths.size(); ++i)
    AVGRAD_CHECK(widths[i] > 0 && blocks[i] > 0, who, "stage ", i,
                 " needs a positive width and block count, got width ", widths[i], " and ", blocks[i], " blocks");
}

/// A clip (B, C, T, H, W) with C = channels.
template <Floating T, Device D> void check_clip(const char* who, const Tensor<T, D>& x, std::int64_t channels) {
  check_input(
      who, x, [&](const auto& t) { return t.dim() == 5 && t.size(1) == channels && t.numel() > 0; },
      detail::concat("a video clip (B, ", channels, ", T, H, W)"));
}
}  // namespace video_detail

// =====================================================================================
// FrameCnnEncoder
// =====================================================================================

/// What FrameCnnEncoder does with its per-frame latents (B, T, D):
///   sequence    — returns them, (B, T, D);
///   mean        — averages them over time, (B, D);
///   transformer — a post-norm transformer encoder over the T frame latents with learned
///                 temporal positions, (B, T, D).
enum class TemporalPooling { sequence, mean, transformer };
inline const char* temporal_pooling_name(TemporalPooling p) {
  return p == TemporalPooling::sequence ? "sequence" : p == TemporalPooling::mean ? "mean" : "transformer";
}

struct FrameCnnEncoderOptions {
  std::int64_t in_channels = 3;
  std::vector<std::int64_t> widths{64, 128, 256, 512};  ///< per stage; the stem outputs widths[0]
  std::vector<std::int64_t> blocks{2, 2, 2, 2};         ///< BasicBlocks per stage (ResNet-18)
  TemporalPooling temporal = TemporalPooling::sequence;
  // the transformer temporal stage (used only with TemporalPooling::transformer)
  std::int64_t temporal_heads = 8;
  std::int64_t temporal_layers = 2;
  std::int64_t temporal_ffn = 2048;
  double temporal_dropout = 0.1;
  std::int64_t max_frames = 64;  ///< length of the learned temporal position table

  /// Two narrow stages and a one-layer temporal transformer: trains in seconds on 2 cores.
  static FrameCnnEncoderOptions small() {
    FrameCnnEncoderOptions o;
    o.widths = {8, 16};
    o.blocks = {1, 1};
    o.temporal_heads = 2;
    o.temporal_layers = 1;
    o.temporal_ffn = 32;
    o.max_frames = 16;
    return o;
  }
};

/// Per-frame 2-D ResNet: x (B, C, T, H, W) → frames (B·T, C, H, W) → stem ConvBnAct 3×3 →
/// stages of BasicBlocks (stride 2 at the first block of every stage after the first) →
/// global average pool → (B, T, D), D = widths.back() → the temporal stage (TemporalPooling).
/// Children: stem, layer1 … layerN (torchvision's names), and with the transformer stage
/// temporal_pos and temporal.
template <Floating T, Device D = Cpu> class FrameCnnEncoder : public nn::UnaryModule<T, D> {
 private:
  FrameCnnEncoderOptions opt_;  // first: checked before any child is built from it

 public:
  using Options = FrameCnnEncoderOptions;

  explicit FrameCnnEncoder(const Options& opt = {}, Generator& gen = default_generator())
      : opt_(checked(opt)), stem(opt.in_channels, opt.widths[0], 3, 1, true, gen) {
    this->register_module("stem", stem);
    std::int64_t in = opt.widths[0];
    for (std::size_t s = 0; s < opt.widths.size(); ++s) {
      auto stage = std::make_unique<nn::Sequential<T, D>>();
      for (std::int64_t b = 0; b < opt.blocks[s]; ++b) {
        const std::int64_t stride = (s > 0 && b == 0) ? 2 : 1;
        stage->template emplace<BasicBlock<2, T, D>>(in, opt.widths[s], stride, gen);
        in = opt.widths[s];
      }
      layers_.push_back(std::move(stage));
      this->register_module("layer" + std::to_string(s + 1), *layers_.back());
    }
    if (opt.temporal == TemporalPooling::transformer) {
      const std::int64_t d = latent_dim();
      temporal_pos = std::make_unique<nn::LearnedPositionalEmbedding<T, D>>(opt.max_frames, d, gen);
      this->register_module("temporal_pos", *temporal_pos);
      temporal = std::make_unique<nn::TransformerEncoder<T, D>>(
          [&] {
            return std::make_unique<nn::TransformerEncoderLayer<T, D>>(
                d, opt.temporal_heads, opt.temporal_ffn, opt.temporal_dropout, nn::TransformerActivation::relu, 1e-5,
                /*norm_first=*/false, gen);
          },
          opt.temporal_layers);
      this->register_module("temporal", *temporal);
    }
  }

  /// x (B, C, T, H, W) → (B, T, D) for sequence/transformer, (B, D) for mean.
  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    video_detail::check_clip("FrameCnnEncoder", x, opt_.in_channels);
    const std::int64_t B = x.size(0), Tn = x.size(2), H = x.size(3), W = x.size(4);
    if (opt_.temporal == TemporalPooling::transformer)
      AVGRAD_CHECK(Tn <= opt_.max_frames, "FrameCnnEncoder", "expected at most max_frames = ", opt_.max_frames,
                   " frames for the temporal positions, got a clip ", x.shape());
    // every frame is an image of the batch: (B, C, T, H, W) → (B·T, C, H, W)
    auto h = stem(x.permute({0, 2, 1, 3, 4}).reshape({B * Tn, opt_.in_channels, H, W}));
    for (auto& stage : layers_) h = stage->forward(h);
    auto z = mean(h, {2, 3}).reshape({B, Tn, latent_dim()});  // (B, T, D)
    switch (opt_.temporal) {
      case TemporalPooling::mean:
        return mean(z, {1});
      case TemporalPooling::transformer:
        return temporal->forward(temporal_pos->forward(z));
      case TemporalPooling::sequence:
        break;
    }
    return z;
  }

  std::int64_t latent_dim() const { return opt_.widths.back(); }
  const Options& options() const { return opt_; }
  std::string describe() const override {
    return detail::concat("FrameCnnEncoder(widths=", video_detail::list(opt_.widths),
                          ", blocks=", video_detail::list(opt_.blocks),
                          ", temporal=", temporal_pooling_name(opt_.temporal), ")");
  }

  ConvBnAct<2, T, D> stem;
  std::unique_ptr<nn::LearnedPositionalEmbedding<T, D>> temporal_pos;  ///< transformer stage only
  std::unique_ptr<nn::TransformerEncoder<T, D>> temporal;              ///< transformer stage only

  nn::Sequential<T, D>& layer(std::size_t i) { return *layers_.at(i); }

 private:
  static const Options& checked(const Options& o) {
    const char* who = "FrameCnnEncoder";
    AVGRAD_CHECK(o.in_channels > 0, who, "in_channels must be positive, got ", o.in_channels);
    video_detail::check_stages(who, o.widths, o.blocks);
    if (o.temporal == TemporalPooling::transformer) {
      AVGRAD_CHECK(o.temporal_heads > 0 && o.widths.back() % o.temporal_heads == 0, who, "the last width ",
                   o.widths.back(), " must be divisible by temporal_heads ", o.temporal_heads);
      AVGRAD_CHECK(o.temporal_layers >= 1 && o.temporal_ffn > 0 && o.max_frames > 0, who,
                   "temporal_layers, temporal_ffn and max_frames must be positive, got ", o.temporal_layers, ", ",
                   o.temporal_ffn, ", ", o.max_frames);
    }
    return o;
  }

  std::vector<std::unique_ptr<nn::Sequential<T, D>>> layers_;
};

// =====================================================================================
// Conv3dEncoder
// =====================================================================================

struct Conv3dEncoderOptions {
  std::int64_t in_channels = 3;
  std::vector<std::int64_t> channels{32, 64, 128};  ///< one conv3d block per entry
  /// max_pool3d window (= stride) (t, h, w) after each block; the first keeps time intact.
  std::vector<std::array<std::int64_t, 3>> pools{{1, 2, 2}, {2, 2, 2}, {2, 2, 2}};
  std::int64_t kernel = 3;  ///< cubic conv kernel, "same" padding

  /// Narrower blocks, same pools: trains in seconds on 2 cores at (B, 3, 8, 32, 32).
  static Conv3dEncoderOptions small() {
    Conv3dEncoderOptions o;
    o.channels = {8, 16, 32};
    return o;
  }
};

/// The video branch of bench-av-small (reference input (B, 3, 8, 32, 32)): per block
/// conv3d k×k×k (no bias) → BatchNorm3d → ReLU → max_pool3d(pool), then the spatial mean
/// as a sequence over the remaining time steps, (B, T', C_last). A head that mean-pools
/// that sequence over time sees exactly the global average pool of the reference.
/// Children: blocks.0 … blocks.N−1 (each ConvBnAct: conv, bn).
template <Floating T, Device D = Cpu> class Conv3dEncoder : public nn::UnaryModule<T, D> {
 private:
  Conv3dEncoderOptions opt_;

 public:
  using Options = Conv3dEncoderOptions;

  explicit Conv3dEncoder(const Options& opt = {}, Generator& gen = default_generator()) : opt_(checked(opt)) {
    std::int64_t in = opt.in_channels;
    for (std::int64_t c : opt.channels) {
      block_.push_back(&blocks.template emplace<ConvBnAct<3, T, D>>(in, c, opt.kernel, 1, true, gen));
      in = c;
    }
    this->register_module("blocks", blocks);
  }

  /// x (B, C, T, H, W) → (B, T', C_last), T' = T / ∏ pool_t (floored per block).
  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    video_detail::check_clip("Conv3dEncoder", x, opt_.in_channels);
    // every pool floors its extent; an extent that reaches 0 would fail deep inside max_pool3d
    std::array<std::int64_t, 3> ext{x.size(2), x.size(3), x.size(4)};
    for (const auto& p : opt_.pools)
      for (std::size_t i = 0; i < 3; ++i) ext[i] /= p[i];
    AVGRAD_CHECK(ext[0] > 0 && ext[1] > 0 && ext[2] > 0, "Conv3dEncoder", "expected a clip (B, ", opt_.in_channels,
                 ", T, H, W) with T, H, W at least the product of the pools ", min_extent_str(), ", got ", x.shape());
    Tensor<T, D> h = x;
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      const auto& p = opt_.pools[i];
      h = block_[i]->forward_pooled(h, [&p](const Tensor<T, D>& y) {
        return max_pool3d(y, PoolSize{p[0], p[1], p[2]});
      });
    }
    return spatial_mean_sequence(h);
  }

  std::int64_t latent_dim() const { return opt_.channels.back(); }
  const Options& options() const { return opt_; }
  std::string describe() const override {
    std::string pools;
    for (const auto& p : opt_.pools) pools += (pools.empty() ? "" : ", ") + video_detail::list(p);
    return detail::concat("Conv3dEncoder(channels=", video_detail::list(opt_.channels), ", pools=(", pools, "))");
  }

  nn::Sequential<T, D> blocks;

 private:
  std::vector<ConvBnAct<3, T, D>*> block_;  ///< the blocks, typed (owned by `blocks`)

  static const Options& checked(const Options& o) {
    const char* who = "Conv3dEncoder";
    AVGRAD_CHECK(o.in_channels > 0 && o.kernel > 0 && o.kernel % 2 == 1, who,
                 "in_channels must be positive and kernel positive and odd (same padding), got in_channels ",
                 o.in_channels, ", kernel ", o.kernel);
    AVGRAD_CHECK(!o.channels.empty() && o.channels.size() == o.pools.size(), who,
                 "channels and pools must be non-empty and of the same length, got ", o.channels.size(),
                 " channels and ", o.pools.size(), " pools");
    for (std::size_t i = 0; i < o.channels.size(); ++i)
      AVGRAD_CHECK(o.channels[i] > 0 && o.pools[i][0] > 0 && o.pools[i][1] > 0 && o.pools[i][2] > 0, who, "block ", i,
                   " needs positive channels and pool, got ", o.channels[i], " and ", video_detail::list(o.pools[i]));
    return o;
  }
  std::string min_extent_str() const {
    std::array<std::int64_t, 3> m{1, 1, 1};
    for (const auto& p : opt_.pools)
      for (std::size_t i = 0; i < 3; ++i) m[i] *= p[i];
    return video_detail::list(m);
  }
};

// =====================================================================================
// R2Plus1dEncoder
// =====================================================================================

struct R2Plus1dEncoderOptions {
  std::int64_t in_channels = 3;
  std::vector<std::int64_t> widths{64, 128, 256, 512};  ///< the stem outputs widths[0]
  std::vector<std::int64_t> blocks{2, 2, 2, 2};         ///< R(2+1)D-18
  std::int64_t stem_channels = 45;                      ///< the stem's width between its spatial and temporal conv
  std::int64_t stem_spatial_kernel = 7;                 ///< 1×k×k, padding k/2
  std::int64_t stem_spatial_stride = 2;                 ///< (1, s, s)
  std::int64_t stem_temporal_kernel = 3;                ///< k×1×1, padding k/2

  /// Two narrow stages and a 3×3 unstrided stem: trains in seconds on 2 cores at (B, 3, 8, 32, 32).
  static R2Plus1dEncoderOptions small() {
    R2Plus1dEncoderOptions o;
    o.widths = {8, 16};
    o.blocks = {1, 1};
    o.stem_channels = 6;
    o.stem_spatial_kernel = 3;
    o.stem_spatial_stride = 1;
    return o;
  }
};

/// Intermediate width of a (2+1)D factorisation of a t×d×d conv from n_in to n_out
/// channels that keeps the parameter count of the full 3-D conv (Tran et al. 2018):
/// ⌊t·d²·n_in·n_out / (d²·n_in + t·n_out)⌋, t = d = 3.
inline std::int64_t r2plus1d_midplanes(std::int64_t n_in, std::int64_t n_out) {
  return (3 * 9 * n_in * n_out) / (9 * n_in + 3 * n_out);
}

/// A 3×3×3 convolution factorised as torchvision's Conv2Plus1D, a Sequential:
/// 0 = conv 1×3×3 stride (1, s, s), 1 = BN, 2 = ReLU, 3 = conv 3×1×1 stride (s, 1, 1).
template <Floating T, Device D>
std::unique_ptr<nn::Sequential<T, D>> make_conv2plus1d(std::int64_t in, std::int64_t out, std::int64_t mid,
                                                       std::int64_t stride, Generator& gen) {
  auto s = std::make_unique<nn::Sequential<T, D>>();
  s->template emplace<nn::Conv3d<T, D>>(in, mid, ConvArg<3>{1, 3, 3}, ConvArg<3>{1, stride, stride},
                                        ConvArg<3>{0, 1, 1}, 1, 1, false, gen);
  s->template emplace<nn::BatchNorm3d<T, D>>(mid);
  s->template emplace<nn::ReLU<T, D>>();
  s->template emplace<nn::Conv3d<T, D>>(mid, out, ConvArg<3>{3, 1, 1}, ConvArg<3>{stride, 1, 1}, ConvArg<3>{1, 0, 0}, 1,
                                        1, false, gen);
  return s;
}

/// The R(2+1)D residual basic block with torchvision's children: conv1 = (Conv2Plus1D, BN,
/// ReLU), conv2 = (Conv2Plus1D, BN), downsample = (1×1×1 conv stride s, BN) when the stride
/// or width changes; relu(conv2(conv1(x)) + shortcut(x)). As torchvision, both factorised
/// convs use the midplanes of (in, out), which keeps state dicts and parameter counts equal.
template <Floating T, Device D = Cpu> class R2Plus1dBlock : public nn::UnaryModule<T, D> {
 public:
  R2Plus1dBlock(std::int64_t in, std::int64_t out, std::int64_t stride, Generator& gen = default_generator())
      : in_(in), out_(out), stride_(stride) {
    const std::int64_t mid = r2plus1d_midplanes(in, out);
    conv1.push_back(make_conv2plus1d<T, D>(in, out, mid, stride, gen));
    conv1.template emplace<nn::BatchNorm3d<T, D>>(out);
    conv1.template emplace<nn::ReLU<T, D>>();
    conv2.push_back(make_conv2plus1d<T, D>(out, out, mid, 1, gen));
    conv2.template emplace<nn::BatchNorm3d<T, D>>(out);
    this->register_module("conv1", conv1);
    this->register_module("conv2", conv2);
    if (stride != 1 || in != out) {
      downsample.template emplace<nn::Conv3d<T, D>>(in, out, 1, stride, 0, 1, 1, false, gen);
      downsample.template emplace<nn::BatchNorm3d<T, D>>(out);
      this->register_module("downsample", downsample);
    }
  }
  /// x (B, in, T, H, W) → (B, out, T/s, H/s, W/s) (rounded up).
  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    auto h = conv2(conv1(x));
    return relu(h + (downsample.empty() ? x : downsample(x)));
  }
  std::string describe() const override {
    return detail::concat("R2Plus1dBlock(", in_, " → ", out_, ", mid=", r2plus1d_midplanes(in_, out_),
                          ", stride=", stride_, ")");
  }

  nn::Sequential<T, D> conv1, conv2;
  nn::Sequential<T, D> downsample;  ///< empty for an identity shortcut

 private:
  std::int64_t in_, out_, stride_;
};

/// R(2+1)D (Tran et al. 2018) as torchvision's VideoResNet without its pool and fc:
/// stem (1×k×k conv stride (1, s, s) → BN → ReLU → k_t×1×1 conv → BN → ReLU, children
/// stem.0 … stem.5), then layer1 … layerN of R2Plus1dBlocks (stride 2 along t, h and w at
/// the first block of every stage after the first), then the spatial mean as a sequence
/// over time, (B, T', widths.back()). R(2+1)D-18 by default: 31,300,125 parameters,
/// torchvision's r2plus1d_18 (31,505,325) less its 512→400 fc.
template <Floating T, Device D = Cpu> class R2Plus1dEncoder : public nn::UnaryModule<T, D> {
 private:
  R2Plus1dEncoderOptions opt_;

 public:
  using Options = R2Plus1dEncoderOptions;

  explicit R2Plus1dEncoder(const Options& opt = {}, Generator& gen = default_generator()) : opt_(checked(opt)) {
    const std::int64_t k = opt.stem_spatial_kernel, s = opt.stem_spatial_stride, kt = opt.stem_temporal_kernel;
    stem.template emplace<nn::Conv3d<T, D>>(opt.in_channels, opt.stem_channels, ConvArg<3>{1, k, k},
                                            ConvArg<3>{1, s, s}, ConvArg<3>{0, k / 2, k / 2}, 1, 1, false, gen);
    stem.template emplace<nn::BatchNorm3d<T, D>>(opt.stem_channels);
    stem.template emplace<nn::ReLU<T, D>>();
    stem.template emplace<nn::Conv3d<T, D>>(opt.stem_channels, opt.widths[0], ConvArg<3>{kt, 1, 1}, 1,
                                            ConvArg<3>{kt / 2, 0, 0}, 1, 1, false, gen);
    stem.template emplace<nn::BatchNorm3d<T, D>>(opt.widths[0]);
    stem.template emplace<nn::ReLU<T, D>>();
    this->register_module("stem", stem);
    std::int64_t in = opt.widths[0];
    for (std::size_t st = 0; st < opt.widths.size(); ++st) {
      auto stage = std::make_unique<nn::Sequential<T, D>>();
      for (std::int64_t b = 0; b < opt.blocks[st]; ++b) {
        stage->template emplace<R2Plus1dBlock<T, D>>(in, opt.widths[st], (st > 0 && b == 0) ? 2 : 1, gen);
        in = opt.widths[st];
      }
      layers_.push_back(std::move(stage));
      this->register_module("layer" + std::to_string(st + 1), *layers_.back());
    }
  }

  /// x (B, C, T, H, W) → (B, T', D), T' = T halved (rounded up) once per stage after the first.
  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    video_detail::check_clip("R2Plus1dEncoder", x, opt_.in_channels);
    auto h = stem(x);
    for (auto& stage : layers_) h = stage->forward(h);
    return spatial_mean_sequence(h);
  }

  std::int64_t latent_dim() const { return opt_.widths.back(); }
  const Options& options() const { return opt_; }
  std::string describe() const override {
    return detail::concat("R2Plus1dEncoder(widths=", video_detail::list(opt_.widths),
                          ", blocks=", video_detail::list(opt_.blocks), ", stem=", opt_.stem_channels, ")");
  }
  nn::Sequential<T, D>& layer(std::size_t i) { return *layers_.at(i); }

  nn::Sequential<T, D> stem;

 private:
  static const Options& checked(const Options& o) {
    const char* who = "R2Plus1dEncoder";
    AVGRAD_CHECK(o.in_channels > 0 && o.stem_channels > 0, who, "in_channels and stem_channels must be positive, got ",
                 o.in_channels, " and ", o.stem_channels);
    AVGRAD_CHECK(o.stem_spatial_kernel > 0 && o.stem_spatial_kernel % 2 == 1 && o.stem_temporal_kernel > 0 &&
                     o.stem_temporal_kernel % 2 == 1 && o.stem_spatial_stride > 0,
                 who, "stem kernels must be positive and odd and the stride positive, got spatial kernel ",
                 o.stem_spatial_kernel, ", temporal kernel ", o.stem_temporal_kernel, ", stride ",
                 o.stem_spatial_stride);
    video_detail::check_stages(who, o.widths, o.blocks);
    return o;
  }

  std::vector<std::unique_ptr<nn::Sequential<T, D>>> layers_;
};

// =====================================================================================
// VivitEncoder
// =====================================================================================

struct VivitEncoderOptions {
  std::int64_t in_channels = 3;
  std::int64_t num_frames = 16;                    ///< clip length the temporal positions are sized for
  std::int64_t image_size = 224;                   ///< square frames the spatial positions are sized for
  std::array<std::int64_t, 3> tubelet{2, 16, 16};  ///< (t, h, w) extent of one token, no overlap
  std::int64_t embed_dim = 768;
  std::int64_t depth = 12;
  std::int64_t num_heads = 12;
  double mlp_ratio = 4.0;
  double dropout = 0.0;          ///< on attention weights and on every MLP output
  double layer_norm_eps = 1e-6;  ///< ViT's
  bool pool_time = false;        ///< false: (B, T', D); true: mean over time too, (B, D)

  /// 8×32×32 clips of 2×8×8 tubelets (4×4×4 tokens), width 32, two layers.
  static VivitEncoderOptions small() {
    VivitEncoderOptions o;
    o.num_frames = 8;
    o.image_size = 32;
    o.tubelet = {2, 8, 8};
    o.embed_dim = 32;
    o.depth = 2;
    o.num_heads = 4;
    o.mlp_ratio = 2.0;
    return o;
  }
};

/// One factorised space-time layer over tokens on a (T', S) grid, pre-norm:
///   temporal: x + attn_t(norm_t(x)) among the T' tokens at one spatial position (B·S, T', D);
///   spatial:  x + attn_s(norm_s(x)) among the S tokens of one time step (B·T', S, D);
///   mlp:      x + fc2(gelu(fc1(norm_mlp(x)))).
/// Children temporal_norm, temporal_attn, spatial_norm, spatial_attn, mlp_norm, fc1, fc2, dropout.
template <Floating T, Device D = Cpu> class VivitBlock : public nn::UnaryModule<T, D> {
 public:
  VivitBlock(std::int64_t dim, std::int64_t heads, std::int64_t mlp_hidden, double p = 0.0, double eps = 1e-6,
             Generator& gen = default_generator())
      : temporal_norm(Shape{dim}, eps),
        temporal_attn(dim, heads, p, true, gen),
        spatial_norm(Shape{dim}, eps),
        spatial_attn(dim, heads, p, true, gen),
        mlp_norm(Shape{dim}, eps),
        fc1(dim, mlp_hidden, true, gen),
        fc2(mlp_hidden, dim, true, gen),
        dropout(p) {
    this->register_module("temporal_norm", temporal_norm);
    this->register_module("temporal_attn", temporal_attn);
    this->register_module("spatial_norm", spatial_norm);
    this->register_module("spatial_attn", spatial_attn);
    this->register_module("mlp_norm", mlp_norm);
    this->register_module("fc1", fc1);
    this->register_module("fc2", fc2);
    this->register_module("dropout", this->dropout);
  }

  /// x (B, T', S, D) → (B, T', S, D): temporal, spatial, then the MLP step.
  Tensor<T, D> forward(const Tensor<T, D>& x) override { return mlp_step(spatial_step(temporal_step(x))); }

  /// Attention along time only: token (t, s) sees tokens (·, s). x (B, T', S, D) → same.
  Tensor<T, D> temporal_step(const Tensor<T, D>& x) {
    check(x, "temporal_step");
    const std::int64_t B = x.size(0), Tn = x.size(1), S = x.size(2), E = x.size(3);
    auto xt = x.permute({0, 2, 1, 3}).reshape({B * S, Tn, E});  // (B·S, T', D)
    auto h = temporal_norm(xt);
    xt = xt + temporal_attn(h, h, h);
    return xt.reshape({B, S, Tn, E}).permute({0, 2, 1, 3});
  }
  /// Attention within a time step only: token (t, s) sees tokens (t, ·). x (B, T', S, D) → same.
  Tensor<T, D> spatial_step(const Tensor<T, D>& x) {
    check(x, "spatial_step");
    const std::int64_t B = x.size(0), Tn = x.size(1), S = x.size(2), E = x.size(3);
    auto xs = x.reshape({B * Tn, S, E});  // (B·T', S, D)
    auto h = spatial_norm(xs);
    xs = xs + spatial_attn(h, h, h);
    return xs.reshape({B, Tn, S, E});
  }
  /// The per-token MLP: x (…, D) → same.
  Tensor<T, D> mlp_step(const Tensor<T, D>& x) { return x + dropout(fc2(gelu(fc1(mlp_norm(x))))); }

  std::int64_t dim() const { return fc1.in_features(); }
  std::string describe() const override {
    return detail::concat("VivitBlock(dim=", dim(), ", heads=", temporal_attn.num_heads(), ", mlp=", fc1.out_features(),
                          ")");
  }

  nn::LayerNorm<T, D> temporal_norm;
  nn::MultiheadAttention<T, D> temporal_attn;
  nn::LayerNorm<T, D> spatial_norm;
  nn::MultiheadAttention<T, D> spatial_attn;
  nn::LayerNorm<T, D> mlp_norm;
  nn::Linear<T, D> fc1, fc2;
  nn::Dropout<T, D> dropout;

 private:
  void check(const Tensor<T, D>& x, const char* step) const {
    check_input(
        "VivitBlock", x, [&](const auto& t) { return t.dim() == 4 && t.size(3) == dim(); },
        detail::concat("tokens (B, T', S, ", dim(), ") for the ", step));
  }
};

/// ViViT / TimeSformer-style video transformer with factorised (divided) space-time attention:
/// x (B, C, T, H, W) → TubeletEmbed3d ("patch_embed") → tokens on the grid (T', H', W') →
/// + learned spatial positions (1, H'·W', D) ("spatial_pos") and temporal positions
/// (1, T', D) ("temporal_pos") → blocks.0 … blocks.N−1 (VivitBlock) → LayerNorm "norm" →
/// mean over space (B, T', D), or over space and time (B, D) with pool_time.
/// Frames must be image_size square (the spatial positions fix the grid); clips may be shorter than num_frames.
template <Floating T, Device D = Cpu> class VivitEncoder : public nn::UnaryModule<T, D> {
 private:
  VivitEncoderOptions opt_;

 public:
  using Options = VivitEncoderOptions;

  explicit VivitEncoder(const Options& opt = {}, Generator& gen = default_generator())
      : opt_(checked(opt)),
        patch_embed(opt.in_channels, opt.embed_dim, opt.tubelet, std::nullopt, true, gen),
        spatial_pos(grid_h() * grid_w(), opt.embed_dim, gen),
        temporal_pos(grid_t(), opt.embed_dim, gen),
        norm(Shape{opt.embed_dim}, opt.layer_norm_eps) {
    this->register_module("patch_embed", patch_embed);
    this->register_module("spatial_pos", spatial_pos);
    this->register_module("temporal_pos", temporal_pos);
    const auto hidden = static_cast<std::int64_t>(static_cast<double>(opt.embed_dim) * opt.mlp_ratio);
    for (std::int64_t i = 0; i < opt.depth; ++i)
      blocks.template emplace<VivitBlock<T, D>>(opt.embed_dim, opt.num_heads, hidden, opt.dropout, opt.layer_norm_eps,
                                                gen);
    this->register_module("blocks", blocks);
    this->register_module("norm", norm);
  }

  /// x (B, C, T, H, W) with H = W = image_size and tubelet_t ≤ T, T' = ⌊T / tubelet_t⌋ ≤ ⌊num_frames / tubelet_t⌋
  /// → (B, T', D), or (B, D) with pool_time.
  Tensor<T, D> forward(const Tensor<T, D>& x) override { return finish(blocks.forward(tokens(x))); }

  /// The embedded tokens with positions, (B, T', S, D) — the blocks' input.
  Tensor<T, D> tokens(const Tensor<T, D>& x) {
    const char* who = "VivitEncoder";
    video_detail::check_clip(who, x, opt_.in_channels);
    const std::int64_t B = x.size(0), E = opt_.embed_dim, S = grid_h() * grid_w();
    // the learned positions fix the spatial grid and bound the temporal one
    AVGRAD_CHECK(x.size(2) >= opt_.tubelet[0] && x.size(2) / opt_.tubelet[0] <= grid_t() &&
                     x.size(3) == opt_.image_size && x.size(4) == opt_.image_size,
                 who, "expected a clip (B, ", opt_.in_channels, ", T, ", opt_.image_size, ", ", opt_.image_size,
                 ") with ", opt_.tubelet[0], " <= T <= ", opt_.num_frames, ", got ", x.shape());
    const std::int64_t Tn = x.size(2) / opt_.tubelet[0];
    // tubelet tokens come ordered (t, h, w): (B, T'·H'·W', D) → (B, T', S, D)
    auto z = patch_embed(x).reshape({B, Tn, S, E});
    auto pos_s = spatial_pos.weight.reshape({1, 1, S, E});
    auto pos_t = temporal_pos.weight.narrow(1, 0, Tn).reshape({1, Tn, 1, E});
    return z + pos_s + pos_t;
  }
  /// Final norm and pooling of the blocks' output (B, T', S, D).
  Tensor<T, D> finish(const Tensor<T, D>& h) {
    auto z = mean(norm(h), {2});  // (B, T', D)
    return opt_.pool_time ? mean(z, {1}) : z;
  }

  std::int64_t latent_dim() const { return opt_.embed_dim; }
  const Options& options() const { return opt_; }
  /// The token grid (T', H', W') for clips of num_frames × image_size².
  std::array<std::int64_t, 3> grid() const { return {grid_t(), grid_h(), grid_w()}; }
  VivitBlock<T, D>& block(std::size_t i) { return blocks.template get<VivitBlock<T, D>>(i); }
  std::string describe() const override {
    return detail::concat("VivitEncoder(embed_dim=", opt_.embed_dim, ", depth=", opt_.depth, ", heads=", opt_.num_heads,
                          ", tubelet=", video_detail::list(opt_.tubelet), ", grid=", video_detail::list(grid()),
                          opt_.pool_time ? ", pool_time" : "", ")");
  }

  nn::TubeletEmbed3d<T, D> patch_embed;
  nn::LearnedPositionalEmbedding<T, D> spatial_pos, temporal_pos;
  nn::Sequential<T, D> blocks;
  nn::LayerNorm<T, D> norm;

 private:
  std::int64_t grid_t() const { return opt_.num_frames / opt_.tubelet[0]; }
  std::int64_t grid_h() const { return opt_.image_size / opt_.tubelet[1]; }
  std::int64_t grid_w() const { return opt_.image_size / opt_.tubelet[2]; }

  static const Options& checked(const Options& o) {
    const char* who = "VivitEncoder";
    AVGRAD_CHECK(o.in_channels > 0 && o.tubelet[0] > 0 && o.tubelet[1] > 0 && o.tubelet[2] > 0, who,
                 "in_channels and the tubelet must be positive, got ", o.in_channels, " and ",
                 video_detail::list(o.tubelet));
    AVGRAD_CHECK(o.num_frames >= o.tubelet[0] && o.image_size >= o.tubelet[1] && o.image_size >= o.tubelet[2], who,
                 "num_frames ", o.num_frames, " and image_size ", o.image_size, " must hold at least one tubelet ",
                 video_detail::list(o.tubelet));
    AVGRAD_CHECK(o.embed_dim > 0 && o.num_heads > 0 && o.embed_dim % o.num_heads == 0, who, "embed_dim ", o.embed_dim,
                 " must be positive and divisible by num_heads ", o.num_heads);
    AVGRAD_CHECK(o.depth >= 1 && o.mlp_ratio * static_cast<double>(o.embed_dim) >= 1.0, who,
                 "depth must be >= 1 and the MLP at least one unit wide, got depth ", o.depth, ", mlp_ratio ",
                 o.mlp_ratio);
    return o;
  }
};

// =====================================================================================
// FeatureSequenceEncoder
// =====================================================================================

struct FeatureSequenceEncoderOptions {
  std::int64_t input_dim = 2048;  ///< per-frame feature width (the study's ImageNet CNN embeddings)
  std::int64_t num_frames = 10;   ///< length of the learned position table (1 fps × 10 s)
  std::int64_t d_model = 2048;    ///< transformer width; a Linear input_dim → d_model precedes it when they differ
  std::int64_t num_heads = 8;
  std::int64_t dim_feedforward = 1024;
  std::int64_t num_layers = 2;
  bool share_weights = false;  ///< one layer applied num_layers times (the study's audio branch does this)
  bool learned_positions = false;
  double dropout = 0.1;
  std::int64_t out_dim = 1024;

  /// 32-wide features through a one-layer 32-wide transformer to a 16-wide latent.
  static FeatureSequenceEncoderOptions small() {
    FeatureSequenceEncoderOptions o;
    o.input_dim = 32;
    o.d_model = 32;
    o.num_heads = 4;
    o.dim_feedforward = 64;
    o.num_layers = 1;
    o.out_dim = 16;
    return o;
  }
};

/// The study's AudioSet video branch over precomputed frame features: x (B, T, input_dim) →
/// optional "input_proj" Linear(input_dim → d_model) → optional learned positions
/// ("pos_embed") → post-norm TransformerEncoder ("transformer") → "out_proj"
/// Linear(d_model → out_dim) + ReLU → (B, T, out_dim).
template <Floating T, Device D = Cpu> class FeatureSequenceEncoder : public nn::UnaryModule<T, D> {
 private:
  FeatureSequenceEncoderOptions opt_;

 public:
  using Options = FeatureSequenceEncoderOptions;

  explicit FeatureSequenceEncoder(const Options& opt = {}, Generator& gen = default_generator())
      : opt_(checked(opt)),
        transformer(
            [&] {
              return std::make_unique<nn::TransformerEncoderLayer<T, D>>(
                  opt.d_model, opt.num_heads, opt.dim_feedforward, opt.dropout, nn::TransformerActivation::relu, 1e-5,
                  /*norm_first=*/false, gen);
            },
            opt.num_layers, nullptr, opt.share_weights),
        out_proj(opt.d_model, opt.out_dim, true, gen) {
    if (opt.d_model != opt.input_dim) {
      input_proj = std::make_unique<nn::Linear<T, D>>(opt.input_dim, opt.d_model, true, gen);
      this->register_module("input_proj", *input_proj);
    }
    if (opt.learned_positions) {
      pos_embed = std::make_unique<nn::LearnedPositionalEmbedding<T, D>>(opt.num_frames, opt.d_model, gen);
      this->register_module("pos_embed", *pos_embed);
    }
    this->register_module("transformer", transformer);
    this->register_module("out_proj", out_proj);
  }

  /// x (B, T, input_dim) → (B, T, out_dim); T <= num_frames with learned positions.
  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    const std::int64_t max_t = opt_.learned_positions ? opt_.num_frames : std::numeric_limits<std::int64_t>::max();
    check_input(
        "FeatureSequenceEncoder", x,
        [&](const auto& t) {
          return t.dim() == 3 && t.size(2) == opt_.input_dim && t.size(1) >= 1 && t.size(1) <= max_t;
        },
        opt_.learned_positions ? detail::concat("frame features (B, T <= ", opt_.num_frames, ", ", opt_.input_dim, ")")
                               : detail::concat("frame features (B, T, ", opt_.input_dim, ")"));
    Tensor<T, D> h = input_proj ? input_proj->forward(x) : x;
    if (pos_embed) h = pos_embed->forward(h);
    return relu(out_proj(transformer(h)));
  }

  std::int64_t latent_dim() const { return opt_.out_dim; }
  const Options& options() const { return opt_; }
  std::string describe() const override {
    return detail::concat("FeatureSequenceEncoder(", opt_.input_dim, " → d_model=", opt_.d_model,
                          ", layers=", opt_.num_layers, opt_.share_weights ? " shared" : "", " → ", opt_.out_dim, ")");
  }

  std::unique_ptr<nn::Linear<T, D>> input_proj;                     ///< when d_model != input_dim
  std::unique_ptr<nn::LearnedPositionalEmbedding<T, D>> pos_embed;  ///< when learned_positions
  nn::TransformerEncoder<T, D> transformer;
  nn::Linear<T, D> out_proj;

 private:
  static const Options& checked(const Options& o) {
    const char* who = "FeatureSequenceEncoder";
    AVGRAD_CHECK(o.input_dim > 0 && o.d_model > 0 && o.out_dim > 0 && o.dim_feedforward > 0, who,
                 "input_dim, d_model, dim_feedforward and out_dim must be positive, got ", o.input_dim, ", ", o.d_model,
                 ", ", o.dim_feedforward, ", ", o.out_dim);
    AVGRAD_CHECK(o.num_heads > 0 && o.d_model % o.num_heads == 0, who, "d_model ", o.d_model,
                 " must be divisible by num_heads ", o.num_heads);
    AVGRAD_CHECK(o.num_layers >= 1, who, "num_layers must be >= 1, got ", o.num_layers);
    AVGRAD_CHECK(!o.learned_positions || o.num_frames >= 1, who, "num_frames must be >= 1 with learned positions, got ",
                 o.num_frames);
    return o;
  }
};

static_assert(Encoder<FrameCnnEncoder<float>> && Encoder<Conv3dEncoder<float>> && Encoder<R2Plus1dEncoder<float>> &&
                  Encoder<VivitEncoder<float>> && Encoder<FeatureSequenceEncoder<float>>,
              "every video encoder fills the Encoder slot");

}  // namespace avgrad::models
