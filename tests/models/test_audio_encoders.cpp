// Audio encoders (models/audio_encoders.hpp): output shapes and latent_dim at small sizes,
// parameter counts against formulas restated here, the full-size defaults, gradchecks in
// double, train/eval behaviour, input and option errors, and AstEncoder / CnnTransformer
// against PyTorch float64 references (fixtures/ast_reference.py).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>

#include "avgrad/data/safetensors.hpp"
#include "avgrad/models/audio_encoders.hpp"
#include "avgrad/ops/pool.hpp"
#include "avgrad/ops/reduce.hpp"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::models;
using namespace avgrad::testing;

static_assert(Encoder<CnnStem10C5P<float>>);
static_assert(Encoder<CnnTransformer<double>>);
static_assert(Encoder<ConvStackEncoder<float>>);
static_assert(Encoder<ResNetAudio<float>>);
static_assert(Encoder<PannsCnn<float>>);
static_assert(Encoder<AstEncoder<double>>);

namespace {

// ---- parameter-count formulas, written out independently of the modules -------------------

/// A bias-free k×k conv (cin → cout) and its batch norm's weight and bias.
std::int64_t conv_bn(std::int64_t cin, std::int64_t cout, std::int64_t k = 3) { return k * k * cin * cout + 2 * cout; }

/// One torch TransformerEncoderLayer: packed q/k/v and output projections, two linears, two norms.
std::int64_t transformer_layer(std::int64_t d, std::int64_t ff) {
  return (3 * d * d + 3 * d) + (d * d + d) + (d * ff + ff) + (ff * d + d) + 4 * d;
}

std::int64_t stem_params(const std::vector<std::int64_t>& channels) {
  std::int64_t n = 0, in = 1;
  for (auto c : channels) n += conv_bn(in, c), in = c;
  return n;
}

/// AST: patch projection, cls (+ dist) tokens, positions over every token, depth layers, final norm.
std::int64_t ast_params(std::int64_t d, std::int64_t patch, std::int64_t patches, std::int64_t depth, std::int64_t ff,
                        bool dist) {
  const std::int64_t extra = dist ? 2 : 1;
  return (d * patch * patch + d) + extra * d + (patches + extra) * d + depth * transformer_layer(d, ff) + 2 * d;
}

std::vector<std::string> child_names(const nn::Module<double>& m) {
  std::vector<std::string> out;
  for (const auto& [n, c] : m.children()) out.push_back(n);
  return out;
}

TD features(const Shape& s, std::uint64_t seed) { return leaf(s, seed).detach(); }

void expect_same(const TD& a, const TD& b, double tol = 1e-12) {
  ASSERT_EQ(a.shape(), b.shape());
  expect_close(a.contiguous(), b.contiguous().to_vector(), tol);
}

bool differs(const TD& a, const TD& b) { return a.contiguous().to_vector() != b.contiguous().to_vector(); }

// ---- PyTorch references ------------------------------------------------------------------

const std::filesystem::path kReference =
    std::filesystem::path(__FILE__).parent_path() / "fixtures" / "ast_reference.safetensors";

/// The tensors of one case of the reference file (keys "<prefix>.…").
struct Reference {
  std::map<std::string, TD> all;
  std::string prefix;

