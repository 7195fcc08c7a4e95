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
#include <numbers>
#include <type_traits>
#include <vector>

#include "avgrad/audio/frame.hpp"
#include "avgrad/audio/window.hpp"
#include "avgrad/backend/cpu/fft.hpp"
#include "avgrad/ops/linalg.hpp"
#include "avgrad/ops/unary.hpp"

namespace avgrad::fn {

/// √x whose gradient is 0 at x = 0 (|X| from |X|²: the magnitude's subgradient at 0).
struct SqrtZeroAtZero {
  template <class T> AVGRAD_HOST_DEVICE T operator()(T x) const { return sqrt(x); }
  template <class T> AVGRAD_HOST_DEVICE T grad(T, T y, T g) const { return y > T(0) ? g / (T(2) * y) : T(0); }
};

}  // namespace avgrad::fn

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

namespace detail {

inline void check_spectrum_args(const Shape& shape, std::int64_t n_fft, std::int64_t offset) {
  AVGRAD_CHECK(shape.rank() >= 1, "spectrum", "expected frames of shape (..., L), got a scalar");
  const std::int64_t L = shape[shape.rank() - 1];
  AVGRAD_CHECK(n_fft >= 1 && offset >= 0 && offset + L <= n_fft, "spectrum", "frames of ", L,
               " samples placed at offset ", offset, " do not fit an n_fft of ", n_fft, " (input shape ", shape, ")");
}

/// The CPU twin of spectrum(): one real FFT per frame (arguments already checked).
template <Floating T>
Tensor<T, Cpu> fft_spectrum(const Tensor<T, Cpu>& x, std::int64_t n_fft, SpectrumKind kind, std::int64_t offset) {
  const std::int64_t L = x.shape()[x.dim() - 1];
  const std::int64_t F = n_fft / 2 + 1, rows = L > 0 ? x.numel() / L : 0;
  Shape out_shape = x.shape();
  out_shape[out_shape.rank() - 1] = F;
  Shape complex_shape = out_shape;
  complex_shape.push_back(2);
  if (kind == SpectrumKind::complex) out_shape = complex_shape;
  if (L == 0) return zeros<T, Cpu>(out_shape);  // empty frames: every bin is 0
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

/// The one-sided DFT as a (L, 2F) matrix for frames of L samples placed at `offset` of an
/// n_fft transform: columns 2k and 2k+1 hold cos and −sin of 2πk(j + offset)/n_fft, so
/// frames (rows, L) times it are the interleaved (real, imaginary) spectra. Angles are
/// reduced exactly (k·(j + offset) mod n_fft) before the double-precision cos/sin.
template <Floating T> Tensor<T, Cpu> dft_basis(std::int64_t n_fft, std::int64_t L, std::int64_t offset) {
  const std::int64_t F = n_fft / 2 + 1;
  auto basis = Tensor<T, Cpu>::empty(Shape{L, 2 * F});
  T* b = basis.data();
  const double step = 2.0 * std::numbers::pi / static_cast<double>(n_fft);
  for (std::int64_t j = 0; j < L; ++j)
    for (std::int64_t k = 0; k < F; ++k) {
      const double a = step * static_cast<double>((k * (j + offset)) % n_fft);
      b[j * 2 * F + 2 * k] = static_cast<T>(std::cos(a));
      b[j * 2 * F + 2 * k + 1] = static_cast<T>(-std::sin(a));
    }
  return basis;
}

/// spectrum() as one GEMM with dft_basis(): O(L·F) per frame instead of the FFT's
/// O(n log n), but a single large GEMM is what an accelerator runs best, and its backward
/// is the GEMM's own. Power is Re² + Im²; the magnitude is its square root with gradient 0
/// where the spectrum is 0, as the FFT path.
template <Floating T, Device D>
Tensor<T, D> dft_spectrum(const Tensor<T, D>& x, const Tensor<T, D>& basis, SpectrumKind kind) {
  const std::int64_t L = x.shape()[x.dim() - 1], F = basis.shape()[1] / 2, rows = L > 0 ? x.numel() / L : 0;
  Shape complex_shape = x.shape();
  complex_shape[complex_shape.rank() - 1] = F;
  complex_shape.push_back(2);
  if (L == 0) {  // empty frames: every bin is 0
    Shape real_shape = complex_shape;
    real_shape.erase(real_shape.rank() - 1);
    return zeros<T, D>(kind == SpectrumKind::complex ? complex_shape : real_shape);
  }
  const Tensor<T, D> c = matmul(x.reshape(Shape{rows, L}), basis, MatmulPrecision::float32).reshape(complex_shape);
  if (kind == SpectrumKind::complex) return c;
  const Tensor<T, D> p = sum(square(c), {-1});
  return kind == SpectrumKind::power ? p : avgrad::detail::unary_op("spectrum", p, fn::SqrtZeroAtZero{});
}

/// What spectrum() needs for one framing, made once: the DFT basis on devices other
/// than the CPU (which runs FFTs).
template <Floating T, Device D> struct SpectrumPlan {
  std::int64_t n_fft = 0, offset = 0;
  Tensor<T, D> basis;

  SpectrumPlan() = default;
  SpectrumPlan(std::int64_t n, std::int64_t length, std::int64_t place) : n_fft(n), offset(place) {
    if constexpr (!std::is_same_v<D, Cpu>) basis = dft_basis<T>(n, length, place).template to<D>();
  }
  Tensor<T, D> operator()(const Tensor<T, D>& fr, SpectrumKind kind) const {
    avgrad::detail::check_defined(fr, "spectrum");
    if constexpr (std::is_same_v<D, Cpu>) {
      check_spectrum_args(fr.shape(), n_fft, offset);
      return fft_spectrum(fr, n_fft, kind, offset);
    } else {
      AVGRAD_CHECK(fr.dim() >= 1 && fr.shape()[fr.dim() - 1] == basis.shape()[0], "spectrum", "frames of shape ",
                   fr.shape(), " for a plan of ", basis.shape()[0], "-sample frames");
      return dft_spectrum(fr, basis, kind);
    }
  }
};

}  // namespace detail

/// The one-sided DFT of every frame of x (..., L) zero-padded to n_fft, with the L
/// samples placed at [offset, offset + L) of the transform (torch.stft centres a short
/// window inside n_fft this way; the placement changes only the phase). No window
/// is applied here (frames() applies it). Differentiable. On the CPU, one real FFT per
/// frame whose backward is one real inverse FFT; magnitude and power keep the complex
/// spectrum they computed anyway (rows·F·2 values, as PyTorch's abs() saves its
/// complex input) rather than recomputing it. Elsewhere, one GEMM with the DFT basis
/// (detail::dft_spectrum). |X| has gradient 0 where X = 0.
template <Floating T, Device D> Tensor<T, D> spectrum(const Tensor<T, D>& x, std::int64_t n_fft,
                                                      SpectrumKind kind = SpectrumKind::complex,
                                                      std::int64_t offset = 0) {
  avgrad::detail::check_defined(x, "spectrum");
  detail::check_spectrum_args(x.shape(), n_fft, offset);
  return detail::SpectrumPlan<T, D>(n_fft, x.shape()[x.dim() - 1], offset)(x, kind);
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

/// torch.stft for one set of options, made once: the (normalised) window and the
/// spectrum plan on device D. Thread-compatible (const calls only).
template <Floating T, Device D = Cpu> class StftPlan {
 public:
  explicit StftPlan(const StftOptions& o = {}) : o_(o) {
    const std::int64_t win = o.resolved_win_length();
    AVGRAD_CHECK(o.n_fft >= 1 && win <= o.n_fft, "stft", "win_length ", win, " must be in [1, n_fft = ", o.n_fft, "]");
    Tensor<T, Cpu> w = audio::window<T>(o.window, win, o.symmetry);
    if (o.normalized) {
      double e = 0;
      for (std::int64_t j = 0; j < win; ++j) e += static_cast<double>(w.data()[j]) * w.data()[j];
      const T s = static_cast<T>(1.0 / std::sqrt(e));
      for (std::int64_t j = 0; j < win; ++j) w.data()[j] *= s;
    }
    window_ = w.template to<D>();
    spectrum_ = detail::SpectrumPlan<T, D>(o.n_fft, win, (o.n_fft - win) / 2);
  }

  const StftOptions& options() const { return o_; }
  const Tensor<T, D>& window() const { return window_; }

  /// The windowed frames of x (..., S) as (..., T, win_length).
  Tensor<T, D> frames(const Tensor<T, D>& x) const {
    avgrad::detail::check_defined(x, "stft");
    AVGRAD_CHECK(x.dim() >= 1, "stft", "expected a signal of shape (..., samples), got a scalar");
    const Framing f = stft_framing(x.shape()[x.dim() - 1], o_.n_fft, o_.resolved_hop(), o_.resolved_win_length(),
                                   o_.center, o_.pad_mode);
    return audio::frames(x, f, FrameProcessing{}, window_);
  }

  /// (..., S) → (..., T, F, 2), see stft().
  Tensor<T, D> complex(const Tensor<T, D>& x) const { return spectrum_(frames(x), SpectrumKind::complex); }

  /// (..., S) → (..., T, F), see spectrogram().
  Tensor<T, D> spectrogram(const Tensor<T, D>& x, double power = 2.0) const {
    AVGRAD_CHECK(power > 0 && std::isfinite(power), "spectrogram", "power must be positive and finite, got ", power);
    const Tensor<T, D> fr = frames(x);
    if (power == 2.0) return spectrum_(fr, SpectrumKind::power);
    const Tensor<T, D> mag = spectrum_(fr, SpectrumKind::magnitude);
    return power == 1.0 ? mag : pow(mag, power);
  }

 private:
  StftOptions o_;
  Tensor<T, D> window_;
  detail::SpectrumPlan<T, D> spectrum_;
};

/// The STFT of x (..., S) as (..., T, F, 2) (real, imaginary), matching torch.stft
/// (onesided, return_complex) with the window described by `o`. hop defaults to
/// win_length / 2 as torchaudio. Repeated calls with the same options: StftPlan.
template <Floating T, Device D> Tensor<T, D> stft(const Tensor<T, D>& x, const StftOptions& o = {}) {
  avgrad::detail::check_defined(x, "stft");
  return StftPlan<T, D>(o).complex(x);
}

/// |STFT|^power of x (..., S) as (..., T, F), as torchaudio.transforms.Spectrogram
/// (transposed to time-major). power 1 (magnitude) and 2 (power) are computed
/// directly; other positive powers as magnitude^power.
template <Floating T, Device D>
Tensor<T, D> spectrogram(const Tensor<T, D>& x, const StftOptions& o = {}, double power = 2.0) {
  avgrad::detail::check_defined(x, "spectrogram");
  return StftPlan<T, D>(o).spectrogram(x, power);
}

}  // namespace avgrad::audio
