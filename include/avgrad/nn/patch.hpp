// Patch embeddings: a strided convolution whose output positions become tokens.
//   PatchEmbed2d   — AST/ViT: spectrogram or image (B, C, F, T) → (B, N, D); the
//                    stride may be smaller than the kernel (AST's overlapping 16×16
//                    patches with stride 10).
//   TubeletEmbed3d — ViViT: video (B, C, T, H, W) → (B, N, D) over t×h×w tubelets.
// Tokens are ordered as torch's proj(x).flatten(2).transpose(1, 2): row-major over
// the patch grid (last grid axis fastest). The projection is a child "proj" with
// parameters "proj.weight" (D, C, k…) and "proj.bias" (D), as timm/AST, initialised
// as torch's ConvNd: U(±1/√fan_in) for both (fan_in = C·∏k).
//
// Grid size along each axis: ⌊(extent − kernel) / stride⌋ + 1 (no padding). For
// AST's 128 mel bins × 1024 frames, 16×16 patches, stride 10: (12, 101) = 1212 patches.
#pragma once

#include <array>
#include <cmath>
#include <optional>
#include <span>

#include "avgrad/nn/init.hpp"
#include "avgrad/nn/module.hpp"
#include "avgrad/ops/conv.hpp"

namespace avgrad::nn {

/// The convolution of a patch embedding: weight (D, C, k…) and bias (D), stride
/// fixed at construction, no padding. N = 2 or 3 spatial dims.
template <int N, Floating T, Device D = Cpu> class PatchProjection : public Module<T, D> {
 public:
  PatchProjection(std::int64_t in_channels, std::int64_t embed_dim, const std::array<std::int64_t, N>& kernel,
                  const std::array<std::int64_t, N>& stride, bool bias, Generator& gen)
      : kernel_(kernel), stride_(stride) {
    const char* op = N == 2 ? "PatchEmbed2d" : "TubeletEmbed3d";
    AVGRAD_CHECK(in_channels > 0 && embed_dim > 0, op, "in_channels and embed_dim must be positive, got (", in_channels,
                 ", ", embed_dim, ")");
    Shape ws{embed_dim, in_channels};
    for (std::size_t i = 0; i < N; ++i) {
      AVGRAD_CHECK(kernel[i] > 0 && stride[i] > 0, op, "kernel and stride must be positive, got kernel ",
                   Shape(std::span<const std::int64_t>(kernel.data(), N)), " stride ",
                   Shape(std::span<const std::int64_t>(stride.data(), N)));
      ws.push_back(kernel[i]);
    }
    weight = Tensor<T, D>::empty(ws);
    init::kaiming_uniform_(weight, std::sqrt(5.0), init::FanMode::fan_in, "leaky_relu", gen);
    this->register_parameter("weight", weight);
    if (bias) {
      this->bias = Tensor<T, D>::empty({embed_dim});
      const double bound = 1.0 / std::sqrt(init::fans(weight).in);
      init::uniform_(this->bias, -bound, bound, gen);
      this->register_parameter("bias", this->bias);
    }
  }
  /// x (B, C, s…) → (B, D, g…).
  Tensor<T, D> forward(const Tensor<T, D>& x) const {
    ConvArg<N> s(1);
    for (int i = 0; i < N; ++i) s.v[static_cast<std::size_t>(i)] = stride_[static_cast<std::size_t>(i)];
    if constexpr (N == 2)
      return conv2d(x, weight, bias, s);
    else
      return conv3d(x, weight, bias, s);
  }
  std::string describe() const override {
    return detail::concat("Conv", N, "d(", weight.size(1), ", ", weight.size(0),
                          ", kernel=", Shape(std::span<const std::int64_t>(kernel_.data(), N)),
                          ", stride=", Shape(std::span<const std::int64_t>(stride_.data(), N)), ")");
  }
  const std::array<std::int64_t, N>& kernel() const { return kernel_; }
  const std::array<std::int64_t, N>& stride() const { return stride_; }

  Tensor<T, D> weight, bias;

 private:
  std::array<std::int64_t, N> kernel_, stride_;
};

namespace patch_detail {
/// Grid extents ⌊(extent − k)/s⌋ + 1 for the N trailing dims of an input shape, checked.
template <int N> std::array<std::int64_t, N> grid(const char* op, const std::array<std::int64_t, N>& extent,
                                                  const std::array<std::int64_t, N>& k,
                                                  const std::array<std::int64_t, N>& s) {
  std::array<std::int64_t, N> g{};
  for (std::size_t i = 0; i < N; ++i) {
    AVGRAD_CHECK(extent[i] >= k[i], op, "input extent ", extent[i], " along spatial dim ", i,
                 " is smaller than the kernel ", k[i]);
    g[i] = (extent[i] - k[i]) / s[i] + 1;
  }
  return g;
}

/// (B, D, g…) → (B, ∏g, D): torch's flatten(2).transpose(1, 2).
template <Floating T, Device D> Tensor<T, D> to_tokens(const Tensor<T, D>& y) { return y.flatten(2).transpose(1, 2); }
}  // namespace patch_detail

template <Floating T, Device D = Cpu> class PatchEmbed2d : public UnaryModule<T, D> {
 public:
  using Size2 = std::array<std::int64_t, 2>;

  /// in_channels (1 for a spectrogram) → embed_dim, patches `patch` = (kF, kT) taken every `stride` = (sF, sT).
  PatchEmbed2d(std::int64_t in_channels, std::int64_t embed_dim, Size2 patch = {16, 16}, Size2 stride = {16, 16},
               bool bias = true, Generator& gen = default_generator())
      : proj(in_channels, embed_dim, patch, stride, bias, gen) {
    this->register_module("proj", proj);
  }
  /// x (B, C, F, T) → (B, N, D), N = grid(F, T)[0] · grid(F, T)[1].
  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    AVGRAD_CHECK(x.defined() && x.dim() == 4 && x.size(1) == in_channels(), "PatchEmbed2d", "expected x (B, ",
                 in_channels(), ", F, T), got ", x.defined() ? x.shape().str() : std::string("undefined"));
    (void)grid(x.size(2), x.size(3));  // checks the extents against the kernel
    return patch_detail::to_tokens(proj.forward(x));
  }
  /// The patch grid (F', T') for an input of F × T.
  Size2 grid(std::int64_t F, std::int64_t T_) const {
    return patch_detail::grid<2>("PatchEmbed2d", {F, T_}, proj.kernel(), proj.stride());
  }
  std::int64_t num_patches(std::int64_t F, std::int64_t T_) const {
    auto g = grid(F, T_);
    return g[0] * g[1];
  }
  std::int64_t in_channels() const { return proj.weight.size(1); }
  std::int64_t embed_dim() const { return proj.weight.size(0); }
  std::string describe() const override {
    return detail::concat("PatchEmbed2d(", in_channels(), " → ", embed_dim(), ")");
  }

