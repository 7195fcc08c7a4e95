// Loops<Cuda> and Fill<Cuda>: the elementwise seam on the GPU. One grid-stride kernel
// maps a host/device functor over up to three broadcast, strided operands; one kernel
// family reduces the reduced sub-block of every kept index in a fixed order, so sums
// are deterministic run to run. The functors are the ones the CPU loops run.
#pragma once

#include <cuda_runtime.h>

#include <array>
#include <cstdint>
#include <utility>

#include "avgrad/backend/cpu/loops.hpp"
#include "avgrad/core/philox.hpp"
#include "avgrad/core/shape.hpp"
#include "avgrad/cuda/allocator.cuh"
#include "avgrad/cuda/runtime.cuh"
#include "avgrad/ops/detail/elementwise.hpp"

namespace avgrad::cuda {

/// Operand offsets of a loop over a coalesced shape, passed to kernels by value.
/// Operand 0 is the output.
template <int N> struct Indexer {
  int rank = 0;
  std::int64_t size[kMaxRank] = {};
  std::int64_t stride[N][kMaxRank] = {};

  static Indexer make(const Shape& shape, const std::array<Strides, N>& strides) {
    const auto layout = cpu::coalesce<N>(shape, strides);
    Indexer ix;
    ix.rank = layout.shape.rank();
    for (int d = 0; d < ix.rank; ++d) {
      ix.size[d] = layout.shape[d];
      for (int k = 0; k < N; ++k) ix.stride[k][d] = layout.strides[k][d];
    }
    return ix;
  }
  /// Offsets of every operand for the flat (row-major) index i.
  AVGRAD_HOST_DEVICE void offsets(std::int64_t i, std::int64_t (&off)[N]) const {
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = rank - 1; d >= 0; --d) {
      const std::int64_t q = i / size[d], r = i - q * size[d];
      for (int k = 0; k < N; ++k) off[k] += r * stride[k][d];
      i = q;
    }
  }
};

/// Sums / maxima over the 32 lanes of a warp; every lane gets the result.
template <class A> __device__ A warp_sum(A v) {
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
template <class T> __device__ T warp_max(T v) {
  for (int o = 16; o > 0; o /= 2) v = ::fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/// Sums a and b over the block (blockDim.x a multiple of 32, ≤ 1024); every thread gets
/// the totals. The tree is fixed, so the result does not vary run to run.
template <class A> __device__ void block_sum2(A& a, A& b) {
  __shared__ A sa[32], sb[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  a = warp_sum(a);
  b = warp_sum(b);
  __syncthreads();  // the buffers may still be read by a previous call
  if (lane == 0) {
    sa[warp] = a;
    sb[warp] = b;
  }
  __syncthreads();
  a = lane < warps ? sa[lane] : A(0);
  b = lane < warps ? sb[lane] : A(0);
  a = warp_sum(a);
  b = warp_sum(b);
}

/// K input pointers of one element type, passed to a kernel by value.
template <class T, std::size_t K> struct Inputs { const T* p[K]; };
template <class T, class F, std::size_t K, std::size_t... J>
__device__ T apply_inputs(F& f, const Inputs<T, K>& in, const std::int64_t (&off)[K + 1], std::index_sequence<J...>) {
  return f(in.p[J][off[J + 1]]...);
}
template <class T, class F, std::size_t K>
__global__ void map_n_kernel(T* out, Inputs<T, K> in, Indexer<static_cast<int>(K) + 1> ix, std::int64_t n, F f) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    std::int64_t off[K + 1];
    ix.offsets(i, off);
    out[off[0]] = apply_inputs(f, in, off, std::make_index_sequence<K>{});
  }
}
template <class TO, class TI, class F> __global__ void map_indexed_kernel(TO* out, const TI* in, std::int64_t n, F f) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x)
    out[i] = f(in[i], static_cast<std::uint64_t>(i));
}
template <class TO, class TI, class F>
__global__ void map1_kernel(TO* out, const TI* in, Indexer<2> ix, std::int64_t n, F f) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    std::int64_t off[2];
    ix.offsets(i, off);
    out[off[0]] = f(in[off[1]]);
  }
}
template <class TO, class TA, class TB, class F>
__global__ void map2_kernel(TO* out, const TA* a, const TB* b, Indexer<3> ix, std::int64_t n, F f) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    std::int64_t off[3];
    ix.offsets(i, off);
    out[off[0]] = f(a[off[1]], b[off[2]]);
  }
}
template <class TO, class TA, class TB, class TC, class F>
__global__ void map3_kernel(TO* out, const TA* a, const TB* b, const TC* c, Indexer<4> ix, std::int64_t n, F f) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    std::int64_t off[4];
    ix.offsets(i, off);
    out[off[0]] = f(a[off[1]], b[off[2]], c[off[3]]);
  }
}

