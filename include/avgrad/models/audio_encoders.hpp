// Audio encoders: features (B, T, F) (or (B, 1, T, F)) to a latent sequence (B, L, D) or a pooled (B, D).
//
//   CnnStem10C5P     — the study's stem: ten 3×3 conv+BN+ReLU, five max-pools → (B, T', C·F')
//   CnnTransformer   — the study's audio model: that stem, then a weight-shared post-norm transformer
//   ConvStackEncoder — bench-av-small's audio branch: conv+BN+ReLU+max-pool 2 blocks → (B, T', C)
//   ResNetAudio      — a small ResNet of BasicBlock<2> stages → (B, T', C)
//   PannsCnn         — PANNs CNN10/CNN14 (Kong et al. 2020) → (B, T', C or E)
//   AstEncoder       — AST (Gong et al. 2021): overlapping patches, cls/dist tokens, pre-norm ViT
//
// Every CNN treats the features as a one-channel image (B, 1, T, F) with time first,
// so pool and stride pairs read (time, freq). Options default to the full-size model
// of the study or of the reference; each options struct has small(), a version that
// trains in seconds on two CPU cores.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "avgrad/models/blocks.hpp"
#include "avgrad/models/concepts.hpp"
#include "avgrad/nn/dropout.hpp"
#include "avgrad/nn/linear.hpp"
#include "avgrad/nn/patch.hpp"
#include "avgrad/nn/positional.hpp"
#include "avgrad/nn/sequential.hpp"
#include "avgrad/nn/transformer.hpp"
#include "avgrad/ops/pool.hpp"
#include "avgrad/ops/reduce.hpp"
#include "avgrad/ops/unary.hpp"

namespace avgrad::models {

/// A (time, freq) pair: a pooling window or a stride.
using TimeFreq = std::array<std::int64_t, 2>;

namespace audio_detail {

/// "(B, T, F) or (B, 1, T, F)" with F spelled out when the encoder fixes it (bins > 0);
/// "(B, C, T, F)" for a multi-channel input.
inline std::string feature_layout(std::int64_t bins, std::int64_t frames = 0, std::int64_t channels = 1) {
  const std::string t = frames > 0 ? std::to_string(frames) : std::string("T");
  const std::string f = bins > 0 ? std::to_string(bins) : std::string("F");
  if (channels != 1) return "features (B, " + std::to_string(channels) + ", " + t + ", " + f + ")";
  return "features (B, " + t + ", " + f + ") or (B, 1, " + t + ", " + f + ")";
}

/// The features as a `channels`-channel image (B, C, T, F), checked: rank 3 (one channel),
/// or rank 4 with C channels; F == bins and T == frames where those are fixed (> 0); T and F
/// at least min_t, min_f, the smallest extent the encoder's pooling leaves non-empty.
template <Floating T, Device D> Tensor<T, D> as_image(const char* who, const Tensor<T, D>& x, std::int64_t bins,
                                                      std::int64_t frames = 0, std::int64_t min_t = 1,
                                                      std::int64_t min_f = 1, std::int64_t channels = 1) {
  auto ok = [&](const Tensor<T, D>& t) {
    if (!((t.dim() == 3 && channels == 1) || (t.dim() == 4 && t.size(1) == channels))) return false;
    const std::int64_t tt = t.size(-2), ff = t.size(-1);
    return t.size(0) > 0 && (bins <= 0 || ff == bins) && (frames <= 0 || tt == frames) && tt >= min_t && ff >= min_f;
  };
  std::string expected = feature_layout(bins, frames, channels), need;
  if (min_t > 1) need = detail::concat(min_t, " frames");
  if (min_f > 1) need += detail::concat(need.empty() ? "" : " and ", min_f, " bins");
  if (!need.empty()) expected += " with at least " + need + " (what the pooling needs)";
  check_input(who, x, ok, expected);
  return x.dim() == 3 ? x.unsqueeze(1) : x;
}

/// Size after ⌊·/p⌋ pooling steps along one axis.
inline std::int64_t pooled(std::int64_t n, const std::vector<TimeFreq>& pools, int axis) {
  for (const auto& p : pools) n /= p[static_cast<std::size_t>(axis)];
  return n;
}
/// The smallest extent that survives the pools along one axis (every ⌊·/p⌋ stays ≥ 1).
inline std::int64_t min_extent(const std::vector<TimeFreq>& pools, int axis) {
  std::int64_t n = 1;
  for (const auto& p : pools) n *= p[static_cast<std::size_t>(axis)];
  return n;
}

inline void check_channels(const char* who, const std::vector<std::int64_t>& channels) {
  AVGRAD_CHECK(!channels.empty(), who, "channels must not be empty");
  for (std::size_t i = 0; i < channels.size(); ++i)
    AVGRAD_CHECK(channels[i] > 0, who, "channels[", i, "] must be positive, got ", channels[i]);
}
inline void check_pools(const char* who, const std::vector<TimeFreq>& pools) {
  for (std::size_t i = 0; i < pools.size(); ++i)
    AVGRAD_CHECK(pools[i][0] > 0 && pools[i][1] > 0, who, "pools[", i, "] must be positive, got (", pools[i][0], ", ",
                 pools[i][1], ")");
}
inline std::string list_str(const std::vector<std::int64_t>& v) {
  std::string s = "(";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + ")";
}

}  // namespace audio_detail

// ==== CnnStem10C5P =====================================================================

struct CnnStemOptions {
  std::vector<std::int64_t> channels{32, 32, 64, 64, 128, 128, 256, 256, 512, 512};
  /// Max-pool windows (time, freq), one after every pool_every-th conv.
  std::vector<TimeFreq> pools{{2, 2}, {2, 2}, {1, 2}, {1, 2}, {1, 2}};
  std::int64_t pool_every = 2;
  /// Frequency bins of the input; fixes latent_dim() = channels.back() · pooled bins.
  std::int64_t num_bins = 64;
  /// Input channels: 1 for a spectrogram; 2 when early fusion stacks video onto the audio grid.
  std::int64_t in_channels = 1;

