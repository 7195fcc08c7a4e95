// Convolutions over 1, 2 and 3 spatial dims (conv1d/2d/3d) and transposed
// convolutions (conv_transpose1d/2d/3d), with stride, symmetric padding,
// dilation, groups and an optional bias, in PyTorch's layout: input NC(D)HW,
// weight (C_out, C_in/groups, k…) for conv and (C_in, C_out/groups, k…) for the
// transpose. Computed as im2col + GEMM on chunks of output positions (bounded
// scratch; a 1×1 stride-1 conv reads the input directly); samples and chunks run
// in parallel when there are enough of them, otherwise each GEMM is split over
// the threads. Results do not depend on the thread count.
//
// Three kernels serve both ops, because a transposed conv is the adjoint of a conv:
//   forward  : y   = W ⋆ x            (im2col, then W_g · cols_g per group)
//   data     : dx  = col2im(Wᵀ · dy)  (the adjoint of forward in x)
//   weight   : dW  = Σ_n dy[n] · cols(x[n])ᵀ
// conv uses (forward, data, weight) for (y, dx, dW); conv_transpose uses
// (data, forward, weight with the roles of x and dy swapped).
#pragma once

#include <array>
#include <atomic>
#include <initializer_list>
#include <vector>

#include <omp.h>

#include "avgrad/backend/cpu/gemm.hpp"
#include "avgrad/backend/cpu/im2col.hpp"
#include "avgrad/ops/reduce.hpp"

