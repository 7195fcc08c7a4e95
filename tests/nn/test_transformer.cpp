// Attention and transformer modules: MultiheadAttention, TransformerEncoderLayer,
// TransformerEncoder (stacked and weight-shared), positional embeddings, the class
// token and patch/tubelet embeddings. Gradchecks in double, mask conventions, and
// PyTorch float64 references (fixtures/transformer_reference.inc: state dicts,
// inputs, outputs, input and parameter gradients) compared at 1e-10.
#include <cmath>
#include <set>

#include "avgrad/nn/attention.hpp"
#include "avgrad/nn/patch.hpp"
#include "avgrad/nn/positional.hpp"
#include "avgrad/nn/transformer.hpp"
#include "avgrad/ops/reduce.hpp"
#include "nn/fixtures/transformer_reference.inc"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::testing;
using Act = nn::TransformerActivation;

namespace {

// ---- reference fixtures ---------------------------------------------------------

/// One case of the generated header: named arrays, looked up by name.
struct RefCase {
  const std::vector<transformer_ref::Array>& arrays;

  const transformer_ref::Array* find(const std::string& name) const {
    for (const auto& a : arrays)
      if (name == a.name) return &a;
    return nullptr;
  }
  TD get(const std::string& name) const {
    const auto* a = find(name);
    if (!a) throw std::runtime_error("fixture array '" + name + "' not found");
    return from_vector<double>(a->values, Shape(a->shape));
  }
  TD leaf(const std::string& name) const { return get(name).requires_grad_(); }
  Tensor<bool> mask(const std::string& name) const { return gt(get(name), 0.5); }
  /// The "state.*" arrays with an optional key prefix (e.g. "layers.0.").
  nn::StateDict<double> state(const std::string& prefix = "") const {
    nn::StateDict<double> sd;
    for (const auto& a : arrays) {
      std::string n = a.name;
      if (n.rfind("state.", 0) == 0) sd[prefix + n.substr(6)] = from_vector<double>(a.values, Shape(a.shape));
    }
    return sd;
  }
  /// Names under "grad.param.".
  std::vector<std::string> param_grad_names() const {
    std::vector<std::string> out;
    for (const auto& a : arrays) {
      std::string n = a.name;
      if (n.rfind("grad.param.", 0) == 0) out.push_back(n.substr(11));
    }
    return out;
  }
};

/// Same shape, and every element within tol·max(1, |expected|).
void expect_matches(const TD& actual, const TD& expected, const std::string& what, double tol = 1e-10) {
  ASSERT_TRUE(actual.defined()) << what << " is undefined";
  ASSERT_EQ(actual.shape(), expected.shape()) << what;
  auto a = actual.contiguous().to_vector(), e = expected.to_vector();
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double err = std::abs(a[i] - e[i]) / std::max(1.0, std::abs(e[i]));
    worst = std::max(worst, err);
    ASSERT_LE(err, tol) << what << " element " << i << ": " << a[i] << " vs " << e[i];
  }
  EXPECT_LT(worst, tol) << what;
}

/// Backpropagates sum(out · loss_w) (+ sum(weights · loss_w_attn) when given).
void backprop(const RefCase& ref, const TD& out, const TD& weights = TD()) {
  auto loss = sum(out * ref.get("loss_w"));
  if (weights.defined()) loss = loss + sum(weights * ref.get("loss_w_attn"));
  loss.backward();
}

/// Every parameter gradient of the case against `module`'s, by name (with a key prefix).
void expect_param_grads(const RefCase& ref, const nn::Module<double>& module, const std::string& prefix = "") {
  std::map<std::string, TD> mine;
  for (auto& [n, p] : module.named_parameters()) mine[n] = p;
  auto names = ref.param_grad_names();
  ASSERT_FALSE(names.empty());
  for (const auto& n : names) {
    ASSERT_TRUE(mine.contains(prefix + n)) << prefix + n;
    expect_matches(mine[prefix + n].grad(), ref.get("grad.param." + n), "grad of " + n);
  }
  EXPECT_EQ(names.size(), mine.size());
}

std::vector<std::string> names_of(const nn::Module<double>& m) {
  std::vector<std::string> out;
  for (auto& [n, p] : m.named_parameters()) out.push_back(n);
  return out;
}

// ---- MultiheadAttention -------------------------------------------------------------