  /// 4 convs (4, 4, 8, 8), pools (2, 2) twice, 16 bins: latent 8 · 4 = 32.
  static CnnStemOptions small() { return {{4, 4, 8, 8}, {{2, 2}, {2, 2}}, 2, 16}; }
};

/// The study's CNN stem ("10C5P"): 3×3 conv+BN+ReLU layers "layers.i" with a max-pool after
/// every pool_every-th; the map (B, C, T', F') is read as a sequence over time with channels
/// and bins flattened, (B, T', C·F') — 400 frames × 64 bins give (B, 100, 1024).
template <Floating T, Device D = Cpu> class CnnStem10C5P : public nn::UnaryModule<T, D> {
 public:
  using Options = CnnStemOptions;

 private:
  Options opt_;  ///< the first member: checked before any layer is built

 public:
  explicit CnnStem10C5P(const Options& opt = {}, Generator& gen = default_generator()) : opt_(opt) {
    const char* who = "CnnStem10C5P";
    audio_detail::check_channels(who, opt.channels);
    audio_detail::check_pools(who, opt.pools);
    AVGRAD_CHECK(opt.pool_every > 0, who, "pool_every must be positive, got ", opt.pool_every);
    const auto n = static_cast<std::int64_t>(opt.channels.size());
    AVGRAD_CHECK(n % opt.pool_every == 0 && n / opt.pool_every == static_cast<std::int64_t>(opt.pools.size()), who,
                 "expected one pool per ", opt.pool_every, " convs: ", n, " channels need ", n / opt.pool_every,
                 " pools, got ", opt.pools.size());
    AVGRAD_CHECK(opt.num_bins > 0 && audio_detail::pooled(opt.num_bins, opt.pools, 1) > 0, who, "num_bins ",
                 opt.num_bins, " does not survive the frequency pools (needs at least ",
                 audio_detail::min_extent(opt.pools, 1), ")");
    AVGRAD_CHECK(opt.in_channels > 0, who, "in_channels must be positive, got ", opt.in_channels);
    std::int64_t in = opt.in_channels;
    for (std::int64_t c : opt.channels) {
      layers.template emplace<ConvBnAct<2, T, D>>(in, c, 3, 1, true, gen);
      in = c;
    }
    this->register_module("layers", layers);
  }

  /// features (B, T, num_bins) or (B, in_channels, T, num_bins) → (B, T', latent_dim()).
  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    // num_bins was checked against the frequency pools at construction; only time can be short
    Tensor<T, D> h = audio_detail::as_image("CnnStem10C5P", x, opt_.num_bins, 0,
                                            audio_detail::min_extent(opt_.pools, 0), 1, opt_.in_channels);
    for (std::size_t i = 0; i < layers.size(); ++i) {
      h = layers[i](h);
      if ((static_cast<std::int64_t>(i) + 1) % opt_.pool_every == 0) {
        const auto& p = opt_.pools[i / static_cast<std::size_t>(opt_.pool_every)];
        h = max_pool2d(h, PoolSize{p[0], p[1]});
      }
    }
    return freq_flatten_sequence(h);
  }
  std::int64_t latent_dim() const { return opt_.channels.back() * audio_detail::pooled(opt_.num_bins, opt_.pools, 1); }
  /// Frames out for `frames` in (the time pools floor).
  std::int64_t out_frames(std::int64_t frames) const { return audio_detail::pooled(frames, opt_.pools, 0); }
  const Options& options() const { return opt_; }
  std::string describe() const override {
    return detail::concat("CnnStem10C5P(channels=", audio_detail::list_str(opt_.channels), ", ", opt_.pools.size(),
                          " pools, num_bins=", opt_.num_bins, " → ", latent_dim(), ")");
  }

