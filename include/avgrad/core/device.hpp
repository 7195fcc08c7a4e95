// Device tags. A device is a type, so Tensor<float, Cpu> and Tensor<float, Cuda>
// never mix by accident; ops dispatch to kernels by overloading on the tag.
#pragma once

#include <concepts>
#include <string_view>

#if defined(__CUDACC__)
#define AVGRAD_HOST_DEVICE __host__ __device__
#else
#define AVGRAD_HOST_DEVICE
#endif

namespace avgrad {

/// Host memory; kernels are OpenMP loops and Eigen GEMM (backend/cpu).
struct Cpu {
  static constexpr std::string_view name = "cpu";
};

/// NVIDIA GPU memory; kernels live under cuda/ and are only visible to nvcc
/// translation units. The tag exists in every build so that APIs can name it.
struct Cuda {
  static constexpr std::string_view name = "cuda";
};

template <class D>
concept Device = std::same_as<D, Cpu> || std::same_as<D, Cuda>;

}  // namespace avgrad
