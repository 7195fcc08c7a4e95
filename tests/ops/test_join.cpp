// concat/stack/split/chunk/pad/repeat/flip/roll: forward values against hand
// computed results, gradchecks (negative axes, non-contiguous inputs, inputs
// that need no grad), integer inputs, error messages, and a large case that
// takes the OpenMP paths.
#include "avgrad/ops/join.hpp"
#include "avgrad/ops/reduce.hpp"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::testing;

namespace {

using TI = Tensor<std::int64_t, Cpu>;

TD seq(const Shape& s, double start = 1) {
  return arange<double>(start, start + static_cast<double>(s.numel())).reshape(s);
}

// ---- concat --------------------------------------------------------------------

TEST(Concat, ForwardValues) {
  auto a = from_vector<double>({1, 2, 3, 4}, {2, 2});
  auto b = from_vector<double>({5, 6}, {2, 1});
  auto y = concat({a, b}, 1);
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  expect_close(y, {1, 2, 5, 3, 4, 6});
  expect_close(concat({a, b}, -1), {1, 2, 5, 3, 4, 6});
  auto c = from_vector<double>({7, 8}, {1, 2});
  expect_close(concat({a, c, a}, 0), {1, 2, 3, 4, 7, 8, 1, 2, 3, 4});
  // a transposed view is read through its strides
  expect_close(concat({a.t(), c}, 0), {1, 3, 2, 4, 7, 8});
}

TEST(Concat, Integers) {
  auto a = from_vector<std::int64_t>({1, 2}, {1, 2});
  auto b = from_vector<std::int64_t>({3, 4, 5, 6}, {2, 2});
  EXPECT_EQ(concat({a, b}, 0).to_vector(), (std::vector<std::int64_t>{1, 2, 3, 4, 5, 6}));
}

TEST(Concat, GradcheckThreeInputs) {
  Fn f = [](const std::vector<TD>& x) { return concat(x, -1); };
  expect_gradcheck(f, {leaf({2, 3}, 1), leaf_transposed({2, 4}, 2), leaf({2, 1}, 3)});
  Fn f0 = [](const std::vector<TD>& x) { return concat(x, 0); };
  expect_gradcheck(f0, {leaf({1, 3, 2}, 4), leaf({3, 3, 2}, 5), leaf_transposed({2, 3, 2}, 6)});
}

TEST(Concat, OnlySomeInputsRequireGrad) {
  auto a = leaf({2, 2}, 1);
  TD b = randn<double>(Shape{3, 2});  // constant: no grad
  auto c = leaf_transposed({1, 2}, 2);
  Fn f = [&](const std::vector<TD>& x) { return concat({x[0], b, x[1]}, 0); };
  expect_gradcheck(f, {a, c});

  auto w = seq({6, 2});
  sum(concat({a, b, c}, 0) * w).backward();
  expect_close(a.grad(), {1, 2, 3, 4});
  expect_close(c.grad(), {11, 12});
  EXPECT_FALSE(b.grad().defined());
}

TEST(Concat, Errors) {
  auto a = zeros<double>(Shape{2, 3});
  auto b = zeros<double>(Shape{3, 3});
  expect_error([&] { concat({a, b}, 1); }, {"concat", "input 1", "(3,3)", "(2,3)", "dim 1"});
  expect_error([&] { concat({a, zeros<double>(Shape{2, 3, 1})}, 0); }, {"concat", "input 1", "(2,3,1)"});
  expect_error([&] { concat(std::vector<TD>{}, 0); }, {"concat", "at least one"});
  expect_error([&] { concat({a, a}, 2); }, {"concat", "axis 2"});
}

// ---- stack ---------------------------------------------------------------------

TEST(Stack, ForwardValues) {
  auto a = from_vector<double>({1, 2, 3}, {3});
  auto b = from_vector<double>({4, 5, 6}, {3});
  EXPECT_EQ(stack({a, b}, 0).shape(), (Shape{2, 3}));
  expect_close(stack({a, b}, 0), {1, 2, 3, 4, 5, 6});
  auto y = stack({a, b}, -1);
  EXPECT_EQ(y.shape(), (Shape{3, 2}));
  expect_close(y, {1, 4, 2, 5, 3, 6});
  auto ia = from_vector<std::int64_t>({1, 2});
  EXPECT_EQ(stack({ia, ia, ia}, 1).shape(), (Shape{2, 3}));
  EXPECT_EQ(stack({ia, ia, ia}, 1).to_vector(), (std::vector<std::int64_t>{1, 1, 1, 2, 2, 2}));
}

TEST(Stack, Gradcheck) {
  for (std::int64_t axis : {0, 1, 2, -1, -2}) {
    Fn f = [axis](const std::vector<TD>& x) { return stack(x, axis); };
    expect_gradcheck(f, {leaf({2, 3}, 1), leaf_transposed({2, 3}, 2), leaf({2, 3}, 3)});
  }
}

TEST(Stack, Errors) {
  auto a = zeros<double>(Shape{2, 3});
  expect_error([&] { stack({a, zeros<double>(Shape{3, 2})}, 0); }, {"stack", "input 1", "(3,2)", "(2,3)"});
  expect_error([&] { stack({a, a}, 3); }, {"stack", "axis 3"});
}

// ---- split / chunk -----------------------------------------------------------

TEST(Split, UnevenSizesAreViews) {
  auto x = seq({2, 6});
  auto parts = split(x, {1, 3, 2}, 1);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0].shape(), (Shape{2, 1}));
  EXPECT_EQ(parts[1].shape(), (Shape{2, 3}));
  EXPECT_EQ(parts[2].shape(), (Shape{2, 2}));
  expect_close(parts[1], {2, 3, 4, 8, 9, 10});
  expect_close(parts[2], {5, 6, 11, 12});
  EXPECT_TRUE(parts[1].storage() == x.storage());

  auto by4 = split(x, 4, -1);
  ASSERT_EQ(by4.size(), 2u);
  expect_close(by4[1], {5, 6, 11, 12});
}

