// Layers: Conv1d/2d/3d, ConvTranspose2d, BatchNorm1d/2d/3d, GroupNorm, Embedding,
// Sequential and the activation modules. Gradchecks over inputs and parameters,
// batch-norm train/eval semantics, padding_idx, Sequential naming, initial value
// statistics, and a comparison with PyTorch (float64): a torch state dict loads
// unchanged and gives the same outputs, gradients, buffers, key sets and reprs.
#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <set>

#include "avgrad/nn/activation.hpp"
#include "avgrad/nn/conv.hpp"
#include "avgrad/nn/embedding.hpp"
#include "avgrad/nn/linear.hpp"
#include "avgrad/nn/normalization.hpp"
#include "avgrad/nn/sequential.hpp"
#include "avgrad/ops/reduce.hpp"
#include "nn/fixtures/layers_reference.inc"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::testing;

namespace {

using I64 = Tensor<std::int64_t>;

TD tensor_of(const layers_ref::Array& a) { return from_vector<double>(a.values, Shape(a.shape)); }

nn::StateDict<double> dict_of(const std::vector<layers_ref::Named>& entries) {
  nn::StateDict<double> d;
  for (const auto& e : entries) d.emplace(e.name, tensor_of(e.value));
  return d;
}

/// Same shape and every value within tol·(1 + |ref|).
void expect_matches(const TD& t, const layers_ref::Array& ref, const std::string& what, double tol = 1e-10) {
  ASSERT_TRUE(t.defined()) << what << " is undefined";
  ASSERT_EQ(t.shape(), Shape(ref.shape)) << what;
  auto v = t.to_vector();
  int bad = 0;
  for (std::size_t i = 0; i < v.size(); ++i)
    if (!(std::abs(v[i] - ref.values[i]) <= tol * (1 + std::abs(ref.values[i]))) && bad++ < 5) {
      ADD_FAILURE() << what << " element " << i << ": " << v[i] << " vs torch " << ref.values[i];
    }
}

std::set<std::string> key_set(const nn::Module<double>& m) {
  std::set<std::string> s;
  for (const auto& [k, v] : m.state_dict()) s.insert(k);
  return s;
}
std::set<std::string> key_set(const std::vector<std::string>& v) { return {v.begin(), v.end()}; }
std::set<std::string> key_set(const std::vector<layers_ref::Named>& v) {
  std::set<std::string> s;
  for (const auto& e : v) s.insert(e.name);
  return s;
}

TD grad_of(const nn::Module<double>& m, const std::string& name) {
  for (const auto& [n, p] : m.named_parameters())
    if (n == name) return p.grad();
  ADD_FAILURE() << "no parameter " << name;
  return {};
}

/// Loads torch's state dict into m, runs the case and compares everything torch recorded.
void run_case(nn::UnaryModule<double>& m, const layers_ref::Case& c, bool check_repr = true) {
  SCOPED_TRACE(c.repr);
  EXPECT_EQ(key_set(m), key_set(c.state));  // the same state_dict keys as torch
  EXPECT_TRUE(m.load_state_dict(dict_of(c.state)).ok());
  if (check_repr) {
    EXPECT_EQ(m.describe(), c.repr);
  }
  m.zero_grad();
  TD x = tensor_of(c.x);
  x.requires_grad_();
  TD y = m(x);
  expect_matches(y, c.y, "output");
  sum(y * tensor_of(c.w)).backward();
  expect_matches(x.grad(), c.dx, "input gradient");
  EXPECT_EQ(m.named_trainable_parameters().size(), c.grads.size());
  for (const auto& g : c.grads) expect_matches(grad_of(m, g.name), g.value, "gradient of " + g.name);
  auto sd = m.state_dict();
  for (const auto& s : c.state_after) expect_matches(sd.at(s.name), s.value, "state after forward: " + s.name);
}

// ---- PyTorch comparisons ------------------------------------------------------------

TEST(LayersTorch, Conv) {
  nn::Conv1d<double> c1(4, 6, 3, 2, 1, 2, 2);
  run_case(c1, layers_ref::conv1d);
  nn::Conv2d<double> c2(3, 4, {3, 2}, {2, 1}, {1, 0}, {1, 2});
  run_case(c2, layers_ref::conv2d);
  nn::Conv2d<double> dw(4, 4, 3, 1, 1, 1, 4, /*bias=*/false);
  run_case(dw, layers_ref::conv2d_depthwise);
  nn::Conv3d<double> c3(2, 4, {2, 3, 2}, {1, 2, 1}, {1, 1, 0}, {2, 1, 1}, 2);
  run_case(c3, layers_ref::conv3d);
}

TEST(LayersTorch, ConvTranspose2d) {
  nn::ConvTranspose2d<double> t1(4, 6, 3, 2, 1, 1, 2);
  run_case(t1, layers_ref::conv_transpose2d);
  nn::ConvTranspose2d<double> t2(3, 2, {2, 3}, {1, 2}, {0, 1}, 0, 1, true, {2, 1});
  run_case(t2, layers_ref::conv_transpose2d_dilated);
}

TEST(LayersTorch, BatchNormTrainThenEval) {
  nn::BatchNorm2d<double> bn(3);
  run_case(bn, layers_ref::bn2d_train);  // batch statistics; buffers updated as torch, num_batches_tracked 3 → 4
  bn.eval();
  run_case(bn, layers_ref::bn2d_eval);  // running statistics; buffers untouched
  nn::BatchNorm1d<double> bn1(3, 1e-3, 0.3);
  run_case(bn1, layers_ref::bn1d_train);
  nn::BatchNorm3d<double> bn3(2, 1e-5, 0.1, true, /*track_running_stats=*/false);
  run_case(bn3, layers_ref::bn3d_train_untracked);
}

TEST(LayersTorch, BatchNormCumulativeMomentum) {
  nn::BatchNorm1d<double> bn(3, 1e-5, std::nullopt);
  EXPECT_EQ(bn.describe(), layers_ref::bn_cumulative_repr);
  for (const auto* x : {&layers_ref::bn_cumulative_x1, &layers_ref::bn_cumulative_x2, &layers_ref::bn_cumulative_x3})
    (void)bn(tensor_of(*x));
  auto sd = bn.state_dict();
  for (const auto& s : layers_ref::bn_cumulative_state) expect_matches(sd.at(s.name), s.value, s.name);
}

TEST(LayersTorch, GroupNorm) {
  nn::GroupNorm<double> gn(2, 6);
  run_case(gn, layers_ref::gn);
  nn::GroupNorm<double> plain(3, 3, 1e-4, false);
  run_case(plain, layers_ref::gn_noaffine);
}

TEST(LayersTorch, Embedding) {
  const auto& c = layers_ref::embedding;
  nn::Embedding<double> emb(7, 4, 1);
  EXPECT_EQ(emb.describe(), c.repr);
  EXPECT_EQ(key_set(emb), key_set(c.state));
  emb.load_state_dict(dict_of(c.state));
  auto idx = from_vector<std::int64_t>(c.indices, Shape(c.x.shape));
  TD y = emb(idx);
  expect_matches(y, c.y, "output");  // the padding row is still looked up (torch's values are non-zero)
  sum(y * tensor_of(c.w)).backward();
  expect_matches(emb.weight.grad(), c.grads[0].value, "weight gradient");  // repeats add, padding row 0
}

TEST(LayersTorch, Sequential) {
  nn::Sequential<double> seq;
  seq.emplace<nn::Conv2d<double>>(2, 4, 3, 1, 1);
  seq.emplace<nn::BatchNorm2d<double>>(4);
  seq.emplace<nn::ReLU<double>>();
  seq.emplace<nn::Conv2d<double>>(4, 2, 3, 2);
  seq.emplace<nn::GELU<double>>();
  seq.emplace<nn::Flatten<double>>();
  seq.emplace<nn::Linear<double>>(8, 3);
  seq.emplace<nn::Tanh<double>>();
  EXPECT_EQ(key_set(seq), key_set(layers_ref::keys_sequential));
  run_case(seq, layers_ref::sequential, /*check_repr=*/false);
  // torch's repr line by line, except Linear whose avgrad description is shorter
  std::string mine = seq.repr(), torch = layers_ref::sequential.repr;
  auto lines = [](const std::string& s) {
    std::vector<std::string> v(1);
    for (char ch : s) {
      if (ch == '\n')
        v.emplace_back();
      else
        v.back().push_back(ch);
    }
    return v;
  };
  auto a = lines(mine), b = lines(torch);
  ASSERT_EQ(a.size(), b.size()) << mine;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (b[i].find("Linear") == std::string::npos) {
      EXPECT_EQ(a[i], b[i]);
    }
}

TEST(LayersTorch, Activations) {
  struct Entry {
    std::unique_ptr<nn::UnaryModule<double>> m;
    const layers_ref::Case* c;
  };
  std::vector<Entry> all;
  all.push_back({std::make_unique<nn::ReLU<double>>(), &layers_ref::act_relu});
  all.push_back({std::make_unique<nn::LeakyReLU<double>>(0.2), &layers_ref::act_leaky_relu});
  all.push_back({std::make_unique<nn::GELU<double>>(), &layers_ref::act_gelu});
  all.push_back({std::make_unique<nn::GELU<double>>(GeluApprox::tanh), &layers_ref::act_gelu_tanh});
  all.push_back({std::make_unique<nn::SiLU<double>>(), &layers_ref::act_silu});
  all.push_back({std::make_unique<nn::Sigmoid<double>>(), &layers_ref::act_sigmoid});
  all.push_back({std::make_unique<nn::Tanh<double>>(), &layers_ref::act_tanh});
  all.push_back({std::make_unique<nn::ELU<double>>(0.7), &layers_ref::act_elu});
  all.push_back({std::make_unique<nn::Softplus<double>>(2, 5), &layers_ref::act_softplus});
  all.push_back({std::make_unique<nn::Identity<double>>(), &layers_ref::act_identity});
  all.push_back({std::make_unique<nn::Flatten<double>>(0, 1), &layers_ref::flatten});
  for (auto& e : all) run_case(*e.m, *e.c);
}

TEST(LayersTorch, StateDictKeySets) {
  EXPECT_EQ(key_set(nn::Conv1d<double>(2, 2, 3, 1, 0, 1, 1, false)), key_set(layers_ref::keys_conv1d_nobias));
  EXPECT_EQ(key_set(nn::Conv3d<double>(2, 2, 3)), key_set(layers_ref::keys_conv3d));
  EXPECT_EQ(key_set(nn::ConvTranspose2d<double>(2, 4, 3, 1, 0, 0, 1, false)),
            key_set(layers_ref::keys_conv_transpose2d_nobias));
  EXPECT_EQ(key_set(nn::BatchNorm1d<double>(3)), key_set(layers_ref::keys_bn1d));
  EXPECT_EQ(key_set(nn::BatchNorm2d<double>(3, 1e-5, 0.1, false)), key_set(layers_ref::keys_bn2d_noaffine));
  EXPECT_EQ(key_set(nn::BatchNorm3d<double>(3, 1e-5, 0.1, true, false)), key_set(layers_ref::keys_bn3d_untracked));
  EXPECT_EQ(key_set(nn::BatchNorm2d<double>(3, 1e-5, 0.1, false, false)), key_set(layers_ref::keys_bn2d_bare));
  EXPECT_EQ(key_set(nn::GroupNorm<double>(1, 3, 1e-5, false)), key_set(layers_ref::keys_gn_noaffine));
  EXPECT_EQ(key_set(nn::Embedding<double>(3, 2)), key_set(layers_ref::keys_embedding));
  nn::BatchNorm2d<double> bn(3);
  EXPECT_EQ(bn.num_batches_tracked.dim(), 0);  // 0-d as torch's
}

TEST(LayersTorch, DefaultReprs) {
  std::vector<std::unique_ptr<nn::Module<double>>> ms;
  ms.push_back(std::make_unique<nn::Conv1d<double>>(2, 3, 4));
  ms.push_back(std::make_unique<nn::Conv3d<double>>(2, 4, 3, 1, 0, 1, 2, false));
  ms.push_back(std::make_unique<nn::BatchNorm1d<double>>(5));
  ms.push_back(std::make_unique<nn::BatchNorm3d<double>>(2, 1e-3, 0.01, false, false));
  ms.push_back(std::make_unique<nn::GroupNorm<double>>(1, 4));
  ms.push_back(std::make_unique<nn::Embedding<double>>(10, 3));
  ms.push_back(std::make_unique<nn::Embedding<double>>(10, 3, -1));
  ms.push_back(std::make_unique<nn::LeakyReLU<double>>());
  ms.push_back(std::make_unique<nn::ELU<double>>());
  ms.push_back(std::make_unique<nn::Softplus<double>>());
  ms.push_back(std::make_unique<nn::Flatten<double>>());
  ASSERT_EQ(ms.size(), layers_ref::default_reprs.size());
  for (std::size_t i = 0; i < ms.size(); ++i)
    EXPECT_EQ(ms[i]->describe(), layers_ref::default_reprs[i].second) << layers_ref::default_reprs[i].first;
}

TEST(LayersRepr, PythonFloatSpelling) {
  using nn::repr::py_float;
  EXPECT_EQ(py_float(1e-5), "1e-05");
  EXPECT_EQ(py_float(1.5e-7), "1.5e-07");
  EXPECT_EQ(py_float(0.0001), "0.0001");
  EXPECT_EQ(py_float(1.0), "1.0");
  EXPECT_EQ(py_float(-0.25), "-0.25");
  EXPECT_EQ(py_float(123456.0), "123456.0");
  EXPECT_EQ(py_float(1e16), "1e+16");
  EXPECT_EQ(py_float(1e15), "1000000000000000.0");
  EXPECT_EQ(py_float(0.1 + 0.2), "0.30000000000000004");
}

// ---- gradchecks (double) --------------------------------------------------------------

TEST(LayersGradcheck, Conv1dConv2dConv3d) {
  Generator g(11);
  nn::Conv1d<double> c1(4, 2, 3, 2, 1, 2, 2, true, g);
  Fn f1 = [&](const std::vector<TD>& v) {
    c1.weight = v[1];
    c1.bias = v[2];
    return c1(v[0]);
  };
  expect_gradcheck(f1, {leaf({2, 4, 7}, 1), c1.weight.detach().clone().requires_grad_(), leaf({2}, 2)});
  nn::Conv2d<double> c2(2, 3, {2, 3}, {1, 2}, {1, 0}, 1, 1, true, g);
  Fn f2 = [&](const std::vector<TD>& v) {
    c2.weight = v[1];
    c2.bias = v[2];
    return c2(v[0]);
  };
  expect_gradcheck(f2, {leaf_transposed({2, 2, 4, 5}, 3), c2.weight.detach().clone().requires_grad_(), leaf({3}, 4)});
  nn::Conv3d<double> c3(2, 2, 2, 1, {1, 0, 1}, 1, 2, true, g);
  Fn f3 = [&](const std::vector<TD>& v) {
    c3.weight = v[1];
    c3.bias = v[2];
    return c3(v[0]);
  };
  expect_gradcheck(f3, {leaf({1, 2, 3, 3, 2}, 5), c3.weight.detach().clone().requires_grad_(), leaf({2}, 6)});
}

TEST(LayersGradcheck, ConvTranspose2d) {
  Generator g(12);
  nn::ConvTranspose2d<double> t(4, 2, 3, 2, 1, 1, 2, true, 1, g);
  Fn f = [&](const std::vector<TD>& v) {
    t.weight = v[1];
    t.bias = v[2];
    return t(v[0]);
  };
  expect_gradcheck(f, {leaf({2, 4, 3, 2}, 7), t.weight.detach().clone().requires_grad_(), leaf({2}, 8)});
}

TEST(LayersGradcheck, BatchNormTrainAndEval) {
  nn::BatchNorm2d<double> bn(3);
  Fn f = [&](const std::vector<TD>& v) {
    bn.weight = v[1];
    bn.bias = v[2];
    return bn(v[0]);
  };
  std::vector<TD> in{leaf({3, 3, 2, 2}, 9), leaf({3}, 10), leaf({3}, 11)};
  expect_gradcheck(f, in);  // training: batch statistics depend on x
  bn.eval();
  expect_gradcheck(f, in);  // eval: an affine map of x
  nn::BatchNorm1d<double> bn1(2);
  Fn f1 = [&](const std::vector<TD>& v) {
    bn1.weight = v[1];
    return bn1(v[0]);
  };
  expect_gradcheck(f1, {leaf({4, 2}, 12), leaf({2}, 13)});
}

TEST(LayersGradcheck, GroupNorm) {
  nn::GroupNorm<double> gn(2, 4);
  Fn f = [&](const std::vector<TD>& v) {
    gn.weight = v[1];
    gn.bias = v[2];
    return gn(v[0]);
  };
  expect_gradcheck(f, {leaf({2, 4, 3}, 14), leaf({4}, 15), leaf({4}, 16)});
}

TEST(LayersGradcheck, EmbeddingWeight) {
  Generator g(13);
  nn::Embedding<double> emb(5, 3, std::nullopt, g);
  auto idx = from_vector<std::int64_t>({4, 0, 4, 2, 2, 2}, {2, 3});
  Fn f = [&](const std::vector<TD>& v) {
    emb.weight = v[0];
    return emb(idx);
  };
  expect_gradcheck(f, {emb.weight.detach().clone().requires_grad_()});
}

TEST(LayersGradcheck, SequentialAndActivations) {
  Generator g(14);
  nn::Sequential<double> seq(std::make_unique<nn::Conv1d<double>>(2, 3, 3, 1, 1, 1, 1, true, g),
                             std::make_unique<nn::BatchNorm1d<double>>(3), std::make_unique<nn::SiLU<double>>(),
                             std::make_unique<nn::Flatten<double>>(),
                             std::make_unique<nn::Linear<double>>(12, 2, true, g));
  auto& conv = seq.get<nn::Conv1d<double>>(0);
  Fn f = [&](const std::vector<TD>& v) {
    conv.weight = v[1];
    return seq(v[0]);
  };
  expect_gradcheck(f, {leaf({3, 2, 4}, 17), conv.weight.detach().clone().requires_grad_()});

  std::vector<std::unique_ptr<nn::UnaryModule<double>>> acts;
  acts.push_back(std::make_unique<nn::ReLU<double>>());
  acts.push_back(std::make_unique<nn::LeakyReLU<double>>(0.1));
  acts.push_back(std::make_unique<nn::GELU<double>>());
  acts.push_back(std::make_unique<nn::GELU<double>>(GeluApprox::tanh));
  acts.push_back(std::make_unique<nn::SiLU<double>>());
  acts.push_back(std::make_unique<nn::Sigmoid<double>>());
  acts.push_back(std::make_unique<nn::Tanh<double>>());
  acts.push_back(std::make_unique<nn::ELU<double>>(0.5));
  acts.push_back(std::make_unique<nn::Softplus<double>>(1.5, 2.0));
  acts.push_back(std::make_unique<nn::Identity<double>>());
  acts.push_back(std::make_unique<nn::Flatten<double>>(0, 1));
  for (auto& a : acts) {
    SCOPED_TRACE(a->describe());
    Fn fa = [&](const std::vector<TD>& v) { return (*a)(v[0]); };
    expect_gradcheck(fa, {leaf_transposed({3, 4, 5}, 18)});
  }
}

// ---- batch norm semantics ----------------------------------------------------------

/// Per-channel mean and biased variance of x (N, C, S…) computed by hand.
std::pair<std::vector<double>, std::vector<double>> channel_moments(const TD& x) {
  const auto v = x.contiguous().to_vector();
  const std::int64_t N = x.size(0), C = x.size(1), S = x.numel() / (N * C);
  std::vector<double> mean(C, 0.0), var(C, 0.0);
  for (std::int64_t c = 0; c < C; ++c) {
    for (std::int64_t n = 0; n < N; ++n)
      for (std::int64_t s = 0; s < S; ++s) mean[c] += v[(n * C + c) * S + s];
    mean[c] /= double(N * S);
    for (std::int64_t n = 0; n < N; ++n)
      for (std::int64_t s = 0; s < S; ++s) var[c] += std::pow(v[(n * C + c) * S + s] - mean[c], 2);
    var[c] /= double(N * S);
  }
  return {mean, var};
}

TEST(BatchNormModule, TrainUpdatesBuffersEvalUsesThem) {
  nn::BatchNorm2d<double> bn(2);
  EXPECT_TRUE(bn.is_training());
  Generator g(21);
  TD x = randn<double>({4, 2, 3, 3}, g, 2.0, 3.0);
  auto [mu, var] = channel_moments(x);
  const double m = 36.0;  // values per channel
  TD y = bn(x);
  EXPECT_EQ(bn.num_batches_tracked.item(), 1.0);
  for (int c = 0; c < 2; ++c) {
    EXPECT_NEAR(bn.running_mean.at({c}), 0.1 * mu[c], 1e-12);
    EXPECT_NEAR(bn.running_var.at({c}), 0.9 + 0.1 * var[c] * m / (m - 1), 1e-12);  // unbiased variance
    // training output: batch statistics
    EXPECT_NEAR(y.at({1, c, 2, 0}), (x.at({1, c, 2, 0}) - mu[c]) / std::sqrt(var[c] + 1e-5), 1e-10);
  }
  (void)bn(x);
  EXPECT_EQ(bn.num_batches_tracked.item(), 2.0);
  const auto rm = bn.running_mean.to_vector(), rv = bn.running_var.to_vector();
  bn.eval();
  TD one = x.narrow(0, 1, 1);  // a single sample: eval must not depend on the batch
  TD ye = bn(one);
  for (int c = 0; c < 2; ++c)
    EXPECT_NEAR(ye.at({0, c, 2, 0}), (one.at({0, c, 2, 0}) - rm[c]) / std::sqrt(rv[c] + 1e-5), 1e-12);
  EXPECT_EQ(bn.running_mean.to_vector(), rm);  // eval leaves buffers alone
  EXPECT_EQ(bn.running_var.to_vector(), rv);
  EXPECT_EQ(bn.num_batches_tracked.item(), 2.0);
  bn.train();
  expect_error([&] { (void)bn(one.narrow(2, 0, 1).narrow(3, 0, 1)); }, {"batch_norm", "more than one value"});
}

TEST(BatchNormModule, CumulativeMomentumAveragesBatches) {
  nn::BatchNorm1d<double> bn(2, 1e-5, std::nullopt);
  std::vector<double> sum_mu(2, 0.0);
  for (int k = 1; k <= 3; ++k) {
    Generator g(30 + k);
    TD x = randn<double>({5, 2}, g, double(k), 1.0);
    auto [mu, var] = channel_moments(x);
    (void)bn(x);
    for (int c = 0; c < 2; ++c) {
      sum_mu[c] += mu[c];
      EXPECT_NEAR(bn.running_mean.at({c}), sum_mu[c] / k, 1e-12);  // plain average of the batch means
    }
  }
  EXPECT_EQ(bn.num_batches_tracked.item(), 3.0);
}

TEST(BatchNormModule, UntrackedUsesBatchStatsInEval) {
  nn::BatchNorm1d<double> bn(3, 1e-5, 0.1, true, false);
  EXPECT_TRUE(bn.named_buffers().empty());
  TD x = leaf({4, 3, 2}, 22);
  auto y_train = bn(x).to_vector();
  bn.eval();
  EXPECT_EQ(bn(x).to_vector(), y_train);
}

TEST(BatchNormModule, FrozenAffineAndErrors) {
  nn::BatchNorm2d<double> bn(3);
  expect_error([&] { (void)bn(zeros<double>({2, 4, 3, 3})); }, {"BatchNorm2d", "3 channels", "(2,4,3,3)"});
  expect_error([&] { (void)bn(zeros<double>({2, 3, 3})); }, {"BatchNorm2d", "(N, C, H, W)", "(2,3,3)"});
  nn::BatchNorm1d<double> b1(3);
  expect_error([&] { (void)b1(zeros<double>({2, 3, 3, 3})); }, {"BatchNorm1d", "(N, C) or (N, C, L)", "(2,3,3,3)"});
  nn::BatchNorm3d<double> b3(2);
  expect_error([&] { (void)b3(zeros<double>({2, 2, 3, 3})); }, {"BatchNorm3d", "(N, C, D, H, W)"});
  expect_error([] { nn::BatchNorm2d<double> bad(3, 1e-5, 1.5); }, {"BatchNorm2d", "momentum"});
}

// ---- embedding ----------------------------------------------------------------------

TEST(EmbeddingModule, ShapesPaddingAndErrors) {
  Generator g(23);
  nn::Embedding<double> emb(6, 3, 2, g);
  EXPECT_EQ(emb.weight.select(0, 2).to_vector(), std::vector<double>(3, 0.0));  // padding row starts at 0
  EXPECT_EQ(emb(scalar<std::int64_t>(4)).shape(), Shape({3}));
  EXPECT_EQ(emb(from_vector<std::int64_t>({1, 2, 3, 4}, {2, 1, 2})).shape(), Shape({2, 1, 2, 3}));
  auto idx = from_vector<std::int64_t>({2, 0, 2, 5, 0, 0}, {3, 2});
  TD y = emb(idx);
  EXPECT_EQ(y.select(0, 1).select(0, 1).to_vector(), emb.weight.select(0, 5).to_vector());
  sum(y * 2.0).backward();
  TD gw = emb.weight.grad();
  EXPECT_EQ(gw.select(0, 2).to_vector(), std::vector<double>(3, 0.0));  // padding row: no gradient
  EXPECT_EQ(gw.select(0, 0).to_vector(), std::vector<double>(3, 6.0));  // three picks of row 0 add up
  EXPECT_EQ(gw.select(0, 5).to_vector(), std::vector<double>(3, 2.0));
  EXPECT_EQ(gw.select(0, 1).to_vector(), std::vector<double>(3, 0.0));
  // the padding row still reads its current value
  {
    NoGradGuard ng;
    auto row = emb.weight.select(0, 2);
    fill_(row, 7.0);
  }
  EXPECT_EQ(emb(scalar<std::int64_t>(2)).to_vector(), std::vector<double>(3, 7.0));
  EXPECT_EQ(nn::Embedding<double>(6, 3, -1).padding_idx(), 5);
  expect_error([&] { (void)emb(from_vector<std::int64_t>({1, 6}, {2})); }, {"Embedding", "index 6", "6 embeddings"});
  expect_error([&] { (void)emb(from_vector<std::int64_t>({-1}, {1})); }, {"Embedding", "index -1"});
  expect_error([] { nn::Embedding<double> bad(4, 2, 4); }, {"Embedding", "padding_idx 4"});
}

// ---- sequential ------------------------------------------------------------------------

TEST(SequentialModule, NamesOwnershipAndChaining) {
  Generator g(24);
  nn::Sequential<double> seq;
  auto& conv = seq.emplace<nn::Conv2d<double>>(1, 2, 3, 1, 1, 1, 1, true, g);
  seq.push_back(std::make_unique<nn::ReLU<double>>());
  auto& inner = seq.emplace<nn::Sequential<double>>();
  inner.emplace<nn::BatchNorm2d<double>>(2);
  inner.emplace<nn::Flatten<double>>();
  EXPECT_EQ(seq.size(), 3u);
  std::vector<std::string> names;
  for (auto& [n, p] : seq.named_parameters()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"0.weight", "0.bias", "2.0.weight", "2.0.bias"}));
  EXPECT_EQ(key_set(seq), (std::set<std::string>{"0.weight", "0.bias", "2.0.weight", "2.0.bias", "2.0.running_mean",
                                                 "2.0.running_var", "2.0.num_batches_tracked"}));
  EXPECT_EQ(&seq.get<nn::Conv2d<double>>(0), &conv);
  expect_error([&] { (void)seq.get<nn::Conv2d<double>>(1); }, {"Sequential", "layer 1", "ReLU()"});
  expect_error([&] { (void)seq.at(3); }, {"Sequential", "index 3", "3 layers"});
  TD x = leaf({2, 1, 4, 4}, 25);
  TD manual = inner(relu(conv(x)));
  EXPECT_EQ(seq(x).to_vector(), manual.to_vector());
  EXPECT_EQ(seq(x).shape(), Shape({2, 32}));
  seq.eval();
  EXPECT_FALSE(inner[0].is_training());  // modes reach nested children
  EXPECT_EQ(seq.repr(),
            "Sequential(\n  (0): Conv2d(1, 2, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))\n  (1): ReLU()\n"
            "  (2): Sequential(\n    (0): BatchNorm2d(2, eps=1e-05, momentum=0.1, affine=True, "
            "track_running_stats=True)\n    (1): Flatten(start_dim=1, end_dim=-1)\n  )\n)");
  nn::Sequential<double> empty;
  EXPECT_EQ(empty(x).to_vector(), x.to_vector());
  EXPECT_EQ(empty.repr(), "Sequential()");
}

