// Host <-> device copies behind Tensor::to<Cuda>() and to<Cpu>(): the source is made
// contiguous on its own device, staged through pinned host memory (full-speed DMA),
// and the copy is complete when to() returns, so the host tensor can be read and the
// staging block reused at once.
#pragma once

#include <cuda_runtime.h>

#include <cstring>

#include "avgrad/core/tensor.hpp"
#include "avgrad/cuda/allocator.cuh"
#include "avgrad/cuda/elementwise.cuh"
#include "avgrad/cuda/runtime.cuh"
#include "avgrad/ops/view.hpp"

namespace avgrad::backend {

template <> struct Transfer<Cpu, Cuda> {
  template <Element T> static Tensor<T, Cuda> copy(const Tensor<T, Cpu>& x) {
    const auto src = x.detach().contiguous();  // a copy is not recorded (see Tensor::to)
    auto out = Tensor<T, Cuda>::empty(x.shape());
    const std::int64_t n = x.numel();
    if (n == 0) return out;
    const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(T);
    cuda::PinnedBuffer<T> stage(n);
    std::memcpy(stage.data(), src.data(), bytes);
    const cudaStream_t s = cuda::current_stream();
    AVGRAD_CUDA_CHECK(cudaMemcpyAsync(out.data(), stage.data(), bytes, cudaMemcpyHostToDevice, s));
    AVGRAD_CUDA_CHECK(cudaStreamSynchronize(s));  // the staging block goes back to the pool next
    return out;
  }
};

template <> struct Transfer<Cuda, Cpu> {
  template <Element T> static Tensor<T, Cpu> copy(const Tensor<T, Cuda>& x) {
    const auto src = x.detach().contiguous();  // a copy is not recorded (see Tensor::to)
    auto out = Tensor<T, Cpu>::empty(x.shape());
    const std::int64_t n = x.numel();
    if (n == 0) return out;
    const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(T);
    cuda::PinnedBuffer<T> stage(n);
    const cudaStream_t s = cuda::current_stream();
    AVGRAD_CUDA_CHECK(cudaMemcpyAsync(stage.data(), src.data(), bytes, cudaMemcpyDeviceToHost, s));
    AVGRAD_CUDA_CHECK(cudaStreamSynchronize(s));
    std::memcpy(out.data(), stage.data(), bytes);
    return out;
  }
};

}  // namespace avgrad::backend
