// Analysis windows for framing audio: Hann, Hamming, Povey, rectangular and Blackman,
// periodic (torch.*_window's default, for spectral analysis) or symmetric (Kaldi).
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>
#include <string_view>

#include "avgrad/core/tensor.hpp"

namespace avgrad::audio {

enum class Window {
  hann,         ///< 0.5 − 0.5·cos(2πn/N)
  hamming,      ///< 0.54 − 0.46·cos(2πn/N)
  povey,        ///< Kaldi's default: hann^0.85 (goes to zero at the edges, flatter top)
  rectangular,  ///< all ones
  blackman,     ///< c − 0.5·cos(2πn/N) + (0.5 − c)·cos(4πn/N), c = blackman_coeff (0.42)
};

/// periodic: N = length (one period of a longer window, what torch.stft and librosa
/// use); symmetric: N = length − 1 (both edges equal, what Kaldi uses).
enum class Symmetry { periodic, symmetric };

inline std::string_view window_name(Window w) {
  switch (w) {
    case Window::hann:
      return "hann";
    case Window::hamming:
      return "hamming";
    case Window::povey:
      return "povey";
    case Window::rectangular:
      return "rectangular";
    case Window::blackman:
      return "blackman";
  }
  return "?";
}

/// Parses a window name as Kaldi and torchaudio spell them ("hanning" is Kaldi's
/// name for Hann).
inline Window parse_window(std::string_view name) {
  if (name == "hann" || name == "hanning") return Window::hann;
  if (name == "hamming") return Window::hamming;
  if (name == "povey") return Window::povey;
  if (name == "rectangular") return Window::rectangular;
  if (name == "blackman") return Window::blackman;
  throw Error("parse_window", "unknown window type '" + std::string(name) +
                                  "' (expected hann, hanning, hamming, povey, rectangular or blackman)");
}

/// One window value at n of a window with denominator N (computed in double).
inline double window_value(Window type, std::int64_t n, double denom, double blackman_coeff) {
  const double a = denom > 0 ? 2.0 * std::numbers::pi * static_cast<double>(n) / denom : 0.0;
  switch (type) {
    case Window::hann:
      return 0.5 - 0.5 * std::cos(a);
    case Window::hamming:
      return 0.54 - 0.46 * std::cos(a);
    case Window::povey:
      return std::pow(0.5 - 0.5 * std::cos(a), 0.85);
    case Window::rectangular:
      return 1.0;
    case Window::blackman:
      return blackman_coeff - 0.5 * std::cos(a) + (0.5 - blackman_coeff) * std::cos(2.0 * a);
  }
  return 1.0;
}

/// The window of `length` samples, computed in double and rounded once to T.
/// A one-sample window is [1] for every type (as torch).
template <Floating T> Tensor<T, Cpu> window(Window type, std::int64_t length, Symmetry symmetry = Symmetry::periodic,
                                            double blackman_coeff = 0.42) {
  AVGRAD_CHECK(length >= 1, "window", "length must be at least 1, got ", length, " for a ", window_name(type),
               " window");
  auto w = Tensor<T, Cpu>::empty(Shape{length});
  const double denom = static_cast<double>(symmetry == Symmetry::periodic ? length : length - 1);
  for (std::int64_t n = 0; n < length; ++n)
    w.data()[n] = length == 1 ? T(1) : static_cast<T>(window_value(type, n, denom, blackman_coeff));
  return w;
}

}  // namespace avgrad::audio
