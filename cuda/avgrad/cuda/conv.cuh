// Conv<Cuda>: convolution forward, data-gradient and weight-gradient through cuDNN 9
// (its convolution API), for conv1d/2d/3d and the transposed convolutions, which run the
// same three kernels with roles swapped (see ops/conv.hpp). A 1-d or 2-d conv is given to
// cuDNN as a 4-d problem (a 1-d one with height 1), a 3-d conv as a 5-d one. Algorithms
// come from cuDNN's heuristics, or from timing every candidate when benchmark mode is on
// (torch.backends.cudnn.benchmark), and are cached per problem. Backward algorithms are
// restricted to deterministic ones, and TF32 follows cuda::set_allow_tf32 as GEMM does.
// Problems beyond cuDNN's 32-bit sizes, or every problem after set_conv_path(im2col), run on
// the im2col + cuBLAS fallback (im2col.cuh).
#pragma once

#include <cudnn.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <limits>
#include <map>
#include <mutex>
#include <vector>

#include "avgrad/cuda/blas.cuh"
#include "avgrad/cuda/elementwise.cuh"
#include "avgrad/cuda/im2col.cuh"
#include "avgrad/ops/conv.hpp"
#include "avgrad/ops/reduce.hpp"

namespace avgrad::cuda {

#define AVGRAD_CUDNN_CHECK(call)                                                                                 \
  do {                                                                                                           \
    const cudnnStatus_t avgrad_cudnn_status_ = (call);                                                           \
    if (avgrad_cudnn_status_ != CUDNN_STATUS_SUCCESS)                                                            \
      throw ::avgrad::Error(                                                                                     \
          "cudnn", ::avgrad::detail::concat(#call, " failed: ", cudnnGetErrorString(avgrad_cudnn_status_), " (", \
                                            __FILE__, ":", __LINE__, ")"));                                      \
  } while (0)

namespace detail {
inline std::atomic<bool>& conv_benchmark_flag() {
  static std::atomic<bool> on{false};
  return on;
}
}  // namespace detail

/// Time every cuDNN algorithm the first time a conv problem is seen and keep the fastest
/// (deterministic ones only for the backward); off: cuDNN's heuristic choice.
inline void set_conv_benchmark(bool on) { detail::conv_benchmark_flag() = on; }
inline bool conv_benchmark() { return detail::conv_benchmark_flag(); }

/// This thread's cuDNN handle, bound to the current stream.
inline cudnnHandle_t dnn_handle() {
  struct Owner {
    cudnnHandle_t h = nullptr;
    ~Owner() {
      if (h) cudnnDestroy(h);
    }
  };
  thread_local Owner owner;
  if (!owner.h) AVGRAD_CUDNN_CHECK(cudnnCreate(&owner.h));
  AVGRAD_CUDNN_CHECK(cudnnSetStream(owner.h, current_stream()));
  return owner.h;
}

template <class T> constexpr cudnnDataType_t dnn_type() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "cuDNN convolutions take float or double");
  return std::is_same_v<T, float> ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE;
}

inline int dnn_int(std::int64_t v, const char* what) {
  AVGRAD_CHECK(v >= 0 && v <= std::numeric_limits<int>::max(), "conv (cuda)", what, " = ", v,
               " does not fit cuDNN's 32-bit sizes");
  return static_cast<int>(v);
}

/// One conv problem as cuDNN descriptors: image x (N, C, in…), filter w (Co, C/G, k…),
/// output y (N, Co, out…), all contiguous.
struct ConvProblem {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  std::vector<std::int64_t> key;  // what the algorithm caches look problems up by