  nn::Sequential<T, D> layers;  ///< ConvBnAct<2> "layers.0" … (conv, bn)

 private:
};

// ==== CnnTransformer ===================================================================

struct CnnTransformerOptions {
  CnnStemOptions stem{};
  std::int64_t num_heads = 8;
  std::int64_t dim_feedforward = 1024;
  double dropout = 0.1;
  /// Applications of the transformer layer; with share_weights one layer is applied
  /// `repeats` times (the study's setting), otherwise `repeats` distinct layers.
  std::int64_t repeats = 2;
  bool share_weights = true;

  /// The small stem (d = 32), 4 heads, feed-forward 64.
  static CnnTransformerOptions small() { return {CnnStemOptions::small(), 4, 64, 0.1, 2, true}; }
};

/// The study's audio model: CnnStem10C5P ("stem") then a post-norm ReLU transformer encoder
/// ("transformer", torch's key names) over the stem's frames, d = the stem's latent_dim().
template <Floating T, Device D = Cpu> class CnnTransformer : public nn::UnaryModule<T, D> {
 public:
  using Options = CnnTransformerOptions;

 private:
  Options opt_;  ///< the first member: checked before any layer is built

 public:
  explicit CnnTransformer(const Options& opt = {}, Generator& gen = default_generator())
      : opt_(checked(opt)),
        stem(opt.stem, gen),
        transformer(layer_factory(opt, stem.latent_dim(), gen), opt.repeats, nullptr, opt.share_weights) {
    this->register_module("stem", stem);
    this->register_module("transformer", transformer);
  }

  /// features (B, T, F) or (B, 1, T, F) → (B, T', latent_dim()).
  Tensor<T, D> forward(const Tensor<T, D>& x) override { return transformer(stem(x)); }
  std::int64_t latent_dim() const { return stem.latent_dim(); }
  const Options& options() const { return opt_; }
  std::string describe() const override {
    return detail::concat("CnnTransformer(d=", latent_dim(), ", heads=", opt_.num_heads, ", ff=", opt_.dim_feedforward,
                          ", repeats=", opt_.repeats, opt_.share_weights ? ", shared" : "", ")");
  }

  CnnStem10C5P<T, D> stem;
  nn::TransformerEncoder<T, D> transformer;

 private:
  static const Options& checked(const Options& opt) {
    AVGRAD_CHECK(opt.repeats >= 1, "CnnTransformer", "repeats must be >= 1, got ", opt.repeats);
    AVGRAD_CHECK(opt.num_heads > 0 && opt.dim_feedforward > 0, "CnnTransformer",
                 "num_heads and dim_feedforward must be positive, got (", opt.num_heads, ", ", opt.dim_feedforward,
                 ")");
    AVGRAD_CHECK(opt.dropout >= 0 && opt.dropout < 1, "CnnTransformer", "dropout must be in [0, 1), got ", opt.dropout);
    return opt;
  }
  static typename nn::TransformerEncoder<T, D>::LayerFactory layer_factory(const Options& opt, std::int64_t d,
                                                                           Generator& gen) {
    AVGRAD_CHECK(d % opt.num_heads == 0, "CnnTransformer", "the stem's latent_dim ", d,
                 " is not divisible by num_heads ", opt.num_heads);
    return [opt, d, &gen] {
      return std::make_unique<nn::TransformerEncoderLayer<T, D>>(d, opt.num_heads, opt.dim_feedforward, opt.dropout,
                                                                 nn::TransformerActivation::relu, 1e-5, false, gen);
    };
  }
};