TEST(MultiheadAttention, TorchNamesShapesAndInit) {
  Generator g(1);
  nn::MultiheadAttention<double> mha(64, 4, 0.0, true, g);
  EXPECT_EQ(names_of(mha),
            (std::vector<std::string>{"in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"}));
  EXPECT_EQ(mha.in_proj_weight.shape(), (Shape{192, 64}));
  EXPECT_EQ(mha.out_proj.weight.shape(), (Shape{64, 64}));
  EXPECT_EQ(mha.head_dim(), 16);
  for (double v : mha.in_proj_bias.to_vector()) EXPECT_EQ(v, 0.0);
  for (double v : mha.out_proj.bias.to_vector()) EXPECT_EQ(v, 0.0);
  const double xavier = std::sqrt(6.0 / (64 + 192));  // fans of (3E, E)
  for (double v : mha.in_proj_weight.to_vector()) EXPECT_LE(std::abs(v), xavier);
  EXPECT_NEAR(std_dev(mha.in_proj_weight).item(), xavier / std::sqrt(3.0), 0.01);
  for (double v : mha.out_proj.weight.to_vector()) EXPECT_LE(std::abs(v), 1.0 / 8.0);
  EXPECT_NEAR(std_dev(mha.out_proj.weight).item(), (1.0 / 8.0) / std::sqrt(3.0), 0.01);

  nn::MultiheadAttention<double> nobias(8, 2, 0.0, false, g);
  EXPECT_EQ(names_of(nobias), (std::vector<std::string>{"in_proj_weight", "out_proj.weight"}));
}

TEST(MultiheadAttention, MatchesTorchSelfAttentionWithBothBoolMasks) {
  RefCase ref{transformer_ref::mha_self};
  nn::MultiheadAttention<double> mha(8, 2);
  mha.load_state_dict(ref.state());
  auto x = ref.leaf("input.x");
  auto out = mha(x, x, x, ref.mask("mask.key_padding_mask"), ref.mask("mask.attn_mask"));
  expect_matches(out, ref.get("output"), "output");
  backprop(ref, out);
  expect_matches(x.grad(), ref.get("grad.input.x"), "grad x");
}

TEST(MultiheadAttention, MatchesTorchCrossAttentionFloatMaskAndWeights) {
  RefCase ref{transformer_ref::mha_cross};
  nn::MultiheadAttention<double> mha(8, 2);
  mha.load_state_dict(ref.state());
  auto q = ref.leaf("input.query"), k = ref.leaf("input.key"), v = ref.leaf("input.value");
  nn::AttentionMasks<double> masks{ref.mask("mask.key_padding_mask"), {}, ref.get("mask.attn_mask_float")};
  auto [out, w] = mha.forward_with_weights(q, k, v, masks);
  expect_matches(out, ref.get("output"), "output");
  expect_matches(w, ref.get("weights"), "head-averaged weights");
  backprop(ref, out, w);
  expect_matches(q.grad(), ref.get("grad.input.query"), "grad query");
  expect_matches(k.grad(), ref.get("grad.input.key"), "grad key");
  expect_matches(v.grad(), ref.get("grad.input.value"), "grad value");
  expect_param_grads(ref, mha);
}

TEST(MultiheadAttention, GradcheckWithBothMasks) {
  Generator g(2);
  nn::MultiheadAttention<double> mha(4, 2, 0.0, true, g);
  auto kpm = from_vector<bool>({false, false, false, false, false, false, true, true}, {2, 4});
  auto am = from_vector<bool>({false, true, false, true, false, false, true, false, false, false, false, true}, {3, 4});
  Fn cross = [&](const std::vector<TD>& x) {
    mha.in_proj_weight = x[3];
    mha.out_proj.weight = x[4];
    return mha(x[0], x[1], x[2], kpm, am);
  };
  expect_gradcheck(cross,
                   {leaf({2, 3, 4}, 1), leaf({2, 4, 4}, 2), leaf({2, 4, 4}, 3), leaf({12, 4}, 4), leaf({4, 4}, 5)});
  // self-attention takes the packed-projection path
  auto am_self = from_vector<bool>(
      {false, true, false, true, false, false, false, true, false, true, false, false, false, false, true, false},
      {4, 4});
  Fn self = [&](const std::vector<TD>& x) {
    mha.in_proj_bias = x[1];
    return mha(x[0], x[0], x[0], kpm, am_self);
  };
  expect_gradcheck(self, {leaf({2, 4, 4}, 6), leaf({12}, 7)});
  // float mask (with its own gradient), (B·H, Lq, Lk) bool mask and the weights output
  auto am3 = gt(rand<double>({4, 3, 4}, g), 0.7);
  for (std::int64_t i = 0; i < 4 * 3; ++i) am3.data()[i * 4] = false;  // key 0 always allowed
  Fn weighted = [&](const std::vector<TD>& x) {
    auto [o, w] = mha.forward_with_weights(x[0], x[1], x[1], {kpm, am3, x[2]});
    return concat({o, w}, -1);
  };
  expect_gradcheck(weighted, {leaf({2, 3, 4}, 8), leaf({2, 4, 4}, 9), leaf({3, 4}, 10)});
}