  TD get(const std::string& name) const {
    auto it = all.find(prefix + "." + name);
    if (it == all.end()) throw std::runtime_error("reference tensor '" + prefix + "." + name + "' not found");
    return it->second;
  }
  nn::StateDict<double> state() const {
    nn::StateDict<double> sd;
    const std::string p = prefix + ".state.";
    for (const auto& [n, t] : all)
      if (n.rfind(p, 0) == 0) sd[n.substr(p.size())] = t;
    return sd;
  }
  std::vector<std::string> param_grad_names() const {
    std::vector<std::string> out;
    const std::string p = prefix + ".grad.param.";
    for (const auto& [n, t] : all)
      if (n.rfind(p, 0) == 0) out.push_back(n.substr(p.size()));
    return out;
  }
};

/// Loads the case into `model` (eval mode), then compares the output, the input gradient
/// of sum(output · cotangent) and the listed parameter gradients at 1e-10 relative.
void expect_matches_reference(nn::UnaryModule<double>& model, const Reference& ref) {
  constexpr double kTol = 1e-10;
  model.load_state_dict(ref.state());
  model.eval();
  TD x = ref.get("input").clone().requires_grad_();
  TD out = model(x);
  const double out_err = worst_relative_error(out, ref.get("output"));
  EXPECT_LT(out_err, kTol) << ref.prefix << " output";
  sum(out * ref.get("cotangent")).backward();
  const double grad_err = worst_relative_error(x.grad(), ref.get("grad.input"));
  EXPECT_LT(grad_err, kTol) << ref.prefix << " input gradient";
  std::map<std::string, TD> params;
  for (auto& [n, p] : model.named_parameters()) params[n] = p;
  double param_err = 0;
  const auto names = ref.param_grad_names();
  EXPECT_FALSE(names.empty());
  for (const auto& n : names) {
    ASSERT_TRUE(params.contains(n)) << n;
    const double e = worst_relative_error(params[n].grad(), ref.get("grad.param." + n));
    EXPECT_LT(e, kTol) << ref.prefix << " gradient of " << n;
    param_err = std::max(param_err, e);
  }
  std::cout << "[ reference ] " << ref.prefix << ": worst relative error output " << out_err << ", input gradient "
            << grad_err << ", parameter gradients " << param_err << "\n";
}

// ==== CnnStem10C5P =========================================================================

TEST(CnnStem10C5P, DefaultsAreTheStudyStem) {
  CnnStem10C5P<float> stem;
  EXPECT_EQ(stem.latent_dim(), 1024);  // 512 channels × 64 / 2⁵ bins
  EXPECT_EQ(stem.parameter_count(), stem_params({32, 32, 64, 64, 128, 128, 256, 256, 512, 512}));
  EXPECT_EQ(stem.parameter_count(), 4713632);
  EXPECT_EQ(stem.layers.size(), 10u);
  stem.eval();
  Generator g(1);
  auto z = stem(randn<float>({1, 400, 64}, g));
  EXPECT_EQ(z.shape(), (Shape{1, 100, 1024}));
  EXPECT_EQ(stem.out_frames(400), 100);
}

TEST(CnnStem10C5P, SmallShapesAndBothInputLayouts) {
  Generator g(2);
  CnnStem10C5P<double> stem(CnnStemOptions::small(), g);
  EXPECT_EQ(stem.latent_dim(), 32);
  EXPECT_EQ(stem.parameter_count(), stem_params({4, 4, 8, 8}));
  stem.eval();
  auto x = features({2, 20, 16}, 3);
  auto z = stem(x);
  EXPECT_EQ(z.shape(), (Shape{2, 5, stem.latent_dim()}));
  expect_same(stem(x.unsqueeze(1)), z);
  // an odd frame count floors through the time pools, as max_pool2d
  EXPECT_EQ(stem(features({1, 23, 16}, 4)).shape(), (Shape{1, 5, 32}));
  EXPECT_EQ(stem.state_dict().count("layers.3.bn.running_var"), 1u);
}

TEST(CnnStem10C5P, SeveralInputChannelsForChannelEarlyFusion) {
  Generator g(21);
  auto o = CnnStemOptions::small();
  o.in_channels = 2;
  CnnStem10C5P<double> stem(o, g);
  EXPECT_EQ((stem.layers.get<ConvBnAct<2, double>>(0).conv.in_channels()), 2);
  EXPECT_EQ(stem(features({2, 2, 20, 16}, 22)).shape(), (Shape{2, 5, 32}));
  expect_error([&] { stem(features({2, 20, 16}, 23)); }, {"CnnStem10C5P", "(B, 2, T, 16)", "(2,20,16)"});
  o.in_channels = 0;
  expect_error([&] { CnnStem10C5P<double> bad(o); }, {"CnnStem10C5P", "in_channels"});
}

TEST(CnnStem10C5P, GradcheckInputAndConvWeight) {
  Generator g(5);
  CnnStem10C5P<double> stem({{2, 3}, {{2, 2}}, 2, 4}, g);  // batch norm in training mode, batch 2
  auto& conv0 = stem.layers.get<ConvBnAct<2, double>>(0).conv;
  Fn f = [&](const std::vector<TD>& in) {
    conv0.weight = in[1];
    return stem(in[0]);
  };
  expect_gradcheck(f, {leaf({2, 4, 4}, 6), leaf({2, 1, 3, 3}, 7)});
}

TEST(CnnStem10C5P, RejectsBadOptionsAndInputs) {
  expect_error(
      [] {
        CnnStem10C5P<double> s({{4, 4, 8}, {{2, 2}, {2, 2}}, 2, 16});
      },
      {"CnnStem10C5P", "3 channels need 1 pools, got 2"});
  expect_error(
      [] {
        CnnStem10C5P<double> s({{4, 4}, {{2, 2}, {2, 2}}, 2, 16});
      },
      {"CnnStem10C5P", "one pool per 2 convs", "got 2"});
  expect_error([] { CnnStem10C5P<double> s({{4, 4}, {{2, 2}}, 2, 1}); }, {"CnnStem10C5P", "num_bins 1"});
  expect_error([] { CnnStem10C5P<double> s({{4, 0}, {{2, 2}}, 2, 8}); }, {"CnnStem10C5P", "channels[1]"});
  expect_error([] { CnnStem10C5P<double> s({{4, 4}, {{2, 0}}, 2, 8}); }, {"CnnStem10C5P", "pools[0]"});
  CnnStem10C5P<double> stem(CnnStemOptions::small());
  expect_error(
      [&] {
        stem(features({2, 20, 8}, 1));
      },
      {"CnnStem10C5P", "expected features (B, T, 16) or (B, 1, T, 16)", "got (2,20,8)"});
  expect_error([&] { stem(features({2, 3, 20, 16}, 1)); }, {"CnnStem10C5P", "got (2,3,20,16)"});
  expect_error([&] { stem(features({20, 16}, 1)); }, {"CnnStem10C5P", "got (20,16)"});
  expect_error(
      [&] {
        stem(features({2, 3, 16}, 1));
      },
      {"CnnStem10C5P", "with at least 4 frames (what", "got (2,3,16)"});
  expect_error([&] { stem(TD()); }, {"CnnStem10C5P", "an undefined tensor"});
}

// ==== CnnTransformer =======================================================================

TEST(CnnTransformer, DefaultsAreTheStudyModel) {
  CnnTransformer<float> m;
  EXPECT_EQ(m.latent_dim(), 1024);
  EXPECT_TRUE(m.transformer.shares_weights());
  EXPECT_EQ(m.transformer.num_layers(), 2);
  EXPECT_EQ(m.transformer.layer(0).describe(),
            "TransformerEncoderLayer(d_model=1024, nhead=8, dim_feedforward=1024, dropout=0.1, activation=relu)");
  // the shared layer is stored once
  EXPECT_EQ(m.parameter_count(),
            stem_params({32, 32, 64, 64, 128, 128, 256, 256, 512, 512}) + transformer_layer(1024, 1024));
  EXPECT_EQ(m.parameter_count(), 11015328);
}

TEST(CnnTransformer, SmallShapesChildrenAndDropoutModes) {
  Generator g(8);
  CnnTransformer<double> m(CnnTransformerOptions::small(), g);
  EXPECT_EQ(child_names(m), (std::vector<std::string>{"stem", "transformer"}));
  EXPECT_EQ(m.latent_dim(), 32);
  EXPECT_EQ(m.parameter_count(), stem_params({4, 4, 8, 8}) + transformer_layer(32, 64));
  auto x = features({2, 20, 16}, 9);
  m.train();
  auto a = m(x), b = m(x);
  EXPECT_EQ(a.shape(), (Shape{2, 5, 32}));
  EXPECT_TRUE(differs(a, b)) << "dropout 0.1 is active in training mode";
  m.eval();
  expect_same(m(x), m(x), 0);
  expect_same(m(x.unsqueeze(1)), m(x));

  auto opt = CnnTransformerOptions::small();
  opt.share_weights = false;
  opt.repeats = 3;
  CnnTransformer<double> distinct(opt, g);
  EXPECT_EQ(distinct.parameter_count(), stem_params({4, 4, 8, 8}) + 3 * transformer_layer(32, 64));
}

TEST(CnnTransformer, GradcheckInputAndSharedLayerWeight) {
  Generator g(10);
  CnnTransformerOptions opt{{{2, 2}, {{2, 2}}, 2, 4}, 2, 8, 0.0, 2, true};  // d = 2 channels × 2 bins
  CnnTransformer<double> m(opt, g);
  m.eval();
  auto& w = m.transformer.layer(0).linear1.weight;
  Fn f = [&](const std::vector<TD>& in) {
    w = in[1];
    return m(in[0]);
  };
  expect_gradcheck(f, {leaf({2, 4, 4}, 11), leaf({8, 4}, 12)});
}

TEST(CnnTransformer, RejectsBadOptions) {
  auto opt = CnnTransformerOptions::small();
  opt.num_heads = 5;
  expect_error([&] { CnnTransformer<double> m(opt); }, {"CnnTransformer", "latent_dim 32", "num_heads 5"});
  opt = CnnTransformerOptions::small();
  opt.repeats = 0;
  expect_error([&] { CnnTransformer<double> m(opt); }, {"CnnTransformer", "repeats must be >= 1, got 0"});
  opt = CnnTransformerOptions::small();
  opt.dropout = 1.0;
  expect_error([&] { CnnTransformer<double> m(opt); }, {"CnnTransformer", "dropout"});
  CnnTransformer<double> m(CnnTransformerOptions::small());
  expect_error([&] { m(features({2, 20, 15}, 1)); }, {"CnnStem10C5P", "(B, T, 16)", "got (2,20,15)"});
}

TEST(CnnTransformer, MatchesTorchReference) {
  Reference ref{load_safetensors<double>(kReference), "cnn_transformer"};
  CnnTransformerOptions opt{{{2, 2, 4, 4, 4, 4}, {{2, 2}, {2, 2}, {1, 2}}, 2, 16}, 2, 16, 0.1, 2, true};
  CnnTransformer<double> m(opt);
  expect_matches_reference(m, ref);
}

// ==== ConvStackEncoder =====================================================================

TEST(ConvStackEncoder, DefaultsSmallShapesAndParams) {
  ConvStackEncoder<float> full;
  EXPECT_EQ(full.latent_dim(), 128);
  EXPECT_EQ(full.parameter_count(), stem_params({32, 64, 128, 128}));

  Generator g(13);
  ConvStackEncoder<double> m(ConvStackOptions::small(), g);
  EXPECT_EQ(m.latent_dim(), 8);
  EXPECT_EQ(m.parameter_count(), stem_params({4, 8}));
  m.eval();
  auto x = features({2, 16, 12}, 14);
  auto z = m(x);
  EXPECT_EQ(z.shape(), (Shape{2, 4, 8}));
  expect_same(m(x.unsqueeze(1)), z);
  // batch norm: batch statistics in training mode, running ones in eval
  m.train();
  EXPECT_TRUE(differs(m(x), z));
}

// Eval-mode ConvBnAct folds the norm into the convolution; the fold must equal the unfolded
// bn(conv(x)) in value and in every gradient (input, conv weight, γ, β), and forward_pooled
// (max-pool before the ReLU) must equal the pool of forward's output.
struct FoldCase {
  Generator g{31};
  ConvBnAct<2, double> block{2, 3, 3, 1, true, g};
  TD x = leaf({2, 2, 6, 4}, 32);
  FoldCase() {
    NoGradGuard no_grad;  // non-trivial running statistics and affine, as after training
    copy_(block.bn.running_mean, leaf({3}, 33).detach());
    copy_(block.bn.running_var, add(abs(leaf({3}, 34).detach()), 0.5));
    copy_(block.bn.weight, add(leaf({3}, 35).detach(), 1.0));
    copy_(block.bn.bias, leaf({3}, 36).detach());
    block.eval();
  }
  TD unfolded(const TD& in) {
    auto c = conv2d(in, block.conv.weight, TD(), 1, 1);
    const auto inv = rsqrt(block.bn.running_var + block.bn.eps()).reshape({1, 3, 1, 1});
    return relu((c - block.bn.running_mean.reshape({1, 3, 1, 1})) * inv * block.bn.weight.reshape({1, 3, 1, 1}) +
                block.bn.bias.reshape({1, 3, 1, 1}));
  }
};

TEST(ConvBnAct, EvalFoldMatchesUnfoldedInValueAndGradients) {
  FoldCase c;
  const std::vector<TD> params{c.block.conv.weight, c.block.bn.weight, c.block.bn.bias};
  auto seed = leaf({2, 3, 6, 4}, 37).detach();
  auto grads = [&](const TD& y) {
    std::vector<TD> wrt{c.x};
    wrt.insert(wrt.end(), params.begin(), params.end());
    return autograd::grad(sum(y * seed), wrt);
  };
  const auto folded = c.block(c.x), reference = c.unfolded(c.x);
  EXPECT_LT(worst_relative_error(folded, reference), 1e-13);
  const auto gf = grads(folded), gr = grads(reference);
  for (std::size_t i = 0; i < gf.size(); ++i) EXPECT_LT(worst_relative_error(gf[i], gr[i]), 1e-12) << "gradient " << i;
  Fn f = [&](const std::vector<TD>& in) {
    c.block.conv.weight = in[1];
    c.block.bn.weight = in[2];
    return c.block(in[0]);
  };
  expect_gradcheck(f, {c.x, c.block.conv.weight, c.block.bn.weight});
}

TEST(ConvBnAct, PoolBeforeReluEqualsPoolAfter) {
  FoldCase c;
  for (bool training : {false, true}) {
    c.block.train(training);
    auto pool = [](const TD& y) { return max_pool2d(y, 2); };
    const auto pooled = c.block.forward_pooled(c.x, pool), reference = pool(c.block(c.x));
    EXPECT_LT(worst_relative_error(pooled, reference), 1e-13) << (training ? "train" : "eval");
    auto seed = leaf(pooled.shape(), 38).detach();
    const auto gp = autograd::grad(sum(pooled * seed), {c.x})[0];
    const auto gr = autograd::grad(sum(reference * seed), {c.x})[0];
    EXPECT_LT(worst_relative_error(gp, gr), 1e-13) << (training ? "train" : "eval");
  }
}

TEST(ConvStackEncoder, Gradcheck) {
  Generator g(15);
  ConvStackEncoder<double> m({{2, 3}}, g);
  auto& w = m.blocks.get<ConvBnAct<2, double>>(1).conv.weight;
  Fn f = [&](const std::vector<TD>& in) {
    w = in[1];
    return m(in[0]);
  };
  expect_gradcheck(f, {leaf({2, 4, 4}, 16), leaf({3, 2, 3, 3}, 17)});
}

TEST(ConvStackEncoder, RejectsBadOptionsAndInputs) {
  expect_error([] { ConvStackEncoder<double> m(ConvStackOptions{{}}); },
               {"ConvStackEncoder", "channels must not be empty"});
  ConvStackEncoder<double> m(ConvStackOptions::small());
  expect_error(
      [&] {
        m(features({2, 3, 12}, 1));
      },
      {"ConvStackEncoder", "features (B, T, F) or (B, 1, T, F)", "at least 4 frames and 4 bins", "got (2,3,12)"});
  expect_error([&] { m(features({2, 2, 8, 8}, 1)); }, {"ConvStackEncoder", "got (2,2,8,8)"});
}

// ==== ResNetAudio ==========================================================================

TEST(ResNetAudio, DefaultsSmallShapesAndParams) {
  ResNetAudio<float> full;
  EXPECT_EQ(full.latent_dim(), 256);
  // stem, then per stage: the first block (with a 1×1 conv + BN shortcut when the width or
  // stride changes), and the rest as identity blocks
  auto block = [](std::int64_t in, std::int64_t out) {
    return conv_bn(in, out) + conv_bn(out, out) + (in != out ? conv_bn(in, out, 1) : 0);
  };
  std::int64_t expected = conv_bn(1, 32), in = 32;
  for (std::int64_t w : {32, 64, 128, 256}) {
    expected += block(in, w) + block(w, w);
    in = w;
  }
  EXPECT_EQ(full.parameter_count(), expected);

  Generator g(18);
  ResNetAudio<double> m(ResNetAudioOptions::small(), g);
  EXPECT_EQ(m.latent_dim(), 8);
  EXPECT_EQ(child_names(m), (std::vector<std::string>{"stem", "layer1", "layer2"}));
  EXPECT_EQ(m.state_dict().count("layer2.0.downsample.0.weight"), 1u);
  EXPECT_EQ(m.state_dict().count("layer1.0.downsample.0.weight"), 0u);
  m.eval();
  auto x = features({2, 15, 12}, 19);
  auto z = m(x);
  EXPECT_EQ(z.shape(), (Shape{2, m.out_frames(15), 8}));
  EXPECT_EQ(m.out_frames(15), 8);
  expect_same(m(x.unsqueeze(1)), z);
}

TEST(ResNetAudio, Gradcheck) {
  Generator g(20);
  ResNetAudio<double> m({{2, 3}, {1, 1}}, g);
  auto& w = m.stage(1).get<BasicBlock<2, double>>(0).conv1.weight;
  Fn f = [&](const std::vector<TD>& in) {
    w = in[1];
    return m(in[0]);
  };
  expect_gradcheck(f, {leaf({2, 4, 4}, 21), leaf({3, 2, 3, 3}, 22)});
}

TEST(ResNetAudio, RejectsBadOptionsAndInputs) {
  expect_error([] { ResNetAudio<double> m({{4, 8}, {1}}); }, {"ResNetAudio", "2 widths, got 1 block counts"});
  expect_error([] { ResNetAudio<double> m({{4, 8}, {1, 0}}); }, {"ResNetAudio", "blocks[1] must be >= 1"});
  expect_error([] { ResNetAudio<double> m({{}, {}}); }, {"ResNetAudio", "channels must not be empty"});
  ResNetAudio<double> m(ResNetAudioOptions::small());
  expect_error([&] { m(features({2, 8}, 1)); }, {"ResNetAudio", "features (B, T, F)", "got (2,8)"});
}

// ==== PannsCnn =============================================================================

TEST(PannsCnn, DefaultsAreCnn10AndCnn14HasItsShape) {
  PannsCnn<float> cnn10;
  EXPECT_EQ(cnn10.latent_dim(), 512);
  auto panns_params = [](const std::vector<std::int64_t>& ch, std::int64_t e) {
    std::int64_t n = 0, in = 1;
    for (auto c : ch) n += conv_bn(in, c) + conv_bn(c, c), in = c;
    return n + (e > 0 ? in * e + e : 0);
  };
  EXPECT_EQ(cnn10.parameter_count(), panns_params({64, 128, 256, 512}, 512));
  EXPECT_EQ(cnn10.parameter_count(), 4948800);

  // CNN14's layout (6 blocks, the last unpooled) at a width that builds quickly
  auto opt = PannsCnnOptions::cnn14();
  EXPECT_EQ(opt.channels.back(), 2048);
  EXPECT_EQ(opt.embedding_dim, 2048);
  opt.channels = {2, 2, 2, 2, 2, 3};
  opt.embedding_dim = 5;
  Generator g(23);
  PannsCnn<double> narrow(opt, g);
  narrow.eval();
  EXPECT_EQ(narrow(features({1, 64, 32}, 24)).shape(), (Shape{1, 2, 5}));
  EXPECT_EQ(narrow.parameter_count(), panns_params(opt.channels, 5));
}

TEST(PannsCnn, SmallShapesEmbeddingAndModes) {
  Generator g(25);
  PannsCnn<double> m(PannsCnnOptions::small(), g);
  EXPECT_EQ(m.latent_dim(), 8);
  auto x = features({2, 16, 12}, 26);
  m.eval();
  auto z = m(x);
  EXPECT_EQ(z.shape(), (Shape{2, 4, 8}));
  for (double v : z.to_vector()) EXPECT_GE(v, 0.0);  // fc1 is followed by ReLU
  expect_same(m(x.unsqueeze(1)), z);
  expect_same(m(x), z, 0);
  m.train();
  auto a = m(x), b = m(x);
  EXPECT_TRUE(differs(a, b)) << "dropout 0.2 is active in training mode";

  auto opt = PannsCnnOptions::small();
  opt.embedding_dim = 0;
  PannsCnn<double> bare(opt, g);
  EXPECT_EQ(bare.latent_dim(), 8);
  EXPECT_EQ(bare.fc1, nullptr);
  EXPECT_EQ(bare.state_dict().count("fc1.weight"), 0u);
  bare.eval();
  EXPECT_EQ(bare(x).shape(), (Shape{2, 4, 8}));
}

TEST(PannsCnn, Gradcheck) {
  Generator g(27);
  PannsCnn<double> m({{2, 3}, {}, 0.0, 3}, g);
  Fn f = [&](const std::vector<TD>& in) {
    m.fc1->weight = in[1];
    return m(in[0]);
  };
  expect_gradcheck(f, {leaf({2, 4, 4}, 28), leaf({3, 3}, 29)});
}

TEST(PannsCnn, RejectsBadOptionsAndInputs) {
  expect_error([] { PannsCnn<double> m({{4, 8}, {{2, 2}}, 0.2, 8}); }, {"PannsCnn", "2 blocks, got 1 pools"});
  expect_error([] { PannsCnn<double> m({{4, 8}, {}, 0.2, -1}); }, {"PannsCnn", "embedding_dim must be >= 0"});
  expect_error([] { PannsCnn<double> m({{4, 8}, {}, 1.5, 8}); }, {"PannsCnn", "dropout must be in [0, 1)"});
  PannsCnn<double> m(PannsCnnOptions::small());
  expect_error([&] { m(features({2, 16, 3}, 1)); }, {"PannsCnn", "at least 4 frames and 4 bins", "got (2,16,3)"});
}

// ==== AstEncoder ===========================================================================

TEST(AstEncoder, DefaultsAreAst) {
  AstEncoder<float> ast;
  EXPECT_EQ(ast.latent_dim(), 768);
  EXPECT_EQ(ast.num_patches(), 12 * 101);  // ⌊(128 − 16)/10⌋ + 1 bins × ⌊(1024 − 16)/10⌋ + 1 frames
  EXPECT_EQ(ast.num_tokens(), 1214);
  EXPECT_EQ(ast.parameter_count(), ast_params(768, 16, 1212, 12, 3072, true));
  EXPECT_EQ(ast.parameter_count(), 86187264);
  EXPECT_EQ(ast.transformer.layer(0).describe(),
            "TransformerEncoderLayer(d_model=768, nhead=12, dim_feedforward=3072, dropout=0, activation=gelu, "
            "norm_first)");
}

TEST(AstEncoder, SmallShapesPoolingsAndNames) {
  const auto opt = AstOptions::small();
  Generator g1(30);
  AstEncoder<double> ast(opt, g1);
  EXPECT_EQ(ast.num_patches(), 35);
  EXPECT_EQ(ast.parameter_count(), ast_params(24, 8, 35, 2, 48, true));
  auto sd = ast.state_dict();
  for (const char* key : {"patch_embed.proj.weight", "cls_token", "dist_token", "pos_embed",
                          "transformer.layers.1.self_attn.in_proj_weight", "transformer.norm.weight"})
    EXPECT_EQ(sd.count(key), 1u) << key;
  ast.eval();
  auto x = features({2, 48, 32}, 31);
  auto z = ast(x);
  EXPECT_EQ(z.shape(), (Shape{2, 24}));
  expect_same(ast(x.unsqueeze(1)), z);
  EXPECT_EQ(ast.embed(x).shape(), (Shape{2, 37, 24}));

  // the same weights (same seed) with the other poolings
  auto tok_opt = opt;
  tok_opt.pooling = AstPooling::tokens;
  Generator g2(30);
  AstEncoder<double> tok(tok_opt, g2);
  tok.eval();
  auto h = tok(x);
  EXPECT_EQ(h.shape(), (Shape{2, 37, 24}));
  expect_same(z, (h.select(1, 0) + h.select(1, 1)) * 0.5, 1e-12);
  auto mean_opt = opt;
  mean_opt.pooling = AstPooling::mean_tokens;
  Generator g3(30);
  AstEncoder<double> mt(mean_opt, g3);
  mt.eval();
  expect_same(mt(x), mean(h.narrow(1, 2, 35), {1}), 1e-12);
  // embed() is what the transformer sees: running it by hand gives the token output
  expect_same(tok.transformer(tok.embed(x)), h, 0);
}

TEST(AstEncoder, WithoutDistillationToken) {
  auto opt = AstOptions::small();
  opt.dist_token = false;
  Generator g(32);
  AstEncoder<double> ast(opt, g);
  EXPECT_EQ(ast.num_tokens(), 36);
  EXPECT_EQ(ast.parameter_count(), ast_params(24, 8, 35, 2, 48, false));
  EXPECT_EQ(ast.state_dict().count("dist_token"), 0u);
  ast.eval();
  auto x = features({1, 48, 32}, 33);
  auto cls = ast(x);
  auto h = ast.transformer(ast.embed(x));
  EXPECT_EQ(h.shape(), (Shape{1, 36, 24}));
  expect_same(cls, h.select(1, 0), 0);
}

TEST(AstEncoder, DropoutOnlyInTraining) {
  auto opt = AstOptions::small();
  opt.dropout = 0.1;
  Generator g(34);
  AstEncoder<double> ast(opt, g);
  auto x = features({2, 48, 32}, 35);
  ast.train();
  EXPECT_TRUE(differs(ast(x), ast(x)));
  ast.eval();
  expect_same(ast(x), ast(x), 0);
}

TEST(AstEncoder, GradcheckInputAndPositions) {
  AstOptions opt;
  opt.num_bins = 8, opt.num_frames = 10, opt.patch = 4, opt.fstride = 3, opt.tstride = 3;  // 2 × 3 patches
  opt.embed_dim = 4, opt.depth = 1, opt.num_heads = 2, opt.mlp_ratio = 2.0;
  Generator g(36);
  AstEncoder<double> ast(opt, g);
  ast.eval();
  EXPECT_EQ(ast.num_patches(), 6);
  Fn f = [&](const std::vector<TD>& in) {
    ast.pos.weight = in[1];
    return ast(in[0]);
  };
  expect_gradcheck(f, {leaf({1, 10, 8}, 37), leaf({1, 8, 4}, 38)});
}

TEST(AstEncoder, RejectsBadOptionsAndInputs) {
  auto opt = AstOptions::small();
  opt.num_heads = 5;
  expect_error([&] { AstEncoder<double> m(opt); }, {"AstEncoder", "embed_dim 24 is not divisible by num_heads 5"});
  opt = AstOptions::small();
  opt.patch = 40;
  expect_error([&] { AstEncoder<double> m(opt); }, {"AstEncoder", "smaller than one 40 × 40 patch"});
  opt = AstOptions::small();
  opt.tstride = 0;
  expect_error([&] { AstEncoder<double> m(opt); }, {"AstEncoder", "patch, fstride and tstride must be positive"});
  AstEncoder<double> ast(AstOptions::small());
  expect_error(
      [&] {
        ast(features({2, 40, 32}, 1));
      },
      {"AstEncoder", "expected features (B, 48, 32) or (B, 1, 48, 32)", "got (2,40,32)"});
  expect_error([&] { ast.embed(features({2, 48, 16}, 1)); }, {"AstEncoder", "got (2,48,16)"});
}

TEST(AstEncoder, MatchesTorchReference) {
  Reference ref{load_safetensors<double>(kReference), "ast"};
  AstEncoder<double> ast(AstOptions::small());
  expect_matches_reference(ast, ref);
}

}  // namespace
