// batch_norm, layer_norm and group_norm: gradchecks of the dedicated backwards
// (training and eval, with and without affine, non-contiguous inputs), forward
// values against a naive double loop, running-stat updates, and error paths.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "avgrad/ops/norm.hpp"
#include "avgrad/ops/reduce.hpp"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::testing;

namespace {

/// Naive normalisation: x row-major with shape (outer, C, inner) where set(o, c)
/// names the statistics set of element (o, c, ·); every set is normalised with its
/// biased variance, then y = x̂·w[c] + b[c] (w, b empty: no affine).
template <class T, class SetOf>
std::vector<double> naive_norm(const Tensor<T, Cpu>& x, std::int64_t outer, std::int64_t C, std::int64_t inner,
                               std::int64_t n_sets, SetOf set_of, const std::vector<double>& w,
                               const std::vector<double>& b, double eps, std::vector<double>* mean_out = nullptr,
                               std::vector<double>* var_out = nullptr) {
  auto v = x.to_vector();
  std::vector<double> sum(n_sets, 0.0), sq(n_sets, 0.0), cnt(n_sets, 0.0);
  auto idx = [&](std::int64_t o, std::int64_t c, std::int64_t s) {
    return static_cast<std::size_t>((o * C + c) * inner + s);
  };
  for (std::int64_t o = 0; o < outer; ++o)
    for (std::int64_t c = 0; c < C; ++c)
      for (std::int64_t s = 0; s < inner; ++s) {
        sum[set_of(o, c)] += double(v[idx(o, c, s)]);
        cnt[set_of(o, c)] += 1;
      }
  for (std::size_t k = 0; k < sum.size(); ++k) sum[k] /= cnt[k];
  for (std::int64_t o = 0; o < outer; ++o)
    for (std::int64_t c = 0; c < C; ++c)
      for (std::int64_t s = 0; s < inner; ++s) {
        double d = double(v[idx(o, c, s)]) - sum[set_of(o, c)];
        sq[set_of(o, c)] += d * d;
      }
  for (std::size_t k = 0; k < sq.size(); ++k) sq[k] /= cnt[k];
  if (mean_out) *mean_out = sum;
  if (var_out) *var_out = sq;
  std::vector<double> y(v.size());
  for (std::int64_t o = 0; o < outer; ++o)
    for (std::int64_t c = 0; c < C; ++c)
      for (std::int64_t s = 0; s < inner; ++s) {
        auto k = set_of(o, c);
        double xh = (double(v[idx(o, c, s)]) - sum[k]) / std::sqrt(sq[k] + eps);
        y[idx(o, c, s)] = xh * (w.empty() ? 1.0 : w[c]) + (b.empty() ? 0.0 : b[c]);
      }
  return y;
}

std::vector<double> values(const TD& t) { return t.to_vector(); }

// ---- batch_norm -----------------------------------------------------------------

TEST(BatchNorm, GradcheckTrainingAffine) {
  Fn f = [](const std::vector<TD>& a) { return batch_norm(a[0], a[1], a[2], {}, {}, true); };
  expect_gradcheck(f, {leaf({4, 3, 5}, 1), leaf({3}, 2), leaf({3}, 3)});
  expect_gradcheck(f, {leaf({6, 4}, 4), leaf({4}, 5), leaf({4}, 6)});                   // (N, C)
  expect_gradcheck(f, {leaf({2, 3, 2, 3}, 7), leaf({3}, 8), leaf({3}, 9)});             // (N, C, H, W)
  expect_gradcheck(f, {leaf_transposed({3, 2, 4}, 10), leaf({2}, 11), leaf({2}, 12)});  // non-contiguous
}

TEST(BatchNorm, GradcheckTrainingWithoutAffine) {
  Fn f = [](const std::vector<TD>& a) { return batch_norm(a[0], TD(), TD(), {}, {}, true); };
  expect_gradcheck(f, {leaf({4, 3, 5}, 13)});
  expect_gradcheck(f, {leaf_transposed({5, 3}, 14)});
  // running stats present: the update is off the tape and changes nothing in the gradient
  Fn g = [](const std::vector<TD>& a) {
    auto rm = zeros<double>({3}), rv = ones<double>({3});
    return batch_norm(a[0], a[1], TD(), rm, rv, true);
  };
  expect_gradcheck(g, {leaf({4, 3, 2}, 15), leaf({3}, 16)});
}

TEST(BatchNorm, GradcheckEval) {
  Generator gen(17);
  TD rm = randn<double>({3}, gen), rv = rand<double>({3}, gen, 0.5, 2.0);
  Fn f = [&](const std::vector<TD>& a) { return batch_norm(a[0], a[1], a[2], rm, rv, false); };
  expect_gradcheck(f, {leaf({4, 3, 5}, 18), leaf({3}, 19), leaf({3}, 20)});
  expect_gradcheck(f, {leaf_transposed({2, 3, 4}, 21), leaf({3}, 22), leaf({3}, 23)});
  Fn g = [&](const std::vector<TD>& a) { return batch_norm(a[0], TD(), TD(), rm, rv, false); };
  expect_gradcheck(g, {leaf({5, 3}, 24)});
}

TEST(BatchNorm, TrainingForwardAndRunningStatsMatchReference) {
  // float input far from zero mean: the shifted double sums must keep σ accurate
  Generator gen(25);
  const std::int64_t N = 4, C = 3, S = 6;
  TF x = randn<float>({N, C, S}, gen, 100.0, 0.5);
  TF w = from_vector<float>({0.5f, -1.0f, 2.0f}), b = from_vector<float>({0.1f, 0.2f, -0.3f});
  TF rm = from_vector<float>({1.0f, 2.0f, 3.0f}), rv = from_vector<float>({1.0f, 0.5f, 2.0f});
  const auto v0 = rm.storage()->version(), w0 = rv.storage()->version();
  TF y = batch_norm(x, w, b, rm, rv, true, 0.1, 1e-5);

  std::vector<double> mean, var;
  auto ref = naive_norm(
      x, N, C, S, C, [](std::int64_t, std::int64_t c) { return std::size_t(c); }, {0.5, -1.0, 2.0}, {0.1, 0.2, -0.3},
      1e-5, &mean, &var);
  expect_close(y, std::vector<float>(ref.begin(), ref.end()), 2e-4);

  const double m = N * S, rm0[] = {1, 2, 3}, rv0[] = {1, 0.5, 2};
  for (std::int64_t c = 0; c < C; ++c) {
    EXPECT_NEAR(rm.at({c}), 0.9 * rm0[c] + 0.1 * mean[c], 1e-4) << c;
    EXPECT_NEAR(rv.at({c}), 0.9 * rv0[c] + 0.1 * var[c] * m / (m - 1), 1e-5) << c;
  }
  EXPECT_GT(rm.storage()->version(), v0);
  EXPECT_GT(rv.storage()->version(), w0);
  EXPECT_FALSE(rm.requires_grad());
  EXPECT_FALSE(rv.requires_grad());
}

TEST(BatchNorm, RunningUpdateIsOffTheTapeWhileRecording) {
  TD x = leaf({3, 2, 2}, 26), w = leaf({2}, 27);
  TD rm = zeros<double>({2}), rv = ones<double>({2});
  TD y = batch_norm(x, w, TD(), rm, rv, true, 0.3);
  EXPECT_TRUE(y.requires_grad());
  EXPECT_TRUE(rm.is_leaf());
  EXPECT_FALSE(rm.requires_grad());
  sum(y * y).backward();
  EXPECT_TRUE(x.grad().defined());
  EXPECT_TRUE(w.grad().defined());
  // momentum 0.3 from zeros: rm = 0.3·batch mean
  auto xv = x.to_vector();
  double m0 = 0;
  for (std::int64_t n = 0; n < 3; ++n)
    for (std::int64_t s = 0; s < 2; ++s) m0 += xv[static_cast<std::size_t>(n * 4 + s)];
  EXPECT_NEAR(rm.at({0}), 0.3 * m0 / 6, 1e-12);
}

TEST(BatchNorm, EvalUsesRunningStatsAndLeavesThemAlone) {
  TD x = from_vector<double>({1, 2, 3, 4, 5, 6}, {3, 2});  // (N = 3, C = 2)
  TD rm = from_vector<double>({1.0, -1.0}), rv = from_vector<double>({4.0, 0.25});
  TD w = from_vector<double>({2.0, 3.0}), b = from_vector<double>({0.5, 0.0});
  const auto v0 = rm.storage()->version();
  TD y = batch_norm(x, w, b, rm, rv, false, 0.1, 0.0);
  // y = (x − rm)/√rv · w + b
  expect_close(y,
               {(1 - 1) / 2.0 * 2 + 0.5, (2 + 1) / 0.5 * 3, (3 - 1) / 2.0 * 2 + 0.5, (4 + 1) / 0.5 * 3,
                (5 - 1) / 2.0 * 2 + 0.5, (6 + 1) / 0.5 * 3},
               1e-12);
  EXPECT_EQ(rm.storage()->version(), v0);
  expect_close(rm, {1.0, -1.0});
  expect_close(rv, {4.0, 0.25});
}

TEST(BatchNorm, BackwardMatchesComposedOps) {
  // the dedicated backward against the tape of the same formula built from reductions
  TD x = leaf({3, 4, 5}, 28), w = leaf({4}, 29), b = leaf({4}, 30);
  Generator gen(31);
  TD v = randn<double>({3, 4, 5}, gen);
  sum(batch_norm(x, w, b, {}, {}, true) * v).backward();
  TD x2 = x.detach().clone().requires_grad_(), w2 = w.detach().clone().requires_grad_(),
     b2 = b.detach().clone().requires_grad_();
  auto mu = mean(x2, {0, 2}, true);
  auto var2 = var(x2, {0, 2}, true, 0);
  auto y2 = (x2 - mu) / sqrt(var2 + 1e-5) * w2.reshape({1, 4, 1}) + b2.reshape({1, 4, 1});
  sum(y2 * v).backward();
  expect_close(x.grad(), values(x2.grad()), 1e-10);
  expect_close(w.grad(), values(w2.grad()), 1e-10);
  expect_close(b.grad(), values(b2.grad()), 1e-10);
}

TEST(BatchNorm, Errors) {
  TD x = zeros<double>({2, 3, 5});
  expect_error([&] { batch_norm(x, zeros<double>({4}), TD(), {}, {}, true); },
               {"batch_norm", "weight", "(4)", "(2,3,5)", "C = 3"});
  expect_error([&] { batch_norm(x, TD(), zeros<double>({3, 1}), {}, {}, true); }, {"batch_norm", "bias", "(3,1)"});
  expect_error([&] { batch_norm(x, TD(), TD(), zeros<double>({2}), ones<double>({2}), true); },
               {"batch_norm", "running_mean", "(2)"});
  expect_error([&] { batch_norm(x, TD(), TD(), zeros<double>({3}), TD(), true); }, {"batch_norm", "neither"});
  expect_error([&] { batch_norm(x, TD(), TD(), {}, {}, false); }, {"batch_norm", "eval mode"});
  expect_error([&] { batch_norm(zeros<double>({5}), TD(), TD(), {}, {}, true); }, {"batch_norm", "rank >= 2", "(5)"});
  expect_error(
      [&] {
        batch_norm(zeros<double>({1, 3}), TD(), TD(), {}, {}, true);
      },
      {"batch_norm", "more than one value per channel", "(1,3)"});
  expect_error([&] { batch_norm(x, TD(), TD(), {}, {}, true, 1.5); }, {"batch_norm", "momentum", "1.5"});
  expect_error([&] { batch_norm(x, TD(), TD(), {}, {}, true, 0.1, -1.0); }, {"batch_norm", "eps"});
}

// ---- layer_norm -------------------------------------------------------------------

TEST(LayerNorm, GradcheckOneNormalizedDim) {
  Fn f = [](const std::vector<TD>& a) { return layer_norm(a[0], {5}, a[1], a[2]); };
  expect_gradcheck(f, {leaf({3, 5}, 40), leaf({5}, 41), leaf({5}, 42)});
  expect_gradcheck(f, {leaf_transposed({2, 3, 5}, 43), leaf({5}, 44), leaf({5}, 45)});
  Fn g = [](const std::vector<TD>& a) { return layer_norm(a[0], {4}); };
  expect_gradcheck(g, {leaf({2, 3, 4}, 46)});
}

TEST(LayerNorm, GradcheckTwoNormalizedDims) {
  Fn f = [](const std::vector<TD>& a) { return layer_norm(a[0], {3, 4}, a[1], a[2]); };
  expect_gradcheck(f, {leaf({2, 3, 4}, 47), leaf({3, 4}, 48), leaf({3, 4}, 49)});
  expect_gradcheck(f, {leaf_transposed({2, 3, 4}, 50), leaf({3, 4}, 51), leaf({3, 4}, 52)});
  Fn g = [](const std::vector<TD>& a) { return layer_norm(a[0], {3, 4}, a[1], TD()); };  // weight only
  expect_gradcheck(g, {leaf({3, 4}, 53), leaf({3, 4}, 54)});
}

TEST(LayerNorm, ForwardMatchesReference) {
  Generator gen(55);
  TF x = randn<float>({3, 2, 4}, gen, -50.0, 2.0);
  TF w = randn<float>({2, 4}, gen), b = randn<float>({2, 4}, gen);
  TF y = layer_norm(x, {2, 4}, w, b, 1e-5);
  // as (outer = 3, C = 8, inner = 1): one set per outer index, affine per position
  auto wv = w.to_vector(), bv = b.to_vector();
  auto ref = naive_norm(
      x, 3, 8, 1, 3, [](std::int64_t o, std::int64_t) { return std::size_t(o); },
      std::vector<double>(wv.begin(), wv.end()), std::vector<double>(bv.begin(), bv.end()), 1e-5);
  expect_close(y, std::vector<float>(ref.begin(), ref.end()), 1e-4);
  // each row of the affine-free output has mean 0 and biased variance ≈ 1
  TD z = layer_norm(x.to<double>(), {2, 4}, TD(), TD(), 0.0);
  expect_close(mean(z, {1, 2}), {0, 0, 0}, 1e-9);
  expect_close(var(z, {1, 2}, false, 0), {1, 1, 1}, 1e-6);
}

TEST(LayerNorm, Errors) {
  TD x = zeros<double>({2, 3, 4});
  expect_error([&] { layer_norm(x, {3}); }, {"layer_norm", "normalized_shape (3)", "(2,3,4)"});
  expect_error([&] { layer_norm(x, {1, 2, 3, 4}); }, {"layer_norm", "(1,2,3,4)", "(2,3,4)"});
  expect_error([&] { layer_norm(x, Shape{}); }, {"layer_norm", "normalized_shape ()"});
  expect_error([&] { layer_norm(x, {3, 4}, zeros<double>({4})); }, {"layer_norm", "weight", "(4)", "(3,4)"});
  expect_error([&] { layer_norm(x, {4}, TD(), zeros<double>({3})); }, {"layer_norm", "bias", "(3)"});
}

// ---- group_norm -------------------------------------------------------------------

class GroupNormGroups : public ::testing::TestWithParam<int> {};

TEST_P(GroupNormGroups, Gradcheck) {
  const std::int64_t G = GetParam();
  Fn f = [G](const std::vector<TD>& a) { return group_norm(a[0], G, a[1], a[2]); };
  expect_gradcheck(f, {leaf({2, 4, 3}, 60), leaf({4}, 61), leaf({4}, 62)});
  expect_gradcheck(f, {leaf({2, 4, 2, 2}, 63), leaf({4}, 64), leaf({4}, 65)});
  expect_gradcheck(f, {leaf_transposed({3, 4, 3}, 66), leaf({4}, 67), leaf({4}, 68)});
  Fn g = [G](const std::vector<TD>& a) { return group_norm(a[0], G); };
  expect_gradcheck(g, {leaf({2, 4, 3}, 69)});
}

INSTANTIATE_TEST_SUITE_P(Ops, GroupNormGroups, ::testing::Values(1, 2, 4),
                         [](const auto& info) { return "groups" + std::to_string(info.param); });

TEST(GroupNorm, ForwardMatchesReference) {
  Generator gen(70);
  const std::int64_t N = 2, C = 6, S = 5, G = 3;
  TF x = randn<float>({N, C, S}, gen, 7.0, 3.0);
  TF w = randn<float>({C}, gen), b = randn<float>({C}, gen);
  TF y = group_norm(x, G, w, b);
  auto wv = w.to_vector(), bv = b.to_vector();
  auto ref = naive_norm(
      x, N, C, S, N * G, [&](std::int64_t n, std::int64_t c) { return std::size_t(n * G + c / (C / G)); },
      std::vector<double>(wv.begin(), wv.end()), std::vector<double>(bv.begin(), bv.end()), 1e-5);
  expect_close(y, std::vector<float>(ref.begin(), ref.end()), 1e-4);
}

TEST(GroupNorm, OneGroupIsLayerNormOverChannelsAndSpace) {
  TD x = leaf({3, 4, 5}, 71);
  expect_close(group_norm(x, 1), values(layer_norm(x, {4, 5})), 1e-12);
}

TEST(GroupNorm, Errors) {
  TD x = zeros<double>({2, 6, 3});
  expect_error([&] { group_norm(x, 4); }, {"group_norm", "groups = 4", "C = 6", "(2,6,3)"});
  expect_error([&] { group_norm(x, 0); }, {"group_norm", "groups = 0"});
  expect_error([&] { group_norm(x, 3, zeros<double>({3})); }, {"group_norm", "weight", "(3)", "C = 6"});
  expect_error([&] { group_norm(zeros<double>({6}), 3); }, {"group_norm", "rank >= 2", "(6)"});
}

// ---- large inputs: the parallel paths ---------------------------------------------

TEST(NormLarge, LayerNormBackwardMatchesComposedOps) {
  // 130 features: two blocks of the dγ/dβ kernel, the second one partial
  TD x = leaf({16, 32, 130}, 80), w = leaf({130}, 81), b = leaf({130}, 82);
  Generator gen(83);
  TD v = randn<double>({16, 32, 130}, gen);
  sum(layer_norm(x, {130}, w, b) * v).backward();
  TD x2 = x.detach().clone().requires_grad_(), w2 = w.detach().clone().requires_grad_(),
     b2 = b.detach().clone().requires_grad_();
  auto y2 = (x2 - mean(x2, {2}, true)) / sqrt(var(x2, {2}, true, 0) + 1e-5) * w2 + b2;
  sum(y2 * v).backward();
  expect_close(x.grad(), values(x2.grad()), 1e-9);
  expect_close(w.grad(), values(w2.grad()), 1e-9);
  expect_close(b.grad(), values(b2.grad()), 1e-9);
}

TEST(NormLarge, ResultsIndependentOfThreadCount) {
  // forward and every gradient bit-identical on 1 and several threads
  auto run = [](int threads) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    Generator gen(90);
    TF x = randn<float>({8, 96, 96}, gen, 1.0, 2.0), w = randn<float>({96}, gen), b = randn<float>({96}, gen);
    TF v = randn<float>({8, 96, 96}, gen);
    x.requires_grad_();
    w.requires_grad_();
    b.requires_grad_();
    TF rm = zeros<float>({96}), rv = ones<float>({96});
    std::vector<std::vector<float>> out;
    auto collect = [&](const TF& y) {
      sum(y * v).backward();
      for (const TF& t : {y, x.grad(), w.grad(), b.grad()}) out.push_back(t.to_vector());
      x.zero_grad();
      w.zero_grad();
      b.zero_grad();
    };
    collect(batch_norm(x, w, b, rm, rv, true));
    collect(batch_norm(x, w, b, rm, rv, false));
    collect(layer_norm(x, {96}, w, b));
    collect(group_norm(x, 8, w, b));
    out.push_back(rm.to_vector());
    out.push_back(rv.to_vector());
    omp_set_num_threads(saved);
    return out;
  };
  auto one = run(1), many = run(std::max(4, omp_get_max_threads()));
  ASSERT_EQ(one.size(), many.size());
  for (std::size_t i = 0; i < one.size(); ++i) EXPECT_EQ(one[i], many[i]) << "result " << i;
}

}  // namespace
