// Frames<Cuda>: cutting waveforms into frames with Kaldi's per-frame processing, and the
// overlap-add gradient, on the GPU. With it the whole audio front-end runs on the device:
// the spectrum is one cuBLAS GEMM with the DFT basis (audio::detail::dft_spectrum), the
// mel bank another, the log and the decibels elementwise kernels.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "avgrad/audio/frame.hpp"
#include "avgrad/cuda/elementwise.cuh"

namespace avgrad::cuda {

/// ⌊a / b⌋ for b > 0 and any sign of a (C++ division truncates toward zero).
__device__ inline std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  const std::int64_t q = a / b;
  return q * b > a ? q - 1 : q;
}

/// Threads per frame block: a warp multiple (block_sum2's rule), no more than the frame needs.
inline int frame_threads(std::int64_t L) { return L >= 256 ? 256 : L > 64 ? 128 : 32; }

/// Lets `kernel` use `bytes` of dynamic shared memory (one frame) beside its static shared
/// memory (block_sum2's buffers), above the default 48 KiB per block when the device allows it;
/// a frame too long for any block is a clear error.
template <class K> void allow_frame_smem(K kernel, std::size_t bytes, std::int64_t L, const char* what) {
  cudaFuncAttributes attr{};
  AVGRAD_CUDA_CHECK(cudaFuncGetAttributes(&attr, kernel));
  const std::size_t total = bytes + attr.sharedSizeBytes;
  if (total <= 48 * 1024) return;
  int dev = 0, most = 0;
  AVGRAD_CUDA_CHECK(cudaGetDevice(&dev));
  AVGRAD_CUDA_CHECK(cudaDeviceGetAttribute(&most, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  AVGRAD_CHECK(total <= static_cast<std::size_t>(most), what, "frames of ", L, " samples need ", total,
               " bytes of shared memory per block; this GPU allows ", most);
  AVGRAD_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

/// One block per frame: cut through the padding rule and dither into shared memory, then
/// DC removal (a block sum in double, as the CPU's), pre-emphasis (reads the left
/// neighbour, hence the whole frame first) and the window on the way out.
template <class T> __global__ void frames_forward_kernel(const T* x, std::int64_t B, std::int64_t S, audio::Framing f,
                                                         audio::FrameProcessing p, const T* window, T* y) {
  extern __shared__ __align__(16) unsigned char frame_smem[];
  T* v = reinterpret_cast<T*>(frame_smem);
  const std::int64_t L = f.length, Tn = f.count, rows = B * Tn;
  const T c = static_cast<T>(p.preemphasis);
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xs = x + (r / Tn) * S;
    const std::int64_t start = f.offset + (r % Tn) * f.hop;
    double s = 0, unused = 0;
    for (std::int64_t j = threadIdx.x; j < L; j += blockDim.x) {
      const std::int64_t i = padded_source_index(start + j, S, f.pad);
      T val = i < 0 ? T(0) : xs[i];
      if (p.dither != 0.0)
        val += static_cast<T>(p.dither) *
               philox_normal<T>(p.dither_seed, p.dither_offset, static_cast<std::uint64_t>(r * L + j));
      v[j] = val;
      s += static_cast<double>(val);
    }
    T mean = T(0);
    if (p.remove_dc) {
      block_sum2(s, unused);  // synchronises the block: every v[j] is written
      mean = static_cast<T>(s / static_cast<double>(L));
    } else {
      __syncthreads();
    }
    for (std::int64_t j = threadIdx.x; j < L; j += blockDim.x) {
      T a = v[j] - mean;
      if (p.preemphasis != 0.0) a -= c * (j > 0 ? v[j - 1] - mean : a);
      if (window) a *= window[j];
      y[r * L + j] = a;
    }
    __syncthreads();  // v is reused by the next frame of this block
  }
}

/// One block per frame: the transposed processing of the frame gradient g into d
/// (window, then Pᵀ of pre-emphasis, then the DC projection), the CPU's order.
template <class T> __global__ void frames_transpose_kernel(const T* g, std::int64_t rows, std::int64_t L,
                                                           audio::FrameProcessing p, const T* window, T* d) {
  extern __shared__ __align__(16) unsigned char frame_smem[];
  T* w = reinterpret_cast<T*>(frame_smem);
  const T c = static_cast<T>(p.preemphasis);
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    for (std::int64_t j = threadIdx.x; j < L; j += blockDim.x) w[j] = window ? g[r * L + j] * window[j] : g[r * L + j];
    __syncthreads();
    double s = 0, unused = 0;
    for (std::int64_t j = threadIdx.x; j < L; j += blockDim.x) {
      T e = w[j];
      if (p.preemphasis != 0.0) {
        if (j + 1 < L) e -= c * w[j + 1];
        if (j == 0) e -= c * w[0];
      }
      d[r * L + j] = e;
      s += static_cast<double>(e);
    }
    if (p.remove_dc) {
      block_sum2(s, unused);
      const T mean = static_cast<T>(s / static_cast<double>(L));
      for (std::int64_t j = threadIdx.x; j < L; j += blockDim.x) d[r * L + j] -= mean;  // this thread's own writes
    }
    __syncthreads();  // w is reused by the next frame of this block
  }
}

/// Σ over the frames of signal b that read padded position q, of their gradient there.
template <class T> __device__ T gather_position(const T* d, std::int64_t b, std::int64_t q, const audio::Framing& f) {
  const std::int64_t L = f.length, rel = q - f.offset;
  std::int64_t t0 = floor_div(rel - L, f.hop) + 1, t1 = floor_div(rel, f.hop);
  t0 = t0 < 0 ? 0 : t0;
  t1 = t1 >= f.count ? f.count - 1 : t1;
  T acc = T(0);
  for (std::int64_t t = t0; t <= t1; ++t) acc += d[(b * f.count + t) * L + (rel - t * f.hop)];
  return acc;
}

/// dx[b, i] += the gradient that reached sample i directly (no padding in between); one
/// thread per sample, summed over frames in order, so the result is deterministic.
template <class T>
__global__ void frames_overlap_add_kernel(const T* d, std::int64_t B, std::int64_t S, audio::Framing f, T* dx) {
  const std::int64_t n = B * S;
  for (std::int64_t k = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; k < n;
       k += std::int64_t(gridDim.x) * blockDim.x)
    dx[k] += gather_position(d, k / S, k % S, f);
}

/// The frames' reads of the padding, folded back onto the samples they mirror or repeat:
/// one thread per signal walks its (short) padded margins in order, so that many padded
/// positions landing on one sample never race.
template <class T>
__global__ void frames_fold_padding_kernel(const T* d, std::int64_t B, std::int64_t S, audio::Framing f, T* dx) {
  const std::int64_t lo = f.offset, hi = f.offset + (f.count - 1) * f.hop + f.length;  // positions read: [lo, hi)
  for (std::int64_t b = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; b < B;
       b += std::int64_t(gridDim.x) * blockDim.x) {
    auto fold = [&](std::int64_t from, std::int64_t to) {
      for (std::int64_t q = from; q < to; ++q) {
        const std::int64_t i = padded_source_index(q, S, f.pad);
        if (i >= 0) dx[b * S + i] += gather_position(d, b, q, f);
      }
    };
    fold(lo, hi < 0 ? hi : 0);  // the left margin
    fold(lo > S ? lo : S, hi);  // the right margin
  }
}

}  // namespace avgrad::cuda