TEST(Split, Chunk) {
  auto x = seq({7});
  auto c = chunk(x, 3);
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].numel(), 3);
  EXPECT_EQ(c[2].numel(), 1);
  expect_close(c[2], {7});
  auto c5 = chunk(seq({5}), 4);  // ceil(5/4) = 2: pieces 2, 2, 1 (as torch.chunk)
  ASSERT_EQ(c5.size(), 3u);
  expect_close(c5[2], {5});
  EXPECT_EQ(chunk(seq({2, 4}), 2, -1)[1].shape(), (Shape{2, 2}));
}

TEST(Split, Gradcheck) {
  Fn f = [](const std::vector<TD>& x) {
    auto p = split(x[0], {2, 1, 2}, -2);
    return concat({p[2] * 3.0, p[0], p[1] * -2.0}, -2);
  };
  expect_gradcheck(f, {leaf_transposed({3, 5, 4}, 1)});
  Fn g = [](const std::vector<TD>& x) {
    auto p = chunk(x[0], 3, 1);  // only two pieces are used: the rest gets zero gradient
    return p[0] * 2.0 + p[2];
  };
  expect_gradcheck(g, {leaf({2, 9}, 2)});
}

TEST(Split, Errors) {
  auto x = zeros<double>(Shape{2, 6});
  expect_error([&] { split(x, {2, 3}, 1); }, {"split", "sum to 5", "(2,6)", "6"});
  expect_error([&] { split(x, 0, 1); }, {"split", "positive"});
  expect_error([&] { chunk(x, 0, 1); }, {"chunk", "positive"});
  expect_error([&] { split(scalar<double>(1.0), 1, 0); }, {"split", "at least 1 dim"});
}

// ---- pad -----------------------------------------------------------------------

TEST(Pad, ConstantValues) {
  auto x = from_vector<double>({1, 2, 3, 4}, {2, 2});
  // last dim: 1 left, 0 right; first dim: 0 top, 1 bottom
  auto y = pad(x, {1, 0, 0, 1}, PadMode::constant, 9.0);
  EXPECT_EQ(y.shape(), (Shape{3, 3}));
  expect_close(y, {9, 1, 2, 9, 3, 4, 9, 9, 9});
  // negative pads crop
  expect_close(pad(from_vector<double>({1, 2, 3, 4}), {-1, 1}), {2, 3, 4, 0});
  auto xi = from_vector<std::int64_t>({5, 6});
  EXPECT_EQ(pad(xi, {2, 1}, PadMode::constant, 7.0).to_vector(), (std::vector<std::int64_t>{7, 7, 5, 6, 7}));
}