TEST(MultiheadAttention, TorchMaskConventionsAtTheBoundary) {
  Generator g(3);
  nn::MultiheadAttention<double> mha(4, 2, 0.0, true, g);
  auto q = leaf({2, 3, 4}, 1), k = leaf({2, 4, 4}, 2), v = leaf({2, 4, 4}, 3);
  // key_padding_mask true = ignore: changing padded keys/values changes nothing
  auto kpm = from_vector<bool>({false, false, false, false, false, false, true, true}, {2, 4});
  auto k2 = k.detach().clone(), v2 = v.detach().clone();
  for (int j = 2; j < 4; ++j)
    for (int e = 0; e < 4; ++e) {
      k2.data()[(1 * 4 + j) * 4 + e] += 5.0;
      v2.data()[(1 * 4 + j) * 4 + e] -= 7.0;
    }
  auto a = mha(q, k, v, kpm), b = mha(q, k2, v2, kpm);
  expect_close(a, b.to_vector(), 1e-12);
  EXPECT_NE(mha(q, k, v).to_vector(), mha(q, k2, v2).to_vector());
  // attn_mask true = not allowed: its weights are 0, rows still sum to 1
  auto am = from_vector<bool>({false, true, false, false, true, false, true, false, false, false, false, true}, {3, 4});
  auto [o, w] = mha.forward_with_weights(q, k, v, {kpm, am, {}});
  ASSERT_EQ(w.shape(), (Shape{2, 3, 4}));
  for (int bb = 0; bb < 2; ++bb)
    for (int i = 0; i < 3; ++i) {
      double s = 0;
      for (int j = 0; j < 4; ++j) {
        const double wij = w.at({bb, i, j});
        if (am.at({i, j}) || kpm.at({bb, j}))
          EXPECT_EQ(wij, 0.0) << bb << "," << i << "," << j;
        else
          EXPECT_GT(wij, 0.0);
        s += wij;
      }
      EXPECT_NEAR(s, 1.0, 1e-12);
    }
  // the same blocking as an additive −inf mask gives the same result
  auto neg = where(am, full<double>({}, -INFINITY), zeros<double>({}));
  expect_close(mha(q, k, v, {{}, {}, neg}), mha(q, k, v, {{}, am, {}}).to_vector(), 1e-12);
  // forward_with_weights' output is forward's; per-head weights average to the reported ones
  expect_close(o, mha(q, k, v, kpm, am).to_vector(), 1e-12);
  auto [o2, wh] = mha.forward_with_weights(q, k, v, {kpm, am, {}}, /*average_attn_weights=*/false);
  ASSERT_EQ(wh.shape(), (Shape{2, 2, 3, 4}));
  expect_close(mean(wh, {1}), w.to_vector(), 1e-12);
  // a causal mask in torch's convention blocks j > i
  auto c = nn::causal_attn_mask(3);
  EXPECT_EQ(c.to_vector(), (std::vector<bool>{false, true, true, false, false, true, false, false, false}));
}

TEST(MultiheadAttention, FullyMaskedQueryGivesBiasNotNaN) {
  Generator g(4);
  nn::MultiheadAttention<double> mha(4, 2, 0.0, true, g);
  {
    NoGradGuard ng;
    nn::init::uniform_(mha.out_proj.bias, -1, 1, g);
  }
  auto x = leaf({1, 3, 4}, 5);
  auto am = from_vector<bool>({true, true, true, false, false, true, false, false, false}, {3, 3});
  auto out = mha(x, x, x, Tensor<bool>(), am);
  // query 0 sees no key: its heads are zero, so its output is out_proj's bias
  expect_close(out.select(1, 0).reshape({4}), mha.out_proj.bias.to_vector(), 1e-14);
  for (double v : out.to_vector()) EXPECT_TRUE(std::isfinite(v));
  sum(out).backward();
  for (double v : x.grad().to_vector()) EXPECT_TRUE(std::isfinite(v));
}