  ConvProblem(cudnnDataType_t type, const cpu::ConvGeometry& g, std::int64_t batch, std::int64_t Co,
              std::int64_t groups) {
    // the leading spatial slot is unused by 1-d and 2-d convs: give cuDNN a 4-d problem then
    const bool three = g.in[0] != 1 || g.out[0] != 1 || g.kernel[0] != 1 || g.pad[0] != 0 || g.stride[0] != 1;
    const int first = three ? 0 : 1, nd = 3 - first, dims = nd + 2;
    std::array<int, 5> xd{}, yd{}, wd{}, xs{}, ys{};
    std::array<int, 3> pad{}, stride{}, dil{};
    xd[0] = yd[0] = dnn_int(batch, "batch");
    xd[1] = dnn_int(g.channels, "channels");
    yd[1] = wd[0] = dnn_int(Co, "output channels");
    wd[1] = dnn_int(g.channels / groups, "channels per group");
    for (int i = 0; i < nd; ++i) {
      const auto d = static_cast<std::size_t>(first + i);
      xd[2 + i] = dnn_int(g.in[d], "input extent");
      yd[2 + i] = dnn_int(g.out[d], "output extent");
      wd[2 + i] = dnn_int(g.kernel[d], "kernel extent");
      pad[i] = dnn_int(g.pad[d], "padding");
      stride[i] = dnn_int(g.stride[d], "stride");
      dil[i] = dnn_int(g.dilation[d], "dilation");
    }
    auto contiguous = [dims](const std::array<int, 5>& shape, std::array<int, 5>& st) {
      std::int64_t s = 1;
      for (int i = dims - 1; i >= 0; --i) {
        st[i] = dnn_int(s, "stride of a contiguous tensor");
        s *= shape[i];
      }
    };
    contiguous(xd, xs);
    contiguous(yd, ys);
    AVGRAD_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
    AVGRAD_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y));
    AVGRAD_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
    AVGRAD_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv));
    AVGRAD_CUDNN_CHECK(cudnnSetTensorNdDescriptor(x, type, dims, xd.data(), xs.data()));
    AVGRAD_CUDNN_CHECK(cudnnSetTensorNdDescriptor(y, type, dims, yd.data(), ys.data()));
    AVGRAD_CUDNN_CHECK(cudnnSetFilterNdDescriptor(w, type, CUDNN_TENSOR_NCHW, dims, wd.data()));
    AVGRAD_CUDNN_CHECK(cudnnSetConvolutionNdDescriptor(conv, nd, pad.data(), stride.data(), dil.data(),
                                                       CUDNN_CROSS_CORRELATION, type));
    AVGRAD_CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv, dnn_int(groups, "groups")));
    const bool tf32 = type == CUDNN_DATA_FLOAT && allow_tf32();
    AVGRAD_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
    key = {static_cast<std::int64_t>(type), dims, groups, tf32, conv_benchmark()};
    for (int i = 0; i < dims; ++i) key.insert(key.end(), {xd[i], yd[i], wd[i]});
    for (int i = 0; i < nd; ++i) key.insert(key.end(), {pad[i], stride[i], dil[i]});
  }
  ConvProblem(const ConvProblem&) = delete;
  ConvProblem& operator=(const ConvProblem&) = delete;
  ~ConvProblem() {
    cudnnDestroyConvolutionDescriptor(conv);
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyTensorDescriptor(x);
  }
};

/// A chosen algorithm and the workspace it needs.
template <class Algo> struct ConvChoice {
  Algo algo;
  std::size_t workspace;
};

/// The first usable candidate of cuDNN's ranked list (heuristic or timed); a backward
/// candidate must also be deterministic.
template <class Perf> auto pick(const Perf* perf, int n, bool need_deterministic, const char* what) {
  for (int i = 0; i < n; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS && (!need_deterministic || perf[i].determinism == CUDNN_DETERMINISTIC))
      return ConvChoice<decltype(perf[i].algo)>{perf[i].algo, perf[i].memory};
  throw Error("cudnn", avgrad::detail::concat("no usable ", what, " algorithm among ", n, " candidates"));
}

/// The cached choice for `p`, computed by `choose` on a miss. One cache per kind of pass.
template <class Algo, class Choose> ConvChoice<Algo> cached_choice(const ConvProblem& p, Choose choose) {
  static std::mutex mu;
  static std::map<std::vector<std::int64_t>, ConvChoice<Algo>> cache;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = cache.find(p.key); it != cache.end()) return it->second;
  }
  const ConvChoice<Algo> c = choose();
  std::lock_guard<std::mutex> lock(mu);
  cache.emplace(p.key, c);
  return c;
}

inline constexpr int kMaxAlgos = 16;

