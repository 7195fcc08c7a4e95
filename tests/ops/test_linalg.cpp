// matmul, bmm and linear: forward values against a direct triple loop, gradchecks
// over vector/matrix/batched-broadcast/transposed operands, error messages, and
// GEMM call counts proving that backward computes only the gradients needed.
#include <cmath>

#include <omp.h>

#include "avgrad/autograd/engine.hpp"
#include "avgrad/ops/linalg.hpp"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::testing;

namespace {

/// Element of a tensor at a row-major flat index of its own shape (any strides).
template <class T> std::vector<T> values(const Tensor<T, Cpu>& t) { return t.to_vector(); }

/// Direct-loop matmul with NumPy semantics, written independently of the kernel:
/// promotes vectors, broadcasts the batch dims index by index, sums in double.
template <class T> Tensor<T, Cpu> ref_matmul(const Tensor<T, Cpu>& a, const Tensor<T, Cpu>& b) {
  Shape sa = a.shape(), sb = b.shape();
  const bool va = sa.rank() == 1, vb = sb.rank() == 1;
  if (va) sa.insert(0, 1);
  if (vb) sb.push_back(1);
  const std::int64_t m = sa[sa.rank() - 2], k = sa.back(), n = sb.back();
  const int rb = std::max(sa.rank(), sb.rank()) - 2;
  Shape batch = Shape::filled(rb, 1);
  for (int i = 0; i < rb; ++i) {
    int ia = sa.rank() - 2 - rb + i, ib = sb.rank() - 2 - rb + i;
    std::int64_t da = ia >= 0 ? sa[ia] : 1, db = ib >= 0 ? sb[ib] : 1;
    batch[i] = std::max(da, db);
  }
  auto av = values(a), bv = values(b);
  std::vector<T> out;
  for (std::int64_t f = 0; f < batch.numel(); ++f) {
    // batch multi-index, then the flat matrix offset of each operand
    std::vector<std::int64_t> idx(static_cast<std::size_t>(rb));
    std::int64_t rem = f;
    for (int i = rb - 1; i >= 0; --i) {
      idx[static_cast<std::size_t>(i)] = rem % batch[i];
      rem /= batch[i];
    }
    auto mat_index = [&](const Shape& s) {
      std::int64_t off = 0;
      const int r = s.rank() - 2;
      for (int i = 0; i < r; ++i) {
        std::int64_t bi = idx[static_cast<std::size_t>(rb - r + i)];
        off = off * s[i] + (s[i] == 1 ? 0 : bi);
      }
      return off;
    };
    const std::int64_t oa = mat_index(sa) * m * k, ob = mat_index(sb) * k * n;
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        double acc = 0;
        for (std::int64_t p = 0; p < k; ++p)
          acc += double(av[static_cast<std::size_t>(oa + i * k + p)]) *
                 double(bv[static_cast<std::size_t>(ob + p * n + j)]);
        out.push_back(static_cast<T>(acc));
      }
  }
  Shape ys = batch;
  if (!va) ys.push_back(m);
  if (!vb) ys.push_back(n);
  return from_vector<T>(out, ys);
}

template <class T> void expect_tensors_close(const Tensor<T, Cpu>& got, const Tensor<T, Cpu>& want, double tol) {
  ASSERT_EQ(got.shape(), want.shape());
  auto g = got.to_vector(), w = want.to_vector();
  for (std::size_t i = 0; i < g.size(); ++i) ASSERT_NEAR(double(g[i]), double(w[i]), tol) << "element " << i;
}

struct MatmulCase {
  const char* name;
  Shape a, b;
  bool ta = false, tb = false;  // non-contiguous (transposed) operands
};

void PrintTo(const MatmulCase& c, std::ostream* os) { *os << c.name; }  // readable failure messages

class Matmul : public ::testing::TestWithParam<MatmulCase> {};

TD make(const Shape& s, std::uint64_t seed, bool transposed) {
  return transposed ? leaf_transposed(s, seed) : leaf(s, seed);
}

TEST_P(Matmul, ForwardMatchesDirectLoops) {
  const auto& c = GetParam();
  auto a = make(c.a, 11, c.ta), b = make(c.b, 12, c.tb);
  expect_tensors_close(matmul(a, b), ref_matmul(a, b), 1e-12);
  // float path too (separate kernel instantiation)
  auto af = a.detach().to<float>(), bf = b.detach().to<float>();
  expect_tensors_close(matmul(af, bf), ref_matmul(af, bf), 1e-4);
}