TEST(MultiheadAttention, DropoutOnlyInTrainingAndWeightsConsistent) {
  Generator g(5), drop(9);
  nn::MultiheadAttention<double> mha(8, 2, 0.5, true, g);
  mha.set_generator(&drop);
  auto x = leaf({2, 5, 8}, 6);
  mha.eval();
  auto e1 = mha(x, x, x).to_vector();
  EXPECT_EQ(e1, mha(x, x, x).to_vector());
  mha.train();
  drop = Generator(9);
  auto t1 = mha(x, x, x);
  EXPECT_NE(t1.to_vector(), e1);
  drop = Generator(9);  // the same stream: forward_with_weights drops the same weights
  auto [t2, w] = mha.forward_with_weights(x, x, x);
  expect_close(t2, t1.to_vector(), 1e-13);
}

TEST(MultiheadAttention, Errors) {
  expect_error([] { nn::MultiheadAttention<double> m(6, 4); }, {"MultiheadAttention", "embed_dim 6", "num_heads 4"});
  nn::MultiheadAttention<double> mha(4, 2);
  auto x = zeros<double>({2, 3, 4});
  expect_error([&] { (void)mha(zeros<double>({3, 4}), x, x); }, {"MultiheadAttention", "(B, L, 4)", "(3,4)"});
  expect_error([&] { (void)mha(x, x, x, zeros<bool>({2, 4})); }, {"key_padding_mask", "(2, 3)", "(2,4)"});
  expect_error([&] { (void)mha(x, x, x, Tensor<bool>(), zeros<bool>({3, 2})); }, {"attn_mask", "(3, 3)", "(3,2)"});
  expect_error([&] { (void)mha(x, zeros<double>({2, 5, 4}), x); }, {"MultiheadAttention", "(2,5,4)"});
}

// ---- TransformerEncoderLayer --------------------------------------------------------

TEST(TransformerEncoderLayer, TorchChildNames) {
  RefCase ref{transformer_ref::layer_post_relu};
  nn::TransformerEncoderLayer<double> layer(8, 2, 16, 0.0);
  std::vector<std::string> torch_names;
  for (auto& [n, t] : ref.state()) torch_names.push_back(n);
  auto mine = names_of(layer);
  EXPECT_EQ(std::set<std::string>(mine.begin(), mine.end()),
            std::set<std::string>(torch_names.begin(), torch_names.end()));
  std::vector<std::string> kids;
  for (auto& [n, m] : layer.children()) kids.push_back(n);
  EXPECT_EQ(kids, (std::vector<std::string>{"self_attn", "linear1", "dropout", "linear2", "norm1", "norm2", "dropout1",
                                            "dropout2"}));
  nn::TransformerEncoderLayer<double> big(16, 4);  // torch defaults: ff 2048, dropout 0.1
  EXPECT_EQ(big.linear1.weight.shape(), (Shape{2048, 16}));
  EXPECT_EQ(big.dropout.p(), 0.1);
}

TEST(TransformerEncoderLayer, MatchesTorchPostNormRelu) {
  RefCase ref{transformer_ref::layer_post_relu};
  nn::TransformerEncoderLayer<double> layer(8, 2, 16, 0.0, Act::relu, 1e-5, false);
  layer.load_state_dict(ref.state());
  auto x = ref.leaf("input.x");
  auto out = layer(x, ref.mask("mask.key_padding_mask"));
  expect_matches(out, ref.get("output"), "output");
  backprop(ref, out);
  expect_matches(x.grad(), ref.get("grad.input.x"), "grad x");
}

TEST(TransformerEncoderLayer, MatchesTorchPreNormGelu) {
  RefCase ref{transformer_ref::layer_pre_gelu};
  nn::TransformerEncoderLayer<double> layer(8, 2, 16, 0.0, Act::gelu, 1e-5, true);
  layer.load_state_dict(ref.state());
  auto x = ref.leaf("input.x");
  auto out = layer(x, ref.mask("mask.key_padding_mask"), ref.mask("mask.attn_mask"));
  expect_matches(out, ref.get("output"), "output");
  backprop(ref, out);
  expect_matches(x.grad(), ref.get("grad.input.x"), "grad x");
  expect_param_grads(ref, layer);
}

