// conv1d/2d/3d and conv_transpose1d/2d/3d: forward values against direct loops
// written in the test (gather form for conv, scatter form for the transpose),
// gradchecks over stride/padding/dilation/groups combinations, error messages,
// and GEMM call counts proving that a frozen-weight backward computes only dX.
#include <omp.h>

#include <array>

#include "avgrad/autograd/engine.hpp"
#include "avgrad/ops/conv.hpp"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::testing;

namespace {

using Arr = std::array<std::int64_t, 3>;

/// Normalises an N-d spec to 3 spatial dims (leading unit dims), as plain arrays.
struct Spec {
  Arr stride{1, 1, 1}, pad{0, 0, 0}, dil{1, 1, 1}, out_pad{0, 0, 0};
  std::int64_t groups = 1;
};

Arr spatial3(const Shape& s) {  // spatial dims of an NC… shape, left-padded with 1s
  Arr a{1, 1, 1};
  const int nd = s.rank() - 2;
  for (int i = 0; i < nd; ++i) a[static_cast<std::size_t>(3 - nd + i)] = s[2 + i];
  return a;
}

template <class T> std::vector<T> vals(const Tensor<T, Cpu>& t) { return t.to_vector(); }

/// Direct convolution: y[n,co,o] = b[co] + Σ_{ci in group, k} x[n, ci, o·s − p + k·d] · w[co, ci − g·Cg, k].
template <class T>
Tensor<T, Cpu> ref_conv(const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& w, const Tensor<T, Cpu>& b, const Spec& sp) {
  const std::int64_t N = x.size(0), C = x.size(1), Co = w.size(0), Cg = C / sp.groups, Cog = Co / sp.groups;
  const Arr in = spatial3(x.shape()), k = spatial3(w.shape());
  Arr out;
  for (std::size_t d = 0; d < 3; ++d) out[d] = (in[d] + 2 * sp.pad[d] - sp.dil[d] * (k[d] - 1) - 1) / sp.stride[d] + 1;
  auto xv = vals(x), wv = vals(w);
  std::vector<T> bv = b.defined() ? vals(b) : std::vector<T>(static_cast<std::size_t>(Co), T(0));
  std::vector<T> y;
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t co = 0; co < Co; ++co)
      for (std::int64_t o0 = 0; o0 < out[0]; ++o0)
        for (std::int64_t o1 = 0; o1 < out[1]; ++o1)
          for (std::int64_t o2 = 0; o2 < out[2]; ++o2) {
            double acc = double(bv[static_cast<std::size_t>(co)]);
            const std::int64_t grp = co / Cog;
            for (std::int64_t cl = 0; cl < Cg; ++cl)
              for (std::int64_t k0 = 0; k0 < k[0]; ++k0)
                for (std::int64_t k1 = 0; k1 < k[1]; ++k1)
                  for (std::int64_t k2 = 0; k2 < k[2]; ++k2) {
                    const std::int64_t i0 = o0 * sp.stride[0] - sp.pad[0] + k0 * sp.dil[0];
                    const std::int64_t i1 = o1 * sp.stride[1] - sp.pad[1] + k1 * sp.dil[1];
                    const std::int64_t i2 = o2 * sp.stride[2] - sp.pad[2] + k2 * sp.dil[2];
                    if (i0 < 0 || i0 >= in[0] || i1 < 0 || i1 >= in[1] || i2 < 0 || i2 >= in[2]) continue;
                    const std::int64_t ci = grp * Cg + cl;
                    const auto xi = (((n * C + ci) * in[0] + i0) * in[1] + i1) * in[2] + i2;
                    const auto wi = (((co * Cg + cl) * k[0] + k0) * k[1] + k1) * k[2] + k2;
                    acc += double(xv[static_cast<std::size_t>(xi)]) * double(wv[static_cast<std::size_t>(wi)]);
                  }
            y.push_back(static_cast<T>(acc));
          }
  Shape ys{N, Co};
  for (int d = 3 - (x.dim() - 2); d < 3; ++d) ys.push_back(out[static_cast<std::size_t>(d)]);
  return from_vector<T>(y, ys);
}

