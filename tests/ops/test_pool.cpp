// Pooling: forward values against hand-computed outputs and a naive reference written
// here (direct loops over every kernel tap, no shared window code), gradchecks of
// every op (strides, padding, dilation, ceil_mode, non-contiguous inputs), gradient
// routing to the argmax, the parallel path in float, and the error messages.
#include <cmath>
#include <limits>

#include "avgrad/autograd/engine.hpp"
#include "avgrad/ops/pool.hpp"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::testing;

namespace {

using I64 = std::vector<std::int64_t>;

// ---- naive reference ---------------------------------------------------------------

/// One pooling configuration, every argument given per spatial dim.
struct PoolCfg {
  bool max = true;
  I64 kernel, stride, padding, dilation;
  bool ceil_mode = false;
  bool count_include_pad = true;
};

/// Calls f(multi-index) for every index of extents `ext`, row-major.
template <class F> void for_each_index(const I64& ext, F&& f) {
  for (auto e : ext)
    if (e == 0) return;
  I64 i(ext.size(), 0);
  while (true) {
    f(i);
    int d = static_cast<int>(ext.size()) - 1;
    while (d >= 0 && ++i[static_cast<std::size_t>(d)] == ext[static_cast<std::size_t>(d)])
      i[static_cast<std::size_t>(d--)] = 0;
    if (d < 0) return;
  }
}

/// Row-major flat index of `idx` in extents `ext`.
std::int64_t flat(const I64& idx, const I64& ext) {
  std::int64_t f = 0;
  for (std::size_t d = 0; d < ext.size(); ++d) f = f * ext[d] + idx[d];
  return f;
}

/// Strided pooling of x (B, C, in...) by looping over every tap of every window.
std::vector<double> reference_pool(const TD& x, const PoolCfg& c, Shape& out_shape) {
  const auto xs = x.shape();
  const int nd = xs.rank() - 2;
  const auto xv = x.to_vector();
  I64 in, out;
  for (int d = 0; d < nd; ++d) {
    const std::int64_t n = xs[2 + d], k = c.kernel[d], s = c.stride[d], p = c.padding[d], dil = c.dilation[d];
    const double q = static_cast<double>(n + 2 * p - dil * (k - 1) - 1) / static_cast<double>(s);
    std::int64_t o = static_cast<std::int64_t>(c.ceil_mode ? std::ceil(q) : std::floor(q)) + 1;
    if (c.ceil_mode && (o - 1) * s >= n + p) --o;
    in.push_back(n);
    out.push_back(o);
  }
  out_shape = Shape{xs[0], xs[1]};
  for (auto o : out) out_shape.push_back(o);
  const std::int64_t plane_in = Shape(in).numel();
  std::vector<double> y;
  for (std::int64_t bc = 0; bc < xs[0] * xs[1]; ++bc)
    for_each_index(out, [&](const I64& o) {
      double best = -std::numeric_limits<double>::infinity(), sum = 0;
      std::int64_t size_with_pad = 1, taps_inside = 0;
      for (int d = 0; d < nd; ++d) {
        const std::int64_t start = o[d] * c.stride[d] - c.padding[d];
        size_with_pad *= std::min(start + c.kernel[d], in[d] + c.padding[d]) - start;
      }
      for_each_index(c.kernel, [&](const I64& j) {
        I64 pos(nd);
        for (int d = 0; d < nd; ++d) {
          pos[d] = o[d] * c.stride[d] - c.padding[d] + j[d] * c.dilation[d];
          if (pos[d] < 0 || pos[d] >= in[d]) return;  // padding: −inf for max, skipped for the sum
        }
        const double v = xv[static_cast<std::size_t>(bc * plane_in + flat(pos, in))];
        best = std::max(best, v);
        sum += v;
        ++taps_inside;
      });
      y.push_back(c.max ? best : sum / static_cast<double>(c.count_include_pad ? size_with_pad : taps_inside));
    });
  return y;
}

/// Adaptive pooling of x (B, C, in...) with bins [⌊o·in/out⌋, ⌈(o+1)·in/out⌉).
std::vector<double> reference_adaptive(const TD& x, const I64& out, bool max) {
  const auto xs = x.shape();
  const int nd = xs.rank() - 2;
  const auto xv = x.to_vector();
  I64 in;
  for (int d = 0; d < nd; ++d) in.push_back(xs[2 + d]);
  const std::int64_t plane_in = Shape(in).numel();
  std::vector<double> y;
  for (std::int64_t bc = 0; bc < xs[0] * xs[1]; ++bc)
    for_each_index(out, [&](const I64& o) {
      I64 lo(nd), ext(nd);
      for (int d = 0; d < nd; ++d) {
        const double a = static_cast<double>(o[d] * in[d]) / static_cast<double>(out[d]);
        const double b = static_cast<double>((o[d] + 1) * in[d]) / static_cast<double>(out[d]);
        lo[d] = static_cast<std::int64_t>(std::floor(a));
        ext[d] = static_cast<std::int64_t>(std::ceil(b)) - lo[d];
      }
      double best = -std::numeric_limits<double>::infinity(), sum = 0;
      std::int64_t n = 0;
      for_each_index(ext, [&](const I64& j) {
        I64 pos(nd);
        for (int d = 0; d < nd; ++d) pos[d] = lo[d] + j[d];
        const double v = xv[static_cast<std::size_t>(bc * plane_in + flat(pos, in))];
        best = std::max(best, v);
        sum += v;
        ++n;
      });
      y.push_back(max ? best : sum / static_cast<double>(n));
    });
  return y;
}

/// The op under test for configuration c (nd from the input's rank).
TD run_pool(const TD& x, const PoolCfg& c) {
  const int nd = x.dim() - 2;
  PoolSize k(c.kernel), s(c.stride), p(c.padding), d(c.dilation);
  if (c.max) {
    if (nd == 1) return max_pool1d(x, k, s, p, d, c.ceil_mode);
    if (nd == 2) return max_pool2d(x, k, s, p, d, c.ceil_mode);
    return max_pool3d(x, k, s, p, d, c.ceil_mode);
  }
  if (nd == 1) return avg_pool1d(x, k, s, p, c.ceil_mode, c.count_include_pad);
  if (nd == 2) return avg_pool2d(x, k, s, p, c.ceil_mode, c.count_include_pad);
  return avg_pool3d(x, k, s, p, c.ceil_mode, c.count_include_pad);
}

TD run_adaptive(const TD& x, const I64& out, bool max) {
  const int nd = x.dim() - 2;
  PoolSize o(out);
  if (max) return nd == 1 ? adaptive_max_pool1d(x, o) : nd == 2 ? adaptive_max_pool2d(x, o) : adaptive_max_pool3d(x, o);
  return nd == 1 ? adaptive_avg_pool1d(x, o) : nd == 2 ? adaptive_avg_pool2d(x, o) : adaptive_avg_pool3d(x, o);
}

TD seq(const Shape& s, double start = 1) {
  return arange<double>(start, start + static_cast<double>(s.numel())).reshape(s);
}

// ---- configurations shared by the reference and gradcheck tests --------------------

struct Case {
  const char* name;
  Shape shape;
  PoolCfg cfg;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

PoolCfg mx(I64 k, I64 s, I64 p, I64 d, bool ceil = false) { return {true, k, s, p, d, ceil, true}; }
PoolCfg av(I64 k, I64 s, I64 p, bool ceil = false, bool cip = true) {
  I64 one(k.size(), 1);
  return {false, k, s, p, one, ceil, cip};
}

const std::vector<Case>& cases() {
  static const std::vector<Case> c = {
      {"max1d_basic", {2, 3, 9}, mx({2}, {2}, {0}, {1})},
      {"max1d_overlap_pad", {2, 2, 10}, mx({3}, {1}, {1}, {1})},
      {"max1d_dilated_ceil", {1, 3, 11}, mx({3}, {2}, {1}, {2}, true)},
      {"max2d_basic", {2, 3, 6, 8}, mx({2, 2}, {2, 2}, {0, 0}, {1, 1})},
      {"max2d_stride_ne_kernel", {2, 2, 7, 9}, mx({3, 2}, {2, 3}, {1, 0}, {1, 1})},
      {"max2d_pad_ceil", {1, 3, 7, 6}, mx({3, 3}, {2, 2}, {1, 1}, {1, 1}, true)},
      {"max2d_dilated", {2, 2, 9, 8}, mx({2, 3}, {1, 2}, {1, 1}, {3, 2})},
      {"max3d_basic", {2, 2, 4, 6, 6}, mx({1, 2, 2}, {1, 2, 2}, {0, 0, 0}, {1, 1, 1})},
      {"max3d_pad_stride", {1, 2, 5, 6, 7}, mx({2, 3, 3}, {2, 2, 3}, {1, 1, 1}, {1, 1, 1}, true)},
      {"max3d_dilated", {1, 2, 6, 5, 7}, mx({2, 2, 2}, {1, 2, 2}, {0, 1, 1}, {2, 1, 2})},
      {"avg1d_basic", {2, 3, 9}, av({3}, {3}, {0})},
      {"avg1d_pad_include", {2, 2, 10}, av({3}, {2}, {1})},
      {"avg1d_pad_exclude_ceil", {1, 3, 10}, av({4}, {3}, {2}, true, false)},
      {"avg2d_basic", {2, 3, 6, 8}, av({2, 2}, {2, 2}, {0, 0})},
      {"avg2d_stride_ne_kernel", {2, 2, 7, 9}, av({3, 2}, {2, 3}, {1, 1})},
      {"avg2d_pad_ceil_include", {1, 3, 6, 7}, av({3, 3}, {2, 2}, {1, 1}, true, true)},
      {"avg2d_pad_ceil_exclude", {1, 3, 6, 7}, av({3, 3}, {2, 2}, {1, 1}, true, false)},
      {"avg3d_basic", {2, 2, 4, 6, 6}, av({2, 2, 2}, {2, 2, 2}, {0, 0, 0})},
      {"avg3d_pad_stride", {1, 2, 5, 6, 7}, av({3, 2, 3}, {2, 1, 2}, {1, 1, 1}, true, false)},
      {"avg3d_pad_include", {2, 1, 6, 5, 4}, av({3, 3, 2}, {2, 2, 1}, {1, 1, 1}, true, true)},
  };
  return c;
}

// ---- forward values -----------------------------------------------------------------

TEST(Pool, MaxPoolHandValues) {
  auto x = seq({1, 1, 4, 4}, 0);  // 0..15 row-major
  expect_close(max_pool2d(x, 2), {5, 7, 13, 15});
  expect_close(max_pool2d(x, 3, 1), {10, 11, 14, 15});
  // padding is −inf: the corner windows of a zero-padded 3×3 see only the valid taps
  expect_close(max_pool2d(x, 3, 2, 1), {5, 7, 13, 15});
  // dilation 3 on [3,1,4,1,5,9,2,6]: window o reads x[o] and x[o+3]
  auto y = from_vector<double>({3, 1, 4, 1, 5, 9, 2, 6}, {1, 1, 8});
  expect_close(max_pool1d(y, 2, 1, 0, 3), {3, 5, 9, 2, 6});
  // a 3-d pool mixes time with space: (1,1,2,2,2) of 0..7 pooled whole is 7
  expect_close(max_pool3d(seq({1, 1, 2, 2, 2}, 0), 2), {7});
  expect_close(max_pool3d(seq({1, 1, 2, 2, 2}, 0), {2, 1, 2}), {5, 7});
}

TEST(Pool, AvgPoolHandValues) {
  auto x = seq({1, 1, 4, 4}, 0);
  expect_close(avg_pool2d(x, 2), {2.5, 4.5, 10.5, 12.5});
  // [1..5], kernel 3, stride 2, padding 1: windows [0,1,2] [2,3,4] [4,5,0]
  auto v = seq({1, 1, 5});
  expect_close(avg_pool1d(v, 3, 2, 1), {1, 3, 3});
  expect_close(avg_pool1d(v, 3, 2, 1, false, /*count_include_pad=*/false), {1.5, 3, 4.5});
  // two channels and a batch pool independently
  auto z = seq({2, 2, 4});
  expect_close(avg_pool1d(z, 2), {1.5, 3.5, 5.5, 7.5, 9.5, 11.5, 13.5, 15.5});
}

TEST(Pool, CeilModeHandValues) {
  auto v = seq({1, 1, 5});  // 1..5
  expect_close(max_pool1d(v, 2), {2, 4});
  expect_close(max_pool1d(v, 2, 2, 0, 1, true), {2, 4, 5});
  // the ragged last window [5] is divided by its clipped length 1, as PyTorch
  expect_close(avg_pool1d(v, 2, 2, 0, true), {1.5, 3.5, 5});
  // [1..6], k3 s2 p1 ceil: the last window starts at 5, spans [5, 7) of the padded input:
  // (6 + pad) / 2 with count_include_pad, 6 / 1 without
  auto w = seq({1, 1, 6});
  expect_close(avg_pool1d(w, 3, 2, 1, true), {1, 3, 5, 3});
  expect_close(avg_pool1d(w, 3, 2, 1, true, false), {1.5, 3, 5, 6});
  // a window that would start in the right padding is dropped: [1..5], k2 s2 p1 ceil gives
  // windows [-1,0] [1,2] [3,4], not a fourth at [5,6]
  auto y = max_pool1d(v, 2, 2, 1, 1, true);
  ASSERT_EQ(y.shape(), (Shape{1, 1, 3}));
  expect_close(y, {1, 3, 5});
}

TEST(Pool, AdaptiveHandValues) {
  auto v = seq({1, 1, 5});  // bins [0,2) [1,4) [3,5)
  expect_close(adaptive_avg_pool1d(v, 3), {1.5, 3, 4.5});
  expect_close(adaptive_max_pool1d(v, 3), {2, 4, 5});
  // more outputs than inputs: bins [0,1) [0,2) [1,2)
  auto u = from_vector<double>({2, 6}, {1, 1, 2});
  expect_close(adaptive_avg_pool1d(u, 3), {2, 4, 6});
  // 2-d: (4,4) → (2,2) is the 2×2 average; → (1,1) is the mean
  auto x = seq({1, 1, 4, 4}, 0);
  expect_close(adaptive_avg_pool2d(x, 2), {2.5, 4.5, 10.5, 12.5});
  expect_close(adaptive_avg_pool2d(x, {1, 2}), {6.5, 8.5});
  expect_close(adaptive_max_pool2d(x, {2, 1}), {7, 15});
  expect_close(adaptive_avg_pool3d(seq({1, 1, 2, 2, 2}, 0), 1), {3.5});
}

TEST(Pool, GlobalHandValues) {
  auto x = seq({2, 3, 2, 2}, 0);  // plane p holds 4p .. 4p+3
  expect_close(global_avg_pool(x), {1.5, 5.5, 9.5, 13.5, 17.5, 21.5});
  expect_close(global_max_pool(x), {3, 7, 11, 15, 19, 23});
  EXPECT_EQ(global_avg_pool(x).shape(), (Shape{2, 3}));
  EXPECT_EQ(global_max_pool(x).shape(), (Shape{2, 3}));
  // 1-d and 4-d spatial inputs (the latter flattened before pooling)
  expect_close(global_max_pool(seq({1, 2, 3})), {3, 6});
  expect_close(global_max_pool(seq({1, 1, 2, 1, 2, 2})), {8});
  expect_close(global_avg_pool(seq({1, 1, 2, 1, 2, 2})), {4.5});
}

TEST(Pool, NanPropagatesAndAllPaddingWindowIsMinusInf) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  auto y = max_pool1d(from_vector<double>({1, nan, 3, 0}, {1, 1, 4}), 2);
  EXPECT_TRUE(std::isnan(y.to_vector()[0]));
  EXPECT_EQ(y.to_vector()[1], 3);
  // in 2, kernel 2 dilated by 3 with padding 1: the one window reads positions −1 and 2
  auto x = leaf({1, 1, 2}, 3);
  auto z = max_pool1d(x, 2, 1, 1, 3);
  ASSERT_EQ(z.shape(), (Shape{1, 1, 1}));
  EXPECT_EQ(z.item(), -std::numeric_limits<double>::infinity());
  z.backward(ones<double>(z.shape()));
  expect_close(x.grad(), {0, 0});
}

class PoolReference : public ::testing::TestWithParam<Case> {};

TEST_P(PoolReference, ForwardMatchesNaiveLoops) {
  const auto& c = GetParam();
  for (bool transposed : {false, true}) {
    SCOPED_TRACE(transposed ? "transposed input" : "contiguous input");
    TD x = transposed ? leaf_transposed(c.shape, 11) : leaf(c.shape, 11);
    Shape expect_shape;
    auto ref = reference_pool(x, c.cfg, expect_shape);
    auto y = run_pool(x, c.cfg);
    ASSERT_EQ(y.shape(), expect_shape);
    expect_close(y, ref, 1e-12);
  }
}

TEST_P(PoolReference, Gradcheck) {
  const auto& c = GetParam();
  Fn f = [&](const std::vector<TD>& x) { return run_pool(x[0], c.cfg); };
  expect_gradcheck(f, {leaf(c.shape, 21)});
  expect_gradcheck(f, {leaf_transposed(c.shape, 22)});
}

INSTANTIATE_TEST_SUITE_P(Ops, PoolReference, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return std::string(info.param.name); });

