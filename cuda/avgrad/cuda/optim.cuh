// Fused<Cuda>: the optimizers' fused update on the GPU. One grid-stride kernel applies the
// CPU's own update functor (fn::SgdUpdate, fn::AdamUpdate) to the parameter, its gradient
// and up to three state buffers in one pass, so SGD and Adam(W) step on the GPU with the
// CPU's arithmetic and no per-op temporaries.
#pragma once

#include <cuda_runtime.h>

#include <array>
#include <cstdint>
#include <utility>

#include "avgrad/cuda/elementwise.cuh"
#include "avgrad/optim/optimizer.hpp"

namespace avgrad::cuda {

template <class T, std::size_t S> struct StatePointers { T* p[S > 0 ? S : 1]; };

template <class T, class F, std::size_t S, std::size_t... I>
__device__ void fused_apply(T* p, const T* g, const StatePointers<T, S>& s, const std::int64_t (&off)[2 + S], F& f,
                            std::index_sequence<I...>) {
  f(p[off[0]], g[off[1]], s.p[I][off[I + 2]]...);
}

template <class T, class F, std::size_t S>
__global__ void fused_update_kernel(T* p, const T* g, StatePointers<T, S> s, Indexer<2 + S> ix, std::int64_t n, F f) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    std::int64_t off[2 + S];
    ix.offsets(i, off);
    fused_apply(p, g, s, off, f, std::make_index_sequence<S>{});
  }
}

}  // namespace avgrad::cuda

namespace avgrad::backend {

template <> struct Fused<Cuda> {
  template <class T, class F, class... S>
  static void update(Tensor<T, Cuda>& p, const Tensor<T, Cuda>& g, const F& f, S&... states) {
    constexpr std::size_t N = sizeof...(S);
    const std::int64_t n = p.numel();
    if (n > 0) {
      cuda::StatePointers<T, N> sp{{states.data()...}};
      auto ix = cuda::Indexer<2 + N>::make(p.shape(), {p.strides(), g.strides(), states.strides()...});
      cuda::fused_update_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, cuda::current_stream()>>>(p.data(), g.data(),
                                                                                                    sp, ix, n, f);
      cuda::check_launch("fused_update_kernel");
    }
    p.storage()->bump_version();
  }
};

}  // namespace avgrad::backend