// ---- initial values ------------------------------------------------------------------------

/// Values lie in [-bound, bound], reach near it, and have the std of U(±bound).
void expect_uniform(const TD& t, double bound, const std::string& what) {
  SCOPED_TRACE(what);
  auto v = t.to_vector();
  double mx = 0;
  for (double e : v) mx = std::max(mx, std::abs(e));
  EXPECT_LE(mx, bound);
  // the largest of n draws falls below q·bound with probability q^n: ~1e-4 at this q
  const double q = std::clamp(1.0 - 8.0 / static_cast<double>(v.size()), 0.5, 0.99);
  EXPECT_GT(mx, q * bound);
  if (v.size() > 1000) {
    EXPECT_NEAR(std_dev(t).item(), bound / std::sqrt(3.0), 0.04 * bound);
    EXPECT_NEAR(mean(t).item(), 0.0, 0.04 * bound);
  }
}

TEST(LayerInit, ConvBoundsFollowTorchFanIn) {
  Generator g(26);
  nn::Conv2d<double> c2(16, 32, 3, 1, 0, 1, 1, true, g);
  expect_uniform(c2.weight, 1.0 / std::sqrt(16.0 * 9), "conv2d weight");
  expect_uniform(c2.bias, 1.0 / std::sqrt(16.0 * 9), "conv2d bias");
  nn::Conv1d<double> c1(8, 64, 5, 1, 0, 1, 4, true, g);  // fan_in = 8/4·5
  EXPECT_EQ(c1.weight.shape(), Shape({64, 2, 5}));
  expect_uniform(c1.weight, 1.0 / std::sqrt(10.0), "conv1d weight");
  expect_uniform(c1.bias, 1.0 / std::sqrt(10.0), "conv1d bias");
  nn::Conv3d<double> c3(4, 16, {3, 2, 2}, 1, 0, 1, 1, true, g);
  expect_uniform(c3.weight, 1.0 / std::sqrt(48.0), "conv3d weight");
  // transposed: weight (C_in, C_out/groups, k…), fan_in = C_out/groups·Πk as torch
  nn::ConvTranspose2d<double> t(32, 12, 3, 1, 0, 0, 2, true, 1, g);
  EXPECT_EQ(t.weight.shape(), Shape({32, 6, 3, 3}));
  expect_uniform(t.weight, 1.0 / std::sqrt(54.0), "conv_transpose2d weight");
  expect_uniform(t.bias, 1.0 / std::sqrt(54.0), "conv_transpose2d bias");
}

