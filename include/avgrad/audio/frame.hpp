// Cutting waveforms into overlapping frames, differentiably: Kaldi framing (snip_edges
// or mirrored edges), torch.stft/librosa centred framing, and Kaldi's per-frame
// processing (dither, DC offset removal, pre-emphasis, window) fused into one pass.
//
// Layout: x is (..., S) samples; frames are (..., T, L): every leading dim is a batch
// dim. The gradient with respect to x is the overlap-add of the frame gradients.
#pragma once

#include <omp.h>

#include <cstdint>
#include <string>
#include <vector>

#include "avgrad/autograd/node.hpp"
#include "avgrad/backend/cpu/loops.hpp"
#include "avgrad/core/philox.hpp"
#include "avgrad/ops/join.hpp"
#include "avgrad/ops/reduce.hpp"

namespace avgrad::audio {

/// Which samples each frame reads: frame t covers the padded positions
/// [offset + t·hop, offset + t·hop + length). Positions outside [0, S) are zero
/// (PadMode::constant) or read the signal mirrored/replicated (see PadMode).
struct Framing {
  std::int64_t length = 0;  ///< L, samples per frame
  std::int64_t hop = 0;     ///< samples between frame starts
  std::int64_t offset = 0;  ///< position of frame 0's first sample (negative: starts in the left padding)
  std::int64_t count = 0;   ///< T, number of frames
  PadMode pad = PadMode::constant;
};

/// Kaldi's framing of S samples. snip_edges: frames lie fully inside the signal,
/// T = 1 + (S − L) / hop (0 when S < L). Otherwise T = (S + hop/2) / hop and frame t
/// is centred on t·hop + hop/2, with the signal mirrored at both ends (edge sample
/// repeated, mirrored again as often as needed — what Kaldi's ExtractWindow does).
inline Framing kaldi_framing(std::int64_t samples, std::int64_t length, std::int64_t hop, bool snip_edges) {
  AVGRAD_CHECK(length >= 1 && hop >= 1, "kaldi_framing", "frame length and shift must be positive, got length ", length,
               " and shift ", hop);
  AVGRAD_CHECK(samples >= 0, "kaldi_framing", "negative number of samples ", samples);
  Framing f{length, hop, 0, 0, PadMode::symmetric};
  if (snip_edges) {
    f.count = samples < length ? 0 : 1 + (samples - length) / hop;
    f.pad = PadMode::constant;  // never read
  } else {
    f.count = (samples + hop / 2) / hop;
    f.offset = hop / 2 - length / 2;
  }
  return f;
}

/// torch.stft / librosa framing of S samples into frames of n_fft, of which only the
/// win_length samples in the middle ((n_fft − win_length)/2 from the frame start)
/// are kept: those are the only ones a zero-padded window lets through. center pads
/// n_fft/2 on both sides with `pad`; T = 1 + (S + 2·(n_fft/2) − n_fft) / hop.
inline Framing stft_framing(std::int64_t samples, std::int64_t n_fft, std::int64_t hop, std::int64_t win_length,
                            bool center, PadMode pad) {
  AVGRAD_CHECK(n_fft >= 1 && hop >= 1, "stft_framing", "n_fft and hop must be positive, got n_fft ", n_fft, " and hop ",
               hop);
  AVGRAD_CHECK(win_length >= 1 && win_length <= n_fft, "stft_framing", "win_length must be in [1, n_fft = ", n_fft,
               "], got ", win_length);
  const std::int64_t left = center ? n_fft / 2 : 0, padded = samples + 2 * left;
  AVGRAD_CHECK(padded >= n_fft, "stft_framing", "a signal of ", samples, " samples", center ? " padded by " : "",
               center ? std::to_string(left) + " on both sides" : std::string(), " is shorter than n_fft = ", n_fft);
  AVGRAD_CHECK(samples > 0 || pad == PadMode::constant, "stft_framing", "cannot ", pad_mode_name(pad),
               "-pad an empty signal");
  return Framing{win_length, hop, (n_fft - win_length) / 2 - left, 1 + (padded - n_fft) / hop,
                 center ? pad : PadMode::constant};
}

/// Kaldi's per-frame processing, applied in this order after cutting a frame.
struct FrameProcessing {
  double dither = 0.0;  ///< add dither·N(0,1) per sample (Philox stream dither_seed/dither_offset)
  std::uint64_t dither_seed = 0, dither_offset = 0;
  bool remove_dc = false;    ///< subtract the frame mean
  double preemphasis = 0.0;  ///< y[j] = x[j] − c·x[j−1], y[0] = x[0] − c·x[0]
};

namespace detail {

/// Frame t of one signal (S samples at xs) into out[0, L), unprocessed.
template <class T> void cut_frame(const T* xs, std::int64_t samples, const Framing& f, std::int64_t t, T* out) {
  const std::int64_t start = f.offset + t * f.hop;
  if (start >= 0 && start + f.length <= samples) {
    for (std::int64_t j = 0; j < f.length; ++j) out[j] = xs[start + j];
    return;
  }
  for (std::int64_t j = 0; j < f.length; ++j) {
    const std::int64_t i = padded_source_index(start + j, samples, f.pad);
    out[j] = i < 0 ? T(0) : xs[i];
  }
}

/// Dither, DC removal, pre-emphasis and window on one frame, in place.
template <class T>
void process_frame(T* v, std::int64_t L, const FrameProcessing& p, std::uint64_t frame_index, const T* window) {
  if (p.dither != 0.0) {
    const std::uint64_t first = frame_index * static_cast<std::uint64_t>(L);
    for (std::int64_t j = 0; j < L; ++j)
      v[j] += static_cast<T>(p.dither) * philox_normal<T>(p.dither_seed, p.dither_offset, first + j);
  }
  if (p.remove_dc) {
    double s = 0;
    for (std::int64_t j = 0; j < L; ++j) s += v[j];
    const T mean = static_cast<T>(s / static_cast<double>(L));
    for (std::int64_t j = 0; j < L; ++j) v[j] -= mean;
  }
  if (p.preemphasis != 0.0) {
    const T c = static_cast<T>(p.preemphasis);
    for (std::int64_t j = L - 1; j > 0; --j) v[j] -= c * v[j - 1];
    v[0] -= c * v[0];
  }
  if (window)
    for (std::int64_t j = 0; j < L; ++j) v[j] *= window[j];
}

/// The transpose of process_frame's linear part (dither is additive: identity).
/// Window: d·w. Pre-emphasis y = P x has Pᵀ d: d[j] − c·d[j+1], and d[0] − c·d[0] for
/// the first sample's own term. DC removal is the symmetric projection I − 11ᵀ/L.
template <class T> void process_frame_transposed(T* d, std::int64_t L, const FrameProcessing& p, const T* window) {
  if (window)
    for (std::int64_t j = 0; j < L; ++j) d[j] *= window[j];
  if (p.preemphasis != 0.0) {
    const T c = static_cast<T>(p.preemphasis), d0 = d[0];
    for (std::int64_t j = 0; j + 1 < L; ++j) d[j] -= c * d[j + 1];
    d[0] -= c * d0;
  }
  if (p.remove_dc) {
    double s = 0;
    for (std::int64_t j = 0; j < L; ++j) s += d[j];
    const T mean = static_cast<T>(s / static_cast<double>(L));
    for (std::int64_t j = 0; j < L; ++j) d[j] -= mean;
  }
}

inline bool frames_worth_parallel(std::int64_t work) { return !omp_in_parallel() && work >= cpu::kParallelGrain; }

}  // namespace detail

}  // namespace avgrad::audio