// ==== ConvStackEncoder =================================================================

struct ConvStackOptions {
  std::vector<std::int64_t> channels{32, 64, 128, 128};

  /// Two blocks (4, 8).
  static ConvStackOptions small() { return {{4, 8}}; }
};

/// bench-av-small's audio branch: blocks "blocks.i" of 3×3 conv+BN+ReLU, each followed by a
/// 2×2 max-pool; the map is averaged over frequency, (B, T / 2ⁿ, C). A head that then
/// averages over time computes the global average pool of the map.
template <Floating T, Device D = Cpu> class ConvStackEncoder : public nn::UnaryModule<T, D> {
 public:
  using Options = ConvStackOptions;

 private:
  Options opt_;  ///< the first member: checked before any layer is built

 public:
  explicit ConvStackEncoder(const Options& opt = {}, Generator& gen = default_generator()) : opt_(opt) {
    audio_detail::check_channels("ConvStackEncoder", opt.channels);
    std::int64_t in = 1;
    for (std::int64_t c : opt.channels) {
      block_.push_back(&blocks.template emplace<ConvBnAct<2, T, D>>(in, c, 3, 1, true, gen));
      in = c;
    }
    this->register_module("blocks", blocks);
  }

  /// features (B, T, F) or (B, 1, T, F), T and F ≥ 2ⁿ → (B, T / 2ⁿ, channels.back()).
  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    const std::int64_t min = std::int64_t(1) << blocks.size();
    Tensor<T, D> h = audio_detail::as_image("ConvStackEncoder", x, 0, 0, min, min);
    for (auto* b : block_) h = b->forward_pooled(h, [](const Tensor<T, D>& y) { return max_pool2d(y, 2); });
    return freq_mean_sequence(h);
  }
  std::int64_t latent_dim() const { return opt_.channels.back(); }
  const Options& options() const { return opt_; }
  std::string describe() const override {
    return detail::concat("ConvStackEncoder(channels=", audio_detail::list_str(opt_.channels), ")");
  }

  nn::Sequential<T, D> blocks;  ///< ConvBnAct<2> "blocks.0" …

 private:
  std::vector<ConvBnAct<2, T, D>*> block_;  ///< the blocks, typed (owned by `blocks`)
};

// ==== ResNetAudio ======================================================================

struct ResNetAudioOptions {
  std::vector<std::int64_t> widths{32, 64, 128, 256};
  std::vector<std::int64_t> blocks{2, 2, 2, 2};  ///< BasicBlocks per stage

  /// Two stages of one block each, widths (4, 8).
  static ResNetAudioOptions small() { return {{4, 8}, {1, 1}}; }
};