TEST(LayerInit, NormAndEmbedding) {
  nn::BatchNorm3d<double> bn(4);
  EXPECT_EQ(bn.weight.to_vector(), std::vector<double>(4, 1.0));
  EXPECT_EQ(bn.bias.to_vector(), std::vector<double>(4, 0.0));
  EXPECT_EQ(bn.running_mean.to_vector(), std::vector<double>(4, 0.0));
  EXPECT_EQ(bn.running_var.to_vector(), std::vector<double>(4, 1.0));
  EXPECT_EQ(bn.num_batches_tracked.item(), 0.0);
  EXPECT_FALSE(bn.running_mean.requires_grad());
  EXPECT_EQ(bn.parameter_count(), 8);
  nn::GroupNorm<double> gn(2, 6);
  EXPECT_EQ(gn.weight.to_vector(), std::vector<double>(6, 1.0));
  EXPECT_EQ(gn.bias.to_vector(), std::vector<double>(6, 0.0));
  Generator g(27);
  nn::Embedding<double> emb(1000, 16, 0, g);
  EXPECT_NEAR(std_dev(emb.weight.narrow(0, 1, 999)).item(), 1.0, 0.03);  // N(0, 1)
  EXPECT_NEAR(mean(emb.weight).item(), 0.0, 0.03);
  EXPECT_EQ(emb.weight.select(0, 0).to_vector(), std::vector<double>(16, 0.0));
}