struct AdaptiveCase {
  const char* name;
  Shape shape;
  I64 out;
};
void PrintTo(const AdaptiveCase& c, std::ostream* os) { *os << c.name; }
class AdaptivePool : public ::testing::TestWithParam<AdaptiveCase> {};

TEST_P(AdaptivePool, ForwardMatchesNaiveLoopsAndGradcheck) {
  const auto& c = GetParam();
  for (bool max : {false, true}) {
    SCOPED_TRACE(max ? "max" : "avg");
    for (bool transposed : {false, true}) {
      TD x = transposed ? leaf_transposed(c.shape, 31) : leaf(c.shape, 31);
      expect_close(run_adaptive(x, c.out, max), reference_adaptive(x, c.out, max), 1e-12);
    }
    Fn f = [&](const std::vector<TD>& x) { return run_adaptive(x[0], c.out, max); };
    expect_gradcheck(f, {leaf(c.shape, 32)});
    expect_gradcheck(f, {leaf_transposed(c.shape, 33)});
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, AdaptivePool,
                         ::testing::Values(AdaptiveCase{"a1d_shrink", {2, 3, 10}, {4}},
                                           AdaptiveCase{"a1d_grow", {1, 2, 3}, {5}},
                                           AdaptiveCase{"a2d_uneven", {2, 2, 7, 5}, {3, 2}},
                                           AdaptiveCase{"a2d_to_one", {2, 3, 4, 5}, {1, 1}},
                                           AdaptiveCase{"a3d_mixed", {1, 2, 5, 4, 6}, {2, 3, 4}}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Pool, GlobalGradcheck) {
  for (auto shape : {Shape{2, 3, 5}, Shape{2, 3, 4, 5}, Shape{1, 2, 3, 2, 4}, Shape{1, 2, 2, 3, 2, 2}}) {
    SCOPED_TRACE(shape.str());
    expect_gradcheck([](const std::vector<TD>& x) { return global_avg_pool(x[0]); }, {leaf(shape, 41)});
    expect_gradcheck([](const std::vector<TD>& x) { return global_max_pool(x[0]); }, {leaf(shape, 42)});
    expect_gradcheck([](const std::vector<TD>& x) { return global_max_pool(x[0]); }, {leaf_transposed(shape, 43)});
  }
}

// ---- gradient routing ---------------------------------------------------------------

TEST(Pool, MaxPoolGradientGoesToTheArgmax) {
  // 0..15 in 4×4: the maxima of the 2×2 windows sit at 5, 7, 13, 15
  auto x = seq({1, 1, 4, 4}, 0);
  x.requires_grad_();
  auto y = max_pool2d(x, 2);
  y.backward(from_vector<double>({1, 2, 3, 4}, {1, 1, 2, 2}));
  expect_close(x.grad(), {0, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 3, 0, 4});
  // overlapping windows: [1,3,2] [3,2,5] [2,5,4] → the 5 is the max twice and gets both
  auto v = from_vector<double>({1, 3, 2, 5, 4}, {1, 1, 5});
  v.requires_grad_();
  max_pool1d(v, 3, 1).backward(from_vector<double>({10, 20, 30}, {1, 1, 3}));
  expect_close(v.grad(), {0, 10, 0, 50, 0});
  // a window of −inf still routes its gradient to its first tap
  const double inf = std::numeric_limits<double>::infinity();
  auto m = from_vector<double>({-inf, -inf, 1, 2}, {1, 1, 4});
  m.requires_grad_();
  auto my = max_pool1d(m, 2);
  EXPECT_EQ(my.to_vector(), (std::vector<double>{-inf, 2}));
  my.backward(ones<double>({1, 1, 2}));
  expect_close(m.grad(), {1, 0, 0, 1});
  // ties go to the first maximum of the window, as PyTorch's CPU kernel
  auto t = from_vector<double>({2, 2, 1, 1}, {1, 1, 4});
  t.requires_grad_();
  max_pool1d(t, 4).backward(ones<double>({1, 1, 1}));
  expect_close(t.grad(), {1, 0, 0, 0});
  // the gradient accumulates (+=) into an existing leaf gradient
  max_pool1d(t, 4).backward(ones<double>({1, 1, 1}));
  expect_close(t.grad(), {2, 0, 0, 0});
}

// Windows that tile a contiguous last dim two at a time (2×2, 1×2×2, 2×2×2) take a dedicated
// loop; on the same values laid out with a strided last dim the general loop runs. Both must
// give identical values and argmax routing, with many ties, NaNs and −inf in the windows.
template <class T> void expect_tiled_path_matches_general(const Shape& shape, const PoolSize& k, std::uint64_t seed) {
  Generator g(seed);
  auto u = rand<T>(shape, g, 0.0, 1.0).to_vector();
  for (auto& v : u) {
    const double r = static_cast<double>(v);
    v = r < 0.05  ? std::numeric_limits<T>::quiet_NaN()
        : r < 0.1 ? -std::numeric_limits<T>::infinity()
                  : std::floor(r * 3);
  }
  auto x = from_vector<T>(u, shape);
  auto xs = x.transpose(-1, -2).contiguous().transpose(-1, -2);  // same values, last-dim stride ≠ 1
  ASSERT_NE(xs.strides().back(), 1);
  x.requires_grad_();
  xs.requires_grad_();
  auto pool = [&](const Tensor<T, Cpu>& in) { return shape.rank() == 4 ? max_pool2d(in, k) : max_pool3d(in, k); };
  auto y = pool(x), ys = pool(xs);
  const auto a = y.to_vector(), b = ys.to_vector();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))
        << "output " << i << ": " << a[i] << " vs " << b[i];
  auto seed_grad = rand<T>(y.shape(), g, 1.0, 2.0);
  y.backward(seed_grad);
  ys.backward(seed_grad);
  EXPECT_EQ(x.grad().to_vector(), xs.grad().contiguous().to_vector());
}