TEST(TransformerEncoderLayer, GradcheckPrePostReluGelu) {
  auto kpm = from_vector<bool>({false, false, false, false, false, true}, {2, 3});
  for (bool norm_first : {false, true})
    for (Act act : {Act::relu, Act::gelu}) {
      SCOPED_TRACE(::testing::Message() << "norm_first " << norm_first << " gelu " << (act == Act::gelu));
      Generator g(11);
      nn::TransformerEncoderLayer<double> layer(4, 2, 6, 0.0, act, 1e-5, norm_first, g);
      Fn f = [&](const std::vector<TD>& x) {
        layer.linear1.weight = x[1];
        layer.norm1.weight = x[2];
        return layer(x[0], kpm);
      };
      expect_gradcheck(
          f, {leaf({2, 3, 4}, 1), layer.linear1.weight.detach().clone().requires_grad_(), leaf({4}, 2, 0.5, 1.5)});
    }
}

TEST(TransformerEncoderLayer, DropoutEvalIsDeterministicAndMatchesNoDropout) {
  Generator g(12);
  nn::TransformerEncoderLayer<double> layer(8, 2, 16, 0.3, Act::gelu, 1e-5, false, g);
  nn::TransformerEncoderLayer<double> plain(8, 2, 16, 0.0, Act::gelu, 1e-5, false, g);
  plain.load_state_dict(layer.state_dict());
  auto x = leaf({2, 5, 8}, 3);
  layer.eval();
  auto e = layer(x).to_vector();
  EXPECT_EQ(layer(x).to_vector(), e);
  expect_close(plain(x), e, 1e-13);
  layer.train();
  auto t1 = layer(x).to_vector(), t2 = layer(x).to_vector();
  EXPECT_NE(t1, e);
  EXPECT_NE(t1, t2);  // fresh masks on every call
  Generator s1(7), s2(7);
  layer.set_generator(&s1);
  auto r1 = layer(x).to_vector();
  layer.set_generator(&s2);
  EXPECT_EQ(layer(x).to_vector(), r1);  // reproducible from a seeded stream
}

// ---- TransformerEncoder --------------------------------------------------------------

std::unique_ptr<nn::TransformerEncoderLayer<double>> small_layer(Generator& g, Act act = Act::relu,
                                                                 bool norm_first = false) {
  return std::make_unique<nn::TransformerEncoderLayer<double>>(8, 2, 16, 0.0, act, 1e-5, norm_first, g);
}

TEST(TransformerEncoder, StackedNamesAndTorchReference) {
  RefCase ref{transformer_ref::encoder2_norm};
  Generator g(13);
  nn::TransformerEncoder<double> enc([&] { return small_layer(g); }, 2,
                                     std::make_unique<nn::LayerNorm<double>>(Shape{8}));
  auto names = names_of(enc);
  EXPECT_EQ(names.front(), "layers.0.self_attn.in_proj_weight");
  EXPECT_EQ(names[12], "layers.1.self_attn.in_proj_weight");
  EXPECT_EQ(names.back(), "norm.bias");
  EXPECT_FALSE(enc.shares_weights());
  EXPECT_NE(&enc.layer(0), &enc.layer(1));
  enc.load_state_dict(ref.state());  // strict: the key sets agree
  auto x = ref.leaf("input.x");
  auto out = enc(x, ref.mask("mask.key_padding_mask"));
  expect_matches(out, ref.get("output"), "output");
  backprop(ref, out);
  expect_matches(x.grad(), ref.get("grad.input.x"), "grad x");
}

TEST(TransformerEncoder, SharedWeightsMatchTorchLayerAppliedTwice) {
  RefCase ref{transformer_ref::shared2};
  Generator g(14);
  int made = 0;
  nn::TransformerEncoder<double> enc(
      [&] {
        ++made;
        return small_layer(g);
      },
      2, nullptr, /*share_weights=*/true);
  EXPECT_EQ(made, 1);
  nn::TransformerEncoderLayer<double> one(8, 2, 16, 0.0);
  EXPECT_EQ(enc.parameter_count(), one.parameter_count());
  EXPECT_EQ(enc.state_dict().size(), one.state_dict().size());
  for (auto& [n, t] : enc.state_dict()) EXPECT_EQ(n.rfind("layers.0.", 0), 0u) << n;
  EXPECT_EQ(&enc.layer(0), &enc.layer(1));
  enc.load_state_dict(ref.state());  // keys "layers.0.*" as a torch ModuleList of one layer
  auto x = ref.leaf("input.x");
  auto out = enc(x, ref.mask("mask.key_padding_mask"));
  expect_matches(out, ref.get("output"), "output");
  backprop(ref, out);
  expect_matches(x.grad(), ref.get("grad.input.x"), "grad x");
  expect_param_grads(ref, enc);  // both applications' contributions
}

