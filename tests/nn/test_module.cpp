// nn::Module: registration, dotted names, state dict round trips and load
// reports, train/eval propagation, freezing, zero_grad and counting.
#include "avgrad/nn/dropout.hpp"
#include "avgrad/nn/linear.hpp"
#include "avgrad/nn/normalization.hpp"
#include "avgrad/ops/reduce.hpp"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::testing;

namespace {

struct Block : nn::Module<double> {
  nn::Linear<double> fc;
  nn::LayerNorm<double> norm;
  Tensor<double> scale = ones<double>({4});
  Tensor<double> count = zeros<double>({1});
  explicit Block(Generator& g) : fc(3, 4, true, g), norm({4}) {
    register_module("fc", fc);
    register_module("norm", norm);
    register_parameter("scale", scale);
    register_buffer("count", count);
  }
  TD forward(const TD& x) { return norm(fc(x)) * scale; }
  std::string describe() const override { return "Block"; }
};

struct Net : nn::Module<double> {
  Block a, b;
  nn::Dropout<double> drop{0.5};
  explicit Net(Generator& g) : a(g), b(g) {
    register_module("a", a);
    register_module("b", b);
    register_module("drop", drop);
  }
};

TEST(Module, DottedNamesInRegistrationOrder) {
  Generator g(1);
  Net net(g);
  std::vector<std::string> names;
  for (auto& [n, p] : net.named_parameters()) names.push_back(n);
  // pre-order: a module's own parameters, then its children's (as PyTorch)
  EXPECT_EQ(names, (std::vector<std::string>{"a.scale", "a.fc.weight", "a.fc.bias", "a.norm.weight", "a.norm.bias",
                                             "b.scale", "b.fc.weight", "b.fc.bias", "b.norm.weight", "b.norm.bias"}));
  ASSERT_EQ(net.named_buffers().size(), 2u);
  EXPECT_EQ(net.named_buffers()[1].first, "b.count");
  EXPECT_EQ(net.parameter_count(), 2 * (12 + 4 + 4 + 4 + 4));
  auto mods = net.named_modules();
  EXPECT_EQ(mods[0].first, "");
  EXPECT_EQ(mods[2].first, "a.fc");
  EXPECT_NE(net.summary().find("a.fc: Linear(3, 4)"), std::string::npos) << net.summary();
}

TEST(Module, ParametersShareStorageWithMembers) {
  Generator g(1);
  Block blk(g);
  auto params = blk.named_parameters();
  ASSERT_EQ(params[1].first, "fc.weight");
  EXPECT_EQ(params[1].second.storage(), blk.fc.weight.storage());
  EXPECT_TRUE(params[1].second.requires_grad());
}

TEST(Module, StateDictRoundTripCopiesInPlace) {
  Generator g1(1), g2(2);
  Net src(g1), dst(g2);
  auto w_before = dst.a.fc.weight;  // a handle an optimizer would hold
  auto report = dst.load_state_dict(src.state_dict());
  EXPECT_TRUE(report.ok());
  for (auto& [n, t] : src.state_dict()) EXPECT_EQ(t.to_vector(), dst.state_dict().at(n).to_vector()) << n;
  EXPECT_EQ(w_before.to_vector(), src.a.fc.weight.to_vector());  // same tensor object updated
  auto x = leaf({2, 3}, 7);
  EXPECT_EQ(src.a.forward(x).to_vector(), dst.a.forward(x).to_vector());
}

TEST(Module, LoadReportsMissingUnexpectedAndMismatchedByName) {
  Generator g(1);
  Net net(g);
  auto sd = net.state_dict();
  sd.erase("b.scale");
  sd["extra.weight"] = zeros<double>({1});
  sd["a.fc.bias"] = zeros<double>({5});
  expect_error([&] { net.load_state_dict(sd); }, {"load_state_dict", "missing keys: b.scale",
                                                  "unexpected keys: extra.weight", "a.fc.bias: expected (4), got (5)"});
  auto before = net.a.fc.bias.to_vector();
  auto r = net.load_state_dict(sd, /*strict=*/false);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.missing, std::vector<std::string>{"b.scale"});
  EXPECT_EQ(net.a.fc.bias.to_vector(), before);  // mismatched entries are skipped
}

TEST(Module, TrainEvalPropagatesAndControlsDropout) {
  Generator g(1);
  Net net(g);
  EXPECT_TRUE(net.drop.is_training());
  net.eval();
  EXPECT_FALSE(net.a.fc.is_training());
  EXPECT_FALSE(net.drop.is_training());
  auto x = ones<double>({100});
  EXPECT_EQ(net.drop(x).to_vector(), x.to_vector());
  net.train();
  EXPECT_NE(net.drop(x).to_vector(), x.to_vector());
}

TEST(Module, FreezeSubtreeStopsItsGradients) {
  Generator g(1);
  Net net(g);
  net.a.freeze();
  EXPECT_EQ(net.parameter_count(true), net.parameter_count() / 2);
  auto x = leaf({2, 3}, 3);
  sum(net.b.forward(net.a.forward(x).narrow(1, 0, 3))).backward();
  for (auto& [n, p] : net.named_parameters()) EXPECT_EQ(p.grad().defined(), n[0] == 'b') << n;
  EXPECT_TRUE(x.grad().defined());  // input gradients still flow through a frozen module
  net.zero_grad();
  for (auto& p : net.parameters()) EXPECT_FALSE(p.grad().defined());
  net.a.unfreeze();
  EXPECT_EQ(net.parameter_count(true), net.parameter_count());
}

TEST(Module, RegistrationErrors) {
  struct Bad : nn::Module<double> {
    Tensor<double> w = zeros<double>({2}), u;
    void dup() {
      register_parameter("w", w);
      register_parameter("w", w);
    }
    void dotted() { register_parameter("a.b", w); }
    void undefined() { register_parameter("u", u); }
  };
  Bad b1, b2, b3;
  expect_error([&] { b1.dup(); }, {"register", "'w'", "already registered"});
  expect_error([&] { b2.dotted(); }, {"register", "'a.b'"});
  expect_error([&] { b3.undefined(); }, {"register_parameter", "'u'", "undefined"});
}

TEST(Linear, DefaultInitBoundsAndGradcheck) {
  Generator g(3);
  nn::Linear<double> fc(50, 20, true, g);
  const double bound = 1.0 / std::sqrt(50.0);
  for (double v : fc.weight.to_vector()) EXPECT_LE(std::abs(v), bound);
  EXPECT_NEAR(std_dev(fc.weight).item(), bound / std::sqrt(3.0), 0.01);  // U(±b) has std b/√3
  nn::Linear<double> small(3, 2, true, g);
  Fn f = [&](const std::vector<TD>& x) {
    small.weight = x[1];
    small.bias = x[2];
    return small(x[0]);
  };
  expect_gradcheck(f, {leaf({4, 3}, 1), small.weight.detach().clone().requires_grad_(), leaf({2}, 2)});
  expect_error([&] { (void)small(zeros<double>({2, 5})); }, {"Linear", "(…, 3)", "(2,5)"});
}

TEST(LayerNormModule, MatchesOpAndGradchecks) {
  nn::LayerNorm<double> ln({4});
  auto x = leaf({3, 4}, 5);
  EXPECT_EQ(ln(x).to_vector(), layer_norm(x, {4}, ln.weight, ln.bias).to_vector());
  Fn f = [&](const std::vector<TD>& v) {
    ln.weight = v[1];
    return ln(v[0]);
  };
  expect_gradcheck(f, {leaf({3, 4}, 6), leaf({4}, 7)});
}

}  // namespace
