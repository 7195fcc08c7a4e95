// The convolution fallback: own im2col / col2im kernels and cuBLAS GEMMs, sample by sample,
// the CPU's algorithm on the GPU. Conv<Cuda> uses it when cuDNN cannot take a problem (sizes
// beyond its 32-bit limits, an unsupported configuration) or when set_conv_path(im2col) asks,
// which also lets the tests check cuDNN and the fallback against each other. col2im is a gather
// (each input element sums the column entries that read it), so it needs no atomics.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>

#include "avgrad/backend/cpu/im2col.hpp"
#include "avgrad/cuda/blas.cuh"
#include "avgrad/cuda/elementwise.cuh"

namespace avgrad::cuda {

enum class ConvPath { cudnn, im2col };

namespace detail {
inline std::atomic<ConvPath>& conv_path_flag() {
  static std::atomic<ConvPath> p{ConvPath::cudnn};
  return p;
}
}  // namespace detail

/// cuDNN (default, falling back to im2col where cuDNN refuses a problem) or always im2col.
inline void set_conv_path(ConvPath p) { detail::conv_path_flag() = p; }
inline ConvPath conv_path() { return detail::conv_path_flag(); }

/// cpu::ConvGeometry in plain arrays, for kernels.
struct ConvDims {
  std::int64_t C, in[3], out[3], k[3], stride[3], pad[3], dil[3];
  AVGRAD_HOST_DEVICE std::int64_t ksize() const { return k[0] * k[1] * k[2]; }
  AVGRAD_HOST_DEVICE std::int64_t in_size() const { return in[0] * in[1] * in[2]; }
  AVGRAD_HOST_DEVICE std::int64_t out_size() const { return out[0] * out[1] * out[2]; }
};
inline ConvDims conv_dims(const cpu::ConvGeometry& g) {
  ConvDims d{};
  d.C = g.channels;
  for (int i = 0; i < 3; ++i) {
    const auto s = static_cast<std::size_t>(i);
    d.in[i] = g.in[s];
    d.out[i] = g.out[s];
    d.k[i] = g.kernel[s];
    d.stride[i] = g.stride[s];
    d.pad[i] = g.pad[s];
    d.dil[i] = g.dilation[s];
  }
  return d;
}

/// cols (C·k, L) of one image (C, in…): row (c, j0, j1, j2), column o = (o0, o1, o2).
template <class T> __global__ void im2col_kernel(const T* img, ConvDims d, T* cols) {
  const std::int64_t L = d.out_size(), n = d.C * d.ksize() * L;
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t o = i % L, row = i / L;
    const std::int64_t j2 = row % d.k[2], j1 = (row / d.k[2]) % d.k[1], j0 = (row / (d.k[2] * d.k[1])) % d.k[0];
    const std::int64_t c = row / d.ksize();
    const std::int64_t o2 = o % d.out[2], o1 = (o / d.out[2]) % d.out[1], o0 = o / (d.out[2] * d.out[1]);
    const std::int64_t p0 = o0 * d.stride[0] - d.pad[0] + j0 * d.dil[0],
                       p1 = o1 * d.stride[1] - d.pad[1] + j1 * d.dil[1],
                       p2 = o2 * d.stride[2] - d.pad[2] + j2 * d.dil[2];
    const bool inside = p0 >= 0 && p0 < d.in[0] && p1 >= 0 && p1 < d.in[1] && p2 >= 0 && p2 < d.in[2];
    cols[i] = inside ? img[((c * d.in[0] + p0) * d.in[1] + p1) * d.in[2] + p2] : T(0);
  }
}