/// Direct transposed convolution in scatter form: every input element adds
/// x[n,ci,i] · w[ci, co − g·Cog, k] into y[n, co, i·s − p + k·d].
template <class T> Tensor<T, Cpu> ref_conv_transpose(const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& w,
                                                     const Tensor<T, Cpu>& b, const Spec& sp) {
  const std::int64_t N = x.size(0), Cin = x.size(1), Cig = Cin / sp.groups, Cog = w.size(1), Co = Cog * sp.groups;
  const Arr in = spatial3(x.shape()), k = spatial3(w.shape());
  Arr out;
  for (std::size_t d = 0; d < 3; ++d)
    out[d] = (in[d] - 1) * sp.stride[d] - 2 * sp.pad[d] + sp.dil[d] * (k[d] - 1) + sp.out_pad[d] + 1;
  const std::int64_t L = out[0] * out[1] * out[2];
  std::vector<double> y(static_cast<std::size_t>(N * Co * L), 0.0);
  auto xv = vals(x), wv = vals(w);
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t co = 0; co < Co; ++co)
      for (std::int64_t l = 0; l < L; ++l)
        y[static_cast<std::size_t>((n * Co + co) * L + l)] = b.defined() ? double(b.at({co})) : 0.0;
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t ci = 0; ci < Cin; ++ci)
      for (std::int64_t i0 = 0; i0 < in[0]; ++i0)
        for (std::int64_t i1 = 0; i1 < in[1]; ++i1)
          for (std::int64_t i2 = 0; i2 < in[2]; ++i2) {
            const double xval =
                double(xv[static_cast<std::size_t>((((n * Cin + ci) * in[0] + i0) * in[1] + i1) * in[2] + i2)]);
            const std::int64_t grp = ci / Cig;
            for (std::int64_t cl = 0; cl < Cog; ++cl)
              for (std::int64_t k0 = 0; k0 < k[0]; ++k0)
                for (std::int64_t k1 = 0; k1 < k[1]; ++k1)
                  for (std::int64_t k2 = 0; k2 < k[2]; ++k2) {
                    const std::int64_t o0 = i0 * sp.stride[0] - sp.pad[0] + k0 * sp.dil[0];
                    const std::int64_t o1 = i1 * sp.stride[1] - sp.pad[1] + k1 * sp.dil[1];
                    const std::int64_t o2 = i2 * sp.stride[2] - sp.pad[2] + k2 * sp.dil[2];
                    if (o0 < 0 || o0 >= out[0] || o1 < 0 || o1 >= out[1] || o2 < 0 || o2 >= out[2]) continue;
                    const std::int64_t co = grp * Cog + cl;
                    const auto wi = (((ci * Cog + cl) * k[0] + k0) * k[1] + k1) * k[2] + k2;
                    y[static_cast<std::size_t>((n * Co + co) * L + (o0 * out[1] + o1) * out[2] + o2)] +=
                        xval * double(wv[static_cast<std::size_t>(wi)]);
                  }
          }
  Shape ys{N, Co};
  for (int d = 3 - (x.dim() - 2); d < 3; ++d) ys.push_back(out[static_cast<std::size_t>(d)]);
  std::vector<T> yt(y.begin(), y.end());
  return from_vector<T>(yt, ys);
}

template <class T> void expect_tensors_close(const Tensor<T, Cpu>& got, const Tensor<T, Cpu>& want, double tol) {
  ASSERT_EQ(got.shape(), want.shape());
  auto g = got.to_vector(), w = want.to_vector();
  for (std::size_t i = 0; i < g.size(); ++i) ASSERT_NEAR(double(g[i]), double(w[i]), tol) << "element " << i;
}

// ---- one case per line: ranks, shapes and the full spec --------------------------

struct ConvCase {
  const char* name;
  Shape x, w;
  Spec sp;
  bool bias = true;
};