// ---- input checks and unbatched inputs ---------------------------------------------------

TEST(ConvModule, InputChecksNameLayerAndShapes) {
  nn::Conv2d<double> c(3, 8, 3, 1, 1);
  EXPECT_EQ(c.describe(), "Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))");
  expect_error([&] { (void)c(zeros<double>({2, 4, 8, 8})); }, {"Conv2d", "(N, 3, H, W)", "(2,4,8,8)"});
  expect_error([&] { (void)c(zeros<double>({8, 8})); }, {"Conv2d", "(8,8)"});
  nn::Conv1d<double> c1(2, 2, 5, 1, 0, 2);
  expect_error([&] { (void)c1(zeros<double>({1, 2, 8})); }, {"Conv1d", "(1,2,8)", "kernel (5,)", "dilated by (2,)"});
  nn::ConvTranspose2d<double> t(4, 2, 3);
  expect_error([&] { (void)t(zeros<double>({1, 2, 3, 3})); }, {"ConvTranspose2d", "(N, 4, H, W)", "(1,2,3,3)"});
  expect_error([] { nn::Conv2d<double> bad(3, 8, 3, 1, 0, 1, 2); }, {"Conv2d", "groups = 2", "in_channels 3"});
  expect_error([] { nn::Conv3d<double> bad(2, 2, {3, 3}); }, {"Conv3d", "kernel_size needs 1 or 3 values"});
  expect_error([] { nn::ConvTranspose2d<double> bad(2, 2, 3, 1, 0, 1); }, {"ConvTranspose2d", "output_padding"});
  nn::GroupNorm<double> gn(2, 4);
  expect_error([&] { (void)gn(zeros<double>({2, 6, 3})); }, {"GroupNorm", "(N, 4, …)", "(2,6,3)"});
  expect_error([] { nn::GroupNorm<double> bad(3, 4); }, {"GroupNorm", "num_channels 4", "num_groups 3"});
  nn::Flatten<double> fl(1, 3);
  expect_error([&] { (void)fl(zeros<double>({2, 3})); }, {"Flatten", "start_dim=1, end_dim=3", "(2,3)"});
}

