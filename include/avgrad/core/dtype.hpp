// Element types avgrad tensors hold, and their names for messages and files.
// Floating types carry gradients; integer and bool tensors are indices, labels, masks; the
// 16-bit floating types (core/half.hpp) are storage: reduced-precision GEMM operands, files.
#pragma once

#include <concepts>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "avgrad/core/half.hpp"

namespace avgrad {

template <class T>
concept Element = std::same_as<T, float> || std::same_as<T, double> || std::same_as<T, std::int32_t> ||
    std::same_as<T, std::int64_t> || std::same_as<T, bool> || std::same_as<T, std::uint8_t> ||
    std::same_as<T, bfloat16> || std::same_as<T, float16>;

/// Types that can require grad and take part in the tape.
template <class T>
concept Floating = std::same_as<T, float> || std::same_as<T, double>;

template <Element T> constexpr std::string_view dtype_name() {
  if constexpr (std::same_as<T, float>)
    return "float32";
  else if constexpr (std::same_as<T, double>)
    return "float64";
  else if constexpr (std::same_as<T, std::int32_t>)
    return "int32";
  else if constexpr (std::same_as<T, std::int64_t>)
    return "int64";
  else if constexpr (std::same_as<T, bool>)
    return "bool";
  else if constexpr (std::same_as<T, bfloat16>)
    return "bfloat16";
  else if constexpr (std::same_as<T, float16>)
    return "float16";
  else
    return "uint8";
}

}  // namespace avgrad