/// The avgrad op of the case's rank, with the spec passed as per-dim values.
template <class T>
Tensor<T, Cpu> run_conv(const ConvCase& c, const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& w, const Tensor<T, Cpu>& b) {
  const auto& s = c.sp;
  switch (c.x.rank() - 2) {
    case 1:
      return conv1d(x, w, b, {s.stride[2]}, {s.pad[2]}, {s.dil[2]}, s.groups);
    case 2:
      return conv2d(x, w, b, {s.stride[1], s.stride[2]}, {s.pad[1], s.pad[2]}, {s.dil[1], s.dil[2]}, s.groups);
    default:
      return conv3d(x, w, b, {s.stride[0], s.stride[1], s.stride[2]}, {s.pad[0], s.pad[1], s.pad[2]},
                    {s.dil[0], s.dil[1], s.dil[2]}, s.groups);
  }
}
template <class T> Tensor<T, Cpu> run_conv_transpose(const ConvCase& c, const Tensor<T, Cpu>& x,
                                                     const Tensor<T, Cpu>& w, const Tensor<T, Cpu>& b) {
  const auto& s = c.sp;
  switch (c.x.rank() - 2) {
    case 1:
      return conv_transpose1d(x, w, b, {s.stride[2]}, {s.pad[2]}, {s.out_pad[2]}, s.groups, {s.dil[2]});
    case 2:
      return conv_transpose2d(x, w, b, {s.stride[1], s.stride[2]}, {s.pad[1], s.pad[2]}, {s.out_pad[1], s.out_pad[2]},
                              s.groups, {s.dil[1], s.dil[2]});
    default:
      return conv_transpose3d(x, w, b, {s.stride[0], s.stride[1], s.stride[2]}, {s.pad[0], s.pad[1], s.pad[2]},
                              {s.out_pad[0], s.out_pad[1], s.out_pad[2]}, s.groups, {s.dil[0], s.dil[1], s.dil[2]});
  }
}

Spec spec(Arr stride, Arr pad, Arr dil, std::int64_t groups, Arr out_pad = {0, 0, 0}) {
  return Spec{stride, pad, dil, out_pad, groups};
}

void PrintTo(const ConvCase& c, std::ostream* os) { *os << c.name; }  // readable failure messages

class Conv : public ::testing::TestWithParam<ConvCase> {};

TEST_P(Conv, ForwardMatchesDirectLoops) {
  const auto& c = GetParam();
  auto x = leaf(c.x, 1), w = leaf(c.w, 2), b = c.bias ? leaf({c.w[0]}, 3) : TD();
  expect_tensors_close(run_conv(c, x, w, b), ref_conv(x, w, b, c.sp), 1e-12);
  auto xf = x.detach().to<float>(), wf = w.detach().to<float>();
  auto bf = b.defined() ? b.detach().to<float>() : TF();
  expect_tensors_close(run_conv(c, xf, wf, bf), ref_conv(xf, wf, bf, c.sp), 1e-4);
}

TEST_P(Conv, Gradcheck) {
  const auto& c = GetParam();
  std::vector<TD> in{leaf(c.x, 4), leaf(c.w, 5)};
  if (c.bias) in.push_back(leaf({c.w[0]}, 6));
  Fn f = [&](const std::vector<TD>& v) { return run_conv(c, v[0], v[1], c.bias ? v[2] : TD()); };
  expect_gradcheck(f, in);
}

INSTANTIATE_TEST_SUITE_P(
    Ops, Conv,
    ::testing::Values(
        ConvCase{"c1_plain", {2, 3, 7}, {4, 3, 3}, spec({1, 1, 1}, {0, 0, 0}, {1, 1, 1}, 1)},
        ConvCase{"c1_stride_pad_dil_groups", {2, 4, 9}, {6, 2, 3}, spec({1, 1, 2}, {0, 0, 2}, {1, 1, 2}, 2)},
        ConvCase{"c1_pointwise", {2, 3, 5}, {4, 3, 1}, spec({1, 1, 1}, {0, 0, 0}, {1, 1, 1}, 1), false},
        ConvCase{"c2_pad", {2, 3, 5, 6}, {4, 3, 3, 3}, spec({1, 1, 1}, {0, 1, 1}, {1, 1, 1}, 1)},
        ConvCase{"c2_stride_asym", {2, 2, 7, 6}, {3, 2, 3, 2}, spec({1, 2, 1}, {0, 1, 0}, {1, 1, 1}, 1), false},
        ConvCase{"c2_dilation", {1, 2, 7, 7}, {3, 2, 3, 3}, spec({1, 1, 1}, {0, 2, 1}, {1, 2, 3}, 1)},
        ConvCase{"c2_groups", {2, 4, 5, 5}, {6, 2, 3, 3}, spec({1, 2, 2}, {0, 1, 1}, {1, 1, 1}, 2)},
        ConvCase{"c2_depthwise", {2, 3, 6, 5}, {3, 1, 3, 3}, spec({1, 1, 1}, {0, 1, 1}, {1, 1, 1}, 3)},
        ConvCase{"c2_pointwise", {2, 4, 3, 4}, {5, 4, 1, 1}, spec({1, 1, 1}, {0, 0, 0}, {1, 1, 1}, 1)},
        ConvCase{"c2_1x1_strided", {2, 4, 5, 5}, {4, 2, 1, 1}, spec({1, 2, 2}, {0, 1, 0}, {1, 1, 1}, 2)},
        ConvCase{"c3_plain", {1, 2, 4, 4, 3}, {2, 2, 2, 2, 2}, spec({1, 1, 1}, {0, 0, 0}, {1, 1, 1}, 1)},
        ConvCase{"c3_all", {2, 2, 5, 4, 4}, {4, 1, 2, 3, 2}, spec({2, 1, 2}, {1, 1, 0}, {1, 1, 2}, 2)}),
    [](const auto& info) { return std::string(info.param.name); });

