// Heads, fusion layers and the model compositions (AVClassifier, UniModalClassifier,
// SuperLateEnsemble): shapes, the stated formulas, missing-modality treatments, gradchecks
// in double, and every fusion overfitting a tiny synthetic audio-visual batch.
#include <cmath>

#include "avgrad/models/classifier.hpp"
#include "avgrad/models/fusion.hpp"
#include "avgrad/models/heads.hpp"
#include "avgrad/ops/loss.hpp"
#include "avgrad/optim/adam.hpp"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::testing;
using namespace avgrad::models;

namespace {

/// A per-frame MLP encoder for the tests: (B, L, in) → relu(Linear) → (B, L, out).
template <Floating T> class FrameMlp : public nn::UnaryModule<T> {
 public:
  FrameMlp(std::int64_t in, std::int64_t out, Generator& gen = default_generator()) : fc(in, out, true, gen) {
    this->register_module("fc", fc);
  }
  Tensor<T> forward(const Tensor<T>& x) override { return relu(fc(x)); }
  std::int64_t latent_dim() const { return fc.out_features(); }
  nn::Linear<T> fc;
};

/// A tiny 2-channel conv stem for early fusion's channel layout: (B, 2, T, F) → (B, T, C).
template <Floating T> class TwoChannelStem : public nn::UnaryModule<T> {
 public:
  TwoChannelStem(std::int64_t channels, Generator& gen = default_generator()) : conv(2, channels, 3, 1, true, gen) {
    this->register_module("conv", conv);
  }
  Tensor<T> forward(const Tensor<T>& x) override { return freq_mean_sequence(conv(x)); }
  std::int64_t latent_dim() const { return conv.conv.out_channels(); }
  ConvBnAct<2, T> conv;
};

static_assert(Encoder<FrameMlp<float>>);
static_assert(Encoder<InputPassthrough<double>>);
static_assert(Head<ClassifierHead<float>> && Head<AttentionPoolHead<double>>);
static_assert(Fusion<LateFusion<float>> && Fusion<MidFusion<float>> && Fusion<GatedFusion<float>>);
static_assert(Fusion<BottleneckFusion<double>> && Fusion<EarlyFusion<FrameMlp<float>>>);
static_assert(!Encoder<ClassifierHead<float>>, "a head has no latent_dim");
static_assert(AVModel<AVClassifier<FrameMlp<float>, FrameMlp<float>, LateFusion<float>, ClassifierHead<float>>>);
static_assert(AVModel<UniModalClassifier<FrameMlp<float>, ClassifierHead<float>>>);
using UniF = UniModalClassifier<FrameMlp<float>, ClassifierHead<float>>;
static_assert(AVModel<SuperLateEnsemble<UniF, UniF>>);

TD randn_d(const Shape& s, std::uint64_t seed) {
  Generator g(seed);
  return randn<double>(s, g);
}
double max_abs_diff(const TD& a, const TD& b) { return amax(abs(a - b)).item(); }

// ---- blocks ------------------------------------------------------------------------------

TEST(Blocks, ConvBnActAndBasicBlockShapesNamesAndGradcheck) {
  Generator gen(70);
  ConvBnAct<2, double> c(2, 3, {3, 1}, 2, true, gen);
  EXPECT_EQ(c.conv.padding().shape(), Shape({1, 0})) << "same padding k/2 per axis";
  EXPECT_EQ(c(randn_d({2, 2, 6, 5}, 71)).shape(), Shape({2, 3, 3, 3}));
  BasicBlock<2, double> identity(3, 3, 1, gen), strided(3, 4, 2, gen);
  EXPECT_TRUE(identity.downsample.empty());
  EXPECT_EQ(strided.downsample.size(), 2u);
  EXPECT_EQ(strided.named_parameters().back().first, "downsample.1.bias");
  auto x = randn_d({2, 3, 6, 6}, 72);
  // Identity shortcut: the block is relu(bn2(conv2(relu(bn1(conv1 x)))) + x).
  auto h = identity.bn2(identity.conv2(relu(identity.bn1(identity.conv1(x)))));
  EXPECT_LT(max_abs_diff(identity(x), relu(h + x)), 1e-12);
  EXPECT_EQ(strided(x).shape(), Shape({2, 4, 3, 3}));
  BasicBlock<3, double> b3(2, 3, {1, 2, 2}, gen);
  EXPECT_EQ(b3(randn_d({2, 2, 2, 4, 4}, 73)).shape(), Shape({2, 3, 2, 2, 2}));
  expect_gradcheck([&](const std::vector<TD>& in) { return strided(in[0]); }, {leaf({2, 3, 4, 4}, 74)});
  expect_gradcheck([&](const std::vector<TD>& in) { return b3(in[0]); }, {leaf({2, 2, 2, 4, 4}, 75)});
}

TEST(Blocks, FeatureMapsAsSequences) {
  auto x = randn_d({2, 3, 4, 5}, 76);
  auto flat = freq_flatten_sequence(x);
  ASSERT_EQ(flat.shape(), Shape({2, 4, 15}));
  EXPECT_EQ(flat.to_vector()[1 * 15 + 2 * 5 + 3], x.to_vector()[2 * 20 + 1 * 5 + 3]) << "(b=0, t=1, c=2, f=3)";
  EXPECT_LT(max_abs_diff(freq_mean_sequence(x), mean(x, {3}).transpose(1, 2)), 1e-15);
  EXPECT_EQ(spatial_mean_sequence(randn_d({2, 3, 4, 2, 2}, 77)).shape(), Shape({2, 4, 3}));
  EXPECT_EQ(pool_latent(randn_d({2, 5}, 78)).shape(), Shape({2, 5}));
  expect_error([&] { freq_mean_sequence(randn_d({2, 3, 4}, 79)); }, {"freq_mean_sequence", "(B, C, T, F)", "(2,3,4)"});
  expect_error([&] { pool_latent(TD{}); }, {"pool_latent", "undefined"});
}

// ---- heads ------------------------------------------------------------------------------

TEST(ClassifierHead, PoolsSequencesAndMatchesLinear) {
  Generator gen(1);
  ClassifierHead<double> head({.in_dim = 6, .num_classes = 3}, gen);
  auto z = randn_d({4, 5, 6}, 2);
  auto logits = head(z);
  EXPECT_EQ(logits.shape(), Shape({4, 3}));
  auto expected = matmul(mean(z, {1}), head.fc->weight.t()) + head.fc->bias;
  EXPECT_LT(max_abs_diff(logits, expected), 1e-12);
  EXPECT_LT(max_abs_diff(head(mean(z, {1})), logits), 1e-12) << "a pooled latent gives the same logits";
  EXPECT_FALSE(head.multi_label());
  expect_error([&] { head(randn_d({4, 5}, 3)); }, {"ClassifierHead", "(B, 6)", "(4,5)"});
  expect_error([&] { ClassifierHead<double>({.in_dim = 0}); }, {"ClassifierHead", "in_dim"});
}

TEST(ClassifierHead, HiddenLayerGradcheck) {
  Generator gen(3);
  ClassifierHead<double> head({.in_dim = 4, .num_classes = 3, .hidden = 5}, gen);
  EXPECT_EQ(head.parameter_count(), 4 * 5 + 5 + 5 * 3 + 3);
  expect_gradcheck([&](const std::vector<TD>& in) { return head(in[0]); }, {leaf({2, 3, 4}, 4)});
}

TEST(AttentionPoolHead, AttentionWeightedFrameProbabilities) {
  Generator gen(5);
  AttentionPoolHead<double> head({.in_dim = 4, .num_classes = 3}, gen);
  auto z = randn_d({2, 5, 4}, 6);
  auto p = head.probabilities(z);
  ASSERT_EQ(p.shape(), Shape({2, 3}));
  // By hand: per class k, Σ_t softmax_t(att)_tk · sigmoid(cla)_tk.
  auto cla = (matmul(z, head.cla.weight.t()) + head.cla.bias).to_vector();
  auto att = (matmul(z, head.att.weight.t()) + head.att.bias).to_vector();
  auto pv = p.to_vector();
  for (int b = 0; b < 2; ++b)
    for (int k = 0; k < 3; ++k) {
      double norm = 0, acc = 0;
      for (int t = 0; t < 5; ++t) norm += std::exp(att[(b * 5 + t) * 3 + k]);
      for (int t = 0; t < 5; ++t)
        acc += std::exp(att[(b * 5 + t) * 3 + k]) / norm / (1 + std::exp(-cla[(b * 5 + t) * 3 + k]));
      EXPECT_NEAR(pv[b * 3 + k], acc, 1e-12);
    }
  EXPECT_LT(max_abs_diff(sigmoid(head(z)), p), 1e-12) << "sigmoid(logits) is the probability";
  EXPECT_TRUE(head.multi_label());
}

TEST(AttentionPoolHead, ClampsProbabilities) {
  Generator gen(7);
  AttentionPoolHead<double> head({.in_dim = 2, .num_classes = 2, .clamp_eps = 1e-3}, gen);
  auto z = full<double>({1, 3, 2}, 1e4);  // saturates the sigmoids
  auto p = head.probabilities(z).to_vector();
  for (double v : p) {
    EXPECT_GE(v, 1e-3 - 1e-15);
    EXPECT_LE(v, 1 - 1e-3 + 1e-15);
  }
  EXPECT_TRUE(std::isfinite(head(z).to_vector()[0]));
}

TEST(AttentionPoolHead, Gradcheck) {
  Generator gen(8);
  AttentionPoolHead<double> head({.in_dim = 3, .num_classes = 2}, gen);
  expect_gradcheck([&](const std::vector<TD>& in) { return head(in[0]); }, {leaf({2, 4, 3}, 9)});
  expect_gradcheck([&](const std::vector<TD>& in) { return head(in[0]); }, {leaf({2, 3}, 10)});
}

// ---- late fusion --------------------------------------------------------------------------

TEST(LateFusion, SumOfProjectionsOnTheShorterGrid) {
  Generator gen(11);
  LateFusion<double> f({.audio_dim = 4, .video_dim = 3, .dim = 5}, gen);
  auto za = randn_d({2, 8, 4}, 12), zv = randn_d({2, 2, 3}, 13);
  auto z = f.fuse(za, zv);
  ASSERT_EQ(z.shape(), Shape({2, 2, 5}));
  // Audio averaged onto 2 steps: steps [0,4) and [4,8).
  auto a2 = stack({mean(za.narrow(1, 0, 4), {1}), mean(za.narrow(1, 4, 4), {1})}, 1);
  auto expected = f.audio_proj(a2) + f.video_proj(zv);
  EXPECT_LT(max_abs_diff(z, expected), 1e-12);
  // Pooled latents, and a pooled one beside a sequence (broadcast over time).
  EXPECT_EQ(f.fuse(mean(za, {1}), mean(zv, {1})).shape(), Shape({2, 5}));
  auto zb = f.fuse(mean(za, {1}), zv);
  EXPECT_EQ(zb.shape(), Shape({2, 2, 5}));
  EXPECT_LT(max_abs_diff(zb, f.audio_proj(mean(za, {1})).unsqueeze(1) + f.video_proj(zv)), 1e-12);
  LateFusion<double> pooled({.audio_dim = 4, .video_dim = 3, .dim = 5, .align = TimeAlign::pool}, gen);
  EXPECT_EQ(pooled.fuse(za, zv).shape(), Shape({2, 5}));
}

TEST(LateFusion, MissingModalityTreatments) {
  Generator gen(14);
  auto za = randn_d({3, 4}, 15);
  LateFusion<double> skip({.audio_dim = 4, .video_dim = 2, .dim = 3, .missing = MissingModality::skip}, gen);
  EXPECT_LT(max_abs_diff(skip.fuse(za, {}), skip.audio_proj(za)), 1e-12);
  LateFusion<double> zero({.audio_dim = 4, .video_dim = 2, .dim = 3, .missing = MissingModality::zeros}, gen);
  EXPECT_LT(max_abs_diff(zero.fuse(za, {}), zero.audio_proj(za) + zero.video_proj.bias), 1e-12);
  LateFusion<double> learned({.audio_dim = 4, .video_dim = 2, .dim = 3, .missing = MissingModality::learned_token},
                             gen);
  auto names = learned.named_parameters();
  EXPECT_EQ(names[0].first, "audio_missing");
  EXPECT_EQ(names[1].first, "video_missing");
  auto tok = learned.video_missing.unsqueeze(0).expand({3, 2});
  EXPECT_LT(max_abs_diff(learned.fuse(za, {}), learned.audio_proj(za) + learned.video_proj(tok)), 1e-12);
  // The learned stand-in is trained: a loss on the audio-only output reaches it.
  sum(learned.fuse(za, {})).backward();
  ASSERT_TRUE(learned.video_missing.grad().defined());
  EXPECT_GT(amax(abs(learned.video_missing.grad())).item(), 0.0);
  expect_error([&] { skip.fuse({}, {}); }, {"LateFusion", "both modalities are missing"});
  expect_error([&] { skip.fuse(randn_d({3, 5}, 1), {}); }, {"LateFusion", "audio latent", "(3,5)"});
  expect_error([&] { skip.fuse(za, randn_d({2, 2}, 1)); }, {"LateFusion", "batch sizes differ"});
}

TEST(LateFusion, Gradcheck) {
  Generator gen(16);
  LateFusion<double> f({.audio_dim = 3, .video_dim = 2, .dim = 2}, gen);
  expect_gradcheck([&](const std::vector<TD>& in) { return f.fuse(in[0], in[1]); },
                   {leaf({2, 6, 3}, 17), leaf({2, 3, 2}, 18)});
}

// ---- gated fusion ---------------------------------------------------------------------------

TEST(GatedFusion, ConvexCombinationOfTheTwoBranches) {
  Generator gen(19);
  GatedFusion<double> f({.audio_dim = 4, .video_dim = 3, .dim = 5}, gen);
  auto za = randn_d({2, 6, 4}, 20), zv = randn_d({2, 3}, 21);
  auto z = f.fuse(za, zv);
  ASSERT_EQ(z.shape(), Shape({2, 5}));
  auto g = f.gates(za, zv);
  ASSERT_EQ(g.shape(), Shape({2, 5}));
  auto ha = tanh(f.audio_proj(mean(za, {1}))), hv = tanh(f.video_proj(zv));
  EXPECT_LT(max_abs_diff(z, g * ha + (1.0 - g) * hv), 1e-12);
  for (double v : g.to_vector()) {
    EXPECT_GT(v, 0.0);
    EXPECT_LT(v, 1.0);
  }
  EXPECT_LT(max_abs_diff(f.fuse({}, zv), hv), 1e-12) << "a skipped audio branch has weight 0";
  GatedFusion<double> scalar({.audio_dim = 4, .video_dim = 3, .dim = 5, .per_dim_gate = false}, gen);
  EXPECT_EQ(scalar.gates(za, zv).shape(), Shape({2, 1}));
  expect_gradcheck([&](const std::vector<TD>& in) { return scalar.fuse(in[0], in[1]); },
                   {leaf({2, 2, 4}, 22), leaf({2, 3}, 23)});
}

// ---- mid fusion -----------------------------------------------------------------------------

TEST(MidFusion, ConcatenatesAlignedFeaturesIntoATransformer) {
  Generator gen(24);
  MidFusionOptions o{.audio_dim = 4, .video_dim = 6, .dim = 8, .num_heads = 2, .dim_feedforward = 16, .dropout = 0.0};
  MidFusion<double> f(o, gen);
  f.eval();
  auto za = randn_d({2, 9, 4}, 25), zv = randn_d({2, 3, 6}, 26);
  auto z = f.fuse(za, zv);
  ASSERT_EQ(z.shape(), Shape({2, 3, 8}));
  auto expected = f.transformer(f.proj(concat({resample_sequence(za, 3), zv}, 2)));
  EXPECT_LT(max_abs_diff(z, expected), 1e-12);
  EXPECT_EQ(f.transformer.num_layers(), 2);
  EXPECT_TRUE(f.transformer.shares_weights());
  // zeros for a missing modality: the same as passing zeros.
  EXPECT_LT(max_abs_diff(f.fuse(za, {}), f.fuse(za, zeros<double>({2, 6}))), 1e-12);
  o.missing = MissingModality::skip;
  expect_error([&] { MidFusion<double> bad(o); }, {"MidFusion", "skip", "concatenates"});
  expect_gradcheck([&](const std::vector<TD>& in) { return f.fuse(in[0], in[1]); },
                   {leaf({2, 4, 4}, 27), leaf({2, 2, 6}, 28)});
}

// ---- early fusion ---------------------------------------------------------------------------

TEST(EarlyFusion, ConcatTimeCutsVideoIntoBinRows) {
  Generator gen(29);
  EarlyFusionOptions o{.audio_frames = 5, .num_bins = 4, .video_frames = 2, .video_dim = 8};
  EarlyFusion<FrameMlp<double>> f(o, std::make_unique<FrameMlp<double>>(4, 3, gen), gen);
  auto xa = randn_d({2, 5, 4}, 30), xv = randn_d({2, 2, 8}, 31);
  auto z = f.fuse(xa, xv);
  ASSERT_EQ(z.shape(), Shape({2, 9, 3})) << "5 audio frames + 2·8/4 video rows";
  EXPECT_LT(max_abs_diff(z, f.stem()(concat({xa, xv.reshape({2, 4, 4})}, 1))), 1e-12);
  EXPECT_EQ(f.latent_dim(), 3);
  EXPECT_LT(max_abs_diff(f.fuse(xa, {}), f.stem()(concat({xa, zeros<double>({2, 4, 4})}, 1))), 1e-12);
  o.missing = MissingModality::skip;
  EarlyFusion<FrameMlp<double>> s(o, std::make_unique<FrameMlp<double>>(4, 3, gen), gen);
  EXPECT_EQ(s.fuse(xa, {}).shape(), Shape({2, 5, 3}));
  expect_error([&] { f.fuse(randn_d({2, 6, 4}, 1), xv); }, {"EarlyFusion", "(B, 5, 4)", "(2,6,4)"});
  o.video_dim = 7;
  expect_error([&] { EarlyFusion<FrameMlp<double>> bad(o, std::make_unique<FrameMlp<double>>(4, 3)); },
               {"EarlyFusion", "multiple of the bin count"});
  expect_gradcheck([&](const std::vector<TD>& in) { return f.fuse(in[0], in[1]); },
                   {leaf({2, 5, 4}, 32), leaf({2, 2, 8}, 33)});
}

TEST(EarlyFusion, ChannelsPutsVideoOnTheAudioGrid) {
  Generator gen(34);
  EarlyFusionOptions o{.layout = EarlyLayout::channels,
                       .audio_frames = 6,
                       .num_bins = 4,
                       .video_frames = 3,
                       .video_dim = 8,
                       .missing = MissingModality::learned_token};
  EarlyFusion<TwoChannelStem<double>> f(o, std::make_unique<TwoChannelStem<double>>(5, gen), gen);
  auto xa = randn_d({2, 6, 4}, 35), xv = randn_d({2, 3, 8}, 36);
  auto z = f.fuse(xa, xv);
  ASSERT_EQ(z.shape(), Shape({2, 6, 5}));
  // Video (3, 8) onto (6, 4): each video row twice, adjacent column pairs averaged.
  auto grid = adaptive_avg_pool2d(xv.unsqueeze(1), {6, 4});
  auto gv = grid.to_vector(), xvv = xv.to_vector();
  EXPECT_NEAR(gv[0], 0.5 * (xvv[0] + xvv[1]), 1e-12);
  EXPECT_NEAR(gv[4], 0.5 * (xvv[0] + xvv[1]), 1e-12);
  EXPECT_LT(max_abs_diff(z, f.stem()(concat({xa.unsqueeze(1), grid}, 1))), 1e-12);
  EXPECT_EQ(f.fuse(xa, {}).shape(), Shape({2, 6, 5}));
  o.missing = MissingModality::skip;
  expect_error([&] { EarlyFusion<TwoChannelStem<double>> bad(o, std::make_unique<TwoChannelStem<double>>(5)); },
               {"EarlyFusion", "skip", "concat_time"});
  f.eval();  // batch norm on running statistics: a pure function of the input for gradcheck
  expect_gradcheck([&](const std::vector<TD>& in) { return f.fuse(in[0], in[1]); },
                   {leaf({2, 6, 4}, 37), leaf({2, 3, 8}, 38)});
}

// ---- bottleneck fusion --------------------------------------------------------------------

TEST(BottleneckFusion, ModalitiesExchangeOnlyThroughTheBottleneck) {
  Generator gen(39);
  BottleneckFusionOptions o{.audio_dim = 6,
                            .video_dim = 4,
                            .dim = 4,
                            .num_heads = 2,
                            .dim_feedforward = 8,
                            .depth = 2,
                            .fusion_layer = 0,
                            .bottleneck_tokens = 2};
  BottleneckFusion<double> f(o, gen);
  EXPECT_TRUE(f.audio_proj.has_value());
  EXPECT_FALSE(f.video_proj.has_value());
  auto za = randn_d({2, 5, 6}, 40), zv = randn_d({2, 3, 4}, 41), zv2 = randn_d({2, 3, 4}, 44);
  auto z = f.fuse(za, zv);
  ASSERT_EQ(z.shape(), Shape({2, 4}));
  auto [xa, xv] = f.streams(za, zv);
  EXPECT_EQ(xa.shape(), Shape({2, 5, 4}));
  EXPECT_EQ(xv.shape(), Shape({2, 3, 4}));
  EXPECT_LT(max_abs_diff(z, (mean(xa, {1}) + mean(xv, {1})) * 0.5), 1e-12);
  // Fusing in layers 0 and 1: layer 1 sees the bottleneck as both modalities wrote it in
  // layer 0, so the audio stream depends on the video.
  EXPECT_GT(max_abs_diff(f.streams(za, zv2).first, xa), 1e-6) << "nothing crossed the bottleneck";
  EXPECT_GT(max_abs_diff(f.streams(za, {}).first, xa), 1e-6);
  EXPECT_LT(max_abs_diff(f.fuse(za, {}), mean(f.streams(za, {}).first, {1})), 1e-12);
  // Fusing only in the last layer: its bottleneck input is the learned initial tokens and
  // its bottleneck output is discarded, so no video information reaches the audio stream.
  BottleneckFusionOptions late_fuse = o;
  late_fuse.fusion_layer = 1;
  BottleneckFusion<double> g(late_fuse, gen);
  EXPECT_LT(max_abs_diff(g.streams(za, zv2).first, g.streams(za, zv).first), 1e-12)
      << "information leaked around the bottleneck";
  EXPECT_GT(max_abs_diff(g.streams(za, zv2).second, g.streams(za, zv).second), 1e-6);
  o.fusion_layer = 2;
  expect_error([&] { BottleneckFusion<double> bad(o); }, {"BottleneckFusion", "fusion_layer < depth"});
  expect_gradcheck([&](const std::vector<TD>& in) { return f.fuse(in[0], in[1]); },
                   {leaf({1, 3, 6}, 42), leaf({1, 2, 4}, 43)});
}

// ---- compositions -------------------------------------------------------------------------

using Late = AVClassifier<FrameMlp<double>, FrameMlp<double>, LateFusion<double>, ClassifierHead<double>>;

std::unique_ptr<Late> make_late(Generator& gen, MissingModality missing = MissingModality::skip) {
  return std::make_unique<Late>(
      std::make_unique<FrameMlp<double>>(4, 6, gen), std::make_unique<FrameMlp<double>>(3, 5, gen),
      std::make_unique<LateFusion<double>>(
          LateFusionOptions{.audio_dim = 6, .video_dim = 5, .dim = 7, .missing = missing}, gen),
      std::make_unique<ClassifierHead<double>>(ClassifierHeadOptions{.in_dim = 7, .num_classes = 3}, gen));
}

TEST(AVClassifier, ExposesLatentsAndRunsAnySubsetOfModalities) {
  Generator gen(44);
  auto m = make_late(gen);
  auto xa = randn_d({2, 8, 4}, 45), xv = randn_d({2, 4, 3}, 46);
  auto out = m->forward({xa, xv}, true);
  EXPECT_EQ(out.audio_latent.shape(), Shape({2, 8, 6}));
  EXPECT_EQ(out.video_latent.shape(), Shape({2, 4, 5}));
  EXPECT_EQ(out.fused_latent.shape(), Shape({2, 4, 7}));
  EXPECT_EQ(out.logits.shape(), Shape({2, 3}));
  EXPECT_LT(max_abs_diff(out.logits, m->fused_head_logits(out.fused_latent)), 1e-12);
  // Branch logits: the head on the fusion of that branch alone = the audio-only call.
  auto audio_only = m->forward({xa, {}});
  EXPECT_FALSE(audio_only.video_latent.defined());
  EXPECT_LT(max_abs_diff(out.audio_logits, audio_only.logits), 1e-12);
  EXPECT_LT(max_abs_diff(out.video_logits, m->forward({{}, xv}).logits), 1e-12);
  EXPECT_EQ(m->modalities(), Modalities::both());
  EXPECT_EQ(m->num_classes(), 3);
  auto names = m->named_parameters();
  EXPECT_EQ(names.front().first, "audio.fc.weight");
  EXPECT_EQ(names.back().first, "head.fc.bias");
  expect_error([&] { m->forward({}); }, {"AVClassifier", "both modalities are missing"});
}

TEST(AVClassifier, ChecksThatTheWidthsChain) {
  Generator gen(47);
  expect_error(
      [&] {
        Late bad(std::make_unique<FrameMlp<double>>(4, 6, gen), std::make_unique<FrameMlp<double>>(3, 4, gen),
                 std::make_unique<LateFusion<double>>(LateFusionOptions{.audio_dim = 6, .video_dim = 5, .dim = 7}),
                 std::make_unique<ClassifierHead<double>>(ClassifierHeadOptions{.in_dim = 7, .num_classes = 3}));
      },
      {"AVClassifier", "video 4", "video 5"});
  expect_error(
      [&] {
        Late bad(std::make_unique<FrameMlp<double>>(4, 6, gen), std::make_unique<FrameMlp<double>>(3, 5, gen),
                 std::make_unique<LateFusion<double>>(LateFusionOptions{.audio_dim = 6, .video_dim = 5, .dim = 7}),
                 std::make_unique<ClassifierHead<double>>(ClassifierHeadOptions{.in_dim = 8, .num_classes = 3}));
      },
      {"AVClassifier", "width 7", "expects 8"});
}

TEST(AVClassifier, Gradcheck) {
  Generator gen(48);
  auto m = make_late(gen);
  expect_gradcheck([&](const std::vector<TD>& in) { return m->logits(in[0], in[1]); },
                   {leaf({2, 4, 4}, 49), leaf({2, 2, 3}, 50)});
}

TEST(UniModalClassifier, SameKeysAsTheMatchingBranch) {
  Generator gen(51);
  UniModalClassifier<FrameMlp<double>, ClassifierHead<double>> m(
      Modality::video, std::make_unique<FrameMlp<double>>(3, 5, gen),
      std::make_unique<ClassifierHead<double>>(ClassifierHeadOptions{.in_dim = 5, .num_classes = 3}, gen));
  EXPECT_EQ(m.named_parameters().front().first, "video.fc.weight");
  auto xv = randn_d({2, 4, 3}, 52);
  auto out = m.forward({{}, xv});
  EXPECT_EQ(out.video_latent.shape(), Shape({2, 4, 5}));
  EXPECT_LT(max_abs_diff(out.video_logits, out.logits), 1e-12);
  EXPECT_EQ(m.modalities(), Modalities::video_only());
  expect_error([&] { m.forward({randn_d({2, 4, 3}, 1), {}}); }, {"video-only model", "missing"});
  expect_error([&] { m.branch_head_logits(Modality::audio, out.video_latent); }, {"no audio branch"});
}

std::unique_ptr<UniModalClassifier<FrameMlp<double>, ClassifierHead<double>>> make_uni(Modality m, std::int64_t in,
                                                                                       bool multi, Generator& gen) {
  return std::make_unique<UniModalClassifier<FrameMlp<double>, ClassifierHead<double>>>(
      m, std::make_unique<FrameMlp<double>>(in, 5, gen),
      std::make_unique<ClassifierHead<double>>(
          ClassifierHeadOptions{.in_dim = 5, .num_classes = 3, .multi_label = multi}, gen));
}

TEST(SuperLateEnsemble, WeightedAverageOfProbabilities) {
  Generator gen(53);
  for (bool multi : {false, true}) {
    SuperLateEnsemble e(make_uni(Modality::audio, 4, multi, gen), make_uni(Modality::video, 3, multi, gen), 0.6);
    auto xa = randn_d({2, 6, 4}, 54), xv = randn_d({2, 2, 3}, 55);
    auto out = e.forward({xa, xv});
    auto pa = multi ? sigmoid(out.audio_logits) : softmax(out.audio_logits, 1);
    auto pv = multi ? sigmoid(out.video_logits) : softmax(out.video_logits, 1);
    auto p = multi ? sigmoid(out.logits) : exp(out.logits);
    EXPECT_LT(max_abs_diff(p, pa * 0.6 + pv * 0.4), 1e-12) << (multi ? "multi-label" : "single-label");
    EXPECT_FALSE(out.fused_latent.defined());
    EXPECT_LT(max_abs_diff(e.forward({xa, {}}).logits, multi ? out.audio_logits : log_softmax(out.audio_logits, 1)),
              1e-9)
        << "a missing modality gets weight 0";
    expect_error([&] { e.fused_head_logits(out.audio_latent); }, {"SuperLateEnsemble", "no fused latent"});
  }
  expect_error(
      [&] {
        SuperLateEnsemble bad(make_uni(Modality::video, 4, false, gen), make_uni(Modality::video, 3, false, gen));
      },
      {"SuperLateEnsemble", "audio-only and a video-only"});
}

// ---- every fusion overfits a tiny batch -----------------------------------------------------

/// A tiny synthetic AV batch whose label is readable from either modality: 12 examples,
/// 3 classes, audio (12, 8, 4) and video (12, 2, 8) with class-dependent means.
struct TinyBatch {
  TF audio, video;
  Tensor<std::int64_t> labels;
};
TinyBatch tiny_batch() {
  Generator g(60);
  const std::int64_t B = 12;
  std::vector<std::int64_t> y(B);
  for (std::int64_t i = 0; i < B; ++i) y[static_cast<std::size_t>(i)] = i % 3;
  auto audio = randn<float>({B, 8, 4}, g), video = randn<float>({B, 2, 8}, g);
  auto shift = [&](const TF& x) {
    auto v = x.to_vector();
    const std::int64_t per = x.numel() / B;
    for (std::int64_t i = 0; i < B; ++i)
      for (std::int64_t j = 0; j < per; ++j) v[static_cast<std::size_t>(i * per + j)] += 0.3f * float((j + y[i]) % 3);
    return from_vector<float>(v, x.shape());
  };
  return {shift(audio), shift(video), from_vector<std::int64_t>(y, Shape{B})};
}

/// Trains with Adam until the batch is learnt; returns the final loss and accuracy.
template <class Model> std::pair<double, double> overfit(Model& model, const TinyBatch& b, int steps = 150) {
  optim::Adam<float> opt(model.named_trainable_parameters(), {.lr = 1e-2});
  double loss_v = 0;
  for (int s = 0; s < steps; ++s) {
    opt.zero_grad();
    auto loss = cross_entropy(model.forward({b.audio, b.video}).logits, b.labels);
    loss.backward();
    opt.step();
    loss_v = loss.item();
  }
  model.eval();
  auto pred = argmax(model.forward({b.audio, b.video}).logits, 1).to_vector();
  auto y = b.labels.to_vector();
  double hits = 0;
  for (std::size_t i = 0; i < y.size(); ++i) hits += pred[i] == y[i];
  return {loss_v, hits / double(y.size())};
}

template <class FusionT>
void expect_overfits(std::unique_ptr<FusionT> fusion, std::int64_t fused_dim, const char* what, Generator& gen) {
  auto batch = tiny_batch();
  AVClassifier model(
      std::make_unique<FrameMlp<float>>(4, 8, gen), std::make_unique<FrameMlp<float>>(8, 8, gen), std::move(fusion),
      std::make_unique<ClassifierHead<float>>(ClassifierHeadOptions{.in_dim = fused_dim, .num_classes = 3}, gen));
  auto [loss, acc] = overfit(model, batch);
  EXPECT_LT(loss, 0.05) << what;
  EXPECT_EQ(acc, 1.0) << what;
}

TEST(Overfit, EveryFusionLearnsATinyBatch) {
  Generator gen(61);
  expect_overfits(std::make_unique<LateFusion<float>>(LateFusionOptions{.audio_dim = 8, .video_dim = 8, .dim = 8}, gen),
                  8, "late", gen);
  expect_overfits(
      std::make_unique<GatedFusion<float>>(GatedFusionOptions{.audio_dim = 8, .video_dim = 8, .dim = 8}, gen), 8,
      "gated", gen);
  expect_overfits(
      std::make_unique<MidFusion<float>>(
          MidFusionOptions{
              .audio_dim = 8, .video_dim = 8, .dim = 8, .num_heads = 2, .dim_feedforward = 16, .dropout = 0.0},
          gen),
      8, "mid", gen);
  expect_overfits(std::make_unique<BottleneckFusion<float>>(BottleneckFusionOptions{.audio_dim = 8,
                                                                                    .video_dim = 8,
                                                                                    .dim = 8,
                                                                                    .num_heads = 2,
                                                                                    .dim_feedforward = 16,
                                                                                    .depth = 2,
                                                                                    .fusion_layer = 1,
                                                                                    .bottleneck_tokens = 2},
                                                            gen),
                  8, "bottleneck", gen);
}

TEST(Overfit, EarlyFusionLearnsATinyBatch) {
  Generator gen(62);
  auto batch = tiny_batch();
  using Early = EarlyFusion<FrameMlp<float>>;
  AVClassifier model(
      std::make_unique<InputPassthrough<float>>(4), std::make_unique<InputPassthrough<float>>(8),
      std::make_unique<Early>(EarlyFusionOptions{.audio_frames = 8, .num_bins = 4, .video_frames = 2, .video_dim = 8},
                              std::make_unique<FrameMlp<float>>(4, 16, gen), gen),
      std::make_unique<ClassifierHead<float>>(ClassifierHeadOptions{.in_dim = 16, .num_classes = 3}, gen));
  auto [loss, acc] = overfit(model, batch, 300);
  EXPECT_LT(loss, 0.05);
  EXPECT_EQ(acc, 1.0);
}

TEST(Overfit, SuperLateEnsembleLearnsATinyBatch) {
  Generator gen(63);
  auto batch = tiny_batch();
  using Uni = UniModalClassifier<FrameMlp<float>, ClassifierHead<float>>;
  auto uni = [&](Modality m, std::int64_t in) {
    return std::make_unique<Uni>(
        m, std::make_unique<FrameMlp<float>>(in, 8, gen),
        std::make_unique<ClassifierHead<float>>(ClassifierHeadOptions{.in_dim = 8, .num_classes = 3}, gen));
  };
  SuperLateEnsemble model(uni(Modality::audio, 4), uni(Modality::video, 8), 0.6);
  auto [loss, acc] = overfit(model, batch, 300);
  EXPECT_LT(loss, 0.05);
  EXPECT_EQ(acc, 1.0);
}

}  // namespace