/// A small ResNet on the spectrogram: "stem" (3×3 ConvBnAct, 1 → widths[0]) then stages
/// "layer1" … of BasicBlock<2>, the first block of every stage after the first with stride 2
/// (both axes); the map is averaged over frequency, (B, T', widths.back()).
template <Floating T, Device D = Cpu> class ResNetAudio : public nn::UnaryModule<T, D> {
 public:
  using Options = ResNetAudioOptions;

 private:
  Options opt_;  ///< the first member: checked before any layer is built

 public:
  explicit ResNetAudio(const Options& opt = {}, Generator& gen = default_generator())
      : opt_(checked(opt)), stem(1, opt.widths.front(), 3, 1, true, gen) {
    this->register_module("stem", stem);
    std::int64_t in = opt.widths.front();
    for (std::size_t s = 0; s < opt.widths.size(); ++s) {
      auto stage = std::make_unique<nn::Sequential<T, D>>();
      for (std::int64_t b = 0; b < opt.blocks[s]; ++b) {
        const std::int64_t stride = (s > 0 && b == 0) ? 2 : 1;
        stage->template emplace<BasicBlock<2, T, D>>(in, opt.widths[s], stride, gen);
        in = opt.widths[s];
      }
      stages_.push_back(std::move(stage));
      this->register_module("layer" + std::to_string(s + 1), *stages_.back());
    }
  }

  /// features (B, T, F) or (B, 1, T, F) → (B, ⌈T / 2^(stages−1)⌉, widths.back()).
  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    Tensor<T, D> h = stem(audio_detail::as_image("ResNetAudio", x, 0));
    for (auto& stage : stages_) h = (*stage)(h);
    return freq_mean_sequence(h);
  }
  std::int64_t latent_dim() const { return opt_.widths.back(); }
  /// Frames out for `frames` in: each stride-2 3×3 conv with padding 1 gives ⌊(n − 1) / 2⌋ + 1.
  std::int64_t out_frames(std::int64_t frames) const {
    for (std::size_t s = 1; s < opt_.widths.size(); ++s) frames = (frames - 1) / 2 + 1;
    return frames;
  }
  nn::Sequential<T, D>& stage(std::size_t i) { return *stages_.at(i); }
  const Options& options() const { return opt_; }
  std::string describe() const override {
    return detail::concat("ResNetAudio(widths=", audio_detail::list_str(opt_.widths),
                          ", blocks=", audio_detail::list_str(opt_.blocks), ")");
  }

  ConvBnAct<2, T, D> stem;

 private:
  static const Options& checked(const Options& opt) {
    audio_detail::check_channels("ResNetAudio", opt.widths);
    AVGRAD_CHECK(opt.blocks.size() == opt.widths.size(), "ResNetAudio",
                 "expected one block count per stage: ", opt.widths.size(), " widths, got ", opt.blocks.size(),
                 " block counts");
    for (std::size_t i = 0; i < opt.blocks.size(); ++i)
      AVGRAD_CHECK(opt.blocks[i] >= 1, "ResNetAudio", "blocks[", i, "] must be >= 1, got ", opt.blocks[i]);
    return opt;
  }
  std::vector<std::unique_ptr<nn::Sequential<T, D>>> stages_;
};

// ==== PannsCnn =========================================================================

struct PannsCnnOptions {
  std::vector<std::int64_t> channels{64, 128, 256, 512};
  /// Average-pool window (time, freq) after each block; empty means 2×2 after every block.
  std::vector<TimeFreq> pools{};
  double dropout = 0.2;  ///< after every block, as PANNs
  /// Width of the per-frame embedding Linear(C → E) + ReLU ("fc1"); 0 disables it and
  /// the latent is the last block's channels. 512 as CNN10's fc1.
  std::int64_t embedding_dim = 512;

  /// CNN14: six blocks to 2048 channels, the last without pooling, fc1 2048.
  static PannsCnnOptions cnn14() {
    return {{64, 128, 256, 512, 1024, 2048}, {{2, 2}, {2, 2}, {2, 2}, {2, 2}, {2, 2}, {1, 1}}, 0.2, 2048};
  }
  /// Two blocks (4, 8), embedding 8.
  static PannsCnnOptions small() { return {{4, 8}, {}, 0.2, 8}; }
};

/// PANNs' ConvBlock: (3×3 conv, BN, ReLU) twice (children conv1, bn1, conv2, bn2 as PANNs),
/// then an average pool.
template <Floating T, Device D = Cpu> class PannsConvBlock : public nn::UnaryModule<T, D> {
 public:
  PannsConvBlock(std::int64_t in, std::int64_t out, TimeFreq pool, Generator& gen = default_generator())
      : conv1(in, out, 3, 1, 1, 1, 1, false, gen),
        bn1(out),
        conv2(out, out, 3, 1, 1, 1, 1, false, gen),
        bn2(out),
        pool_(pool) {
    this->register_module("conv1", conv1);
    this->register_module("bn1", bn1);
    this->register_module("conv2", conv2);
    this->register_module("bn2", bn2);
  }
  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    auto h = relu(bn2(conv2(relu(bn1(conv1(x))))));
    return pool_[0] == 1 && pool_[1] == 1 ? h : avg_pool2d(h, PoolSize{pool_[0], pool_[1]});
  }
  std::string describe() const override {
    return detail::concat("PannsConvBlock(", conv1.in_channels(), " → ", conv1.out_channels(), ", pool=(", pool_[0],
                          ", ", pool_[1], "))");
  }

  nn::Conv2d<T, D> conv1;
  nn::BatchNorm2d<T, D> bn1;
  nn::Conv2d<T, D> conv2;
  nn::BatchNorm2d<T, D> bn2;

 private:
  TimeFreq pool_;
};

