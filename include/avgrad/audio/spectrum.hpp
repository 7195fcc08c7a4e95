// Differentiable short-time Fourier transform: the real FFT of frames (complex,
// magnitude or power), and stft()/spectrogram() with torch.stft's framing, window
// and normalisation conventions.
//
// Layout: frames (..., T, L) → spectra (..., T, F) with F = n_fft/2 + 1 bins, or
// (..., T, F, 2) (real, imaginary) for complex output. Time is the second-to-last
// dim (PyTorch's Spectrogram puts frequency there: transpose(-1, -2) converts).
#pragma once

#include <omp.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "avgrad/audio/frame.hpp"
#include "avgrad/audio/window.hpp"
#include "avgrad/backend/cpu/fft.hpp"
#include "avgrad/ops/unary.hpp"

namespace avgrad::audio {

enum class SpectrumKind {
  complex,    ///< (..., F, 2): real and imaginary parts
  magnitude,  ///< (..., F): |X|
  power,      ///< (..., F): |X|²
};

namespace detail {

/// Backward of the one-sided real DFT X_k = Σ_t x_t e^{−2πikt/n}, k < F:
/// dx_t = Σ_k Re(G_k e^{+2πikt/n}) with G_k = g_re + i·g_im. The unnormalised
/// Hermitian inverse computes Y_0 + 2·Re Σ_{0<k<n/2} Y_k e^{iθ} + Y_{n/2}(−1)^t, so
/// Y_0 = Re G_0, Y_{n/2} = Re G_{n/2} and Y_k = G_k / 2 in between give dx exactly.
template <class T> void halve_inner_bins(T* G, std::int64_t n, std::int64_t F) {
  G[1] = 0;
  const std::int64_t last = n % 2 == 0 ? F - 1 : F;  // the Nyquist bin exists only for even n
  for (std::int64_t k = 1; k < last; ++k) {
    G[2 * k] *= T(0.5);
    G[2 * k + 1] *= T(0.5);
  }
  if (n % 2 == 0) G[2 * (F - 1) + 1] = 0;
}

}  // namespace detail

/// The one-sided DFT of every frame of x (..., L) zero-padded to n_fft, with the L
/// samples placed at [offset, offset + L) of the transform (torch.stft centres a short
/// window inside n_fft this way; the placement changes only the phase). No window
/// is applied here (frames() applies it). Differentiable: the backward is one real
/// inverse FFT per frame; magnitude and power keep the complex spectrum they computed
/// anyway (rows·F·2 values, as PyTorch's abs() saves its complex input) rather than
/// recomputing it. |X| has gradient 0 where X = 0.
template <Floating T> Tensor<T, Cpu> spectrum(const Tensor<T, Cpu>& x, std::int64_t n_fft,
                                              SpectrumKind kind = SpectrumKind::complex, std::int64_t offset = 0) {
  avgrad::detail::check_defined(x, "spectrum");
  AVGRAD_CHECK(x.dim() >= 1, "spectrum", "expected frames of shape (..., L), got a scalar");
  const std::int64_t L = x.shape()[x.dim() - 1];
  AVGRAD_CHECK(n_fft >= 1 && offset >= 0 && offset + L <= n_fft, "spectrum", "frames of ", L,
               " samples placed at offset ", offset, " do not fit an n_fft of ", n_fft, " (input shape ", x.shape(),
               ")");
  const std::int64_t F = n_fft / 2 + 1, rows = L > 0 ? x.numel() / L : 0;
  Shape out_shape = x.shape();
  out_shape[out_shape.rank() - 1] = F;
  Shape complex_shape = out_shape;
  complex_shape.push_back(2);
  if (kind == SpectrumKind::complex) out_shape = complex_shape;
  const bool grad = autograd::any_requires_grad<T, Cpu>({&x});
  const auto plan = cpu::real_fft_plan<T>(n_fft);
  const Tensor<T, Cpu> xc = x.contiguous();
  auto y = Tensor<T, Cpu>::empty(out_shape);
  // the complex spectrum: the output itself, or kept for the backward of |X| and |X|²
  Tensor<T, Cpu> X = kind == SpectrumKind::complex ? y : grad ? Tensor<T, Cpu>::empty(complex_shape) : Tensor<T, Cpu>();
  {
    const T* xp = xc.data();
    T* yp = y.data();
    T* Xp = X.defined() ? X.data() : nullptr;
#pragma omp parallel if (detail::frames_worth_parallel(rows * n_fft))
    {
      std::vector<T> in(static_cast<std::size_t>(n_fft), T(0)), row(static_cast<std::size_t>(2 * F)),
          scratch(plan->scratch_size());
#pragma omp for
      for (std::int64_t r = 0; r < rows; ++r) {
        for (std::int64_t j = 0; j < L; ++j) in[static_cast<std::size_t>(offset + j)] = xp[r * L + j];
        T* c = Xp ? Xp + r * 2 * F : row.data();
        plan->forward(in.data(), c, scratch.data());
        if (kind == SpectrumKind::complex) continue;
        T* out = yp + r * F;
        for (std::int64_t k = 0; k < F; ++k) {
          const T p = c[2 * k] * c[2 * k] + c[2 * k + 1] * c[2 * k + 1];
          out[k] = kind == SpectrumKind::power ? p : std::sqrt(p);
        }
      }
    }
  }
  if (!grad) return y;
  autograd::Saved<T, Cpu> sX(kind == SpectrumKind::complex ? Tensor<T, Cpu>() : X);
  autograd::Saved<T, Cpu> sy(kind == SpectrumKind::magnitude ? y : Tensor<T, Cpu>());
  const Shape x_shape = x.shape();
  return autograd::record<T, Cpu>("spectrum", y, {x}, [=](const Tensor<T, Cpu>& g_any, const std::vector<bool>&) {
    const Tensor<T, Cpu> g = g_any.contiguous();
    auto dx = Tensor<T, Cpu>::empty(x_shape);
    const T* gp = g.data();
    const T* Xp = sX.defined() ? sX.get("spectrum").data() : nullptr;
    const T* yp = sy.defined() ? sy.get("spectrum").data() : nullptr;
    T* dp = dx.data();
#pragma omp parallel if (detail::frames_worth_parallel(rows * n_fft))
    {
      std::vector<T> buf(static_cast<std::size_t>(n_fft)), G(static_cast<std::size_t>(2 * F)),
          scratch(plan->scratch_size());
#pragma omp for
      for (std::int64_t r = 0; r < rows; ++r) {
        if (kind == SpectrumKind::complex) {
          for (std::int64_t k = 0; k < 2 * F; ++k) G[static_cast<std::size_t>(k)] = gp[r * 2 * F + k];
        } else {
          const T* c = Xp + r * 2 * F;
          for (std::int64_t k = 0; k < F; ++k) {
            // power: d|X|²/dRe = 2Re; magnitude: d|X|/dRe = Re/|X| (0 at X = 0)
            const T gk = gp[r * F + k];
            T s;
            if (kind == SpectrumKind::power) {
              s = 2 * gk;
            } else {
              const T m = yp[r * F + k];
              s = m > T(0) ? gk / m : T(0);
            }
            G[static_cast<std::size_t>(2 * k)] = s * c[2 * k];
            G[static_cast<std::size_t>(2 * k + 1)] = s * c[2 * k + 1];
          }
        }
        detail::halve_inner_bins(G.data(), n_fft, F);
        plan->inverse(G.data(), buf.data(), scratch.data());
        for (std::int64_t j = 0; j < L; ++j) dp[r * L + j] = buf[static_cast<std::size_t>(offset + j)];
      }
    }
    return autograd::Grads<T, Cpu>{dx};
  });
}

/// torch.stft's options (torchaudio.transforms.Spectrogram's defaults).
struct StftOptions {
  std::int64_t n_fft = 400;
  std::int64_t hop = -1;         ///< −1: win_length / 2 (torchaudio's default; torch.stft uses n_fft / 4)
  std::int64_t win_length = -1;  ///< −1: n_fft
  Window window = Window::hann;
  Symmetry symmetry = Symmetry::periodic;
  bool center = true;                   ///< pad n_fft/2 on both sides so frame t is centred on t·hop
  PadMode pad_mode = PadMode::reflect;  ///< how center pads
  bool normalized = false;              ///< divide by sqrt(Σ window²) (torch's "window" normalisation)