  PatchProjection<2, T, D> proj;
};

template <Floating T, Device D = Cpu> class TubeletEmbed3d : public UnaryModule<T, D> {
 public:
  using Size3 = std::array<std::int64_t, 3>;

  /// in_channels → embed_dim over tubelets (kT, kH, kW) taken every `stride` (default: the tubelet, no overlap).
  TubeletEmbed3d(std::int64_t in_channels, std::int64_t embed_dim, Size3 tubelet = {2, 16, 16},
                 std::optional<Size3> stride = std::nullopt, bool bias = true, Generator& gen = default_generator())
      : proj(in_channels, embed_dim, tubelet, stride.value_or(tubelet), bias, gen) {
    this->register_module("proj", proj);
  }
  /// x (B, C, T, H, W) → (B, N, D), N = T'·H'·W' with tokens ordered (t, h, w), w fastest.
  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    AVGRAD_CHECK(x.defined() && x.dim() == 5 && x.size(1) == in_channels(), "TubeletEmbed3d", "expected x (B, ",
                 in_channels(), ", T, H, W), got ", x.defined() ? x.shape().str() : std::string("undefined"));
    (void)grid(x.size(2), x.size(3), x.size(4));
    return patch_detail::to_tokens(proj.forward(x));
  }
  /// The tubelet grid (T', H', W') for an input of T × H × W frames.
  Size3 grid(std::int64_t T_, std::int64_t H, std::int64_t W) const {
    return patch_detail::grid<3>("TubeletEmbed3d", {T_, H, W}, proj.kernel(), proj.stride());
  }
  std::int64_t num_patches(std::int64_t T_, std::int64_t H, std::int64_t W) const {
    auto g = grid(T_, H, W);
    return g[0] * g[1] * g[2];
  }
  std::int64_t in_channels() const { return proj.weight.size(1); }
  std::int64_t embed_dim() const { return proj.weight.size(0); }
  std::string describe() const override {
    return detail::concat("TubeletEmbed3d(", in_channels(), " → ", embed_dim(), ")");
  }

  PatchProjection<3, T, D> proj;
};

}  // namespace avgrad::nn