inline ConvChoice<cudnnConvolutionFwdAlgo_t> forward_algo(const ConvProblem& p) {
  return cached_choice<cudnnConvolutionFwdAlgo_t>(p, [&] {
    cudnnConvolutionFwdAlgoPerf_t perf[kMaxAlgos];
    int n = 0;
    if (conv_benchmark())
      AVGRAD_CUDNN_CHECK(
          cudnnFindConvolutionForwardAlgorithm(dnn_handle(), p.x, p.w, p.conv, p.y, kMaxAlgos, &n, perf));
    else
      AVGRAD_CUDNN_CHECK(
          cudnnGetConvolutionForwardAlgorithm_v7(dnn_handle(), p.x, p.w, p.conv, p.y, kMaxAlgos, &n, perf));
    return pick(perf, n, false, "forward convolution");
  });
}
inline ConvChoice<cudnnConvolutionBwdDataAlgo_t> data_algo(const ConvProblem& p) {
  return cached_choice<cudnnConvolutionBwdDataAlgo_t>(p, [&] {
    cudnnConvolutionBwdDataAlgoPerf_t perf[kMaxAlgos];
    int n = 0;
    if (conv_benchmark())
      AVGRAD_CUDNN_CHECK(
          cudnnFindConvolutionBackwardDataAlgorithm(dnn_handle(), p.w, p.y, p.conv, p.x, kMaxAlgos, &n, perf));
    else
      AVGRAD_CUDNN_CHECK(
          cudnnGetConvolutionBackwardDataAlgorithm_v7(dnn_handle(), p.w, p.y, p.conv, p.x, kMaxAlgos, &n, perf));
    return pick(perf, n, true, "backward-data convolution");
  });
}
inline ConvChoice<cudnnConvolutionBwdFilterAlgo_t> filter_algo(const ConvProblem& p) {
  return cached_choice<cudnnConvolutionBwdFilterAlgo_t>(p, [&] {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[kMaxAlgos];
    int n = 0;
    if (conv_benchmark())
      AVGRAD_CUDNN_CHECK(
          cudnnFindConvolutionBackwardFilterAlgorithm(dnn_handle(), p.x, p.y, p.conv, p.w, kMaxAlgos, &n, perf));
    else
      AVGRAD_CUDNN_CHECK(
          cudnnGetConvolutionBackwardFilterAlgorithm_v7(dnn_handle(), p.x, p.y, p.conv, p.w, kMaxAlgos, &n, perf));
    return pick(perf, n, true, "backward-filter convolution");
  });
}

/// Whether cuDNN can take the problem: every size and element count within its 32-bit ints.
inline bool fits_cudnn(const cpu::ConvGeometry& g, std::int64_t batch, std::int64_t Co) {
  constexpr std::int64_t kMax = std::numeric_limits<int>::max();
  const std::int64_t in = g.in[0] * g.in[1] * g.in[2], out = g.out[0] * g.out[1] * g.out[2];
  return batch * g.channels * in < kMax && batch * Co * out < kMax && Co * g.channels * g.kernel_size() < kMax;
}

/// The im2col fallback's plan and a column buffer of one sample (C·k, L).
template <class T> struct Im2colRun {
  Im2colConv<T> conv;
  Tensor<T, Cuda> cols;
  Im2colRun(const cpu::ConvGeometry& g, std::int64_t batch, std::int64_t Co, std::int64_t groups)
      : conv{conv_dims(g), batch, Co, groups},
        cols(Tensor<T, Cuda>::empty(Shape{g.channels * g.kernel_size() * (g.out[0] * g.out[1] * g.out[2])})) {}
};

/// cuDNN's scaling factors: double for double data, float otherwise.
template <class T> using dnn_scale_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

struct Plus {
  template <class T> AVGRAD_HOST_DEVICE T operator()(T a, T b) const { return a + b; }
};

/// out (N, Co, …) += bias[c] over every spatial position.
template <class T> void add_channel_bias(Tensor<T, Cuda>& out, const Tensor<T, Cuda>& bias) {
  if (!bias.defined() || out.numel() == 0) return;
  Shape bs{out.size(1)};
  for (int d = 2; d < out.dim(); ++d) bs.push_back(1);
  auto b = bias.detach().contiguous().reshape(bs);
  backend::Loops<Cuda>::map2(out.data(), out.strides(), out.data(), out.strides(), b.data(),
                             broadcast_strides(b.shape(), b.strides(), out.shape()), out.shape(), Plus{});
}

}  // namespace avgrad::cuda

