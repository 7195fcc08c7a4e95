// Pool<Cuda>: max and average pooling (strided with padding, dilation and ceil_mode, or
// adaptive) over 1 to 3 spatial dims, one thread per output. The window rules are the
// CPU's (cpu::PoolGeometry, cpu::pool_taps are host/device), so both twins agree on every
// window, tie and divisor; cuDNN's pooling knows neither adaptive bins nor dilation.
// Backward scatters with atomics: windows may share inputs.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <limits>

#include "avgrad/cuda/elementwise.cuh"
#include "avgrad/ops/pool.hpp"

namespace avgrad::cuda {

/// x's element strides as (b, c, d0, d1, d2) plus its batch and channel counts.
struct PoolInput {
  std::int64_t stride[5];
  std::int64_t channels;
};

inline PoolInput pool_input(const Shape& shape, const Strides& strides) {
  PoolInput in{};
  const int nd = shape.rank() - 2;
  in.stride[0] = strides[0];
  in.stride[1] = strides[1];
  for (int d = 0; d < 3; ++d) in.stride[2 + d] = d < 3 - nd ? 0 : strides[2 + d - (3 - nd)];
  in.channels = shape[1];
  return in;
}

/// The output o of `n` (plane-major, then d0, d1, d2) as its plane and per-dim taps.
struct PoolWindow {
  std::int64_t plane;
  cpu::PoolTaps t[3];
};
__device__ inline PoolWindow pool_window(const cpu::PoolGeometry& g, std::int64_t o) {
  PoolWindow w;
  const std::int64_t o2 = o % g.out[2], o1 = (o / g.out[2]) % g.out[1], o0 = (o / (g.out[2] * g.out[1])) % g.out[0];
  w.plane = o / g.out_plane();
  w.t[0] = cpu::pool_taps(g, 0, o0);
  w.t[1] = cpu::pool_taps(g, 1, o1);
  w.t[2] = cpu::pool_taps(g, 2, o2);
  return w;
}

template <class T> __global__ void max_pool_kernel(const T* x, PoolInput in, cpu::PoolGeometry g, std::int64_t n, T* y,
                                                   std::int64_t* idx) {
  for (std::int64_t o = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; o < n;
       o += std::int64_t(gridDim.x) * blockDim.x) {
    const PoolWindow w = pool_window(g, o);
    const T* xp = x + (w.plane / in.channels) * in.stride[0] + (w.plane % in.channels) * in.stride[1];
    const std::int64_t s0 = g.step(0), s1 = g.step(1), s2 = g.step(2);
    // −inf at the first in-bounds tap, −1 when there is none: the CPU's rule
    T best = -std::numeric_limits<T>::infinity();
    const bool live = w.t[0].count > 0 && w.t[1].count > 0 && w.t[2].count > 0;
    std::int64_t arg = live ? (w.t[0].first * g.in[1] + w.t[1].first) * g.in[2] + w.t[2].first : -1;
    for (std::int64_t j0 = 0; j0 < w.t[0].count; ++j0)
      for (std::int64_t j1 = 0; j1 < w.t[1].count; ++j1)
        for (std::int64_t j2 = 0; j2 < w.t[2].count; ++j2) {
          const std::int64_t i0 = w.t[0].first + j0 * s0, i1 = w.t[1].first + j1 * s1, i2 = w.t[2].first + j2 * s2;
          const T v = xp[i0 * in.stride[2] + i1 * in.stride[3] + i2 * in.stride[4]];
          if (v > best || (v != v && best == best)) {  // the first maximum wins; a NaN beats any number
            best = v;
            arg = (i0 * g.in[1] + i1) * g.in[2] + i2;
          }
        }
    y[o] = best;
    if (idx) idx[o] = arg;
  }
}

template <class T> __global__ void max_pool_backward_kernel(const T* g, const std::int64_t* idx, std::int64_t n,
                                                            std::int64_t n_out, std::int64_t n_in, T* dx) {
  for (std::int64_t o = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; o < n;
       o += std::int64_t(gridDim.x) * blockDim.x)
    if (idx[o] >= 0) atomicAdd(dx + (o / n_out) * n_in + idx[o], g[o]);
}

template <class T>
__global__ void avg_pool_kernel(const T* x, PoolInput in, cpu::PoolGeometry g, std::int64_t n, T* y) {
  using A = acc_t<T>;
  for (std::int64_t o = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; o < n;
       o += std::int64_t(gridDim.x) * blockDim.x) {
    const PoolWindow w = pool_window(g, o);
    const T* xp = x + (w.plane / in.channels) * in.stride[0] + (w.plane % in.channels) * in.stride[1];
    const std::int64_t s0 = g.step(0), s1 = g.step(1), s2 = g.step(2);
    A acc = 0;
    for (std::int64_t j0 = 0; j0 < w.t[0].count; ++j0)
      for (std::int64_t j1 = 0; j1 < w.t[1].count; ++j1)
        for (std::int64_t j2 = 0; j2 < w.t[2].count; ++j2)
          acc += static_cast<A>(xp[(w.t[0].first + j0 * s0) * in.stride[2] + (w.t[1].first + j1 * s1) * in.stride[3] +
                                   (w.t[2].first + j2 * s2) * in.stride[4]]);
    const std::int64_t d = cpu::pool_divisor(g, w.t[0]) * cpu::pool_divisor(g, w.t[1]) * cpu::pool_divisor(g, w.t[2]);
    y[o] = d > 0 ? static_cast<T>(acc / static_cast<A>(d)) : T(0);
  }
}

template <class T> __global__ void avg_pool_backward_kernel(const T* g, cpu::PoolGeometry geo, std::int64_t n, T* dx) {
  for (std::int64_t o = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; o < n;
       o += std::int64_t(gridDim.x) * blockDim.x) {
    const PoolWindow w = pool_window(geo, o);
    const std::int64_t d =
        cpu::pool_divisor(geo, w.t[0]) * cpu::pool_divisor(geo, w.t[1]) * cpu::pool_divisor(geo, w.t[2]);
    if (d <= 0) continue;
    const T share = g[o] / static_cast<T>(d);
    T* dp = dx + w.plane * geo.in_plane();
    const std::int64_t s0 = geo.step(0), s1 = geo.step(1), s2 = geo.step(2);
    for (std::int64_t j0 = 0; j0 < w.t[0].count; ++j0)
      for (std::int64_t j1 = 0; j1 < w.t[1].count; ++j1)
        for (std::int64_t j2 = 0; j2 < w.t[2].count; ++j2)
          atomicAdd(
              dp + ((w.t[0].first + j0 * s0) * geo.in[1] + w.t[1].first + j1 * s1) * geo.in[2] + w.t[2].first + j2 * s2,
              share);
  }
}

}  // namespace avgrad::cuda