TEST(TransformerEncoder, SharedGradientsAreTheSumOverApplications) {
  Generator g(15);
  nn::TransformerEncoder<double> shared([&] { return small_layer(g, Act::gelu, true); }, 3, nullptr, true);
  nn::TransformerEncoder<double> stacked([&] { return small_layer(g, Act::gelu, true); }, 3);
  auto sd = shared.state_dict();
  nn::StateDict<double> copies;
  for (auto& [n, t] : sd)
    for (int i = 0; i < 3; ++i) copies["layers." + std::to_string(i) + n.substr(8)] = t;
  stacked.load_state_dict(copies);
  auto x = leaf({2, 5, 8}, 4);
  auto kpm = from_vector<bool>({false, false, false, false, false, false, false, false, true, true}, {2, 5});
  auto a = shared(x, kpm), b = stacked(x, kpm);
  expect_close(a, b.to_vector(), 1e-13);
  auto w = randn<double>({2, 5, 8}, g);
  sum(a * w).backward();
  sum(b * w).backward();
  auto sp = shared.named_parameters();
  std::map<std::string, TD> st;
  for (auto& [n, p] : stacked.named_parameters()) st[n] = p;
  for (auto& [n, p] : sp) {
    const std::string rest = n.substr(8);  // after "layers.0"
    auto total = st["layers.0" + rest].grad() + st["layers.1" + rest].grad() + st["layers.2" + rest].grad();
    expect_close(p.grad(), total.to_vector(), 1e-12);
  }
}

TEST(TransformerEncoder, GradcheckSharedAndStacked) {
  auto kpm = from_vector<bool>({false, false, false, false, false, true}, {2, 3});
  for (bool share : {false, true}) {
    SCOPED_TRACE(share ? "shared" : "stacked");
    Generator g(16);
    nn::TransformerEncoder<double> enc(
        [&] { return std::make_unique<nn::TransformerEncoderLayer<double>>(4, 2, 6, 0.0, Act::gelu, 1e-5, false, g); },
        2, std::make_unique<nn::LayerNorm<double>>(Shape{4}), share);
    Fn f = [&](const std::vector<TD>& x) {
      enc.layer(1).linear2.weight = x[1];  // in shared mode the weight of both applications
      return enc(x[0], kpm);
    };
    expect_gradcheck(f, {leaf({2, 3, 4}, 1), enc.layer(1).linear2.weight.detach().clone().requires_grad_()});
  }
}

TEST(TransformerEncoder, Errors) {
  Generator g(17);
  expect_error([&] { nn::TransformerEncoder<double> e([&] { return small_layer(g); }, 0); },
               {"TransformerEncoder", "num_layers", "0"});
  nn::TransformerEncoder<double> enc([&] { return small_layer(g); }, 2);
  expect_error([&] { (void)enc.layer(2); }, {"TransformerEncoder", "layer index 2"});
  expect_error([&] { (void)enc(zeros<double>({2, 3, 5})); }, {"TransformerEncoderLayer", "(B, L, 8)", "(2,3,5)"});
}

TEST(TransformerEncoder, FloatMatchesDouble) {
  Generator g(18);
  nn::TransformerEncoder<double> d([&] { return small_layer(g, Act::gelu, true); }, 2,
                                   std::make_unique<nn::LayerNorm<double>>(Shape{8}));
  nn::TransformerEncoder<float> f(
      [&] { return std::make_unique<nn::TransformerEncoderLayer<float>>(8, 2, 16, 0.0, Act::gelu, 1e-5, true, g); }, 2,
      std::make_unique<nn::LayerNorm<float>>(Shape{8}));
  nn::StateDict<float> sd;
  for (auto& [n, t] : d.state_dict()) sd[n] = t.to<float>();
  f.load_state_dict(sd);
  auto x = randn<double>({2, 5, 8}, g);
  auto kpm = from_vector<bool>({false, false, false, false, false, false, false, false, false, true}, {2, 5});
  auto yd = d(x, kpm).to_vector();
  auto yf = f(x.to<float>(), kpm).to_vector();
  ASSERT_EQ(yd.size(), yf.size());
  for (std::size_t i = 0; i < yd.size(); ++i) EXPECT_NEAR(yf[i], yd[i], 1e-4) << i;
}

// ---- positional embeddings and the class token --------------------------------------