TEST(Pool, TiledWindowsMatchTheGeneralLoopOnTiesNanAndInf) {
  expect_tiled_path_matches_general<float>({2, 3, 6, 10}, 2, 41);
  expect_tiled_path_matches_general<double>({2, 3, 7, 9}, 2, 42);  // odd extents: the last row/column is dropped
  expect_tiled_path_matches_general<float>({2, 2, 4, 6, 8}, PoolSize{1, 2, 2}, 43);
  expect_tiled_path_matches_general<float>({2, 2, 4, 6, 8}, PoolSize{2, 2, 2}, 44);
  expect_tiled_path_matches_general<double>({1, 2, 5, 6, 8}, PoolSize{2, 2, 2}, 45);
}

TEST(Pool, AvgPoolGradientSpreadsOverTheWindow) {
  // [1..5], k3 s2 p1 with padding counted: each window hands g/3 to its valid taps
  auto v = seq({1, 1, 5});
  v.requires_grad_();
  avg_pool1d(v, 3, 2, 1).backward(from_vector<double>({3, 6, 9}, {1, 1, 3}));
  expect_close(v.grad(), {1, 1 + 2, 2, 2 + 3, 3});
  auto w = seq({1, 1, 5});
  w.requires_grad_();
  avg_pool1d(w, 3, 2, 1, false, false).backward(from_vector<double>({2, 3, 4}, {1, 1, 3}));
  expect_close(w.grad(), {1, 1 + 1, 1, 1 + 2, 2});
}