namespace avgrad::backend {

/// Cuts and processes frames, and overlap-adds their gradients, on device D. Buffers
/// are contiguous and on D: signals x (B, S), frames (B·T, L), window L values or null;
/// backward adds into dx, which the caller zeroes.
template <Device D> struct Frames;

template <> struct Frames<Cpu> {
  template <class T> static void forward(const T* x, std::int64_t B, std::int64_t S, const audio::Framing& f,
                                         const audio::FrameProcessing& proc, const T* window, T* y) {
    const std::int64_t L = f.length, Tn = f.count, rows = B * Tn;
#pragma omp parallel for if (audio::detail::frames_worth_parallel(rows * L))
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::int64_t b = r / Tn, t = r % Tn;
      T* v = y + r * L;
      audio::detail::cut_frame(x + b * S, S, f, t, v);
      audio::detail::process_frame(v, L, proc, static_cast<std::uint64_t>(r), window);
    }
  }

  template <class T> static void backward(const T* g, std::int64_t B, std::int64_t S, const audio::Framing& f,
                                          const audio::FrameProcessing& proc, const T* window, T* dx) {
    const std::int64_t L = f.length, Tn = f.count;
    // One signal per thread: the frames of a signal overlap, so its overlap-add is serial.
#pragma omp parallel if (audio::detail::frames_worth_parallel(B * Tn * L) && B > 1)
    {
      std::vector<T> d(static_cast<std::size_t>(L));
#pragma omp for
      for (std::int64_t b = 0; b < B; ++b) {
        T* dxs = dx + b * S;
        for (std::int64_t t = 0; t < Tn; ++t) {
          const T* gr = g + (b * Tn + t) * L;
          for (std::int64_t j = 0; j < L; ++j) d[static_cast<std::size_t>(j)] = gr[j];
          audio::detail::process_frame_transposed(d.data(), L, proc, window);
          const std::int64_t start = f.offset + t * f.hop;
          if (start >= 0 && start + L <= S) {
            for (std::int64_t j = 0; j < L; ++j) dxs[start + j] += d[static_cast<std::size_t>(j)];
          } else {
            for (std::int64_t j = 0; j < L; ++j) {
              const std::int64_t i = padded_source_index(start + j, S, f.pad);
              if (i >= 0) dxs[i] += d[static_cast<std::size_t>(j)];
            }
          }
        }
      }
    }
  }
};

}  // namespace avgrad::backend