namespace avgrad::backend {

/// Shapes follow the CPU kernels: forward(img (N, C, in…)) → (N, Co, out…),
/// data(dy (N, Co, out…)) → (N, C, in…), weight(img, dy) → (Co, C/G, k…).
template <> struct Conv<Cuda> {
  static bool use_im2col(const cpu::ConvGeometry& g, std::int64_t batch, std::int64_t Co) {
    return cuda::conv_path() == cuda::ConvPath::im2col || !cuda::fits_cudnn(g, batch, Co);
  }
  template <class T> static Tensor<T, Cuda> forward(const Tensor<T, Cuda>& img, const Tensor<T, Cuda>& w,
                                                    const Tensor<T, Cuda>& bias, const cpu::ConvGeometry& g,
                                                    std::int64_t groups, const Shape& out_shape) {
    auto y = Tensor<T, Cuda>::empty(out_shape);
    if (y.numel() == 0) return y;
    if (img.numel() == 0) {
      y = zeros<T, Cuda>(out_shape);
    } else {
      auto x = img.contiguous();
      auto wc = w.contiguous();
      if (use_im2col(g, out_shape[0], out_shape[1])) {
        cuda::Im2colRun<T> run(g, out_shape[0], out_shape[1], groups);
        run.conv.forward(x.data(), wc.data(), y.data(), run.cols.data());
        cuda::add_channel_bias(y, bias);
        return y;
      }
      const cuda::ConvProblem p(cuda::dnn_type<T>(), g, out_shape[0], out_shape[1], groups);
      const auto c = cuda::forward_algo(p);
      Storage<std::uint8_t, Cuda> ws(static_cast<std::int64_t>(c.workspace));
      const cuda::dnn_scale_t<T> one = 1, zero = 0;
      AVGRAD_CUDNN_CHECK(cudnnConvolutionForward(cuda::dnn_handle(), &one, p.x, x.data(), p.w, wc.data(), p.conv,
                                                 c.algo, ws.data(), c.workspace, &zero, p.y, y.data()));
    }
    cuda::add_channel_bias(y, bias);
    return y;
  }
  template <class T> static Tensor<T, Cuda> data(const Tensor<T, Cuda>& dy, const Tensor<T, Cuda>& w,
                                                 const Tensor<T, Cuda>& bias, const cpu::ConvGeometry& g,
                                                 std::int64_t groups, const Shape& img_shape) {
    auto dx = Tensor<T, Cuda>::empty(img_shape);
    if (dx.numel() == 0) return dx;
    if (dy.numel() == 0) {
      dx = zeros<T, Cuda>(img_shape);
    } else {
      auto dyc = dy.contiguous();
      auto wc = w.contiguous();
      if (use_im2col(g, img_shape[0], dy.size(1))) {
        cuda::Im2colRun<T> run(g, img_shape[0], dy.size(1), groups);
        run.conv.data(dyc.data(), wc.data(), dx.data(), run.cols.data());
        cuda::add_channel_bias(dx, bias);
        return dx;
      }
      const cuda::ConvProblem p(cuda::dnn_type<T>(), g, img_shape[0], dy.size(1), groups);
      const auto c = cuda::data_algo(p);
      Storage<std::uint8_t, Cuda> ws(static_cast<std::int64_t>(c.workspace));
      const cuda::dnn_scale_t<T> one = 1, zero = 0;
      AVGRAD_CUDNN_CHECK(cudnnConvolutionBackwardData(cuda::dnn_handle(), &one, p.w, wc.data(), p.y, dyc.data(), p.conv,
                                                      c.algo, ws.data(), c.workspace, &zero, p.x, dx.data()));
    }
    cuda::add_channel_bias(dx, bias);
    return dx;
  }
  template <class T> static Tensor<T, Cuda> weight(const Tensor<T, Cuda>& img, const Tensor<T, Cuda>& dy,
                                                   const cpu::ConvGeometry& g, std::int64_t groups,
                                                   const Shape& w_shape) {
    if (img.numel() == 0 || dy.numel() == 0) return zeros<T, Cuda>(w_shape);
    auto x = img.contiguous();
    auto dyc = dy.contiguous();
    auto dw = Tensor<T, Cuda>::empty(w_shape);
    if (use_im2col(g, img.size(0), dy.size(1))) {
      cuda::Im2colRun<T> run(g, img.size(0), dy.size(1), groups);
      run.conv.weight(x.data(), dyc.data(), dw.data(), run.cols.data());
      return dw;
    }
    const cuda::ConvProblem p(cuda::dnn_type<T>(), g, img.size(0), dy.size(1), groups);
    const auto c = cuda::filter_algo(p);
    Storage<std::uint8_t, Cuda> ws(static_cast<std::int64_t>(c.workspace));
    const cuda::dnn_scale_t<T> one = 1, zero = 0;
    AVGRAD_CUDNN_CHECK(cudnnConvolutionBackwardFilter(cuda::dnn_handle(), &one, p.x, x.data(), p.y, dyc.data(), p.conv,
                                                      c.algo, ws.data(), c.workspace, &zero, p.w, dw.data()));
    return dw;
  }
  /// db_c = Σ over batch and positions of dy[:, c, …].
  template <class T> static Tensor<T, Cuda> bias_grad(const Tensor<T, Cuda>& dy) {
    Axes axes{0};
    for (int d = 2; d < dy.dim(); ++d) axes.push_back(d);
    NoGradGuard no_grad;
    return sum(dy.detach(), axes);
  }
};

}  // namespace avgrad::backend