// ---- float, large inputs, no-grad ---------------------------------------------------

TEST(Pool, FloatParallelPathMatchesDoubleReference) {
  // above the parallel grain: (2, 16, 40, 36) pooled by planes across threads
  Generator gen(7);
  auto xd = randn<double>({2, 16, 40, 36}, gen);
  auto xf = xd.to<float>();
  for (const auto& c : {mx({3, 3}, {2, 2}, {1, 1}, {1, 1}, true), av({2, 3}, {2, 2}, {1, 1}, false, false)}) {
    Shape s;
    auto ref = reference_pool(xd, c, s);
    auto yf = c.max ? max_pool2d(xf, PoolSize(c.kernel), PoolSize(c.stride), PoolSize(c.padding), 1, c.ceil_mode)
                    : avg_pool2d(xf, PoolSize(c.kernel), PoolSize(c.stride), PoolSize(c.padding), c.ceil_mode,
                                 c.count_include_pad);
    ASSERT_EQ(yf.shape(), s);
    auto v = yf.to_vector();
    for (std::size_t i = 0; i < v.size(); ++i) ASSERT_NEAR(v[i], ref[i], 1e-5) << "element " << i;
  }
  // the backward of a large max pool: each plane's gradient sums to the plane's Σg
  auto x = xf.detach();
  x.requires_grad_();
  auto y = max_pool2d(x, 2);
  y.backward(ones<float>(y.shape()));
  auto gs = sum(x.grad(), {2, 3}).to_vector();
  for (float e : gs) EXPECT_FLOAT_EQ(e, 20.0f * 18.0f);
}