TEST(Positional, LearnedEmbeddingInitForwardAndGradcheck) {
  Generator g(20);
  nn::LearnedPositionalEmbedding<double> big(200, 50, g);
  EXPECT_EQ(names_of(big), std::vector<std::string>{"pos_embed"});
  EXPECT_EQ(big.weight.shape(), (Shape{1, 200, 50}));
  EXPECT_NEAR(std_dev(big.weight).item(), 0.02, 0.001);
  EXPECT_NEAR(mean(big.weight).item(), 0.0, 0.001);
  nn::LearnedPositionalEmbedding<double> pos(6, 4, g, "weight");
  EXPECT_EQ(names_of(pos), std::vector<std::string>{"weight"});
  auto x = leaf({2, 4, 4}, 1);
  auto y = pos(x);
  auto expected = x.to_vector();
  for (int b = 0; b < 2; ++b)
    for (int l = 0; l < 4; ++l)
      for (int d = 0; d < 4; ++d) expected[(b * 4 + l) * 4 + d] += pos.weight.at({0, l, d});
  expect_close(y, expected, 1e-15);
  Fn f = [&](const std::vector<TD>& v) {
    pos.weight = v[1];
    return pos(v[0]);
  };
  expect_gradcheck(f, {leaf({2, 4, 4}, 2), leaf({1, 6, 4}, 3)});
  expect_error([&] { (void)pos(zeros<double>({1, 7, 4})); }, {"LearnedPositionalEmbedding", "L <= 6", "(1,7,4)"});
}

TEST(Positional, SinusoidalTableIsVaswaniAndHasNoParameters) {
  nn::SinusoidalPositionalEncoding<double> pe(10, 6);
  EXPECT_EQ(pe.parameter_count(), 0);
  ASSERT_EQ(pe.named_buffers().size(), 1u);
  EXPECT_EQ(pe.named_buffers()[0].first, "pe");
  EXPECT_EQ(pe.pe.shape(), (Shape{1, 10, 6}));
  for (int p = 0; p < 10; ++p)
    for (int i = 0; i < 3; ++i) {
      const double angle = p / std::pow(10000.0, 2.0 * i / 6.0);
      EXPECT_NEAR(pe.pe.at({0, p, 2 * i}), std::sin(angle), 1e-15);
      EXPECT_NEAR(pe.pe.at({0, p, 2 * i + 1}), std::cos(angle), 1e-15);
    }
  EXPECT_NEAR(pe.pe.at({0, 7, 1}), std::cos(7.0), 1e-15);  // frequency 1 in the first pair
  nn::SinusoidalPositionalEncoding<double> odd(4, 5);
  EXPECT_NEAR(odd.pe.at({0, 3, 4}), std::sin(3.0 / std::pow(10000.0, 4.0 / 5.0)), 1e-15);
  auto x = leaf({2, 7, 6}, 4);
  expect_close(pe(x) - x, pe.pe.narrow(1, 0, 7).expand({2, 7, 6}).contiguous().to_vector(), 1e-15);
  Fn f = [&](const std::vector<TD>& v) { return pe(v[0]); };
  expect_gradcheck(f, {leaf({2, 7, 6}, 5)});
}

TEST(Positional, ClassTokenPrependsAndGradchecks) {
  Generator g(21);
  nn::ClassToken<double> cls(4, g);
  EXPECT_EQ(names_of(cls), std::vector<std::string>{"cls_token"});
  EXPECT_EQ(cls.token.shape(), (Shape{1, 1, 4}));
  auto x = leaf({3, 5, 4}, 6);
  auto y = cls(x);
  ASSERT_EQ(y.shape(), (Shape{3, 6, 4}));
  for (int b = 0; b < 3; ++b) {
    expect_close(y.select(0, b).select(0, 0), cls.token.reshape({4}).to_vector(), 0.0);
    expect_close(y.select(0, b).narrow(0, 1, 5), x.select(0, b).contiguous().to_vector(), 0.0);
  }
  Fn f = [&](const std::vector<TD>& v) {
    cls.token = v[1];
    return cls(v[0]);
  };
  expect_gradcheck(f, {leaf({3, 5, 4}, 7), leaf({1, 1, 4}, 8)});
  nn::ClassToken<double> dist(4, g, "dist_token");
  EXPECT_EQ(names_of(dist), std::vector<std::string>{"dist_token"});
}

// ---- patch and tubelet embeddings ----------------------------------------------------