/// Short reductions: one thread folds one output.
template <class TI, class Acc, class TO, class Load, class Comb, class Fin>
__global__ void reduce_per_thread_kernel(const TI* in, Indexer<1> kept, Indexer<1> red, std::int64_t n_out,
                                         std::int64_t n_red, TO* out, Acc init, Load load, Comb comb, Fin fin) {
  for (std::int64_t o = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; o < n_out;
       o += std::int64_t(gridDim.x) * blockDim.x) {
    std::int64_t base[1], off[1];
    kept.offsets(o, base);
    Acc acc = init;
    for (std::int64_t j = 0; j < n_red; ++j) {
      red.offsets(j, off);
      acc = comb(acc, load(in[base[0] + off[0]]));
    }
    out[o] = fin(acc);
  }
}

/// Long reductions: one block per output, a strided fold per thread, then a tree in shared
/// memory (fixed shape, so the result does not depend on timing).
template <int Threads, class TI, class Acc, class TO, class Load, class Comb, class Fin>
__global__ void reduce_per_block_kernel(const TI* in, Indexer<1> kept, Indexer<1> red, std::int64_t n_out,
                                        std::int64_t n_red, TO* out, Acc init, Load load, Comb comb, Fin fin) {
  __shared__ unsigned char raw[Threads * sizeof(Acc)];
  Acc* part = reinterpret_cast<Acc*>(raw);
  for (std::int64_t o = blockIdx.x; o < n_out; o += gridDim.x) {
    std::int64_t base[1], off[1];
    kept.offsets(o, base);
    Acc acc = init;
    for (std::int64_t j = threadIdx.x; j < n_red; j += Threads) {
      red.offsets(j, off);
      acc = comb(acc, load(in[base[0] + off[0]]));
    }
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int s = Threads / 2; s > 0; s /= 2) {
      if (static_cast<int>(threadIdx.x) < s) part[threadIdx.x] = comb(part[threadIdx.x], part[threadIdx.x + s]);
      __syncthreads();
    }
    if (threadIdx.x == 0) out[o] = fin(part[0]);
    __syncthreads();  // part[] is reused by the next output
  }
}

template <class T> __global__ void fill_kernel(T* p, std::int64_t n, T v) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x)
    p[i] = v;
}
template <class T>
__global__ void uniform_kernel(T* p, std::int64_t n, std::uint64_t key, std::uint64_t offset, T lo, T span) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x)
    p[i] = lo + span * philox_uniform<T>(key, offset, static_cast<std::uint64_t>(i));
}
template <class T>
__global__ void normal_kernel(T* p, std::int64_t n, std::uint64_t key, std::uint64_t offset, double mean, double sd) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x)
    p[i] =
        static_cast<T>(mean + sd * static_cast<double>(philox_normal<T>(key, offset, static_cast<std::uint64_t>(i))));
}

inline constexpr int kThreads = 256;

}  // namespace avgrad::cuda