TEST(Pool, NoGradInputRecordsNothing) {
  auto x = randn<double>({1, 2, 6, 6});
  EXPECT_FALSE(max_pool2d(x, 2).requires_grad());
  EXPECT_FALSE(avg_pool2d(x, 2).requires_grad());
  auto l = leaf({1, 2, 6, 6}, 5);
  {
    NoGradGuard ng;
    EXPECT_FALSE(max_pool2d(l, 2).requires_grad());
  }
  EXPECT_TRUE(max_pool2d(l, 2).requires_grad());
}

// ---- errors -------------------------------------------------------------------------

TEST(Pool, ErrorsNameOpShapesAndValues) {
  auto x = randn<double>({1, 2, 5, 5});
  expect_error([&] { max_pool2d(randn<double>({2, 5, 5}), 2); }, {"max_pool2d", "4-D", "(2,5,5)"});
  expect_error([&] { avg_pool1d(x, 2); }, {"avg_pool1d", "3-D", "(1,2,5,5)"});
  expect_error([&] { max_pool3d(x, 2); }, {"max_pool3d", "5-D", "(1,2,5,5)"});
  expect_error([&] { max_pool2d(x, 6); }, {"max_pool2d", "larger than the padded input", "(1,2,5,5)"});
  expect_error([&] { max_pool2d(x, 3, 1, 0, 3); }, {"max_pool2d", "extent 7", "dilation 3"});
  expect_error([&] { avg_pool2d(x, 3, 1, 2); }, {"avg_pool2d", "padding", "2", "kernel_size 3"});
  expect_error([&] { max_pool2d(x, 2, 1, -1); }, {"max_pool2d", "padding -1"});
  expect_error([&] { max_pool2d(x, 2, 0); }, {"max_pool2d", "stride must be positive", "0"});
  expect_error([&] { avg_pool2d(x, 2, {1, -2}); }, {"avg_pool2d", "stride must be positive", "-2"});
  expect_error([&] { max_pool2d(x, 0); }, {"max_pool2d", "kernel_size must be positive"});
  expect_error([&] { max_pool2d(x, 2, 1, 0, 0); }, {"max_pool2d", "dilation must be positive"});
  expect_error([&] { max_pool2d(x, {2, 2, 2}); }, {"max_pool2d", "kernel_size", "1 or 2 values", "3"});
  expect_error([&] { max_pool2d(x, PoolSize{}); }, {"max_pool2d", "kernel_size", "got 0"});
  expect_error([&] { adaptive_avg_pool2d(x, {3, 0}); }, {"adaptive_avg_pool2d", "output size must be positive", "0"});
  expect_error([&] { adaptive_max_pool1d(randn<double>({1, 2, 0}), 2); }, {"adaptive_max_pool1d", "empty", "(1,2,0)"});
  expect_error([&] { global_avg_pool(randn<double>({2, 3})); }, {"global_avg_pool", "(2,3)"});
  expect_error([&] { global_max_pool(randn<double>({2, 3, 0})); }, {"global_max_pool", "empty", "(2,3,0)"});
  expect_error([&] { max_pool2d(TD(), 2); }, {"max_pool2d", "undefined"});
}

}  // namespace