namespace avgrad {

/// A per-spatial-dim conv argument (stride, padding, dilation, output_padding):
/// one value for every dim (`2`) or one value per dim (`{2, 1}`).
template <int N> struct ConvArg {
  std::array<std::int64_t, N> v{};
  std::size_t given = N;                  ///< number of values supplied; the op checks it is N
  ConvArg(std::int64_t s) { v.fill(s); }  // NOLINT: implicit on purpose (conv2d(x, w, b, 2))
  ConvArg(std::initializer_list<std::int64_t> l) : given(l.size()) {
    std::size_t i = 0;
    for (auto x : l)
      if (i < N) v[i++] = x;
  }
  std::int64_t operator[](int i) const { return v[static_cast<std::size_t>(i)]; }
  Shape shape() const { return Shape(std::span<const std::int64_t>(v.data(), N)); }
};

namespace detail {

/// Bytes that one chunk's column block plus its output block may occupy. Chunks
/// bound the im2col scratch per thread and let a small batch run its chunks in
/// parallel. On the 2-core Zen 5 this was tuned on, cache-sized chunks (≤ 1 MiB)
/// were slower, not faster: y's rows then become short strided segments, and the
/// packed GEMM already streams the columns once. Never derived from the thread
/// count, so the chunking, and with it the summation order of col2im and dW, is
/// the same for any number of threads. A tuning knob; tests shrink it to put
/// chunk edges inside small images.
inline constexpr std::int64_t kDefaultConvChunkBytes = std::int64_t(4) << 20;
inline std::atomic<std::int64_t> conv_chunk_bytes{kDefaultConvChunkBytes};

/// Output positions per chunk for `col_rows` column rows and `out_rows` output
/// rows: a multiple of 16 (whole SIMD vectors), at least 64, at most L.
inline std::int64_t chunk_width(std::int64_t col_rows, std::int64_t out_rows, std::int64_t L, std::size_t elem) {
  std::int64_t w =
      conv_chunk_bytes.load(std::memory_order_relaxed) / ((col_rows + out_rows) * static_cast<std::int64_t>(elem));
  w = std::max<std::int64_t>(64, w / 16 * 16);
  return std::min(w, L);
}
inline std::int64_t chunk_count(std::int64_t L, std::int64_t width) { return width > 0 ? (L + width - 1) / width : 0; }

/// Whether `count` independent items of about `work` multiply-adds each are
/// better spread over the threads (one serial GEMM per item) than run in order
/// with each GEMM split over the threads.
inline bool spread_items(std::int64_t count, std::int64_t work) {
  if (omp_in_parallel()) return false;
  const int threads = omp_get_max_threads();
  return threads > 1 && count > 1 && (count % threads == 0 || count >= 4 * threads) &&
         count * work >= cpu::kParallelGrain;
}

/// Runs body(i, scratch) for i < count, spread over the threads when `par`
/// (dynamic schedule, so a busy core does not hold the others up; each thread
/// owns `scratch_elems` of scratch). Items must write disjoint outputs, so the
/// result does not depend on the schedule.
template <class T, class Body>
void for_each_item(std::int64_t count, std::int64_t scratch_elems, bool par, Body&& body) {
  auto scratch = [&] { return Tensor<T, Cpu>::empty(Shape{std::max<std::int64_t>(scratch_elems, 0)}); };
  if (par) {
#pragma omp parallel
    {
      auto buf = scratch();
#pragma omp for schedule(dynamic, 1)
      for (std::int64_t i = 0; i < count; ++i) body(i, buf.data());
    }
  } else {
    auto buf = scratch();
    for (std::int64_t i = 0; i < count; ++i) body(i, buf.data());
  }
}

/// Writes bias[c] over `len` entries of each of `channels` rows (row stride ld) at p.
template <class T> void fill_rows(T* p, std::int64_t ld, const T* bias, std::int64_t bias_stride, std::int64_t channels,
                                  std::int64_t len) {
  for (std::int64_t c = 0; c < channels; ++c) std::fill(p + c * ld, p + c * ld + len, bias[c * bias_stride]);
}

/// y (N, Co, out…) = W ⋆ img (+ bias): img (N, C, in…) with C = g.channels,
/// w (Co, C/G, k…). Work items are (sample, chunk of output positions [p0, p1)):
/// cols (C·k, p1 − p0) = im2col(img[n]) on the chunk; y[n]_g[:, p0:p1] = W_g · cols_g.
template <Floating T> Tensor<T, Cpu> conv_forward_kernel(const Tensor<T, Cpu>& img, const Tensor<T, Cpu>& w,
                                                         const Tensor<T, Cpu>& bias, const cpu::ConvGeometry& g,
                                                         std::int64_t groups, const Shape& out_shape) {
  auto xc = img.contiguous();  // (N, C, in…)
  auto wc = w.contiguous();    // (Co, C/G, k…) = (G, Co/G, C/G·k)
  const std::int64_t batch = xc.size(0), C = g.channels, Co = wc.size(0);
  const std::int64_t Cog = Co / groups, CKg = C / groups * g.kernel_size(), L = g.out_size(), Lin = g.in_size();
  auto y = Tensor<T, Cpu>::empty(out_shape);  // (N, Co, out…) = (N, Co, L)
  if (y.numel() == 0) return y;
  const bool pw = g.is_pointwise(), has_bias = bias.defined();
  const std::int64_t width = chunk_width(g.col_rows(), Co, L, sizeof(T)), chunks = chunk_count(L, width);
  const T* xp = xc.data();
  const T* wp = wc.data();
  T* yp = y.data();
  const bool par = spread_items(batch * chunks, Co * CKg * width);
  for_each_item<T>(batch * chunks, pw ? 0 : g.col_rows() * width, par, [&](std::int64_t item, T* scratch) {
    const std::int64_t n = item / chunks, p0 = item % chunks * width, p1 = std::min(L, p0 + width);
    const T* xn = xp + n * C * Lin;  // (C, in…)
    const T* cols = xn + p0;         // (C·k, p1 − p0) with leading dim ldb; the image itself when pointwise
    std::int64_t ldb = L;
    if (!pw) {
      cpu::im2col(xn, scratch, g, p0, p1);
      cols = scratch;
      ldb = p1 - p0;
    }
    T* yc = yp + n * Co * L + p0;  // (Co, p1 − p0) block of y[n], leading dim L
    if (has_bias) fill_rows(yc, L, bias.data(), bias.stride(0), Co, p1 - p0);
    // y[n]_g[:, p0:p1] (Co/G, ·) = W_g (Co/G, C/G·k) · cols_g (C/G·k, ·)
    cpu::gemm_strided_batched(false, false, Cog, p1 - p0, CKg, T(1), wp, CKg, Cog * CKg, cols, ldb, CKg * ldb,
                              has_bias ? T(1) : T(0), yc, L, Cog * L, groups);
  });
  return y;
}

/// img_grad (N, C, in…) = col2im(Wᵀ · dy) (+ bias per C channel): the adjoint of
/// conv_forward_kernel in its input. dy (N, Co, L), w (Co, C/G, k…), C = g.channels.
/// Samples are the work items (col2im of neighbouring chunks overlaps); within a
/// sample, chunks run in order: cols_g (C/G·k, ·) = W_gᵀ · dy[n]_g[:, p0:p1], then col2im.
template <Floating T> Tensor<T, Cpu> conv_data_kernel(const Tensor<T, Cpu>& dy, const Tensor<T, Cpu>& w,
                                                      const Tensor<T, Cpu>& bias, const cpu::ConvGeometry& g,
                                                      std::int64_t groups, const Shape& img_shape) {
  auto dc = dy.contiguous();  // (N, Co, L)
  auto wc = w.contiguous();   // (G, Co/G, C/G·k)
  const std::int64_t batch = dc.size(0), C = g.channels, Co = wc.size(0);
  const std::int64_t Cog = Co / groups, CKg = C / groups * g.kernel_size(), L = g.out_size(), Lin = g.in_size();
  const bool pw = g.is_pointwise(), has_bias = bias.defined();
  auto x = Tensor<T, Cpu>::empty(img_shape);  // (N, C, in…)
  if (x.numel() == 0) return x;
  const std::int64_t width = chunk_width(g.col_rows(), Co, L, sizeof(T)), chunks = chunk_count(L, width);
  const T* dp = dc.data();
  const T* wp = wc.data();
  T* xp = x.data();
  const bool par = spread_items(batch, Co * CKg * L);
  for_each_item<T>(batch, pw ? 0 : g.col_rows() * width, par, [&](std::int64_t n, T* scratch) {
    const T* dyn = dp + n * Co * L;  // (Co, L)
    T* xn = xp + n * C * Lin;        // (C, in…)
    // col2im accumulates, so the image starts at zero (or at the bias)
    if (has_bias)
      fill_rows(xn, Lin, bias.data(), bias.stride(0), C, Lin);
    else if (!pw)
      std::fill(xn, xn + C * Lin, T(0));
    for (std::int64_t ch = 0; ch < chunks; ++ch) {
      const std::int64_t p0 = ch * width, p1 = std::min(L, p0 + width);
      // cols_g (C/G·k, p1 − p0) = W_gᵀ (C/G·k, Co/G) · dy[n]_g[:, p0:p1]; pointwise: straight into x[n]
      T* cols = pw ? xn + p0 : scratch;
      const std::int64_t ldc = pw ? L : p1 - p0;
      cpu::gemm_strided_batched(true, false, CKg, p1 - p0, Cog, T(1), wp, CKg, Cog * CKg, dyn + p0, L, Cog * L,
                                pw && has_bias ? T(1) : T(0), cols, ldc, CKg * ldc, groups);
      if (!pw) cpu::col2im(cols, xn, g, p0, p1);
    }
  });
  return x;
}

/// dW (Co, C/G, k…) = Σ_n Σ_chunks dy[n]_g[:, p0:p1] · cols(img[n])_g[:, p0:p1]ᵀ per group:
/// img (N, C, in…), dy (N, Co, L). The batch is cut into a fixed number of parts
/// (from N alone) that accumulate in parallel and are summed in order, so the
/// result does not depend on the thread count.
template <Floating T> Tensor<T, Cpu> conv_weight_kernel(const Tensor<T, Cpu>& img, const Tensor<T, Cpu>& dy,
                                                        const cpu::ConvGeometry& g, std::int64_t groups,
                                                        const Shape& w_shape) {
  auto xc = img.contiguous();  // (N, C, in…)
  auto dc = dy.contiguous();   // (N, Co, L)
  const std::int64_t batch = xc.size(0), C = g.channels, Co = dc.size(1);
  const std::int64_t Cog = Co / groups, CKg = C / groups * g.kernel_size(), L = g.out_size(), Lin = g.in_size();
  const std::int64_t wn = Co * CKg;
  if (batch == 0 || wn == 0 || L == 0) return zeros<T, Cpu>(w_shape);
  auto dw = Tensor<T, Cpu>::empty(w_shape);  // (Co, C/G, k…) = (G, Co/G, C/G·k)
  const bool pw = g.is_pointwise();
  const std::int64_t width = chunk_width(g.col_rows(), Co, L, sizeof(T)), chunks = chunk_count(L, width);
  const std::int64_t parts = std::min<std::int64_t>(batch, 8);
  auto partial = Tensor<T, Cpu>::empty(Shape{parts - 1, wn});  // parts 1… (part 0 accumulates into dw)
  const T* xp = xc.data();
  const T* dp = dc.data();
  const bool par = spread_items(parts, wn * L * ((batch + parts - 1) / parts));
  for_each_item<T>(parts, pw ? 0 : g.col_rows() * width, par, [&](std::int64_t p, T* scratch) {
    T* acc = p == 0 ? dw.data() : partial.data() + (p - 1) * wn;
    const std::int64_t n0 = p * batch / parts, n1 = (p + 1) * batch / parts;
    for (std::int64_t n = n0; n < n1; ++n)
      for (std::int64_t ch = 0; ch < chunks; ++ch) {
        const std::int64_t p0 = ch * width, p1 = std::min(L, p0 + width);
        const T* xn = xp + n * C * Lin;
        const T* cols = xn + p0;  // (C·k, p1 − p0), leading dim ldb
        std::int64_t ldb = L;
        if (!pw) {
          cpu::im2col(xn, scratch, g, p0, p1);
          cols = scratch;
          ldb = p1 - p0;
        }
        // dW_g (Co/G, C/G·k) += dy[n]_g[:, p0:p1] (Co/G, ·) · cols_gᵀ (·, C/G·k)
        const bool first = n == n0 && ch == 0;
        cpu::gemm_strided_batched(false, true, Cog, CKg, p1 - p0, T(1), dp + n * Co * L + p0, L, Cog * L, cols, ldb,
                                  CKg * ldb, first ? T(0) : T(1), acc, CKg, Cog * CKg, groups);
      }
  });
  T* out = dw.data();
  const T* q = partial.data();
  for (std::int64_t p = 1; p < parts; ++p, q += wn) {
#pragma omp parallel for simd if (wn > cpu::kParallelGrain && !omp_in_parallel())
    for (std::int64_t i = 0; i < wn; ++i) out[i] += q[i];
  }
  return dw;
}

/// db (Co) = Σ_n Σ_l dy[n, co, l] for dy (N, Co, L): channels in parallel, each
/// summed in a fixed order (samples in turn) in double for float.
template <Floating T> Tensor<T, Cpu> bias_grad_kernel(const Tensor<T, Cpu>& dy) {
  auto dc = dy.contiguous();
  const std::int64_t batch = dc.size(0), Co = dc.size(1), L = batch * Co == 0 ? 0 : dc.numel() / (batch * Co);
  auto db = Tensor<T, Cpu>::empty(Shape{Co});
  const T* p = dc.data();
  T* out = db.data();
#pragma omp parallel for schedule(static) if (dc.numel() >= cpu::kParallelGrain && Co > 1 && !omp_in_parallel())
  for (std::int64_t c = 0; c < Co; ++c) {
    acc_t<T> total = 0;
    for (std::int64_t n = 0; n < batch; ++n) {
      const T* row = p + (n * Co + c) * L;
      acc_t<T> s = 0;
#pragma omp simd reduction(+ : s)
      for (std::int64_t l = 0; l < L; ++l) s += static_cast<acc_t<T>>(row[l]);
      total += s;
    }
    out[c] = static_cast<T>(total);
  }
  return db;
}

}  // namespace detail

namespace backend {
/// The device seam of convolution: forward(img, w, bias, geo, groups, out_shape),
/// data(dy, w, bias, geo, groups, img_shape), weight(img, dy, geo, groups, w_shape) and
/// bias_grad(dy), with the detail:: kernels' signatures on Tensor<T, D>.
/// Conv<Cuda> (cuDNN) lives in cuda/avgrad/cuda/conv.cuh.
template <Device D> struct Conv;
template <> struct Conv<Cpu> {
  template <class T, class... A> static auto forward(const Tensor<T, Cpu>& x, const A&... a) {
    return detail::conv_forward_kernel(x, a...);
  }
  template <class T, class... A> static auto data(const Tensor<T, Cpu>& dy, const A&... a) {
    return detail::conv_data_kernel(dy, a...);
  }
  template <class T, class... A> static auto weight(const Tensor<T, Cpu>& x, const A&... a) {
    return detail::conv_weight_kernel(x, a...);
  }
  template <class T> static auto bias_grad(const Tensor<T, Cpu>& dy) { return detail::bias_grad_kernel(dy); }
};
}  // namespace backend

namespace detail {

/// Conv geometry (normalised to 3 spatial dims) from N-d extents.
template <int N> cpu::ConvGeometry make_geometry(std::int64_t channels, const Shape& in, const Shape& out,
                                                 const Shape& kernel, const ConvArg<N>& stride, const ConvArg<N>& pad,
                                                 const ConvArg<N>& dil) {
  cpu::ConvGeometry g;
  g.channels = channels;
  for (int i = 0; i < N; ++i) {
    const auto d = static_cast<std::size_t>(3 - N + i);
    g.in[d] = in[i];
    g.out[d] = out[i];
    g.kernel[d] = kernel[i];
    g.stride[d] = stride[i];
    g.pad[d] = pad[i];
    g.dilation[d] = dil[i];
  }
  return g;
}

template <int N> constexpr const char* layout_name() {
  if constexpr (N == 1)
    return "(N,C,L)";
  else if constexpr (N == 2)
    return "(N,C,H,W)";
  else
    return "(N,C,D,H,W)";
}

/// Spatial extents (dims 2…) of a shape.
inline Shape spatial(const Shape& s) {
  Shape o;
  for (int d = 2; d < s.rank(); ++d) o.push_back(s[d]);
  return o;
}

/// Checks shared by conv and conv_transpose: ranks, argument counts and signs, groups, bias.
template <int N, Floating T, Device D>
void check_conv_args(const char* op, const Tensor<T, D>& x, const Tensor<T, D>& w, const ConvArg<N>& stride,
                     const ConvArg<N>& pad, const ConvArg<N>& dil, std::int64_t groups) {
  check_defined(x, op);
  check_defined(w, op);
  AVGRAD_CHECK(x.dim() == N + 2, op, "expected input of rank ", N + 2, " ", layout_name<N>(), ", got shape ",
               x.shape());
  AVGRAD_CHECK(w.dim() == N + 2, op, "expected weight of rank ", N + 2, ", got shape ", w.shape(), " for input ",
               x.shape());
  AVGRAD_CHECK(stride.given == N, op, "stride needs 1 or ", N, " values, got ", stride.given);
  AVGRAD_CHECK(pad.given == N, op, "padding needs 1 or ", N, " values, got ", pad.given);
  AVGRAD_CHECK(dil.given == N, op, "dilation needs 1 or ", N, " values, got ", dil.given);
  for (int i = 0; i < N; ++i) {
    AVGRAD_CHECK(stride[i] > 0, op, "stride must be positive, got ", stride.shape());
    AVGRAD_CHECK(dil[i] > 0, op, "dilation must be positive, got ", dil.shape());
    AVGRAD_CHECK(pad[i] >= 0, op, "padding must be non-negative, got ", pad.shape());
    AVGRAD_CHECK(w.shape()[2 + i] > 0, op, "empty kernel: weight ", w.shape());
  }
  AVGRAD_CHECK(groups > 0, op, "groups must be positive, got ", groups);
}

template <Floating T, Device D> void check_bias(const char* op, const Tensor<T, D>& bias, std::int64_t channels) {
  if (!bias.defined()) return;
  AVGRAD_CHECK(bias.dim() == 1 && bias.size(0) == channels, op, "bias must have shape (", channels, "), got ",
               bias.shape());
}

template <int N, Floating T, Device D>
Tensor<T, D> conv_nd(const char* op, const Tensor<T, D>& x, const Tensor<T, D>& w, const Tensor<T, D>& bias,
                     const ConvArg<N>& stride, const ConvArg<N>& pad, const ConvArg<N>& dil, std::int64_t groups) {
  check_conv_args<N>(op, x, w, stride, pad, dil, groups);
  const std::int64_t batch = x.size(0), C = x.size(1), Co = w.size(0);
  AVGRAD_CHECK(C % groups == 0, op, "input channels ", C, " of ", x.shape(), " are not divisible by groups ", groups);
  AVGRAD_CHECK(Co % groups == 0, op, "output channels ", Co, " of weight ", w.shape(), " are not divisible by groups ",
               groups);
  AVGRAD_CHECK(w.size(1) * groups == C, op, "weight ", w.shape(), " expects ", w.size(1) * groups,
               " input channels (C_in/groups = ", w.size(1), ", groups = ", groups, "), input ", x.shape(), " has ", C);
  check_bias(op, bias, Co);
  const Shape in = spatial(x.shape()), k = spatial(w.shape());
  Shape out;
  for (int i = 0; i < N; ++i) {
    const std::int64_t eff = dil[i] * (k[i] - 1) + 1;
    AVGRAD_CHECK(eff <= in[i] + 2 * pad[i], op, "kernel ", k, " (dilated extent ", eff, " in dim ", i,
                 ") is larger than the padded input: input ", x.shape(), ", padding ", pad.shape(), ", dilation ",
                 dil.shape());
    out.push_back(cpu::conv_out_extent(in[i], k[i], stride[i], pad[i], dil[i]));
  }
  const cpu::ConvGeometry g = make_geometry<N>(C, in, out, k, stride, pad, dil);
  Shape ys{batch, Co};
  for (auto e : out) ys.push_back(e);
  Tensor<T, D> y = backend::Conv<D>::forward(x.detach(), w.detach(), bias.defined() ? bias.detach() : Tensor<T, D>(), g,
                                             groups, ys);  // (N, Co, out…)
  if (!autograd::any_requires_grad<T, D>({&x, &w, &bias})) return y;
  // x is needed only for dW, w only for dX
  autograd::Saved<T, D> sx(w.requires_grad() ? x : Tensor<T, D>()), sw(x.requires_grad() ? w : Tensor<T, D>());
  const Shape xs = x.shape(), ws = w.shape();
  const bool has_bias = bias.defined();
  std::vector<Tensor<T, D>> inputs{x, w};
  if (has_bias) inputs.push_back(bias);
  return autograd::record<T, D>(op, y, inputs, [=](const Tensor<T, D>& gy, const std::vector<bool>& need) {
    // y[n]_g = W_g · cols(x[n])_g + b  ⇒  dx[n] = col2im(W_gᵀ · dy[n]_g),
    // dW_g = Σ_n dy[n]_g · cols(x[n])_gᵀ, db = Σ_{n, spatial} dy
    autograd::Grads<T, D> out_g(need.size());
    if (need[0]) out_g[0] = backend::Conv<D>::data(gy, sw.get(op), Tensor<T, D>(), g, groups, xs);  // (N, C, in…)
    if (need[1]) out_g[1] = backend::Conv<D>::weight(sx.get(op), gy, g, groups, ws);                // (Co, C/G, k…)
    if (has_bias && need[2]) out_g[2] = backend::Conv<D>::bias_grad(gy);                            // (Co)
    return out_g;
  });
}

template <int N, Floating T, Device D>
Tensor<T, D> conv_transpose_nd(const char* op, const Tensor<T, D>& x, const Tensor<T, D>& w, const Tensor<T, D>& bias,
                               const ConvArg<N>& stride, const ConvArg<N>& pad, const ConvArg<N>& out_pad,
                               std::int64_t groups, const ConvArg<N>& dil) {
  check_conv_args<N>(op, x, w, stride, pad, dil, groups);
  AVGRAD_CHECK(out_pad.given == N, op, "output_padding needs 1 or ", N, " values, got ", out_pad.given);
  const std::int64_t batch = x.size(0), Cin = x.size(1);
  AVGRAD_CHECK(w.size(0) == Cin, op, "weight ", w.shape(), " expects ", w.size(0), " input channels (dim 0), input ",
               x.shape(), " has ", Cin);
  AVGRAD_CHECK(Cin % groups == 0, op, "input channels ", Cin, " of ", x.shape(), " are not divisible by groups ",
               groups);
  const std::int64_t Co = w.size(1) * groups;
  check_bias(op, bias, Co);
  const Shape in = spatial(x.shape()), k = spatial(w.shape());
  Shape out;
  for (int i = 0; i < N; ++i) {
    AVGRAD_CHECK(out_pad[i] >= 0 && (out_pad[i] < stride[i] || out_pad[i] < dil[i]), op, "output_padding ",
                 out_pad.shape(), " must be non-negative and smaller than stride ", stride.shape(), " or dilation ",
                 dil.shape());
    const std::int64_t o = (in[i] - 1) * stride[i] - 2 * pad[i] + dil[i] * (k[i] - 1) + out_pad[i] + 1;
    AVGRAD_CHECK(o > 0, op, "output size would be ", o, " in dim ", i, ": input ", x.shape(), ", weight ", w.shape(),
                 ", padding ", pad.shape());
    out.push_back(o);
  }
  // The conv this op is the adjoint of: image = y (Co channels, `out`), its output = x (`in`).
  const cpu::ConvGeometry g = make_geometry<N>(Co, out, in, k, stride, pad, dil);
  Shape ys{batch, Co};
  for (auto e : out) ys.push_back(e);
  Tensor<T, D> y =
      backend::Conv<D>::data(x.detach(), w.detach(), bias.defined() ? bias.detach() : Tensor<T, D>(), g, groups,
                             ys);  // (N, Co, out…)
  if (!autograd::any_requires_grad<T, D>({&x, &w, &bias})) return y;
  autograd::Saved<T, D> sx(w.requires_grad() ? x : Tensor<T, D>()), sw(x.requires_grad() ? w : Tensor<T, D>());
  const Shape xs = x.shape(), ws = w.shape();
  const bool has_bias = bias.defined();
  std::vector<Tensor<T, D>> inputs{x, w};
  if (has_bias) inputs.push_back(bias);
  return autograd::record<T, D>(op, y, inputs, [=](const Tensor<T, D>& gy, const std::vector<bool>& need) {
    // y[n] = col2im(W_gᵀ · x[n]_g) + b  ⇒  dx[n]_g = W_g · cols(dy[n])_g (a conv of dy),
    // dW_g = Σ_n x[n]_g · cols(dy[n])_gᵀ, db = Σ_{n, spatial} dy
    autograd::Grads<T, D> out_g(need.size());
    if (need[0]) out_g[0] = backend::Conv<D>::forward(gy, sw.get(op), Tensor<T, D>(), g, groups, xs);  // (N, Cin, in…)
    if (need[1]) out_g[1] = backend::Conv<D>::weight(gy, sx.get(op), g, groups, ws);  // (Cin, Co/G, k…)
    if (has_bias && need[2]) out_g[2] = backend::Conv<D>::bias_grad(gy);              // (Co)
    return out_g;
  });
}

}  // namespace detail

/// 1-D convolution: x (N, C_in, L), w (C_out, C_in/groups, k), bias (C_out) or
/// undefined → (N, C_out, L_out), L_out = ⌊(L + 2p − d(k−1) − 1)/s⌋ + 1.
/// Checks ranks, channel/group divisibility, bias shape, positive stride and
/// dilation, non-negative padding, and a dilated kernel within the padded input.
template <Floating T, Device D>
Tensor<T, D> conv1d(const Tensor<T, D>& x, const Tensor<T, D>& w, const Tensor<T, D>& bias = Tensor<T, D>(),
                    ConvArg<1> stride = 1, ConvArg<1> padding = 0, ConvArg<1> dilation = 1, std::int64_t groups = 1) {
  return detail::conv_nd<1>("conv1d", x, w, bias, stride, padding, dilation, groups);
}

/// 2-D convolution: x (N, C_in, H, W), w (C_out, C_in/groups, kH, kW) → (N, C_out, H_out, W_out).
/// stride/padding/dilation: one value or {h, w}. Checks as conv1d.
template <Floating T, Device D>
Tensor<T, D> conv2d(const Tensor<T, D>& x, const Tensor<T, D>& w, const Tensor<T, D>& bias = Tensor<T, D>(),
                    ConvArg<2> stride = 1, ConvArg<2> padding = 0, ConvArg<2> dilation = 1, std::int64_t groups = 1) {
  return detail::conv_nd<2>("conv2d", x, w, bias, stride, padding, dilation, groups);
}

/// 3-D convolution: x (N, C_in, D, H, W), w (C_out, C_in/groups, kD, kH, kW) → (N, C_out, D_out, H_out, W_out).
template <Floating T, Device D>
Tensor<T, D> conv3d(const Tensor<T, D>& x, const Tensor<T, D>& w, const Tensor<T, D>& bias = Tensor<T, D>(),
                    ConvArg<3> stride = 1, ConvArg<3> padding = 0, ConvArg<3> dilation = 1, std::int64_t groups = 1) {
  return detail::conv_nd<3>("conv3d", x, w, bias, stride, padding, dilation, groups);
}

/// Transposed 2-D convolution (the adjoint of conv2d in its input), argument
/// order as torch.nn.functional.conv_transpose2d: x (N, C_in, H, W),
/// w (C_in, C_out/groups, kH, kW), bias (C_out) → (N, C_out, H_out, W_out) with
/// H_out = (H − 1)·s − 2p + d(kH − 1) + output_padding + 1. output_padding must
/// be smaller than stride or dilation.
template <Floating T, Device D>
Tensor<T, D> conv_transpose2d(const Tensor<T, D>& x, const Tensor<T, D>& w, const Tensor<T, D>& bias = Tensor<T, D>(),
                              ConvArg<2> stride = 1, ConvArg<2> padding = 0, ConvArg<2> output_padding = 0,
                              std::int64_t groups = 1, ConvArg<2> dilation = 1) {
  return detail::conv_transpose_nd<2>("conv_transpose2d", x, w, bias, stride, padding, output_padding, groups,
                                      dilation);
}

/// Transposed 1-D convolution: x (N, C_in, L), w (C_in, C_out/groups, k) → (N, C_out, L_out).
template <Floating T, Device D>
Tensor<T, D> conv_transpose1d(const Tensor<T, D>& x, const Tensor<T, D>& w, const Tensor<T, D>& bias = Tensor<T, D>(),
                              ConvArg<1> stride = 1, ConvArg<1> padding = 0, ConvArg<1> output_padding = 0,
                              std::int64_t groups = 1, ConvArg<1> dilation = 1) {
  return detail::conv_transpose_nd<1>("conv_transpose1d", x, w, bias, stride, padding, output_padding, groups,
                                      dilation);
}

/// Transposed 3-D convolution: x (N, C_in, D, H, W), w (C_in, C_out/groups, kD, kH, kW) → (N, C_out, …).
template <Floating T, Device D>
Tensor<T, D> conv_transpose3d(const Tensor<T, D>& x, const Tensor<T, D>& w, const Tensor<T, D>& bias = Tensor<T, D>(),
                              ConvArg<3> stride = 1, ConvArg<3> padding = 0, ConvArg<3> output_padding = 0,
                              std::int64_t groups = 1, ConvArg<3> dilation = 1) {
  return detail::conv_transpose_nd<3>("conv_transpose3d", x, w, bias, stride, padding, output_padding, groups,
                                      dilation);
}

}  // namespace avgrad