TEST(Pad, ReflectAndReplicateValues) {
  auto x = from_vector<double>({1, 2, 3, 4});
  expect_close(pad(x, {2, 1}, PadMode::reflect), {3, 2, 1, 2, 3, 4, 3});
  expect_close(pad(x, {2, 1}, PadMode::replicate), {1, 1, 1, 2, 3, 4, 4});
  expect_close(pad(x, {2, 4}, PadMode::symmetric), {2, 1, 1, 2, 3, 4, 4, 3, 2, 1});
  auto m = seq({3, 3});  // [[1,2,3],[4,5,6],[7,8,9]]
  auto r = pad(m, {1, 1, 1, 1}, PadMode::reflect);
  EXPECT_EQ(r.shape(), (Shape{5, 5}));
  expect_close(r, {5, 4, 5, 6, 5,  //
                   2, 1, 2, 3, 2,  //
                   5, 4, 5, 6, 5,  //
                   8, 7, 8, 9, 8,  //
                   5, 4, 5, 6, 5});
  auto p = pad(m, {0, 2, 1, 0}, PadMode::replicate);
  expect_close(p, {1, 2, 3, 3, 3,  //
                   1, 2, 3, 3, 3,  //
                   4, 5, 6, 6, 6,  //
                   7, 8, 9, 9, 9});
}

TEST(Pad, Gradcheck) {
  Fn reflect3 = [](const std::vector<TD>& x) { return pad(x[0], {2, 3, 1, 2, 1, 1}, PadMode::reflect); };
  expect_gradcheck(reflect3, {leaf({3, 4, 5}, 1)});
  Fn reflect2 = [](const std::vector<TD>& x) { return pad(x[0], {3, 1, 2, 0}, PadMode::reflect); };
  expect_gradcheck(reflect2, {leaf_transposed({2, 3, 4}, 2)});
  Fn replicate = [](const std::vector<TD>& x) { return pad(x[0], {2, 1, 0, 3}, PadMode::replicate); };
  expect_gradcheck(replicate, {leaf_transposed({2, 3, 4}, 3)});
  Fn symmetric = [](const std::vector<TD>& x) { return pad(x[0], {3, 2, 1, 1}, PadMode::symmetric); };
  expect_gradcheck(symmetric, {leaf_transposed({2, 3, 4}, 5)});
  Fn constant = [](const std::vector<TD>& x) { return pad(x[0], {1, -1, -1, 2}, PadMode::constant, 0.5); };
  expect_gradcheck(constant, {leaf({2, 3, 4}, 4)});
}

TEST(Pad, Errors) {
  auto x = zeros<double>(Shape{2, 3});
  expect_error([&] { pad(x, {3, 0}, PadMode::reflect); }, {"pad", "reflect", "(3, 0)", "dim 1", "extent 3"});
  expect_error([&] { pad(x, {0, 0, 0, 2}, PadMode::reflect); }, {"pad", "reflect", "dim 0", "extent 2"});
  expect_error([&] { pad(x, {4, 0}, PadMode::symmetric); }, {"pad", "symmetric", "(4, 0)", "extent 3"});
  expect_error([&] { pad(x, {1, 1, 1}); }, {"pad", "pairs"});
  expect_error([&] { pad(x, {1, 1, 1, 1, 1, 1}); }, {"pad", "(2,3)"});
  expect_error([&] { pad(x, {-2, -2}); }, {"pad", "negative extent"});
  expect_error([&] { pad(x, {-1, 0}, PadMode::replicate); }, {"pad", "replicate", "non-negative"});
}

// ---- repeat / flip / roll ----------------------------------------------------

TEST(Repeat, ForwardValues) {
  auto x = from_vector<double>({1, 2});
  auto y = repeat(x, {2, 2});  // torch: x.repeat(2, 2) → (2, 4)
  EXPECT_EQ(y.shape(), (Shape{2, 4}));
  expect_close(y, {1, 2, 1, 2, 1, 2, 1, 2});
  auto m = seq({2, 2});
  expect_close(repeat(m, {1, 3}), {1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4});
  expect_close(repeat(m, {2, 1}), {1, 2, 3, 4, 1, 2, 3, 4});
  EXPECT_EQ(repeat(m, {0, 1}).shape(), (Shape{0, 2}));
  EXPECT_EQ(repeat(from_vector<std::int64_t>({3, 4}), {3}).to_vector(), (std::vector<std::int64_t>{3, 4, 3, 4, 3, 4}));
}

TEST(Repeat, Gradcheck) {
  Fn f = [](const std::vector<TD>& x) { return repeat(x[0], {2, 1, 3}); };
  expect_gradcheck(f, {leaf_transposed({2, 3}, 1)});
  Fn g = [](const std::vector<TD>& x) { return repeat(x[0], {3, 2}); };
  expect_gradcheck(g, {leaf({2, 2}, 2)});
  // each element is copied 2·3 times: d(sum)/dx = 6
  auto x = leaf({2, 3}, 3);
  sum(repeat(x, {2, 1, 3})).backward();
  expect_close(x.grad(), {6, 6, 6, 6, 6, 6});
}