/// PANNs CNN-style encoder (Kong et al. 2020): ConvBlocks "blocks.i", dropout after each,
/// the map averaged over frequency (B, T', C), then the optional per-frame "fc1" + ReLU.
/// PANNs itself pools over time (max + mean) before fc1; here time is kept so the latent
/// stays a sequence, and a head that pools over time recovers a clip embedding.
template <Floating T, Device D = Cpu> class PannsCnn : public nn::UnaryModule<T, D> {
 public:
  using Options = PannsCnnOptions;

 private:
  Options opt_;  ///< the first member: checked before any layer is built

 public:
  explicit PannsCnn(const Options& opt = {}, Generator& gen = default_generator())
      : opt_(checked(opt)), dropout(opt.dropout) {
    std::int64_t in = 1;
    for (std::size_t i = 0; i < opt_.channels.size(); ++i) {
      blocks.template emplace<PannsConvBlock<T, D>>(in, opt_.channels[i], opt_.pools[i], gen);
      in = opt_.channels[i];
    }
    this->register_module("blocks", blocks);
    this->register_module("dropout", dropout);
    if (opt_.embedding_dim > 0) {
      fc1 = std::make_unique<nn::Linear<T, D>>(in, opt_.embedding_dim, true, gen);
      this->register_module("fc1", *fc1);
    }
  }

  /// features (B, T, F) or (B, 1, T, F) → (B, T', latent_dim()).
  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    Tensor<T, D> h = audio_detail::as_image("PannsCnn", x, 0, 0, audio_detail::min_extent(opt_.pools, 0),
                                            audio_detail::min_extent(opt_.pools, 1));
    for (std::size_t i = 0; i < blocks.size(); ++i) h = dropout(blocks[i](h));
    Tensor<T, D> z = freq_mean_sequence(h);
    return fc1 ? relu((*fc1)(z)) : z;
  }
  std::int64_t latent_dim() const { return opt_.embedding_dim > 0 ? opt_.embedding_dim : opt_.channels.back(); }
  const Options& options() const { return opt_; }
  std::string describe() const override {
    return detail::concat("PannsCnn(channels=", audio_detail::list_str(opt_.channels), ", dropout=", opt_.dropout,
                          ", embedding=", opt_.embedding_dim, ")");
  }

  nn::Sequential<T, D> blocks;  ///< PannsConvBlock "blocks.0" …
  nn::Dropout<T, D> dropout;
  std::unique_ptr<nn::Linear<T, D>> fc1;  ///< null when embedding_dim == 0

 private:
  static Options checked(Options opt) {
    audio_detail::check_channels("PannsCnn", opt.channels);
    if (opt.pools.empty()) opt.pools.assign(opt.channels.size(), TimeFreq{2, 2});
    AVGRAD_CHECK(opt.pools.size() == opt.channels.size(), "PannsCnn",
                 "expected one pool per block: ", opt.channels.size(), " blocks, got ", opt.pools.size(), " pools");
    audio_detail::check_pools("PannsCnn", opt.pools);
    AVGRAD_CHECK(opt.dropout >= 0 && opt.dropout < 1, "PannsCnn", "dropout must be in [0, 1), got ", opt.dropout);
    AVGRAD_CHECK(opt.embedding_dim >= 0, "PannsCnn", "embedding_dim must be >= 0 (0 disables fc1), got ",
                 opt.embedding_dim);
    return opt;
  }
};

// ==== AstEncoder =======================================================================