TEST(PatchEmbed, AstGridAndNames) {
  Generator g(30);
  nn::PatchEmbed2d<float> ast(1, 768, {16, 16}, {10, 10}, true, g);
  auto grid = ast.grid(128, 1024);
  EXPECT_EQ(grid[0], 12);
  EXPECT_EQ(grid[1], 101);
  EXPECT_EQ(ast.num_patches(128, 1024), 1212);
  std::vector<std::string> names;
  for (auto& [n, p] : ast.named_parameters()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"proj.weight", "proj.bias"}));
  EXPECT_EQ(ast.proj.weight.shape(), (Shape{768, 1, 16, 16}));
  const double bound = 1.0 / 16.0;  // 1/√(1·16·16)
  for (float v : ast.proj.weight.to_vector()) EXPECT_LE(std::abs(v), bound);
  for (float v : ast.proj.bias.to_vector()) EXPECT_LE(std::abs(v), bound);
  nn::PatchEmbed2d<float> vit(3, 8);  // 16×16, non-overlapping
  EXPECT_EQ(vit.num_patches(224, 224), 196);
  expect_error([&] { (void)ast.grid(10, 1024); }, {"PatchEmbed2d", "extent 10", "kernel 16"});
}

TEST(PatchEmbed, OverlappingPatchValuesAndGradcheck) {
  Generator g(31);
  nn::PatchEmbed2d<double> pe(2, 3, {3, 2}, {2, 1}, true, g);
  auto x = leaf({2, 2, 7, 5}, 1);
  auto y = pe(x);
  const auto grid = pe.grid(7, 5);  // (3, 4)
  ASSERT_EQ(grid[0], 3);
  ASSERT_EQ(grid[1], 4);
  ASSERT_EQ(y.shape(), (Shape{2, 12, 3}));
  for (int b = 0; b < 2; ++b)
    for (int fi = 0; fi < 3; ++fi)
      for (int ti = 0; ti < 4; ++ti)
        for (int d = 0; d < 3; ++d) {
          double s = pe.proj.bias.at({d});
          for (int c = 0; c < 2; ++c)
            for (int kf = 0; kf < 3; ++kf)
              for (int kt = 0; kt < 2; ++kt)
                s += pe.proj.weight.at({d, c, kf, kt}) * x.at({b, c, 2 * fi + kf, ti + kt});
          EXPECT_NEAR(y.at({b, fi * 4 + ti, d}), s, 1e-13);
        }
  Fn f = [&](const std::vector<TD>& v) {
    pe.proj.weight = v[1];
    return pe(v[0]);
  };
  expect_gradcheck(f, {leaf({2, 2, 7, 5}, 2), leaf({3, 2, 3, 2}, 3)});
  expect_error([&] { (void)pe(zeros<double>({1, 1, 7, 5})); }, {"PatchEmbed2d", "(B, 2, F, T)", "(1,1,7,5)"});
}

TEST(TubeletEmbed, ValuesGridAndGradcheck) {
  Generator g(32);
  nn::TubeletEmbed3d<double> te(2, 3, {2, 2, 2}, std::nullopt, true, g);
  auto x = leaf({1, 2, 4, 4, 6}, 4);
  auto grid = te.grid(4, 4, 6);
  EXPECT_EQ(grid, (std::array<std::int64_t, 3>{2, 2, 3}));
  auto y = te(x);
  ASSERT_EQ(y.shape(), (Shape{1, 12, 3}));
  for (int ti = 0; ti < 2; ++ti)
    for (int hi = 0; hi < 2; ++hi)
      for (int wi = 0; wi < 3; ++wi)
        for (int d = 0; d < 3; ++d) {
          double s = te.proj.bias.at({d});
          for (int c = 0; c < 2; ++c)
            for (int a = 0; a < 2; ++a)
              for (int b = 0; b < 2; ++b)
                for (int e = 0; e < 2; ++e)
                  s += te.proj.weight.at({d, c, a, b, e}) * x.at({0, c, 2 * ti + a, 2 * hi + b, 2 * wi + e});
          EXPECT_NEAR(y.at({0, (ti * 2 + hi) * 3 + wi, d}), s, 1e-13);
        }
  std::vector<std::string> names;
  for (auto& [n, p] : te.named_parameters()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"proj.weight", "proj.bias"}));
  Fn f = [&](const std::vector<TD>& v) {
    te.proj.bias = v[1];
    return te(v[0]);
  };
  expect_gradcheck(f, {leaf({1, 2, 4, 4, 6}, 5), leaf({3}, 6)});
  nn::TubeletEmbed3d<double> overlap(1, 2, {2, 3, 3}, std::array<std::int64_t, 3>{1, 2, 2}, true, g);
  EXPECT_EQ(overlap.grid(4, 7, 7), (std::array<std::int64_t, 3>{3, 3, 3}));
}

}  // namespace