TEST_P(Matmul, Gradcheck) {
  const auto& c = GetParam();
  Fn f = [](const std::vector<TD>& x) { return matmul(x[0], x[1]); };
  expect_gradcheck(f, {make(c.a, 1, c.ta), make(c.b, 2, c.tb)});
}

INSTANTIATE_TEST_SUITE_P(Ops, Matmul,
                         ::testing::Values(MatmulCase{"dot", {4}, {4}}, MatmulCase{"vec_mat", {3}, {3, 4}},
                                           MatmulCase{"mat_vec", {2, 3}, {3}}, MatmulCase{"mat_mat", {2, 3}, {3, 4}},
                                           MatmulCase{"vec_batched", {4}, {2, 4, 3}},
                                           MatmulCase{"batched_vec", {2, 3, 4}, {4}},
                                           MatmulCase{"batched_shared_rhs", {2, 3, 4}, {4, 5}},  // folds into one GEMM
                                           MatmulCase{"shared_lhs_batched", {3, 4}, {2, 4, 5}},
                                           MatmulCase{"broadcast_both", {2, 1, 3, 4}, {3, 4, 2}},  // batch (2,3)
                                           MatmulCase{"broadcast_unit", {1, 3, 4}, {2, 4, 2}},
                                           MatmulCase{"transposed_a", {3, 4}, {4, 5}, true, false},
                                           MatmulCase{"transposed_b", {3, 4}, {4, 5}, false, true},
                                           MatmulCase{"transposed_both_batched", {2, 3, 4}, {2, 4, 5}, true, true},
                                           MatmulCase{"transposed_broadcast", {2, 1, 3, 4}, {3, 4, 2}, true, true}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Matmul, HandComputedValues) {
  auto a = from_vector<double>({1, 2, 3, 4}, {2, 2});
  auto b = from_vector<double>({5, 6, 7, 8}, {2, 2});
  expect_close(matmul(a, b), {19, 22, 43, 50});
  expect_close(matmul(a.t(), b), {26, 30, 38, 44});  // transposed view fed to GEMM as op(A) = Aᵀ
  expect_close(matmul(from_vector<double>({1, 2}), b), {19, 22});
  auto d = matmul(from_vector<double>({1, 2, 3}), from_vector<double>({4, 5, 6}));
  EXPECT_EQ(d.dim(), 0);
  EXPECT_DOUBLE_EQ(d.item(), 32.0);
}

TEST(Matmul, LargeBlockedProductMatchesReference) {
  // big enough for Eigen's blocked, multi-threaded kernel and for odd edges
  Generator g(5);
  auto a = randn<float>({67, 130}, g), b = randn<float>({130, 45}, g);
  expect_tensors_close(matmul(a, b), ref_matmul(a, b), 2e-4);
  auto ad = randn<double>({3, 33, 70}, g), bd = randn<double>({70, 41}, g);
  expect_tensors_close(matmul(ad, bd), ref_matmul(ad, bd), 1e-10);
}

TEST(Matmul, BroadcastBackwardSumsOverBatch) {
  // b (4,2) shared over a's batch: db = Σ_batch aᵀ·g, checked against explicit slices
  auto a = leaf({3, 2, 4}, 7), b = leaf({4, 2}, 8);
  auto y = matmul(a, b);
  auto seed = ones<double>(y.shape());
  y.backward(seed);
  std::vector<double> want(8, 0.0);
  for (std::int64_t i = 0; i < 3; ++i)
    for (std::int64_t p = 0; p < 4; ++p)
      for (std::int64_t j = 0; j < 2; ++j)
        for (std::int64_t r = 0; r < 2; ++r) want[static_cast<std::size_t>(p * 2 + j)] += a.at({i, r, p});
  expect_close(b.grad(), want, 1e-12);
}

TEST(Matmul, FoldedBatchUsesOneGemm) {
  auto a = leaf({4, 5, 6}, 1), b = leaf({6, 7}, 2);
  cpu::reset_gemm_stats();
  auto y = matmul(a, b);
  EXPECT_EQ(cpu::gemm_stats().calls, 1u);
  EXPECT_EQ(cpu::gemm_stats().flops, 2u * 20 * 7 * 6);
  cpu::reset_gemm_stats();
  y.backward(ones<double>(y.shape()));
  EXPECT_EQ(cpu::gemm_stats().calls, 2u);  // da: one folded GEMM; db: one GEMM over the folded batch
}

TEST(Matmul, Errors) {
  auto a = ones<double>({2, 3}), b = ones<double>({4, 5});
  expect_error([&] { matmul(a, b); }, {"matmul", "inner dims differ", "(2,3) @ (4,5)"});
  expect_error(
      [&] {
        matmul(ones<double>({2, 3, 4}), ones<double>({3, 4, 5}));
      },
      {"matmul", "batch dims do not broadcast", "(2,3,4) @ (3,4,5)"});
  expect_error([&] { matmul(scalar<double>(1.0), b); }, {"matmul", "at least 1 dim"});
  expect_error([&] { matmul(ones<double>({3}), ones<double>({4})); }, {"matmul", "inner dims differ", "(3) @ (4)"});
  expect_error([&] { bmm(ones<double>({2, 3, 4}), ones<double>({3, 4, 5})); }, {"bmm", "batch sizes differ"});
  expect_error([&] { bmm(ones<double>({3, 4}), ones<double>({4, 5})); }, {"bmm", "3-D", "(3,4)"});
  expect_error([&] { bmm(ones<double>({2, 3, 4}), ones<double>({2, 5, 5})); }, {"bmm", "inner dims differ"});
}

TEST(Bmm, GradcheckAndValues) {
  auto a = leaf({2, 3, 4}, 3), b = leaf_transposed({2, 4, 2}, 4);
  expect_tensors_close(bmm(a, b), ref_matmul(a, b), 1e-12);
  expect_gradcheck([](const std::vector<TD>& x) { return bmm(x[0], x[1]); }, {a, b});
}

// ---- linear -------------------------------------------------------------------

TD ref_linear(const TD& x, const TD& w, const TD& b) {
  TD y = ref_matmul(x, w.t());
  if (!b.defined()) return y;
  auto yv = y.to_vector(), bv = b.to_vector();
  for (std::size_t i = 0; i < yv.size(); ++i) yv[i] += bv[i % bv.size()];
  return from_vector<double>(yv, y.shape());
}

TEST(Linear, ForwardMatchesReference) {
  auto x = leaf({2, 3, 5}, 1), w = leaf({4, 5}, 2), b = leaf({4}, 3);
  expect_tensors_close(linear(x, w, b), ref_linear(x, w, b), 1e-12);
  expect_tensors_close(linear(x, w), ref_linear(x, w, TD()), 1e-12);
  auto xv = leaf({5}, 4);
  expect_tensors_close(linear(xv, w, b), ref_linear(xv.reshape({1, 5}), w, b).reshape({4}), 1e-12);
  auto wt = leaf_transposed({4, 5}, 5);  // w stored as (IN, OUT)
  auto xt = leaf_transposed({3, 5}, 6);
  expect_tensors_close(linear(xt, wt, b), ref_linear(xt, wt, b), 1e-12);
  auto y = linear(from_vector<double>({1, 2}, {1, 2}), from_vector<double>({1, 0, 1, 1, 2, -1}, {3, 2}),
                  from_vector<double>({0.5, 0, -1}));
  expect_close(y, {1.5, 3, -1});
}

TEST(Linear, Gradcheck) {
  Fn with_bias = [](const std::vector<TD>& v) { return linear(v[0], v[1], v[2]); };
  Fn no_bias = [](const std::vector<TD>& v) { return linear(v[0], v[1]); };
  expect_gradcheck(with_bias, {leaf({3, 4}, 1), leaf({5, 4}, 2), leaf({5}, 3)});
  expect_gradcheck(with_bias, {leaf({2, 3, 4}, 4), leaf_transposed({5, 4}, 5), leaf({5}, 6)});
  expect_gradcheck(with_bias, {leaf({4}, 7), leaf({3, 4}, 8), leaf({3}, 9)});
  expect_gradcheck(no_bias, {leaf_transposed({2, 3, 4}, 10), leaf({2, 4}, 11)});
}

TEST(Linear, FrozenWeightsComputeOnlyInputGradient) {
  const std::int64_t M = 6, IN = 5, OUT = 3;
  auto x = leaf({2, 3, IN}, 1);
  auto w = leaf({OUT, IN}, 2);
  auto b = leaf({OUT}, 3);
  w.requires_grad_(false);
  b.requires_grad_(false);
  auto y = linear(x, w, b);
  cpu::reset_gemm_stats();
  y.backward(ones<double>(y.shape()));
  auto st = cpu::gemm_stats();
  EXPECT_EQ(st.calls, 1u);  // dx only
  EXPECT_EQ(st.flops, std::uint64_t(2 * M * IN * OUT));
  EXPECT_TRUE(x.grad().defined());
  EXPECT_FALSE(w.grad().defined());
  // and with trainable weights: dx + dw
  w.requires_grad_(true);
  auto y2 = linear(x, w, b);
  cpu::reset_gemm_stats();
  y2.backward(ones<double>(y2.shape()));
  EXPECT_EQ(cpu::gemm_stats().calls, 2u);
  // only the weight: dx is skipped
  x.requires_grad_(false);
  auto y3 = linear(x, w, b);
  cpu::reset_gemm_stats();
  y3.backward(ones<double>(y3.shape()));
  EXPECT_EQ(cpu::gemm_stats().calls, 1u);
}

TEST(Linear, Errors) {
  auto x = ones<double>({4, 3});
  expect_error([&] { linear(x, ones<double>({5, 4})); }, {"linear", "input features differ", "(4,3)", "(5,4)"});
  expect_error([&] { linear(x, ones<double>({5, 3, 1})); }, {"linear", "weight must be 2-D", "(5,3,1)"});
  expect_error([&] { linear(x, ones<double>({5, 3}), ones<double>({4})); }, {"linear", "bias must be (5)", "(4)"});
}

TEST(Gemm, StridedBatchedAndBetaMatchReference) {
  // C = 2·Aᵀ·B + 0.5·C on raw pointers, batch of 3 with a shared B (stride 0)
  Generator g(9);
  auto a = randn<double>({3, 4, 2}, g), b = randn<double>({4, 5}, g), c = randn<double>({3, 2, 5}, g);
  auto c0 = c.clone();
  cpu::gemm_strided_batched(true, false, 2, 5, 4, 2.0, a.data(), 2, 8, b.data(), 5, 0, 0.5, c.data(), 5, 10, 3);
  for (std::int64_t i = 0; i < 3; ++i)
    for (std::int64_t r = 0; r < 2; ++r)
      for (std::int64_t j = 0; j < 5; ++j) {
        double acc = 0;
        for (std::int64_t p = 0; p < 4; ++p) acc += a.at({i, p, r}) * b.at({p, j});
        EXPECT_NEAR(c.at({i, r, j}), 2 * acc + 0.5 * c0.at({i, r, j}), 1e-12);
      }
  // beta = 0 ignores NaN garbage in C
  auto nan_c = full<double>({2, 5}, std::nan(""));
  cpu::gemm(true, false, 2, 5, 4, 1.0, a.data(), 2, b.data(), 5, 0.0, nan_c.data(), 5);
  for (double v : nan_c.to_vector()) EXPECT_FALSE(std::isnan(v));
}

TEST(Gemm, SplitProductsMatchReferenceAndThreadCount) {
  // big enough to be split over threads: by rows of C (m large) and by Eigen's
  // row blocks (m small, n large); results must not depend on the thread count
  Generator g(21);
  struct Dims {
    std::int64_t m, n, k;
    bool ta, tb;
  };
  for (Dims d : {Dims{200, 150, 300, false, false}, Dims{203, 97, 250, true, true}, Dims{20, 6000, 64, false, true},
                 Dims{9, 5000, 300, true, false}}) {
    auto a = randn<float>(d.ta ? Shape{d.k, d.m} : Shape{d.m, d.k}, g);
    auto b = randn<float>(d.tb ? Shape{d.n, d.k} : Shape{d.k, d.n}, g);
    auto run = [&](int threads) {
      omp_set_num_threads(threads);
      auto c = full<float>({d.m, d.n}, 1.0f);
      cpu::gemm(d.ta, d.tb, d.m, d.n, d.k, 1.5f, a.data(), d.ta ? d.m : d.k, b.data(), d.tb ? d.k : d.n, 0.5f, c.data(),
                d.n);
      return c;
    };
    const int saved = omp_get_max_threads();
    auto c1 = run(1), c2 = run(2), c3 = run(3);
    omp_set_num_threads(saved);
    EXPECT_EQ(c1.to_vector(), c2.to_vector()) << "m=" << d.m << " n=" << d.n;
    EXPECT_EQ(c1.to_vector(), c3.to_vector()) << "m=" << d.m << " n=" << d.n;
    auto at = d.ta ? a.t() : a, bt = d.tb ? b.t() : b;
    auto want = ref_matmul(at.contiguous(), bt.contiguous()).to_vector();
    auto got = c2.to_vector();
    for (std::size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], 1.5f * want[i] + 0.5f, 2e-3) << i;
  }
}

}  // namespace
