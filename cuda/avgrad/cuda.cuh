// The CUDA backend: include after (or instead of) avgrad/avgrad.hpp in a translation unit
// compiled by nvcc to use Tensor<T, Cuda>. A g++-only build never sees these headers.
#pragma once

#include "avgrad/cuda/allocator.cuh"
#include "avgrad/cuda/audio.cuh"
#include "avgrad/cuda/blas.cuh"
#include "avgrad/cuda/conv.cuh"
#include "avgrad/cuda/elementwise.cuh"
#include "avgrad/cuda/gather.cuh"
#include "avgrad/cuda/knn.cuh"
#include "avgrad/cuda/norm.cuh"
#include "avgrad/cuda/optim.cuh"
#include "avgrad/cuda/pgd.cuh"
#include "avgrad/cuda/pool.cuh"
#include "avgrad/cuda/runtime.cuh"
#include "avgrad/cuda/softmax.cuh"
#include "avgrad/cuda/transfer.cuh"