/// What AstEncoder returns: the class token(s) (the mean of cls and dist when dist is on,
/// as AST), the mean of the patch tokens, or the whole sequence.
enum class AstPooling { cls, mean_tokens, tokens };
inline const char* ast_pooling_name(AstPooling p) {
  return p == AstPooling::cls ? "cls" : p == AstPooling::mean_tokens ? "mean_tokens" : "tokens";
}

struct AstOptions {
  std::int64_t num_bins = 128;
  std::int64_t num_frames = 1024;
  std::int64_t patch = 16;    ///< square patches patch × patch
  std::int64_t fstride = 10;  ///< patch stride along frequency (10 < 16: overlapping, as AST)
  std::int64_t tstride = 10;  ///< patch stride along time
  std::int64_t embed_dim = 768;
  std::int64_t depth = 12;
  std::int64_t num_heads = 12;
  double mlp_ratio = 4.0;  ///< dim_feedforward = mlp_ratio · embed_dim
  double dropout = 0.0;    ///< after the positional embedding and inside every layer
  double layer_norm_eps = 1e-6;
  bool dist_token = true;  ///< DeiT's distillation token, as AST
  AstPooling pooling = AstPooling::cls;

  /// 32 bins × 48 frames, patches 8 stride 6 (5 × 7 = 35), embed 24, depth 2, 4 heads.
  static AstOptions small() {
    AstOptions o;
    o.num_bins = 32, o.num_frames = 48, o.patch = 8, o.fstride = 6, o.tstride = 6;
    o.embed_dim = 24, o.depth = 2, o.num_heads = 4, o.mlp_ratio = 2.0;
    return o;
  }
};