TEST(ConvModule, UnbatchedInputMatchesBatchOfOne) {
  Generator g(28);
  nn::Conv2d<double> c(2, 3, 3, 2, 1, 1, 1, true, g);
  TD x = leaf({2, 5, 4}, 29);
  TD y = c(x);
  EXPECT_EQ(y.shape(), Shape({3, 3, 2}));
  EXPECT_EQ(y.to_vector(), c(x.unsqueeze(0)).to_vector());
  nn::ConvTranspose2d<double> t(2, 3, 3, 2, 1, 1, 1, true, 1, g);
  EXPECT_EQ(t(x).shape(), Shape({3, 10, 8}));
}

// ---- float ------------------------------------------------------------------------------

TEST(LayersFloat, MatchDoubleAfterStateDictCopy) {
  auto build = [](auto& seq, auto tag) {
    using T = decltype(tag);
    seq.template emplace<nn::Conv2d<T>>(2, 4, 3, 1, 1);
    seq.template emplace<nn::GroupNorm<T>>(2, 4);
    seq.template emplace<nn::SiLU<T>>();
    seq.template emplace<nn::ConvTranspose2d<T>>(4, 2, 2, 2);
    seq.template emplace<nn::BatchNorm2d<T>>(2);
    seq.template emplace<nn::GELU<T>>();
  };
  nn::Sequential<double> d;
  nn::Sequential<float> f;
  build(d, 0.0);
  build(f, 0.0f);
  nn::StateDict<float> sd;
  for (auto& [k, v] : d.state_dict()) sd.emplace(k, v.to<float>());
  f.load_state_dict(sd);
  TD x = leaf({2, 2, 3, 3}, 31);
  auto yd = d(x).to_vector();
  auto yf = f(x.detach().to<float>()).to_vector();
  ASSERT_EQ(yd.size(), yf.size());
  for (std::size_t i = 0; i < yd.size(); ++i) EXPECT_NEAR(yf[i], yd[i], 1e-4) << i;
  nn::Embedding<float> emb(4, 2, 0);
  EXPECT_EQ(emb(from_vector<std::int64_t>({0, 3}, {2})).shape(), Shape({2, 2}));
}

}  // namespace