  std::int64_t resolved_win_length() const { return win_length > 0 ? win_length : n_fft; }
  std::int64_t resolved_hop() const { return hop > 0 ? hop : resolved_win_length() / 2; }
  std::int64_t bins() const { return n_fft / 2 + 1; }
};

namespace detail {

template <Floating T> Tensor<T, Cpu> stft_frames(const Tensor<T, Cpu>& x, const StftOptions& o) {
  AVGRAD_CHECK(x.dim() >= 1, "stft", "expected a signal of shape (..., samples), got a scalar");
  const std::int64_t win = o.resolved_win_length(), hop = o.resolved_hop();
  AVGRAD_CHECK(win <= o.n_fft, "stft", "win_length ", win, " exceeds n_fft ", o.n_fft);
  const Framing f = stft_framing(x.shape()[x.dim() - 1], o.n_fft, hop, win, o.center, o.pad_mode);
  Tensor<T, Cpu> w = window<T>(o.window, win, o.symmetry);
  if (o.normalized) {
    double e = 0;
    for (std::int64_t j = 0; j < win; ++j) e += static_cast<double>(w.data()[j]) * w.data()[j];
    const T s = static_cast<T>(1.0 / std::sqrt(e));
    for (std::int64_t j = 0; j < win; ++j) w.data()[j] *= s;
  }
  return frames(x, f, FrameProcessing{}, w);
}

}  // namespace detail

/// The STFT of x (..., S) as (..., T, F, 2) (real, imaginary), matching torch.stft
/// (onesided, return_complex) with the window described by `o`. hop defaults to
/// win_length / 2 as torchaudio.
template <Floating T> Tensor<T, Cpu> stft(const Tensor<T, Cpu>& x, const StftOptions& o = {}) {
  avgrad::detail::check_defined(x, "stft");
  return spectrum(detail::stft_frames(x, o), o.n_fft, SpectrumKind::complex, (o.n_fft - o.resolved_win_length()) / 2);
}

/// |STFT|^power of x (..., S) as (..., T, F), as torchaudio.transforms.Spectrogram
/// (transposed to time-major). power 1 (magnitude) and 2 (power) are computed
/// directly; other positive powers as magnitude^power.
template <Floating T>
Tensor<T, Cpu> spectrogram(const Tensor<T, Cpu>& x, const StftOptions& o = {}, double power = 2.0) {
  avgrad::detail::check_defined(x, "spectrogram");
  AVGRAD_CHECK(power > 0 && std::isfinite(power), "spectrogram", "power must be positive and finite, got ", power);
  const std::int64_t place = (o.n_fft - o.resolved_win_length()) / 2;
  const Tensor<T, Cpu> fr = detail::stft_frames(x, o);
  if (power == 2.0) return spectrum(fr, o.n_fft, SpectrumKind::power, place);
  const Tensor<T, Cpu> mag = spectrum(fr, o.n_fft, SpectrumKind::magnitude, place);
  return power == 1.0 ? mag : pow(mag, power);
}

}  // namespace avgrad::audio