/// The Audio Spectrogram Transformer (Gong et al. 2021): features (B, T, F) become a
/// one-channel (B, 1, F, T) image (frequency first, as AST), cut into overlapping patches
/// ("patch_embed"); "cls_token" (and "dist_token") are prepended, "pos_embed" added over all
/// tokens, then pre-norm GELU layers and a final LayerNorm ("transformer", torch's key names).
template <Floating T, Device D = Cpu> class AstEncoder : public nn::UnaryModule<T, D> {
 public:
  using Options = AstOptions;

 private:
  Options opt_;  ///< the first member: checked before any layer is built

 public:
  explicit AstEncoder(const Options& opt = {}, Generator& gen = default_generator())
      : opt_(checked(opt)),
        patch_embed(1, opt.embed_dim, {opt.patch, opt.patch}, {opt.fstride, opt.tstride}, true, gen),
        cls(opt.embed_dim, gen),
        dist(opt.embed_dim, gen),
        pos(patch_embed.num_patches(opt.num_bins, opt.num_frames) + (opt.dist_token ? 2 : 1), opt.embed_dim, gen),
        pos_drop(opt.dropout),
        transformer(layer_factory(opt, gen), opt.depth,
                    std::make_unique<nn::LayerNorm<T, D>>(Shape{opt.embed_dim}, opt.layer_norm_eps)) {
    this->register_module("patch_embed", patch_embed);
    // The token and position tables are registered under AST's flat names (cls_token,
    // dist_token, pos_embed) rather than as children, so keys line up with AST/timm.
    this->register_parameter("cls_token", cls.token);
    if (opt.dist_token) this->register_parameter("dist_token", dist.token);
    this->register_parameter("pos_embed", pos.weight);
    this->register_module("pos_drop", pos_drop);
    this->register_module("transformer", transformer);
  }

  /// The tokens the transformer sees: features (B, num_frames, num_bins) or (B, 1, …) →
  /// (B, num_tokens(), embed_dim): cls, [dist,] patches, plus positions, after dropout.
  Tensor<T, D> embed(const Tensor<T, D>& x) {
    Tensor<T, D> img = audio_detail::as_image("AstEncoder", x, opt_.num_bins, opt_.num_frames);
    Tensor<T, D> tokens = patch_embed(img.transpose(2, 3));  // (B, 1, F, T), as AST
    if (opt_.dist_token) tokens = dist(tokens);              // prepended first so that cls ends up in front of it
    tokens = cls(tokens);
    return pos_drop(pos(tokens));
  }

  /// (B, embed_dim) for cls / mean_tokens pooling, (B, num_tokens(), embed_dim) for tokens.
  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    Tensor<T, D> h = transformer(embed(x));
    const std::int64_t extra = num_extra_tokens();
    switch (opt_.pooling) {
      case AstPooling::cls:
        return opt_.dist_token ? (h.select(1, 0) + h.select(1, 1)) * 0.5 : h.select(1, 0);
      case AstPooling::mean_tokens:
        return mean(h.narrow(1, extra, h.size(1) - extra), {1});
      case AstPooling::tokens:
        break;
    }
    return h;
  }

  std::int64_t latent_dim() const { return opt_.embed_dim; }
  /// Patches per input: ⌊(F − p)/fstride + 1⌋ · ⌊(T − p)/tstride + 1⌋ (1212 at the defaults).
  std::int64_t num_patches() const { return pos.max_len() - num_extra_tokens(); }
  std::int64_t num_extra_tokens() const { return opt_.dist_token ? 2 : 1; }
  std::int64_t num_tokens() const { return pos.max_len(); }
  const Options& options() const { return opt_; }
  std::string describe() const override {
    return detail::concat("AstEncoder(", opt_.num_bins, " bins × ", opt_.num_frames, " frames, patch ", opt_.patch,
                          " stride (", opt_.fstride, ", ", opt_.tstride, "), ", num_patches(),
                          " patches, d=", opt_.embed_dim, ", depth=", opt_.depth, ", heads=", opt_.num_heads,
                          opt_.dist_token ? ", dist token" : "", ", pooling=", ast_pooling_name(opt_.pooling), ")");
  }

  nn::PatchEmbed2d<T, D> patch_embed;
  // Not children: their tensors are the parameters "cls_token", "dist_token", "pos_embed".
  nn::ClassToken<T, D> cls;
  nn::ClassToken<T, D> dist;  ///< its token is a parameter (and used) only when dist_token is on
  nn::LearnedPositionalEmbedding<T, D> pos;
  nn::Dropout<T, D> pos_drop;
  nn::TransformerEncoder<T, D> transformer;

 private:
  static const Options& checked(const Options& opt) {
    const char* who = "AstEncoder";
    AVGRAD_CHECK(opt.num_bins > 0 && opt.num_frames > 0, who, "num_bins and num_frames must be positive, got (",
                 opt.num_bins, ", ", opt.num_frames, ")");
    AVGRAD_CHECK(opt.patch > 0 && opt.fstride > 0 && opt.tstride > 0, who,
                 "patch, fstride and tstride must be positive, got (", opt.patch, ", ", opt.fstride, ", ", opt.tstride,
                 ")");
    AVGRAD_CHECK(opt.num_bins >= opt.patch && opt.num_frames >= opt.patch, who, "a ", opt.num_bins, " × ",
                 opt.num_frames, " input is smaller than one ", opt.patch, " × ", opt.patch, " patch");
    AVGRAD_CHECK(opt.embed_dim > 0 && opt.depth >= 1 && opt.num_heads > 0, who,
                 "embed_dim, depth and num_heads must be positive, got (", opt.embed_dim, ", ", opt.depth, ", ",
                 opt.num_heads, ")");
    AVGRAD_CHECK(opt.embed_dim % opt.num_heads == 0, who, "embed_dim ", opt.embed_dim,
                 " is not divisible by num_heads ", opt.num_heads);
    AVGRAD_CHECK(feedforward(opt) >= 1, who, "mlp_ratio ", opt.mlp_ratio, " gives an empty feed-forward layer");
    AVGRAD_CHECK(opt.dropout >= 0 && opt.dropout < 1, who, "dropout must be in [0, 1), got ", opt.dropout);
    return opt;
  }
  static std::int64_t feedforward(const Options& opt) {
    return static_cast<std::int64_t>(opt.mlp_ratio * static_cast<double>(opt.embed_dim));
  }
  static typename nn::TransformerEncoder<T, D>::LayerFactory layer_factory(const Options& opt, Generator& gen) {
    return [opt, &gen] {
      return std::make_unique<nn::TransformerEncoderLayer<T, D>>(opt.embed_dim, opt.num_heads, feedforward(opt),
                                                                 opt.dropout, nn::TransformerActivation::gelu,
                                                                 opt.layer_norm_eps, true, gen);
    };
  }
};

}  // namespace avgrad::models