TEST(Repeat, Errors) {
  expect_error([] { repeat(zeros<double>(Shape{2, 3}), {2}); }, {"repeat", "(2,3)"});
  expect_error([] { repeat(zeros<double>(Shape{2}), {-1}); }, {"repeat", "-1"});
}

TEST(Flip, ForwardValues) {
  auto x = seq({2, 3});
  expect_close(flip(x, {0}), {4, 5, 6, 1, 2, 3});
  expect_close(flip(x, {-1}), {3, 2, 1, 6, 5, 4});
  expect_close(flip(x, {0, 1}), {6, 5, 4, 3, 2, 1});
  expect_close(flip(x.t(), {0}), {3, 6, 2, 5, 1, 4});
  EXPECT_EQ(flip(from_vector<std::int64_t>({1, 2, 3}), {0}).to_vector(), (std::vector<std::int64_t>{3, 2, 1}));
}

TEST(Flip, GradcheckAndErrors) {
  Fn f = [](const std::vector<TD>& x) { return flip(x[0], {0, -1}); };
  expect_gradcheck(f, {leaf_transposed({2, 3, 4}, 1)});
  expect_error([] { flip(zeros<double>(Shape{2, 3}), {1, -1}); }, {"flip", "repeated"});
  expect_error([] { flip(zeros<double>(Shape{2, 3}), {2}); }, {"flip", "axis 2"});
}

TEST(Roll, ForwardValues) {
  auto x = seq({5});
  expect_close(roll(x, {2}, {0}), {4, 5, 1, 2, 3});
  expect_close(roll(x, {-1}, {0}), {2, 3, 4, 5, 1});
  expect_close(roll(x, {7}, {0}), {4, 5, 1, 2, 3});
  auto m = seq({2, 3});
  expect_close(roll(m, {1}), {6, 1, 2, 3, 4, 5});  // flattened, as torch.roll without dims
  expect_close(roll(m, {1, -1}, {0, 1}), {5, 6, 4, 2, 3, 1});
  expect_close(roll(m, {1, 1}, {-1, -1}), {2, 3, 1, 5, 6, 4});  // repeated axes add
}

TEST(Roll, GradcheckAndErrors) {
  Fn f = [](const std::vector<TD>& x) { return roll(x[0], {2, -1}, {0, -1}); };
  expect_gradcheck(f, {leaf_transposed({3, 2, 4}, 1)});
  Fn flat = [](const std::vector<TD>& x) { return roll(x[0], {5}); };
  expect_gradcheck(flat, {leaf_transposed({3, 4}, 2)});
  expect_error([] { roll(zeros<double>(Shape{2, 3}), {1, 2}, {0}); }, {"roll", "2 shifts for 1 axes"});
  expect_error([] { roll(zeros<double>(Shape{2, 3}), {1, 2}); }, {"roll", "one shift"});
}

// ---- large inputs: the OpenMP paths -------------------------------------------

TEST(Join, LargeInputsAreExactAndDeterministic) {
  const Shape s{64, 700};  // 44 800 elements: above the parallel grain
  auto x = leaf(s, 11);
  auto y = repeat(x, {1, 2});
  EXPECT_EQ(y.at({10, 700 + 5}), x.at({10, 5}));
  auto p = pad(x, {3, 3, 2, 2}, PadMode::reflect);
  EXPECT_EQ(p.at({0, 0}), x.at({2, 3}));
  EXPECT_EQ(p.at({67, 705}), x.at({61, 696}));
  auto f = flip(x, {1});
  EXPECT_EQ(f.at({7, 0}), x.at({7, 699}));

  auto grad_of = [&] {
    x.zero_grad();
    auto w = seq({68, 706}, 0.25);
    sum(pad(repeat(x, {1, 1}), {3, 3, 2, 2}, PadMode::reflect) * w).backward();
    return x.grad().to_vector();
  };
  auto g1 = grad_of(), g2 = grad_of();
  EXPECT_EQ(g1, g2);
  // interior element (30, 300) is read exactly once, at output (32, 303)
  EXPECT_DOUBLE_EQ(g1[30 * 700 + 300], 0.25 + 32.0 * 706 + 303);
  // element (1, 1) is read at rows {1, 3} × cols {2, 4} of the padded output
  double want = 0;
  for (int r : {1, 3})
    for (int c : {2, 4}) want += 0.25 + r * 706.0 + c;
  EXPECT_DOUBLE_EQ(g1[1 * 700 + 1], want);

  auto big = concat({x, x * 2.0}, 0);
  EXPECT_EQ(big.at({64 + 3, 9}), 2.0 * x.at({3, 9}));
}

}  // namespace
