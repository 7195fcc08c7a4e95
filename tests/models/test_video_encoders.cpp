// Video encoders: output shapes against latent_dim(), parameter counts against closed-form
// formulas written here independently of the modules, gradchecks in double at tiny sizes,
// checks that can fail for what each encoder promises (frames encoded independently, the
// ViViT attention really factorised over time and space), errors, and every default size.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "avgrad/models/video_encoders.hpp"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::testing;
namespace m = avgrad::models;

static_assert(m::Encoder<m::FrameCnnEncoder<double>> && m::Encoder<m::Conv3dEncoder<double>> &&
              m::Encoder<m::R2Plus1dEncoder<double>> && m::Encoder<m::VivitEncoder<double>> &&
              m::Encoder<m::FeatureSequenceEncoder<double>>);

namespace {

std::set<std::string> names_of(const nn::Module<double>& mod) {
  std::set<std::string> out;
  for (auto& [n, p] : mod.named_parameters()) out.insert(n);
  return out;
}

/// A clip with N(0, 1) entries (no grad).
TD clip(const Shape& s, std::uint64_t seed) {
  Generator g(seed);
  return randn<double>(s, g);
}

/// Largest |a − b| over all elements (same shape).
double max_diff(const TD& a, const TD& b) {
  EXPECT_EQ(a.shape(), b.shape());
  auto va = a.contiguous().to_vector(), vb = b.contiguous().to_vector();
  double d = 0;
  for (std::size_t i = 0; i < va.size(); ++i) d = std::max(d, std::abs(va[i] - vb[i]));
  return d;
}

void print_default(const char* name, std::int64_t latent, std::int64_t params) {
  std::printf("[ default  ] %s: latent_dim %lld, %lld parameters\n", name, static_cast<long long>(latent),
              static_cast<long long>(params));
}

// ---- parameter-count formulas, written from the architectures' definitions -------------

std::int64_t conv_bn(std::int64_t in, std::int64_t out, std::int64_t taps) { return in * out * taps + 2 * out; }

/// Transformer layer (torch's): packed in-proj 3E·E + 3E, out-proj E·E + E, two linears, two norms.
std::int64_t transformer_layer(std::int64_t E, std::int64_t ffn) {
  return 4 * E * E + 4 * E + (E * ffn + ffn) + (ffn * E + E) + 4 * E;
}

// ====================================================================================
// Conv3dEncoder
// ====================================================================================

std::int64_t conv3d_encoder_params(const m::Conv3dEncoderOptions& o) {
  std::int64_t n = 0, in = o.in_channels;
  for (auto c : o.channels) n += conv_bn(in, c, o.kernel * o.kernel * o.kernel), in = c;
  return n;
}

TEST(Conv3dEncoder, ShapesNamesAndParameterCount) {
  Generator g(1);
  m::Conv3dEncoder<double> enc(m::Conv3dEncoderOptions::small(), g);
  auto y = enc(clip({2, 3, 8, 32, 32}, 2));
  EXPECT_EQ(y.shape(), (Shape{2, 2, enc.latent_dim()}));  // T: 8 → 8 → 4 → 2
  EXPECT_EQ(enc.latent_dim(), 32);
  EXPECT_EQ(enc.parameter_count(), conv3d_encoder_params(m::Conv3dEncoderOptions::small()));
  auto names = names_of(enc);
  EXPECT_TRUE(names.contains("blocks.0.conv.weight"));
  EXPECT_TRUE(names.contains("blocks.2.bn.bias"));
  EXPECT_FALSE(names.contains("blocks.0.conv.bias"));  // the norm follows: no conv bias
  // odd extents are floored by each pool, as max_pool3d
  EXPECT_EQ(enc(clip({1, 3, 9, 17, 19}, 3)).shape(), (Shape{1, 2, 32}));
}

TEST(Conv3dEncoder, MatchesTheBenchmarkBranchComputedByHand) {
  Generator g(4);
  m::Conv3dEncoderOptions o;
  o.channels = {4, 5, 6};
  m::Conv3dEncoder<double> enc(o, g);
  auto x = clip({2, 3, 8, 16, 16}, 5);
  // conv3d → batch norm with batch statistics → relu → max_pool3d, then the global average pool
  TD h = x;
  const std::vector<std::vector<std::int64_t>> pools{{1, 2, 2}, {2, 2, 2}, {2, 2, 2}};
  for (std::size_t i = 0; i < 3; ++i) {
    auto& b = enc.blocks.get<m::ConvBnAct<3, double>>(i);
    h = conv3d(h, b.conv.weight, TD(), 1, 1);
    auto mu = mean(h, {0, 2, 3, 4}, true);
    auto var = mean((h - mu) * (h - mu), {0, 2, 3, 4}, true);
    h = max_pool3d(relu((h - mu) / sqrt(var + 1e-5)), pools[i]);
  }
  auto gap = mean(h, {2, 3, 4});    // (B, C): the reference's pooled latent
  auto z = m::pool_latent(enc(x));  // the encoder's sequence, mean-pooled over time
  EXPECT_LT(max_diff(z, gap), 1e-10);
}

TEST(Conv3dEncoder, Gradcheck) {
  Generator g(6);
  m::Conv3dEncoderOptions o;
  o.channels = {2, 3, 3};
  m::Conv3dEncoder<double> enc(o, g);
  Fn f = [&](const std::vector<TD>& x) {
    enc.blocks.get<m::ConvBnAct<3, double>>(1).conv.weight = x[1];
    return enc(x[0]);
  };
  auto w = enc.blocks.get<m::ConvBnAct<3, double>>(1).conv.weight.detach().clone().requires_grad_();
  expect_gradcheck(f, {leaf({2, 3, 4, 8, 8}, 7), w});
}

TEST(Conv3dEncoder, Errors) {
  m::Conv3dEncoder<double> enc(m::Conv3dEncoderOptions::small());
  expect_error([&] { (void)enc(zeros<double>({2, 3, 8, 32})); }, {"Conv3dEncoder", "(B, 3, T, H, W)", "(2,3,8,32)"});
  expect_error(
      [&] {
        (void)enc(zeros<double>({2, 1, 8, 32, 32}));
      },
      {"Conv3dEncoder", "(B, 3, T, H, W)", "(2,1,8,32,32)"});
  expect_error([&] { (void)enc(zeros<double>({2, 3, 2, 32, 32})); }, {"Conv3dEncoder", "(4, 8, 8)", "(2,3,2,32,32)"});
  expect_error([&] { (void)enc(TD()); }, {"Conv3dEncoder", "undefined"});
  auto o = m::Conv3dEncoderOptions::small();
  o.pools.pop_back();
  expect_error([&] { m::Conv3dEncoder<double> bad(o); }, {"Conv3dEncoder", "3 channels and 2 pools"});
  o = m::Conv3dEncoderOptions::small();
  o.kernel = 2;
  expect_error([&] { m::Conv3dEncoder<double> bad(o); }, {"Conv3dEncoder", "odd", "kernel 2"});
}

TEST(Conv3dEncoder, DefaultSize) {
  m::Conv3dEncoder<float> enc;
  print_default("Conv3dEncoder", enc.latent_dim(), enc.parameter_count());
  EXPECT_EQ(enc.latent_dim(), 128);
  // 3→32→64→128 conv3d 3×3×3 + BN: 2656 + 55424 + 221440
  EXPECT_EQ(enc.parameter_count(), 279520);
  EXPECT_EQ(enc.parameter_count(), conv3d_encoder_params({}));
  EXPECT_EQ(enc(zeros<float>({1, 3, 8, 32, 32})).shape(), (Shape{1, 2, 128}));  // the benchmark's clip
}

// ====================================================================================
// R2Plus1dEncoder
// ====================================================================================

/// Parameters of R(2+1)D as torchvision builds it (both factorised convs of a block use
/// the midplanes of (in, out)), without its fc.
std::int64_t r2plus1d_params(const m::R2Plus1dEncoderOptions& o) {
  const std::int64_t k = o.stem_spatial_kernel;
  std::int64_t n =
      conv_bn(o.in_channels, o.stem_channels, k * k) + conv_bn(o.stem_channels, o.widths[0], o.stem_temporal_kernel);
  std::int64_t in = o.widths[0];
  for (std::size_t s = 0; s < o.widths.size(); ++s)
    for (std::int64_t b = 0; b < o.blocks[s]; ++b) {
      const std::int64_t out = o.widths[s], mid = (in * out * 27) / (in * 9 + 3 * out);
      n += conv_bn(in, mid, 9) + conv_bn(mid, out, 3) + conv_bn(out, mid, 9) + conv_bn(mid, out, 3);
      if ((s > 0 && b == 0) || in != out) n += conv_bn(in, out, 1);
      in = out;
    }
  return n;
}

TEST(R2Plus1dEncoder, ShapesNamesAndParameterCount) {
  Generator g(8);
  auto o = m::R2Plus1dEncoderOptions::small();
  m::R2Plus1dEncoder<double> enc(o, g);
  auto y = enc(clip({2, 3, 8, 32, 32}, 9));
  EXPECT_EQ(y.shape(), (Shape{2, 4, enc.latent_dim()}));  // one strided stage halves T
  EXPECT_EQ(enc.parameter_count(), r2plus1d_params(o));
  // torchvision's keys: stem.{0,1,3,4}, layerN.i.conv1.0.{0,1,3} (Conv2Plus1D), conv1.1 (BN), downsample.{0,1}
  auto names = names_of(enc);
  for (const char* n : {"stem.0.weight", "stem.1.weight", "stem.3.weight", "stem.4.bias", "layer1.0.conv1.0.0.weight",
                        "layer1.0.conv1.0.1.weight", "layer1.0.conv1.0.3.weight", "layer1.0.conv1.1.weight",
                        "layer1.0.conv2.0.3.weight", "layer1.0.conv2.1.bias", "layer2.0.downsample.0.weight",
                        "layer2.0.downsample.1.weight"})
    EXPECT_TRUE(names.contains(n)) << n;
  EXPECT_FALSE(names.contains("layer1.0.downsample.0.weight"));  // same width, stride 1: identity
  EXPECT_EQ(enc.stem.get<nn::Conv3d<double>>(0).weight.shape(), (Shape{6, 3, 1, 3, 3}));
  EXPECT_EQ(enc.stem.get<nn::Conv3d<double>>(3).weight.shape(), (Shape{8, 6, 3, 1, 1}));
  // torchvision's midplanes: 64→64 gives 144, 64→128 gives 230
  EXPECT_EQ(m::r2plus1d_midplanes(64, 64), 144);
  EXPECT_EQ(m::r2plus1d_midplanes(64, 128), 230);
  auto& conv = enc.layer(1).get<m::R2Plus1dBlock<double>>(0).conv1.get<nn::Sequential<double>>(0);
  EXPECT_EQ(conv.get<nn::Conv3d<double>>(0).weight.shape(), (Shape{m::r2plus1d_midplanes(8, 16), 8, 1, 3, 3}));
  EXPECT_EQ(conv.get<nn::Conv3d<double>>(0).stride().shape(), (Shape{1, 2, 2}));
  EXPECT_EQ(conv.get<nn::Conv3d<double>>(3).stride().shape(), (Shape{2, 1, 1}));
  // odd extents: strided convs round up
  EXPECT_EQ(enc(clip({1, 3, 5, 9, 9}, 10)).shape(), (Shape{1, 3, 16}));
}

TEST(R2Plus1dEncoder, Gradcheck) {
  Generator g(11);
  m::R2Plus1dEncoderOptions o;
  o.widths = {2, 3};
  o.blocks = {1, 1};
  o.stem_channels = 2;
  o.stem_spatial_kernel = 3;
  o.stem_spatial_stride = 1;
  m::R2Plus1dEncoder<double> enc(o, g);
  auto& temporal_conv =
      enc.layer(1).get<m::R2Plus1dBlock<double>>(0).conv1.get<nn::Sequential<double>>(0).get<nn::Conv3d<double>>(3);
  Fn f = [&](const std::vector<TD>& x) {
    temporal_conv.weight = x[1];
    return enc(x[0]);
  };
  expect_gradcheck(f, {leaf({2, 3, 4, 4, 4}, 12), temporal_conv.weight.detach().clone().requires_grad_()});
}

TEST(R2Plus1dEncoder, Errors) {
  m::R2Plus1dEncoder<double> enc(m::R2Plus1dEncoderOptions::small());
  expect_error(
      [&] {
        (void)enc(zeros<double>({2, 4, 8, 16, 16}));
      },
      {"R2Plus1dEncoder", "(B, 3, T, H, W)", "(2,4,8,16,16)"});
  auto o = m::R2Plus1dEncoderOptions::small();
  o.stem_spatial_kernel = 4;
  expect_error([&] { m::R2Plus1dEncoder<double> bad(o); }, {"R2Plus1dEncoder", "odd", "spatial kernel 4"});
  o = m::R2Plus1dEncoderOptions::small();
  o.blocks = {1};
  expect_error([&] { m::R2Plus1dEncoder<double> bad(o); }, {"R2Plus1dEncoder", "widths (8, 16)", "blocks (1)"});
}

TEST(R2Plus1dEncoder, DefaultSizeIsR2Plus1d18) {
  m::R2Plus1dEncoder<float> enc;
  print_default("R2Plus1dEncoder", enc.latent_dim(), enc.parameter_count());
  EXPECT_EQ(enc.latent_dim(), 512);
  EXPECT_EQ(enc.parameter_count(), r2plus1d_params({}));
  // torchvision.models.video.r2plus1d_18 has 31,505,325 parameters, 205,200 of them its fc 512 → 400
  EXPECT_EQ(enc.parameter_count(), 31505325 - (512 * 400 + 400));
  enc.eval();  // one clip shrinks to one value per channel: batch statistics would be undefined
  EXPECT_EQ(enc(zeros<float>({1, 3, 4, 16, 16})).shape(), (Shape{1, 1, 512}));
}

// ====================================================================================
// FrameCnnEncoder
// ====================================================================================

TEST(FrameCnnEncoder, ShapesForEveryTemporalPooling) {
  const auto x = clip({2, 3, 4, 16, 16}, 13);
  for (auto p : {m::TemporalPooling::sequence, m::TemporalPooling::mean, m::TemporalPooling::transformer}) {
    SCOPED_TRACE(m::temporal_pooling_name(p));
    auto o = m::FrameCnnEncoderOptions::small();
    o.temporal = p;
    Generator g(14);
    m::FrameCnnEncoder<double> enc(o, g);
    auto y = enc(x);
    EXPECT_EQ(y.shape(), p == m::TemporalPooling::mean ? (Shape{2, 16}) : (Shape{2, 4, 16}));
    EXPECT_EQ(y.size(-1), enc.latent_dim());
    EXPECT_EQ(names_of(enc).contains("temporal.layers.0.self_attn.in_proj_weight"),
              p == m::TemporalPooling::transformer);
  }
}

TEST(FrameCnnEncoder, FramesAreEncodedIndependentlyAndMeanPoolsTheSequence) {
  Generator g(15);
  m::FrameCnnEncoder<double> enc(m::FrameCnnEncoderOptions::small(), g);
  enc.eval();  // running statistics: no coupling of frames through batch norm
  auto x = clip({2, 3, 4, 8, 8}, 16);
  auto y = enc(x);
  auto x2 = x.clone();
  // change frame t = 1 of clip 0 only
  for (std::int64_t c = 0; c < 3; ++c)
    for (std::int64_t i = 0; i < 64; ++i) x2.data()[(c * 4 + 1) * 64 + i] += 1.0;
  auto y2 = enc(x2);
  for (std::int64_t b = 0; b < 2; ++b)
    for (std::int64_t t = 0; t < 4; ++t) {
      const double d = max_diff(y.select(0, b).select(0, t), y2.select(0, b).select(0, t));
      if (b == 0 && t == 1)
        EXPECT_GT(d, 1e-6) << "the changed frame's latent did not change";
      else
        EXPECT_LT(d, 1e-12) << "clip " << b << " frame " << t << " changed";
    }
  // the mean stage is the mean of the sequence stage with the same weights
  auto o = m::FrameCnnEncoderOptions::small();
  o.temporal = m::TemporalPooling::mean;
  m::FrameCnnEncoder<double> pooled(o, g);
  pooled.load_state_dict(enc.state_dict());
  pooled.eval();
  EXPECT_LT(max_diff(pooled(x), mean(y, {1})), 1e-12);
}

TEST(FrameCnnEncoder, Gradcheck) {
  for (auto p : {m::TemporalPooling::sequence, m::TemporalPooling::transformer}) {
    SCOPED_TRACE(m::temporal_pooling_name(p));
    m::FrameCnnEncoderOptions o;
    o.widths = {2, 4};
    o.blocks = {1, 1};
    o.temporal = p;
    o.temporal_heads = 2;
    o.temporal_layers = 1;
    o.temporal_ffn = 6;
    o.temporal_dropout = 0.0;
    o.max_frames = 4;
    Generator g(17);
    m::FrameCnnEncoder<double> enc(o, g);
    auto& w = enc.layer(1).get<m::BasicBlock<2, double>>(0).conv1.weight;
    Fn f = [&](const std::vector<TD>& x) {
      w = x[1];
      return enc(x[0]);
    };
    expect_gradcheck(f, {leaf({2, 3, 3, 4, 4}, 18), w.detach().clone().requires_grad_()});
  }
}

TEST(FrameCnnEncoder, Errors) {
  auto o = m::FrameCnnEncoderOptions::small();
  o.temporal = m::TemporalPooling::transformer;
  o.max_frames = 3;
  m::FrameCnnEncoder<double> enc(o);
  expect_error(
      [&] {
        (void)enc(zeros<double>({1, 3, 4, 8, 8}));
      },
      {"FrameCnnEncoder", "max_frames = 3", "(1,3,4,8,8)"});
  expect_error([&] { (void)enc(zeros<double>({1, 3, 8, 8})); }, {"FrameCnnEncoder", "(B, 3, T, H, W)", "(1,3,8,8)"});
  o.temporal_heads = 3;
  expect_error([&] { m::FrameCnnEncoder<double> bad(o); }, {"FrameCnnEncoder", "16", "temporal_heads 3"});
  o = m::FrameCnnEncoderOptions::small();
  o.widths = {8, 0};
  expect_error([&] { m::FrameCnnEncoder<double> bad(o); }, {"FrameCnnEncoder", "stage 1", "width 0"});
}

TEST(FrameCnnEncoder, DefaultSize) {
  m::FrameCnnEncoder<float> enc;
  print_default("FrameCnnEncoder", enc.latent_dim(), enc.parameter_count());
  EXPECT_EQ(enc.latent_dim(), 512);
  // torchvision's resnet18 (11,689,512) less its fc (513,000) and 7×7 stem conv + BN (9,536),
  // plus this encoder's 3×3 stem conv + BN (1,856)
  EXPECT_EQ(enc.parameter_count(), 11689512 - 513000 - 9536 + 1856);
  m::FrameCnnEncoderOptions o;
  o.temporal = m::TemporalPooling::transformer;
  m::FrameCnnEncoder<float> with_transformer(o);
  print_default("FrameCnnEncoder (transformer)", with_transformer.latent_dim(), with_transformer.parameter_count());
  EXPECT_EQ(with_transformer.parameter_count(), enc.parameter_count() + 64 * 512 + 2 * transformer_layer(512, 2048));
}

// ====================================================================================
// VivitEncoder
// ====================================================================================

std::int64_t vivit_params(const m::VivitEncoderOptions& o) {
  const std::int64_t E = o.embed_dim, hidden = static_cast<std::int64_t>(static_cast<double>(E) * o.mlp_ratio);
  const std::int64_t Tg = o.num_frames / o.tubelet[0],
                     S = (o.image_size / o.tubelet[1]) * (o.image_size / o.tubelet[2]);
  const std::int64_t embed = E * o.in_channels * o.tubelet[0] * o.tubelet[1] * o.tubelet[2] + E;
  const std::int64_t attn = 4 * E * E + 4 * E;
  const std::int64_t block = 2 * attn + 3 * 2 * E + (E * hidden + hidden) + (hidden * E + E);
  return embed + S * E + Tg * E + o.depth * block + 2 * E;
}

m::VivitEncoderOptions tiny_vivit() {
  m::VivitEncoderOptions o;
  o.num_frames = 4;
  o.image_size = 4;
  o.tubelet = {2, 2, 2};  // grid (2, 2, 2): T' = 2, S = 4
  o.embed_dim = 4;
  o.depth = 2;
  o.num_heads = 2;
  o.mlp_ratio = 1.5;
  return o;
}

TEST(VivitEncoder, ShapesAndParameterCount) {
  Generator g(19);
  auto o = m::VivitEncoderOptions::small();
  m::VivitEncoder<double> enc(o, g);
  EXPECT_EQ(enc.grid(), (std::array<std::int64_t, 3>{4, 4, 4}));
  EXPECT_EQ(enc(clip({2, 3, 8, 32, 32}, 20)).shape(), (Shape{2, 4, enc.latent_dim()}));
  EXPECT_EQ(enc(clip({1, 3, 4, 32, 32}, 21)).shape(), (Shape{1, 2, 32}));  // a shorter clip
  EXPECT_EQ(enc.parameter_count(), vivit_params(o));
  EXPECT_EQ(enc.spatial_pos.weight.shape(), (Shape{1, 16, 32}));
  EXPECT_EQ(enc.temporal_pos.weight.shape(), (Shape{1, 4, 32}));
  auto names = names_of(enc);
  for (const char* n : {"patch_embed.proj.weight", "spatial_pos.pos_embed", "temporal_pos.pos_embed",
                        "blocks.1.temporal_attn.in_proj_weight", "blocks.1.spatial_attn.out_proj.weight",
                        "blocks.0.mlp_norm.weight", "blocks.0.fc2.bias", "norm.weight"})
    EXPECT_TRUE(names.contains(n)) << n;
  o.pool_time = true;
  m::VivitEncoder<double> pooled(o, g);
  pooled.load_state_dict(enc.state_dict());
  auto x = clip({2, 3, 8, 32, 32}, 22);
  auto y = pooled(x);
  EXPECT_EQ(y.shape(), (Shape{2, 32}));
  EXPECT_LT(max_diff(y, mean(enc(x), {1})), 1e-12);
}

/// Tokens (B, T', S, D) flattened to (B, T'·S, D) (index t·S + s), and a (T'·S)² torch-style
/// mask (true = blocked) that lets token i see token j only when same(i, j).
Tensor<bool> grid_mask(std::int64_t Tn, std::int64_t S, bool same_position) {
  const std::int64_t N = Tn * S;
  std::vector<bool> blocked(static_cast<std::size_t>(N * N));
  for (std::int64_t i = 0; i < N; ++i)
    for (std::int64_t j = 0; j < N; ++j)
      blocked[static_cast<std::size_t>(i * N + j)] = same_position ? (i % S != j % S) : (i / S != j / S);
  return from_vector<bool>(blocked, {N, N});
}

TEST(VivitEncoder, BlockEqualsFullAttentionWithSpaceTimeMasks) {
  // Factorised attention is full attention over all T'·S tokens with the pairs in different
  // spatial positions (temporal step) or different time steps (spatial step) blocked.
  Generator g(23);
  m::VivitBlock<double> block(8, 2, 12, 0.0, 1e-6, g);
  const std::int64_t B = 2, Tn = 3, S = 4, E = 8;
  auto x = clip({B, Tn, S, E}, 24);
  auto flat = x.reshape({B, Tn * S, E});
  auto h = block.temporal_norm(flat);
  auto ref = flat + block.temporal_attn(h, h, h, Tensor<bool>(), grid_mask(Tn, S, true));
  h = block.spatial_norm(ref);
  ref = ref + block.spatial_attn(h, h, h, Tensor<bool>(), grid_mask(Tn, S, false));
  ref = ref + block.fc2(gelu(block.fc1(block.mlp_norm(ref))));
  auto y = block(x);
  ASSERT_EQ(y.shape(), (Shape{B, Tn, S, E}));
  EXPECT_LT(max_diff(y.reshape({B, Tn * S, E}), ref), 1e-12);
  // and it is not full attention: unmasked attention gives something else
  h = block.temporal_norm(flat);
  auto full = flat + block.temporal_attn(h, h, h);
  EXPECT_GT(max_diff(block.temporal_step(x).reshape({B, Tn * S, E}), full), 1e-6);
}

TEST(VivitEncoder, PerturbingOneTokenReachesOnlyItsTimeOrSpaceNeighbours) {
  Generator g(25);
  m::VivitBlock<double> block(8, 2, 16, 0.0, 1e-6, g);
  const std::int64_t Tn = 3, S = 4, t0 = 1, s0 = 2;
  auto x = clip({1, Tn, S, 8}, 26);
  auto x2 = x.clone();
  // a perturbation that is not constant over the features (LayerNorm would remove a shift)
  for (std::int64_t e = 0; e < 8; ++e) x2.data()[(t0 * S + s0) * 8 + e] += 0.5 * static_cast<double>(e % 3) - 0.4;
  auto dt = block.temporal_step(x), dt2 = block.temporal_step(x2);
  auto ds = block.spatial_step(x), ds2 = block.spatial_step(x2);
  for (std::int64_t t = 0; t < Tn; ++t)
    for (std::int64_t s = 0; s < S; ++s) {
      SCOPED_TRACE(::testing::Message() << "token (" << t << ", " << s << ")");
      const double temporal = max_diff(dt.select(1, t).select(1, s), dt2.select(1, t).select(1, s));
      const double spatial = max_diff(ds.select(1, t).select(1, s), ds2.select(1, t).select(1, s));
      if (s == s0)
        EXPECT_GT(temporal, 1e-6);
      else
        EXPECT_LT(temporal, 1e-13);
      if (t == t0)
        EXPECT_GT(spatial, 1e-6);
      else
        EXPECT_LT(spatial, 1e-13);
    }
}

TEST(VivitEncoder, Gradcheck) {
  Generator g(27);
  m::VivitEncoder<double> enc(tiny_vivit(), g);
  Fn f = [&](const std::vector<TD>& x) {
    enc.block(0).spatial_attn.in_proj_weight = x[1];
    enc.temporal_pos.weight = x[2];
    enc.block(1).temporal_attn.in_proj_weight = x[3];
    return enc(x[0]);
  };
  expect_gradcheck(
      f, {leaf({2, 3, 4, 4, 4}, 28), enc.block(0).spatial_attn.in_proj_weight.detach().clone().requires_grad_(),
          enc.temporal_pos.weight.detach().clone().requires_grad_(),
          enc.block(1).temporal_attn.in_proj_weight.detach().clone().requires_grad_()});
  auto o = tiny_vivit();
  o.pool_time = true;
  m::VivitEncoder<double> pooled(o, g);
  expect_gradcheck([&](const std::vector<TD>& x) { return pooled(x[0]); }, {leaf({1, 3, 2, 4, 4}, 29)});
}

TEST(VivitEncoder, Errors) {
  m::VivitEncoder<double> enc(m::VivitEncoderOptions::small());
  expect_error(
      [&] {
        (void)enc(zeros<double>({1, 3, 8, 32, 16}));
      },
      {"VivitEncoder", "(B, 3, T, 32, 32)", "2 <= T <= 8", "(1,3,8,32,16)"});
  expect_error([&] { (void)enc(zeros<double>({1, 3, 10, 32, 32})); }, {"VivitEncoder", "(1,3,10,32,32)"});
  expect_error([&] { (void)enc(zeros<double>({1, 3, 1, 32, 32})); }, {"VivitEncoder", "(1,3,1,32,32)"});
  expect_error([&] { (void)enc(zeros<double>({1, 2, 8, 32, 32})); }, {"VivitEncoder", "(B, 3, T, H, W)"});
  expect_error([&] { (void)enc.block(0)(zeros<double>({1, 4, 32})); }, {"VivitBlock", "(B, T', S, 32)", "(1,4,32)"});
  auto o = m::VivitEncoderOptions::small();
  o.num_heads = 5;
  expect_error([&] { m::VivitEncoder<double> bad(o); }, {"VivitEncoder", "embed_dim 32", "num_heads 5"});
  o = m::VivitEncoderOptions::small();
  o.image_size = 4;
  expect_error([&] { m::VivitEncoder<double> bad(o); }, {"VivitEncoder", "image_size 4", "(2, 8, 8)"});
}

TEST(VivitEncoder, DefaultSize) {
  m::VivitEncoder<float> enc;
  print_default("VivitEncoder", enc.latent_dim(), enc.parameter_count());
  EXPECT_EQ(enc.latent_dim(), 768);
  EXPECT_EQ(enc.grid(), (std::array<std::int64_t, 3>{8, 14, 14}));
  EXPECT_EQ(enc.parameter_count(), vivit_params({}));
  EXPECT_EQ(enc.parameter_count(), 114759936);
}

// ====================================================================================
// FeatureSequenceEncoder
// ====================================================================================

std::int64_t feature_sequence_params(const m::FeatureSequenceEncoderOptions& o) {
  std::int64_t n = o.d_model != o.input_dim ? o.input_dim * o.d_model + o.d_model : 0;
  if (o.learned_positions) n += o.num_frames * o.d_model;
  n += (o.share_weights ? 1 : o.num_layers) * transformer_layer(o.d_model, o.dim_feedforward);
  return n + o.d_model * o.out_dim + o.out_dim;
}

TEST(FeatureSequenceEncoder, ShapesAndParameterCounts) {
  Generator g(30);
  auto o = m::FeatureSequenceEncoderOptions::small();
  m::FeatureSequenceEncoder<double> enc(o, g);
  auto y = enc(clip({2, 10, 32}, 31));
  EXPECT_EQ(y.shape(), (Shape{2, 10, enc.latent_dim()}));
  for (double v : y.to_vector()) EXPECT_GE(v, 0.0);  // the output ReLU
  EXPECT_EQ(enc.parameter_count(), feature_sequence_params(o));
  EXPECT_EQ(enc.input_proj, nullptr);
  EXPECT_EQ(enc.pos_embed, nullptr);
  // every option that changes the parameter set
  o.d_model = 24;
  o.learned_positions = true;
  o.num_layers = 3;
  o.share_weights = true;
  m::FeatureSequenceEncoder<double> variant(o, g);
  EXPECT_EQ(variant.parameter_count(), feature_sequence_params(o));
  EXPECT_TRUE(names_of(variant).contains("input_proj.weight"));
  EXPECT_TRUE(names_of(variant).contains("pos_embed.pos_embed"));
  EXPECT_FALSE(names_of(variant).contains("transformer.layers.1.linear1.weight"));
  EXPECT_EQ(variant(clip({1, 7, 32}, 32)).shape(), (Shape{1, 7, 16}));
  o.share_weights = false;
  m::FeatureSequenceEncoder<double> stacked(o, g);
  EXPECT_EQ(stacked.parameter_count(), feature_sequence_params(o));
  EXPECT_TRUE(names_of(stacked).contains("transformer.layers.2.linear1.weight"));
}

TEST(FeatureSequenceEncoder, Gradcheck) {
  m::FeatureSequenceEncoderOptions o;
  o.input_dim = 6;
  o.d_model = 4;
  o.num_heads = 2;
  o.dim_feedforward = 8;
  o.num_layers = 2;
  o.share_weights = true;
  o.learned_positions = true;
  o.num_frames = 5;
  o.dropout = 0.0;
  o.out_dim = 3;
  Generator g(33);
  m::FeatureSequenceEncoder<double> enc(o, g);
  Fn f = [&](const std::vector<TD>& x) {
    enc.input_proj->weight = x[1];
    enc.transformer.layer(0).linear1.weight = x[2];
    return enc(x[0]);
  };
  expect_gradcheck(f, {leaf({2, 4, 6}, 34), enc.input_proj->weight.detach().clone().requires_grad_(),
                       enc.transformer.layer(0).linear1.weight.detach().clone().requires_grad_()});
}

TEST(FeatureSequenceEncoder, Errors) {
  auto o = m::FeatureSequenceEncoderOptions::small();
  o.learned_positions = true;
  m::FeatureSequenceEncoder<double> enc(o);
  expect_error(
      [&] {
        (void)enc(zeros<double>({2, 10, 16}));
      },
      {"FeatureSequenceEncoder", "(B, T <= 10, 32)", "(2,10,16)"});
  expect_error([&] { (void)enc(zeros<double>({2, 11, 32})); }, {"FeatureSequenceEncoder", "(2,11,32)"});
  expect_error([&] { (void)enc(zeros<double>({10, 32})); }, {"FeatureSequenceEncoder", "(10,32)"});
  o.num_heads = 3;
  expect_error([&] { m::FeatureSequenceEncoder<double> bad(o); },
               {"FeatureSequenceEncoder", "d_model 32", "num_heads 3"});
  o = m::FeatureSequenceEncoderOptions::small();
  o.num_layers = 0;
  expect_error([&] { m::FeatureSequenceEncoder<double> bad(o); }, {"FeatureSequenceEncoder", "num_layers", "0"});
}

TEST(FeatureSequenceEncoder, DefaultSizeIsTheStudysVideoBranch) {
  m::FeatureSequenceEncoder<float> enc;
  print_default("FeatureSequenceEncoder", enc.latent_dim(), enc.parameter_count());
  EXPECT_EQ(enc.latent_dim(), 1024);
  EXPECT_EQ(enc.input_proj, nullptr);  // d_model = 2048 = the feature width
  // two post-norm layers (2048 wide, FFN 1024) and Linear 2048 → 1024
  EXPECT_EQ(enc.parameter_count(), 2 * 20990976 + 2098176);
  EXPECT_EQ(enc.parameter_count(), feature_sequence_params({}));
  enc.eval();
  EXPECT_EQ(enc(zeros<float>({1, 10, 2048})).shape(), (Shape{1, 10, 1024}));
}

}  // namespace