namespace avgrad::audio {

/// Frames of x (..., S) as (..., T, L), each cut by `framing` and processed by
/// `proc` and, when defined, multiplied by `window` (L values, on x's device). A
/// non-finite sample is an error naming its index. Differentiable with respect to x
/// (the window is a constant): the gradient of each frame goes through the transposed
/// processing and is added back where the frame read it.
template <Floating T, Device D> Tensor<T, D> frames(const Tensor<T, D>& x, const Framing& framing,
                                                    const FrameProcessing& proc = {}, const Tensor<T, D>& window = {}) {
  avgrad::detail::check_defined(x, "frames");
  AVGRAD_CHECK(x.dim() >= 1, "frames", "expected a signal of shape (..., samples), got a scalar");
  const Framing f = framing;
  AVGRAD_CHECK(f.length >= 1 && f.hop >= 1 && f.count >= 0, "frames", "invalid framing: length ", f.length, ", hop ",
               f.hop, ", count ", f.count);
  const std::int64_t S = x.shape()[x.dim() - 1], L = f.length, Tn = f.count;
  std::int64_t B = 1;  // every leading dim is a batch dim
  for (int d = 0; d + 1 < x.dim(); ++d) B *= x.shape()[d];
  if (f.pad != PadMode::constant)
    AVGRAD_CHECK(S > 0 || Tn == 0, "frames", "cannot ", pad_mode_name(f.pad), "-pad an empty signal of shape ",
                 x.shape());
  if (window.defined())
    AVGRAD_CHECK(window.dim() == 1 && window.numel() == L, "frames", "window of shape ", window.shape(),
                 " does not match the frame length ", L);
  Shape out_shape = x.shape();
  out_shape[out_shape.rank() - 1] = Tn;
  out_shape.push_back(L);
  const Tensor<T, D> xc = x.contiguous();
  check_finite(xc, "frames");  // a NaN sample would silently poison every frame that reads it
  const Tensor<T, D> wc = window.defined() ? window.contiguous() : Tensor<T, D>();
  auto y = Tensor<T, D>::empty(out_shape);
  if (B * Tn > 0) backend::Frames<D>::forward(xc.data(), B, S, f, proc, wc.defined() ? wc.data() : nullptr, y.data());
  if (!autograd::any_requires_grad<T, D>({&x})) return y;
  const Shape x_shape = x.shape();
  return autograd::record<T, D>("frames", y, {x}, [=](const Tensor<T, D>& g_any, const std::vector<bool>&) {
    const Tensor<T, D> g = g_any.contiguous();
    auto dx = zeros<T, D>(x_shape);
    if (B * Tn > 0 && S > 0)
      backend::Frames<D>::backward(g.data(), B, S, f, proc, wc.defined() ? wc.data() : nullptr, dx.data());
    return autograd::Grads<T, D>{dx};
  });
}

}  // namespace avgrad::audio