namespace avgrad::backend {

template <> struct Loops<Cuda> {
  template <class TO, class TI, class F>
  static void map1(TO* out, const Strides& so, const TI* in, const Strides& si, const Shape& shape, F f) {
    const std::int64_t n = shape.numel();
    if (n == 0) return;
    auto ix = cuda::Indexer<2>::make(shape, {so, si});
    cuda::map1_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, cuda::current_stream()>>>(out, in, ix, n, f);
    cuda::check_launch("map1_kernel");
  }
  template <class TO, class TA, class TB, class F> static void map2(TO* out, const Strides& so, const TA* a,
                                                                    const Strides& sa, const TB* b, const Strides& sb,
                                                                    const Shape& shape, F f) {
    const std::int64_t n = shape.numel();
    if (n == 0) return;
    auto ix = cuda::Indexer<3>::make(shape, {so, sa, sb});
    cuda::map2_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, cuda::current_stream()>>>(out, a, b, ix, n, f);
    cuda::check_launch("map2_kernel");
  }
  template <class TO, class TA, class TB, class TC, class F>
  static void map3(TO* out, const Strides& so, const TA* a, const Strides& sa, const TB* b, const Strides& sb,
                   const TC* c, const Strides& sc, const Shape& shape, F f) {
    const std::int64_t n = shape.numel();
    if (n == 0) return;
    auto ix = cuda::Indexer<4>::make(shape, {so, sa, sb, sc});
    cuda::map3_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, cuda::current_stream()>>>(out, a, b, c, ix, n, f);
    cuda::check_launch("map3_kernel");
  }
  template <class T, class F, std::size_t K> static void map_n(T* out, const Strides& so, const Shape& shape, F f,
                                                               const std::array<const T*, K>& in,
                                                               const std::array<Strides, K>& si) {
    const std::int64_t n = shape.numel();
    if (n == 0) return;
    std::array<Strides, K + 1> all;
    all[0] = so;
    cuda::Inputs<T, K> ptrs;
    for (std::size_t k = 0; k < K; ++k) {
      all[k + 1] = si[k];
      ptrs.p[k] = in[k];
    }
    auto ix = cuda::Indexer<static_cast<int>(K) + 1>::make(shape, all);
    cuda::map_n_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, cuda::current_stream()>>>(out, ptrs, ix, n, f);
    cuda::check_launch("map_n_kernel");
  }
  template <class TO, class TI, class F> static void map_indexed(TO* out, const TI* in, std::int64_t n, F f) {
    if (n == 0) return;
    cuda::map_indexed_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, cuda::current_stream()>>>(out, in, n, f);
    cuda::check_launch("map_indexed_kernel");
  }
  template <class TI, class Acc, class TO, class Load, class Comb, class Fin>
  static void reduce(const TI* in, const Shape& kept_shape, const Strides& kept_strides, const Shape& red_shape,
                     const Strides& red_strides, TO* out, Acc init, Load load, Comb comb, Fin fin) {
    const std::int64_t n_out = kept_shape.numel(), n_red = red_shape.numel();
    if (n_out == 0) return;
    auto kept = cuda::Indexer<1>::make(kept_shape, {kept_strides});
    auto red = cuda::Indexer<1>::make(red_shape, {red_strides});
    // a whole block per output only pays when each output folds many elements
    if (n_red <= 64 && n_out >= 1024) {
      cuda::reduce_per_thread_kernel<<<cuda::blocks_for(n_out), cuda::kThreads, 0, cuda::current_stream()>>>(
          in, kept, red, n_out, n_red, out, init, load, comb, fin);
      cuda::check_launch("reduce_per_thread_kernel");
    } else {
      const unsigned grid = static_cast<unsigned>(n_out < 65535 * 4 ? n_out : 65535 * 4);
      cuda::reduce_per_block_kernel<cuda::kThreads><<<grid, cuda::kThreads, 0, cuda::current_stream()>>>(
          in, kept, red, n_out, n_red, out, init, load, comb, fin);
      cuda::check_launch("reduce_per_block_kernel");
    }
  }
};

template <> struct Fill<Cuda> {
  template <class T> static void constant(T* p, std::int64_t n, T v) {
    if (n == 0) return;
    cuda::fill_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, cuda::current_stream()>>>(p, n, v);
    cuda::check_launch("fill_kernel");
  }
  template <class T> static void uniform(T* p, std::int64_t n, std::uint64_t key, std::uint64_t off, T lo, T span) {
    if (n == 0) return;
    cuda::uniform_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, cuda::current_stream()>>>(p, n, key, off, lo, span);
    cuda::check_launch("uniform_kernel");
  }
  template <class T>
  static void normal(T* p, std::int64_t n, std::uint64_t key, std::uint64_t off, double mean, double sd) {
    if (n == 0) return;
    cuda::normal_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, cuda::current_stream()>>>(p, n, key, off, mean, sd);
    cuda::check_launch("normal_kernel");
  }
};

}  // namespace avgrad::backend