namespace avgrad::backend {

template <> struct Frames<Cuda> {
  template <class T> static void forward(const T* x, std::int64_t B, std::int64_t S, const audio::Framing& f,
                                         const audio::FrameProcessing& proc, const T* window, T* y) {
    const std::int64_t rows = B * f.count;
    const std::size_t smem = static_cast<std::size_t>(f.length) * sizeof(T);
    cuda::allow_frame_smem(cuda::frames_forward_kernel<T>, smem, f.length, "frames");
    cuda::frames_forward_kernel<T>
        <<<cuda::blocks_for(rows, 1), cuda::frame_threads(f.length), smem, cuda::current_stream()>>>(x, B, S, f, proc,
                                                                                                     window, y);
    cuda::check_launch("frames_forward_kernel");
  }

  template <class T> static void backward(const T* g, std::int64_t B, std::int64_t S, const audio::Framing& f,
                                          const audio::FrameProcessing& proc, const T* window, T* dx) {
    const std::int64_t rows = B * f.count, L = f.length;
    auto d = Tensor<T, Cuda>::empty(Shape{rows, L});
    const std::size_t smem = static_cast<std::size_t>(L) * sizeof(T);
    cuda::allow_frame_smem(cuda::frames_transpose_kernel<T>, smem, L, "frames");
    cuda::frames_transpose_kernel<T>
        <<<cuda::blocks_for(rows, 1), cuda::frame_threads(L), smem, cuda::current_stream()>>>(g, rows, L, proc, window,
                                                                                              d.data());
    cuda::check_launch("frames_transpose_kernel");
    cuda::frames_overlap_add_kernel<T>
        <<<cuda::blocks_for(B * S), cuda::kThreads, 0, cuda::current_stream()>>>(d.data(), B, S, f, dx);
    cuda::check_launch("frames_overlap_add_kernel");
    const bool reads_padding = f.offset < 0 || f.offset + (f.count - 1) * f.hop + L > S;
    if (f.pad != PadMode::constant && reads_padding) {
      cuda::frames_fold_padding_kernel<T>
          <<<cuda::blocks_for(B, 64), 64, 0, cuda::current_stream()>>>(d.data(), B, S, f, dx);
      cuda::check_launch("frames_fold_padding_kernel");
    }
  }
};

}  // namespace avgrad::backend