class ConvTranspose : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvTranspose, ForwardMatchesScatterLoops) {
  const auto& c = GetParam();
  const std::int64_t co = c.w[1] * c.sp.groups;
  auto x = leaf(c.x, 1), w = leaf(c.w, 2), b = c.bias ? leaf({co}, 3) : TD();
  expect_tensors_close(run_conv_transpose(c, x, w, b), ref_conv_transpose(x, w, b, c.sp), 1e-12);
  auto xf = x.detach().to<float>(), wf = w.detach().to<float>();
  auto bf = b.defined() ? b.detach().to<float>() : TF();
  expect_tensors_close(run_conv_transpose(c, xf, wf, bf), ref_conv_transpose(xf, wf, bf, c.sp), 1e-4);
}

TEST_P(ConvTranspose, Gradcheck) {
  const auto& c = GetParam();
  std::vector<TD> in{leaf(c.x, 4), leaf(c.w, 5)};
  if (c.bias) in.push_back(leaf({c.w[1] * c.sp.groups}, 6));
  Fn f = [&](const std::vector<TD>& v) { return run_conv_transpose(c, v[0], v[1], c.bias ? v[2] : TD()); };
  expect_gradcheck(f, in);
}

INSTANTIATE_TEST_SUITE_P(
    Ops, ConvTranspose,
    ::testing::Values(
        ConvCase{"t2_plain", {2, 3, 4, 4}, {3, 2, 3, 3}, spec({1, 1, 1}, {0, 0, 0}, {1, 1, 1}, 1)},
        ConvCase{
            "t2_stride_pad_outpad", {2, 2, 3, 4}, {2, 3, 3, 3}, spec({1, 2, 2}, {0, 1, 1}, {1, 1, 1}, 1, {0, 1, 0})},
        ConvCase{"t2_groups_dilation", {1, 4, 3, 3}, {4, 2, 3, 2}, spec({1, 2, 1}, {0, 1, 0}, {1, 1, 2}, 2, {0, 1, 1})},
        ConvCase{"t2_pointwise", {2, 3, 3, 2}, {3, 2, 1, 1}, spec({1, 1, 1}, {0, 0, 0}, {1, 1, 1}, 1), false},
        ConvCase{"t1_stride", {2, 2, 5}, {2, 3, 4}, spec({1, 1, 3}, {0, 0, 1}, {1, 1, 1}, 1, {0, 0, 2})},
        ConvCase{"t3_small", {1, 2, 2, 3, 2}, {2, 1, 2, 2, 2}, spec({2, 1, 1}, {0, 1, 0}, {1, 1, 1}, 2, {1, 0, 0})}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Conv, HandComputedValues) {
  // 1-D: x = [1 2 3 4], w = [1 0 −1], padding 1 → [−2 −2 −2 3]
  auto x = from_vector<double>({1, 2, 3, 4}, {1, 1, 4});
  auto w = from_vector<double>({1, 0, -1}, {1, 1, 3});
  expect_close(conv1d(x, w, TD(), 1, 1), {-2, -2, -2, 3});
  // transposed 1-D, stride 2: [1 2] ⊛ᵀ [1 1] → [1 1 2 2]
  auto t = conv_transpose1d(from_vector<double>({1, 2}, {1, 1, 2}), from_vector<double>({1, 1}, {1, 1, 2}), TD(), 2);
  expect_close(t, {1, 1, 2, 2});
}

TEST(Conv, NonContiguousInputs) {
  // x as a transposed view of its H/W dims, weights as a permuted view
  auto x = leaf_transposed({2, 3, 5, 4}, 7);
  Generator g(8);
  TD wbase = randn<double>({3, 3, 4, 2}, g);    // stored as (C_in, kH, C_out, kW)
  TD w = wbase.permute({2, 0, 1, 3}).detach();  // viewed as (C_out 4, C_in 3, kH 3, kW 2), non-contiguous
  w.requires_grad_();
  expect_tensors_close(conv2d(x, w, TD(), 1, {1, 0}), ref_conv(x, w, TD(), spec({1, 1, 1}, {0, 1, 0}, {1, 1, 1}, 1)),
                       1e-12);
  expect_gradcheck([](const std::vector<TD>& v) { return conv2d(v[0], v[1], TD(), 1, {1, 0}); }, {x, w});
}

TEST(Conv, ParallelPathsMatchReferenceAndThreadCount) {
  // large enough for the per-sample parallel loop and the partitioned weight gradient
  Generator g(3);
  auto x = randn<double>({6, 8, 10, 9}, g), w = randn<double>({12, 4, 3, 3}, g), b = randn<double>({12}, g);
  x.requires_grad_();
  w.requires_grad_();
  b.requires_grad_();
  const Spec sp = spec({1, 1, 1}, {0, 1, 1}, {1, 1, 1}, 2);
  auto run = [&](int threads) {
    omp_set_num_threads(threads);
    x.zero_grad();
    w.zero_grad();
    b.zero_grad();
    auto y = conv2d(x, w, b, 1, 1, 1, 2);
    Generator gs(4);
    y.backward(randn<double>(y.shape(), gs));
    return std::array<std::vector<double>, 4>{y.to_vector(), x.grad().to_vector(), w.grad().to_vector(),
                                              b.grad().to_vector()};
  };
  const int max_threads = omp_get_max_threads();
  auto two = run(2), one = run(1);
  omp_set_num_threads(max_threads);
  expect_tensors_close(from_vector<double>(two[0], {6, 12, 10, 9}), ref_conv(x.detach(), w.detach(), b.detach(), sp),
                       1e-10);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(one[i], two[i]) << "result " << i << " depends on the thread count";
  // and the gradients are right: gradcheck on a random subset
  GradcheckOptions opt;
  opt.max_elements = 48;
  expect_gradcheck([](const std::vector<TD>& v) { return conv2d(v[0], v[1], v[2], 1, 1, 1, 2); }, {x, w, b}, opt);
}

TEST(Conv, FrozenWeightsComputeOnlyInputGradient) {
  // The FLOP count pins down the work exactly: dX alone is N·2·(C_in·k)·L·C_out
  // multiply-adds; dW would add as much again. Calls: dX and dW use the same
  // chunking, so a trainable backward makes exactly twice the frozen one's calls.
  const std::int64_t N = 3, G = 2, Co = 8, Ck = 4 * 9, L = 6 * 6;
  const std::uint64_t dx_flops = std::uint64_t(N * 2 * Ck * L * Co / G);
  auto x = leaf({N, 4, 6, 6}, 1);
  auto w = leaf({Co, 2, 3, 3}, 2);
  auto b = leaf({Co}, 3);
  w.requires_grad_(false);
  b.requires_grad_(false);
  auto y = conv2d(x, w, b, 1, 1, 1, G);
  cpu::reset_gemm_stats();
  y.backward(ones<double>(y.shape()));
  const auto frozen = cpu::gemm_stats();
  EXPECT_EQ(frozen.flops, dx_flops);              // Wᵀ·dY only
  EXPECT_EQ(frozen.calls, std::uint64_t(N * G));  // one chunk per sample here: one product per (sample, group)
  EXPECT_TRUE(x.grad().defined());
  EXPECT_FALSE(w.grad().defined());
  EXPECT_FALSE(b.grad().defined());

  w.requires_grad_(true);  // trainable: dX and dW
  auto y2 = conv2d(x, w, b, 1, 1, 1, G);
  cpu::reset_gemm_stats();
  y2.backward(ones<double>(y2.shape()));
  EXPECT_EQ(cpu::gemm_stats().flops, 2 * dx_flops);
  EXPECT_EQ(cpu::gemm_stats().calls, 2 * frozen.calls);

  // transposed conv with frozen weights: dX is one conv forward of dy
  auto xt = leaf({N, 4, 3, 3}, 4);
  auto wt = leaf({4, 3, 3, 3}, 5);  // (C_in 4, C_out/G 3, 3, 3) → C_out 6
  wt.requires_grad_(false);
  auto yt = conv_transpose2d(xt, wt, TD(), 2, 1, 1, G);  // (3, 6, 6, 6)
  cpu::reset_gemm_stats();
  yt.backward(ones<double>(yt.shape()));
  EXPECT_EQ(cpu::gemm_stats().flops, std::uint64_t(N * 2 * (6 * 9) * (3 * 3) * 4 / G));
  EXPECT_FALSE(wt.grad().defined());

  // and the frozen-weight backward is chunked like the forward when chunks are small
  detail::conv_chunk_bytes = 1;  // 64 positions per chunk
  auto xl = leaf({2, 2, 10, 13}, 6);
  auto wl = leaf({4, 2, 3, 3}, 7);
  wl.requires_grad_(false);
  auto yl = conv2d(xl, wl, TD(), 1, 1);  // L = 130: chunks of 64, 64, 2
  cpu::reset_gemm_stats();
  yl.backward(ones<double>(yl.shape()));
  detail::conv_chunk_bytes = detail::kDefaultConvChunkBytes;
  EXPECT_EQ(cpu::gemm_stats().calls, 2u * 3);
  EXPECT_EQ(cpu::gemm_stats().flops, std::uint64_t(2 * 2 * 18 * 130 * 4));
}

/// Runs a test body with 64-position chunks, so chunk edges fall inside small images.
struct SmallChunks {
  SmallChunks() { detail::conv_chunk_bytes = 1; }
  ~SmallChunks() { detail::conv_chunk_bytes = detail::kDefaultConvChunkBytes; }
};

TEST(Conv, ChunkEdgesMatchReference) {
  SmallChunks small;
  // 2-D: L = 10·13 = 130 (chunks 64, 64, 2, edges mid-row); 1-D strided: L = 75; 3-D: L = 3·5·6 = 90
  const std::vector<ConvCase> cases{
      ConvCase{"c2", {2, 2, 10, 13}, {4, 2, 3, 3}, spec({1, 1, 1}, {0, 1, 1}, {1, 1, 1}, 1)},
      ConvCase{"c2_groups_stride", {1, 4, 19, 27}, {4, 2, 3, 2}, spec({1, 2, 2}, {0, 1, 0}, {1, 1, 2}, 2)},
      ConvCase{"c1", {2, 3, 150}, {2, 3, 4}, spec({1, 1, 2}, {0, 0, 1}, {1, 1, 1}, 1)},
      ConvCase{"c3", {1, 2, 5, 5, 6}, {3, 2, 3, 1, 2}, spec({1, 1, 1}, {0, 0, 1}, {1, 1, 1}, 1)},
      ConvCase{"c2_pointwise", {2, 3, 9, 9}, {2, 3, 1, 1}, spec({1, 1, 1}, {0, 0, 0}, {1, 1, 1}, 1)}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto x = leaf(c.x, 1), w = leaf(c.w, 2), b = leaf({c.w[0]}, 3);
    expect_tensors_close(run_conv(c, x, w, b), ref_conv(x, w, b, c.sp), 1e-12);
    GradcheckOptions opt;
    opt.max_elements = 64;
    expect_gradcheck([&](const std::vector<TD>& v) { return run_conv(c, v[0], v[1], v[2]); }, {x, w, b}, opt);
  }
  const ConvCase t{"t2", {2, 3, 6, 7}, {3, 2, 3, 3}, spec({1, 2, 2}, {0, 1, 1}, {1, 1, 1}, 1, {0, 1, 0})};  // y 12×13
  auto x = leaf(t.x, 4), w = leaf(t.w, 5), b = leaf({2}, 6);
  expect_tensors_close(run_conv_transpose(t, x, w, b), ref_conv_transpose(x, w, b, t.sp), 1e-12);
  GradcheckOptions opt;
  opt.max_elements = 64;
  expect_gradcheck([&](const std::vector<TD>& v) { return run_conv_transpose(t, v[0], v[1], v[2]); }, {x, w, b}, opt);
}

TEST(Conv, Errors) {
  auto x = ones<double>({2, 4, 5, 5});
  auto w = ones<double>({6, 2, 3, 3});
  expect_error([&] { conv2d(ones<double>({4, 5, 5}), w); }, {"conv2d", "rank 4", "(N,C,H,W)", "(4,5,5)"});
  expect_error([&] { conv2d(x, ones<double>({6, 2, 3})); }, {"conv2d", "weight of rank 4", "(6,2,3)"});
  expect_error([&] { conv2d(x, w); }, {"conv2d", "weight (6,2,3,3) expects 2 input channels", "(2,4,5,5)"});
  expect_error([&] { conv2d(x, w, TD(), 1, 0, 1, 3); }, {"conv2d", "input channels 4", "not divisible by groups 3"});
  expect_error(
      [&] {
        conv2d(x, ones<double>({5, 2, 3, 3}), TD(), 1, 0, 1, 2);
      },
      {"conv2d", "output channels 5", "groups 2"});
  expect_error([&] { conv2d(x, w, TD(), 0, 0, 1, 2); }, {"conv2d", "stride must be positive", "(0,0)"});
  expect_error([&] { conv2d(x, w, TD(), {1, -1}, 0, 1, 2); }, {"conv2d", "stride must be positive", "(1,-1)"});
  expect_error([&] { conv2d(x, w, TD(), 1, -1, 1, 2); }, {"conv2d", "padding must be non-negative"});
  expect_error([&] { conv2d(x, w, TD(), 1, 0, 0, 2); }, {"conv2d", "dilation must be positive"});
  expect_error([&] { conv2d(x, w, TD(), {1, 1, 1}, 0, 1, 2); }, {"conv2d", "stride needs 1 or 2 values, got 3"});
  expect_error(
      [&] {
        conv2d(x, ones<double>({6, 2, 7, 3}), TD(), 1, 0, 1, 2);
      },
      {"conv2d", "larger than the padded input", "(2,4,5,5)"});
  expect_error([&] { conv2d(x, w, TD(), 1, 0, 3, 2); }, {"conv2d", "dilated extent 7", "larger than the padded input"});
  expect_error([&] { conv2d(x, w, ones<double>({5}), 1, 0, 1, 2); }, {"conv2d", "bias must have shape (6)", "(5)"});
  expect_error([&] { conv1d(ones<double>({1, 2, 4, 4}), ones<double>({1, 2, 3})); }, {"conv1d", "rank 3", "(N,C,L)"});
  expect_error(
      [&] {
        conv3d(ones<double>({1, 2, 4, 4}), ones<double>({1, 2, 3, 3, 3}));
      },
      {"conv3d", "rank 5", "(N,C,D,H,W)"});
  // transposed
  auto xt = ones<double>({1, 4, 3, 3});
  expect_error(
      [&] {
        conv_transpose2d(xt, ones<double>({3, 2, 3, 3}));
      },
      {"conv_transpose2d", "weight (3,2,3,3) expects 3 input channels", "(1,4,3,3)"});
  expect_error(
      [&] {
        conv_transpose2d(xt, ones<double>({4, 2, 3, 3}), TD(), 2, 0, 2);
      },
      {"conv_transpose2d", "output_padding (2,2)", "smaller than stride (2,2)"});
  expect_error(
      [&] {
        conv_transpose2d(xt, ones<double>({4, 2, 1, 1}), TD(), 1, 2);
      },
      {"conv_transpose2d", "output size would be"});
  expect_error(
      [&] {
        conv_transpose2d(xt, ones<double>({4, 2, 3, 3}), TD(), 1, 0, 0, 3);
      },
      {"conv_transpose2d", "not divisible by groups 3"});
}

}  // namespace