/// img (C, in…) = the adjoint of im2col: each input element sums the column entries that read it.
template <class T> __global__ void col2im_kernel(const T* cols, ConvDims d, T* img) {
  const std::int64_t L = d.out_size(), n = d.C * d.in_size();
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t p2 = i % d.in[2], p1 = (i / d.in[2]) % d.in[1], p0 = (i / (d.in[2] * d.in[1])) % d.in[0];
    const std::int64_t c = i / d.in_size();
    T acc = 0;
    for (std::int64_t j0 = 0; j0 < d.k[0]; ++j0) {
      const std::int64_t t0 = p0 + d.pad[0] - j0 * d.dil[0];
      if (t0 < 0 || t0 % d.stride[0] != 0 || t0 / d.stride[0] >= d.out[0]) continue;
      for (std::int64_t j1 = 0; j1 < d.k[1]; ++j1) {
        const std::int64_t t1 = p1 + d.pad[1] - j1 * d.dil[1];
        if (t1 < 0 || t1 % d.stride[1] != 0 || t1 / d.stride[1] >= d.out[1]) continue;
        for (std::int64_t j2 = 0; j2 < d.k[2]; ++j2) {
          const std::int64_t t2 = p2 + d.pad[2] - j2 * d.dil[2];
          if (t2 < 0 || t2 % d.stride[2] != 0 || t2 / d.stride[2] >= d.out[2]) continue;
          const std::int64_t row = ((c * d.k[0] + j0) * d.k[1] + j1) * d.k[2] + j2;
          const std::int64_t o = ((t0 / d.stride[0]) * d.out[1] + t1 / d.stride[1]) * d.out[2] + t2 / d.stride[2];
          acc += cols[row * L + o];
        }
      }
    }
    img[i] = acc;
  }
}

/// The three conv kernels of ops/conv.hpp by im2col + GEMM, one sample at a time.
/// Shapes: img (N, C, in…), w (Co, C/G, k…), y / dy (N, Co, out…); all contiguous.
template <class T> struct Im2colConv {
  ConvDims d;
  std::int64_t N, Co, G;

  std::int64_t cg() const { return d.C / G; }             // input channels per group
  std::int64_t cog() const { return Co / G; }             // output channels per group
  std::int64_t rows() const { return cg() * d.ksize(); }  // column rows per group

  void im2col(const T* img, T* cols) const {
    const std::int64_t n = d.C * d.ksize() * d.out_size();
    im2col_kernel<<<blocks_for(n), kThreads, 0, current_stream()>>>(img, d, cols);
    check_launch("im2col_kernel");
  }
  /// y[n]_g (Co/G, L) = W_g (Co/G, rows) · cols_g (rows, L)
  void forward(const T* img, const T* w, T* y, T* cols) const {
    const std::int64_t L = d.out_size();
    for (std::int64_t n = 0; n < N; ++n) {
      im2col(img + n * d.C * d.in_size(), cols);
      for (std::int64_t g = 0; g < G; ++g)
        cuda::gemm(false, false, cog(), L, rows(), T(1), w + g * cog() * rows(), rows(), cols + g * rows() * L, L, T(0),
                   y + (n * Co + g * cog()) * L, L);
    }
  }
  /// cols_g = W_gᵀ · dy[n]_g, then dx[n] = col2im(cols)
  void data(const T* dy, const T* w, T* dx, T* cols) const {
    const std::int64_t L = d.out_size();
    for (std::int64_t n = 0; n < N; ++n) {
      for (std::int64_t g = 0; g < G; ++g)
        cuda::gemm(true, false, rows(), L, cog(), T(1), w + g * cog() * rows(), rows(), dy + (n * Co + g * cog()) * L,
                   L, T(0), cols + g * rows() * L, L);
      const std::int64_t m = d.C * d.in_size();
      col2im_kernel<<<blocks_for(m), kThreads, 0, current_stream()>>>(cols, d, dx + n * m);
      check_launch("col2im_kernel");
    }
  }
  /// dW_g = Σ_n dy[n]_g · cols(img[n])_gᵀ
  void weight(const T* img, const T* dy, T* dw, T* cols) const {
    const std::int64_t L = d.out_size();
    for (std::int64_t n = 0; n < N; ++n) {
      im2col(img + n * d.C * d.in_size(), cols);
      for (std::int64_t g = 0; g < G; ++g)
        cuda::gemm(false, true, cog(), rows(), L, T(1), dy + (n * Co + g * cog()) * L, L, cols + g * rows() * L, L,
                   n == 0 ? T(0) : T(1), dw + g * cog() * rows(), rows());
    }
  }
};

}  // namespace avgrad::cuda