namespace avgrad::backend {

template <> struct Pool<Cuda> {
  template <class T> static Tensor<T, Cuda> max_forward(const Tensor<T, Cuda>& x, const cpu::PoolGeometry& g,
                                                        Tensor<std::int64_t, Cuda>* idx) {
    const Shape out = detail::pool_out_shape(x.shape(), g);
    auto y = Tensor<T, Cuda>::empty(out);
    if (idx) *idx = Tensor<std::int64_t, Cuda>::empty(out);
    const std::int64_t n = out.numel();
    if (n == 0) return y;
    cuda::max_pool_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, cuda::current_stream()>>>(
        x.data(), cuda::pool_input(x.shape(), x.strides()), g, n, y.data(), idx ? idx->data() : nullptr);
    cuda::check_launch("max_pool_kernel");
    return y;
  }
  template <class T> static Tensor<T, Cuda> max_backward(const Tensor<T, Cuda>& g,
                                                         const Tensor<std::int64_t, Cuda>& idx, const Shape& in_shape,
                                                         const cpu::PoolGeometry& geo) {
    auto gc = g.contiguous();
    auto dx = zeros<T, Cuda>(in_shape);
    const std::int64_t n = gc.numel();
    if (n == 0) return dx;
    cuda::max_pool_backward_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, cuda::current_stream()>>>(
        gc.data(), idx.data(), n, geo.out_plane(), geo.in_plane(), dx.data());
    cuda::check_launch("max_pool_backward_kernel");
    return dx;
  }
  template <class T> static Tensor<T, Cuda> avg_forward(const Tensor<T, Cuda>& x, const cpu::PoolGeometry& g) {
    auto y = Tensor<T, Cuda>::empty(detail::pool_out_shape(x.shape(), g));
    const std::int64_t n = y.numel();
    if (n == 0) return y;
    cuda::avg_pool_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, cuda::current_stream()>>>(
        x.data(), cuda::pool_input(x.shape(), x.strides()), g, n, y.data());
    cuda::check_launch("avg_pool_kernel");
    return y;
  }
  template <class T>
  static Tensor<T, Cuda> avg_backward(const Tensor<T, Cuda>& g, const Shape& in_shape, const cpu::PoolGeometry& geo) {
    auto gc = g.contiguous();
    auto dx = zeros<T, Cuda>(in_shape);
    const std::int64_t n = gc.numel();
    if (n == 0) return dx;
    cuda::avg_pool_backward_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, cuda::current_stream()>>>(gc.data(), geo,
                                                                                                       n, dx.data());
    cuda::check_launch("avg_pool_backward_kernel");
    return dx;
  }
};

}  // namespace avgrad::backend
