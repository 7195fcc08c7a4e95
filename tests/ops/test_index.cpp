// index_select/gather/scatter_add/one_hot/masked_fill: forward values against
// hand-computed (PyTorch documentation) results, gradchecks with repeated
// indices and non-contiguous inputs, index validation, and a large case that
// checks the parallel scatter-add is exact and deterministic.
#include "avgrad/ops/index.hpp"
#include "avgrad/ops/reduce.hpp"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::testing;

namespace {

using TI = Tensor<std::int64_t, Cpu>;

TD seq(const Shape& s, double start = 1) {
  return arange<double>(start, start + static_cast<double>(s.numel())).reshape(s);
}
TI ints(const std::vector<std::int64_t>& v, const Shape& s) { return from_vector<std::int64_t>(v, s); }
TI ints(const std::vector<std::int64_t>& v) { return from_vector<std::int64_t>(v); }

// ---- index_select ----------------------------------------------------------------

TEST(IndexSelect, ForwardValues) {
  auto x = seq({3, 4});  // rows 1..4, 5..8, 9..12
  auto r = index_select(x, 0, ints({2, 0, 2}));
  EXPECT_EQ(r.shape(), (Shape{3, 4}));
  expect_close(r, {9, 10, 11, 12, 1, 2, 3, 4, 9, 10, 11, 12});
  auto c = index_select(x, -1, ints({3, 1}));
  expect_close(c, {4, 2, 8, 6, 12, 10});
  expect_close(index_select(x.t(), 1, ints({1})), {5, 6, 7, 8});
  EXPECT_EQ(index_select(x, 1, ints({}, {0})).shape(), (Shape{3, 0}));
  auto xi = from_vector<std::int64_t>({10, 20, 30});
  EXPECT_EQ(index_select(xi, 0, ints({2, 2, 0})).to_vector(), (std::vector<std::int64_t>{30, 30, 10}));
}

TEST(IndexSelect, Gradcheck) {
  auto idx = ints({1, 0, 1, 3, 1});  // repeats accumulate
  Fn f = [&](const std::vector<TD>& x) { return index_select(x[0], -1, idx); };
  expect_gradcheck(f, {leaf({2, 3, 4}, 1)});
  expect_gradcheck(f, {leaf_transposed({3, 5, 4}, 2)});
  Fn g = [&](const std::vector<TD>& x) { return index_select(x[0], 0, ints({2, 2, 0})); };
  expect_gradcheck(g, {leaf_transposed({3, 2}, 3)});

  auto x = leaf({4}, 4);
  sum(index_select(x, 0, ints({1, 1, 3, 1}))).backward();
  expect_close(x.grad(), {0, 3, 0, 1});
}

TEST(IndexSelect, Errors) {
  auto x = zeros<double>(Shape{3, 4});
  expect_error(
      [&] {
        index_select(x, 1, ints({0, 4}));
      },
      {"index_select", "index 4", "position (1)", "dim 1", "(3,4)"});
  expect_error([&] { index_select(x, 0, ints({-1})); }, {"index_select", "index -1", "position (0)", "not wrapped"});
  expect_error([&] { index_select(x, 0, ints({0, 1}, {1, 2})); }, {"index_select", "1-D", "(1,2)"});
  expect_error([&] { index_select(x, 2, ints({0})); }, {"index_select", "axis 2"});
}

// ---- gather ----------------------------------------------------------------------

TEST(Gather, ForwardValues) {
  auto t = from_vector<double>({1, 2, 3, 4}, {2, 2});
  // torch.gather(t, 1, [[0, 0], [1, 0]]) = [[1, 1], [4, 3]]
  expect_close(gather(t, 1, ints({0, 0, 1, 0}, {2, 2})), {1, 1, 4, 3});
  // along dim 0 with an index smaller than the input in dim 1
  auto x = seq({3, 4});
  auto y = gather(x, 0, ints({2, 0, 1, 1, 0, 2}, {2, 3}));
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  expect_close(y, {9, 2, 7, 5, 2, 11});
  expect_close(gather(x.t(), -1, ints({2, 0}, {2, 1})), {9, 2});
  auto xi = from_vector<std::int64_t>({5, 6, 7, 8}, {2, 2});
  EXPECT_EQ(gather(xi, 1, ints({1, 1, 0, 1}, {2, 2})).to_vector(), (std::vector<std::int64_t>{6, 6, 7, 8}));
}

TEST(Gather, Gradcheck) {
  auto idx1 = ints({0, 2, 2, 1, 0, 0, 3, 3}, {2, 4});  // picks along dim 1 of (2, 4)
  Fn f = [&](const std::vector<TD>& x) { return gather(x[0], 1, idx1); };
  expect_gradcheck(f, {leaf({2, 4}, 1)});
  expect_gradcheck(f, {leaf_transposed({2, 4}, 2)});
  auto idx0 = ints({1, 1, 0, 2, 2, 2}, {3, 2, 1});  // dim 0 of (3, 3, 2); smaller in dims 1, 2
  Fn g = [&](const std::vector<TD>& x) { return gather(x[0], -3, idx0); };
  expect_gradcheck(g, {leaf_transposed({3, 3, 2}, 3)});
}

TEST(Gather, Errors) {
  auto x = zeros<double>(Shape{2, 3});
  expect_error(
      [&] {
        gather(x, 1, ints({0, 1, 3, 0}, {2, 2}));
      },
      {"gather", "index 3", "position (1,0)", "dim 1", "(2,3)"});
  expect_error([&] { gather(x, 0, ints({0, -2}, {1, 2})); }, {"gather", "index -2", "position (0,1)"});
  expect_error([&] { gather(x, 1, ints({0, 1})); }, {"gather", "(2)", "(2,3)", "rank"});
  expect_error([&] { gather(x, 1, ints({0, 0, 0, 0, 0, 0}, {3, 2})); }, {"gather", "(3,2)", "exceeds", "dim 0"});
}

// ---- scatter_add -----------------------------------------------------------------

TEST(ScatterAdd, ForwardValues) {
  // torch docs: zeros(3, 5).scatter_add(0, [[0,1,2,0,0]], ones(2, 5)): only src[0, :] is used
  auto z = zeros<double>(Shape{3, 5});
  auto src = ones<double>(Shape{2, 5});
  expect_close(scatter_add(z, 0, ints({0, 1, 2, 0, 0}, {1, 5}), src), {1, 0, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0});
  expect_close(scatter_add(z, 0, ints({0, 1, 2, 0, 0, 1, 2, 0, 0, 1}, {2, 5}), src),
               {1, 0, 1, 2, 1, 1, 1, 0, 0, 1, 0, 1, 1, 0, 0});
  // along dim 1 onto a non-zero input
  auto x = seq({2, 3});
  auto y = scatter_add(x, 1, ints({2, 2, 0, 1}, {2, 2}), from_vector<double>({10, 20, 30, 40}, {2, 2}));
  expect_close(y, {1, 2, 33, 34, 45, 6});
  auto xi = from_vector<std::int64_t>({0, 0, 0});
  EXPECT_EQ(scatter_add(xi, 0, ints({2, 2, 0}), ints({1, 2, 3})).to_vector(), (std::vector<std::int64_t>{3, 0, 3}));
}

TEST(ScatterAdd, Gradcheck) {
  auto idx = ints({0, 2, 2, 1, 0, 0}, {3, 2});  // into dim 0 of (4, 3); src (3, 3) is wider
  Fn f = [&](const std::vector<TD>& x) { return scatter_add(x[0], 0, idx, x[1]); };
  expect_gradcheck(f, {leaf({4, 3}, 1), leaf_transposed({3, 3}, 2)});
  expect_gradcheck(f, {leaf_transposed({4, 3}, 3), leaf({3, 2}, 4)});
  Fn g = [&](const std::vector<TD>& x) { return scatter_add(x[0], -1, ints({1, 1, 0, 3, 3, 3}, {2, 3}), x[1]); };
  expect_gradcheck(g, {leaf({2, 4}, 5), leaf({2, 3}, 6)});

  // src entries outside the index's shape get zero gradient
  auto x = leaf({4, 3}, 7), s = leaf({3, 3}, 8);
  sum(scatter_add(x, 0, idx, s) * seq({4, 3})).backward();
  expect_close(x.grad(), seq({4, 3}).to_vector());
  // dsrc[p] = w[idx[p], p_1] with w = 1..12 as (4, 3)
  expect_close(s.grad(), {1, 8, 0, 7, 5, 0, 1, 2, 0});
}

TEST(ScatterAdd, Errors) {
  auto x = zeros<double>(Shape{3, 2});
  expect_error(
      [&] {
        scatter_add(x, 0, ints({0, 3}, {1, 2}), ones<double>(Shape{1, 2}));
      },
      {"scatter_add", "index 3", "position (0,1)", "dim 0", "(3,2)"});
  expect_error(
      [&] {
        scatter_add(x, 0, ints({0, 1}, {1, 2}), ones<double>(Shape{1, 1}));
      },
      {"scatter_add", "exceeds src shape", "(1,1)"});
  expect_error([&] { scatter_add(x, 0, ints({0, 1}), ones<double>(Shape{2})); }, {"scatter_add", "same rank"});
}

// ---- one_hot ---------------------------------------------------------------------

TEST(OneHot, ForwardValues) {
  auto y = one_hot(ints({0, 2, 1}), 3);
  static_assert(std::is_same_v<decltype(y), Tensor<float, Cpu>>);
  EXPECT_EQ(y.shape(), (Shape{3, 3}));
  expect_close(y, std::vector<float>{1, 0, 0, 0, 0, 1, 0, 1, 0});
  auto d = one_hot<double>(ints({3, 0}, {2, 1}));  // inferred: 4 classes
  EXPECT_EQ(d.shape(), (Shape{2, 1, 4}));
  expect_close(d, {0, 0, 0, 1, 1, 0, 0, 0});
}

TEST(OneHot, Errors) {
  expect_error([] { one_hot(ints({0, 3}), 3); }, {"one_hot", "index 3", "position (1)", "3 classes"});
  expect_error([] { one_hot(ints({-1, 0}, {1, 2}), 3); }, {"one_hot", "index -1", "position (0,0)"});
  expect_error([] { one_hot(ints({0}), 0); }, {"one_hot", "num_classes"});
}

// ---- masked_fill -----------------------------------------------------------------

TEST(MaskedFill, ForwardValuesWithBroadcastMask) {
  auto x = seq({2, 3});
  auto m = from_vector<bool>({true, false, true}, {1, 3});
  expect_close(masked_fill(x, m, -1.0), {-1, 2, -1, -1, 5, -1});
  auto full_mask = from_vector<bool>({false, true, false, false, false, true}, {2, 3});
  expect_close(masked_fill(x.t().contiguous().t(), full_mask, 0.5), {1, 0.5, 3, 4, 5, 0.5});
  auto xi = from_vector<std::int64_t>({1, 2, 3});
  EXPECT_EQ(masked_fill(xi, from_vector<bool>({false, true, false}), 9).to_vector(),
            (std::vector<std::int64_t>{1, 9, 3}));
}

TEST(MaskedFill, Gradcheck) {
  auto m = from_vector<bool>({true, false, false, true}, {4, 1});  // broadcast over the last dim
  Fn f = [&](const std::vector<TD>& x) { return masked_fill(x[0], m, 2.0); };
  expect_gradcheck(f, {leaf({4, 3}, 1)});
  expect_gradcheck(f, {leaf_transposed({2, 4, 3}, 2)});
  auto x = leaf({4, 3}, 3);
  sum(masked_fill(x, m, 7.0)).backward();
  expect_close(x.grad(), {0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0});
}

TEST(MaskedFill, Errors) {
  auto x = zeros<double>(Shape{2, 3});
  expect_error([&] { masked_fill(x, from_vector<bool>({true, false}), 1.0); }, {"masked_fill", "(2)", "(2,3)"});
  expect_error(
      [&] {
        masked_fill(x, from_vector<bool>(std::vector<bool>(12, true), {2, 2, 3}), 1.0);
      },
      {"masked_fill", "(2,2,3)", "(2,3)"});
}

// ---- large inputs: parallel scatter-add is exact and deterministic ----------------

TEST(Index, LargeScatterAddIsDeterministic) {
  const std::int64_t cols = 20000;  // index of 8 × 20 000 = 160 000 entries: parallel
  std::vector<std::int64_t> iv(static_cast<std::size_t>(8 * cols));
  for (std::size_t k = 0; k < iv.size(); ++k) iv[k] = static_cast<std::int64_t>((k * 7919) % 3);
  auto idx = ints(iv, {8, cols});
  auto x = leaf({3, cols}, 9);
  auto grad_of = [&] {
    x.zero_grad();
    sum(gather(x, 0, idx) * seq({8, cols}, 0.5)).backward();
    return x.grad().to_vector();
  };
  auto g1 = grad_of(), g2 = grad_of();
  EXPECT_EQ(g1, g2);
  // serial reference, summed in the same order (increasing row of the index)
  std::vector<double> want(static_cast<std::size_t>(3 * cols), 0.0);
  for (std::int64_t r = 0; r < 8; ++r)
    for (std::int64_t c = 0; c < cols; ++c)
      want[static_cast<std::size_t>(iv[static_cast<std::size_t>(r * cols + c)] * cols + c)] +=
          0.5 + static_cast<double>(r * cols + c);
  EXPECT_EQ(g1, want);

  auto big = index_select(x, 1, arange<std::int64_t>(cols - 1, -1, -1));  // reversed columns
  EXPECT_EQ(big.at({2, 0}), x.at({2, cols - 1}));
  auto sel_grad = [&] {
    x.zero_grad();
    sum(index_select(x, 1, ints(std::vector<std::int64_t>(50000, 7)))).backward();
    return x.grad();
  };
  auto sg = sel_grad();
  EXPECT_EQ(sg.at({1, 7}), 50000.0);
  EXPECT_EQ(sg.at({1, 8}), 0.0);
}

}  // namespace
