// Threat models and the geometry every attack shares: a per-modality budget (norm, radius,
// step, valid input range), perturbations of the attacked modalities, and the three
// in-place primitives an iterative attack is made of — random start, steepest-ascent step,
// projection onto the ball and the valid range. All per example: row b of a (B, ...)
// perturbation is example b's δ, with its own norm.
//
// Guarantee: after project_(δ, x, budget), ‖δ_b‖ ≤ ε for every example (up to one rounding
// of the norm) and lo ≤ x + δ ≤ hi elementwise. Projecting onto the ball first and clamping
// second keeps both: clamping moves each coordinate of δ toward 0 (x is in range), which
// never increases an Lp norm.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "avgrad/core/philox.hpp"
#include "avgrad/core/tensor.hpp"
#include "avgrad/models/concepts.hpp"
#include "avgrad/ops/reduce.hpp"
#include "avgrad/ops/unary.hpp"

namespace avgrad::attacks {

using models::Modality;

enum class Norm { linf, l2, l1 };
inline const char* norm_name(Norm n) { return n == Norm::linf ? "Linf" : n == Norm::l2 ? "L2" : "L1"; }

/// Where a modality's perturbation lives (for reports; the model decides what it consumes:
/// a waveform-domain attack runs through a model that contains the differentiable front-end).
enum class Domain { features, pixels, waveform };
inline const char* domain_name(Domain d) {
  return d == Domain::features ? "features" : d == Domain::pixels ? "pixels" : "waveform";
}

/// One modality's budget: ‖δ‖_norm ≤ eps, iterative steps of size `step`, and the valid range
/// [lo, hi] of the perturbed input (±infinity: unbounded).
struct Budget {
  Norm norm = Norm::linf;
  double eps = 0.0;
  double step = 0.0;  ///< PGD's α; attacks with their own schedule (APGD, CW) ignore it
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  Domain domain = Domain::features;
  /// For Norm::l1 steps: the fraction of coordinates moved per step (the largest |gradient|).
  double l1_sparsity = 0.01;

  void check(const char* who, Modality m) const {
    AVGRAD_CHECK(std::isfinite(eps) && eps >= 0, who, modality_name(m), " budget: eps must be finite and >= 0, got ",
                 eps);
    AVGRAD_CHECK(std::isfinite(step) && step >= 0, who, modality_name(m), " budget: step must be finite and >= 0, got ",
                 step);
    AVGRAD_CHECK(!(lo > hi), who, modality_name(m), " budget: valid range [", lo, ", ", hi, "] is empty");
    AVGRAD_CHECK(l1_sparsity > 0 && l1_sparsity <= 1, who, modality_name(m),
                 " budget: l1_sparsity must be in (0, 1], got ", l1_sparsity);
  }
  /// The same budget with radius e (and the step scaled with it, as sweeps over ε do).
  Budget with_eps(double e) const {
    Budget b = *this;
    b.step = eps > 0 ? step * e / eps : step;
    b.eps = e;
    return b;
  }
  std::string str() const {
    return detail::concat(norm_name(norm), " eps=", eps, step > 0 ? detail::concat(" step=", step) : std::string());
  }
};

/// Which modalities an attack may perturb, each with its own budget.
struct ThreatModel {
  std::optional<Budget> audio, video;

  static ThreatModel audio_only(const Budget& b) { return {b, std::nullopt}; }
  static ThreatModel video_only(const Budget& b) { return {std::nullopt, b}; }
  static ThreatModel joint(const Budget& a, const Budget& v) { return {a, v}; }

  bool attacks(Modality m) const { return m == Modality::audio ? audio.has_value() : video.has_value(); }
  const Budget& budget(Modality m) const {
    const auto& b = m == Modality::audio ? audio : video;
    AVGRAD_CHECK(b.has_value(), "ThreatModel", "the ", modality_name(m), " modality is not attacked");
    return *b;
  }
  /// "audio", "video" or "joint".
  std::string scope() const { return audio && video ? "joint" : audio ? "audio" : video ? "video" : "none"; }
  std::string str() const {
    std::string s;
    if (audio) s += "audio " + audio->str();
    if (video) s += (s.empty() ? "" : " + ") + std::string("video ") + video->str();
    return s.empty() ? "none" : s;
  }
  void check(const char* who) const {
    AVGRAD_CHECK(audio || video, who, "the threat model attacks no modality");
    if (audio) audio->check(who, Modality::audio);
    if (video) video->check(who, Modality::video);
  }
};

/// The perturbation of each attacked modality (undefined for an unattacked one).
template <Floating T, Device D = Cpu> struct Perturbation {
  Tensor<T, D> audio, video;
  Tensor<T, D>& at(Modality m) { return m == Modality::audio ? audio : video; }
  const Tensor<T, D>& at(Modality m) const { return m == Modality::audio ? audio : video; }
};

// ---- per-example geometry (CPU loops; the CUDA backend provides fused kernels) ----------------

namespace geometry {

/// Examples and elements per example of a (B, ...) tensor.
template <Floating T, Device D> std::pair<std::int64_t, std::int64_t> rows(const Tensor<T, D>& t) {
  const std::int64_t B = t.dim() == 0 ? 1 : t.size(0);
  return {B, B == 0 ? 0 : t.numel() / B};
}

/// ‖row_b‖ for every example, in double.
template <Floating T> std::vector<double> norms(const Tensor<T, Cpu>& t, Norm norm) {
  auto c = t.contiguous();
  const auto [B, n] = rows(c);
  std::vector<double> out(static_cast<std::size_t>(B));
  const T* p = c.data();
  for (std::int64_t b = 0; b < B; ++b) {
    double acc = 0;
    const T* r = p + b * n;
    for (std::int64_t i = 0; i < n; ++i) {
      const double v = std::abs(static_cast<double>(r[i]));
      acc = norm == Norm::linf ? std::max(acc, v) : norm == Norm::l2 ? acc + v * v : acc + v;
    }
    out[static_cast<std::size_t>(b)] = norm == Norm::l2 ? std::sqrt(acc) : acc;
  }
  return out;
}

/// dst[b] ← src[b]: one example's row of two (B, ...) tensors of the same shape (dst contiguous).
template <Floating T> void copy_row(Tensor<T, Cpu>& dst, const Tensor<T, Cpu>& src, std::int64_t b) {
  const auto s = src.contiguous();
  const std::int64_t n = rows(dst).second;
  std::copy(s.data() + b * n, s.data() + (b + 1) * n, dst.data() + b * n);
}

/// The same on a device: one reduction per call, B numbers back.
template <Floating T, Device D>
requires(!std::same_as<D, Cpu>) std::vector<double> norms(const Tensor<T, D>& t, Norm norm) {
  NoGradGuard no_grad;
  const auto [B, n] = rows(t);
  const auto r = t.detach().reshape({B, n});
  const Tensor<T, D> v = norm == Norm::linf ? amax(abs(r), {1})
                         : norm == Norm::l2 ? sqrt(sum(r * r, {1}))
                                            : sum(abs(r), {1});
  const auto h = v.template to<Cpu>().to_vector();
  return std::vector<double>(h.begin(), h.end());
}
template <Floating T, Device D>
requires(!std::same_as<D, Cpu>) void copy_row(Tensor<T, D>& dst, const Tensor<T, D>& src, std::int64_t b) {
  auto row = dst.narrow(0, b, 1);
  detail::map_into(row, src.detach().narrow(0, b, 1), detail::Identity{}, "copy_row");
}

/// Euclidean projection of one row onto the L1 ball of radius eps (Duchi et al. 2008).
template <Floating T> void project_l1_row(T* r, std::int64_t n, double eps, std::vector<double>& scratch) {
  double l1 = 0;
  for (std::int64_t i = 0; i < n; ++i) l1 += std::abs(static_cast<double>(r[i]));
  if (l1 <= eps) return;
  if (eps <= 0) {
    std::fill(r, r + n, T(0));
    return;
  }
  scratch.resize(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) scratch[static_cast<std::size_t>(i)] = std::abs(static_cast<double>(r[i]));
  std::sort(scratch.begin(), scratch.end(), std::greater<>());
  double cum = 0, theta = 0;
  for (std::size_t k = 0; k < scratch.size(); ++k) {
    cum += scratch[k];
    const double t = (cum - eps) / static_cast<double>(k + 1);
    if (scratch[k] > t) theta = t;
  }
  for (std::int64_t i = 0; i < n; ++i) {
    const double v = static_cast<double>(r[i]);
    const double m = std::max(std::abs(v) - theta, 0.0);
    r[i] = static_cast<T>(v < 0 ? -m : m);
  }
}

}  // namespace geometry

/// δ ← Π(δ): onto the budget's ball, then into the valid range of x + δ. In place; no autograd.
/// `active` (optional, one flag per example) leaves the other examples untouched.
template <Floating T> void project_(Tensor<T, Cpu>& delta, const Tensor<T, Cpu>& x, const Budget& budget,
                                    const std::vector<char>* active = nullptr) {
  AVGRAD_CHECK(delta.defined() && x.defined() && delta.shape() == x.shape() && delta.is_contiguous(), "project_",
               "δ must be contiguous with the input's shape ", x.defined() ? x.shape().str() : std::string("?"),
               ", got ", delta.defined() ? delta.shape().str() : std::string("undefined"));
  const auto xc = x.contiguous();
  const auto [B, n] = geometry::rows(delta);
  T* d = delta.data();
  const T* xp = xc.data();
  const double eps = budget.eps;
  std::vector<double> scratch;
  for (std::int64_t b = 0; b < B; ++b) {
    if (active && !(*active)[static_cast<std::size_t>(b)]) continue;
    T* r = d + b * n;
    const T* xr = xp + b * n;
    if (budget.norm == Norm::linf) {
      for (std::int64_t i = 0; i < n; ++i) r[i] = static_cast<T>(std::clamp(static_cast<double>(r[i]), -eps, eps));
    } else if (budget.norm == Norm::l2) {
      double s = 0;
      for (std::int64_t i = 0; i < n; ++i) s += static_cast<double>(r[i]) * static_cast<double>(r[i]);
      const double nrm = std::sqrt(s);
      if (nrm > eps) {
        const double k = eps / nrm;
        for (std::int64_t i = 0; i < n; ++i) r[i] = static_cast<T>(static_cast<double>(r[i]) * k);
      }
    } else {
      geometry::project_l1_row(r, n, eps, scratch);
    }
    // Only a coordinate that leaves the range changes, so an unbounded budget adds no rounding.
    for (std::int64_t i = 0; i < n; ++i) {
      const double xi = static_cast<double>(xr[i]), s = xi + static_cast<double>(r[i]);
      if (s < budget.lo)
        r[i] = static_cast<T>(budget.lo - xi);
      else if (s > budget.hi)
        r[i] = static_cast<T>(budget.hi - xi);
    }
  }
}

/// δ ← δ + step · (steepest-ascent direction of g under the norm): sign(g) for L∞, g/‖g‖₂ for
/// L2, and for L1 sign(g) on the top `l1_sparsity` fraction of |g|, scaled to unit L1 norm.
/// An example whose gradient is zero does not move. `active` as in project_.
template <Floating T> void ascend_(Tensor<T, Cpu>& delta, const Tensor<T, Cpu>& g, const Budget& budget, double step,
                                   const std::vector<char>* active = nullptr) {
  AVGRAD_CHECK(g.defined() && g.shape() == delta.shape(), "ascend_", "gradient shape ",
               g.defined() ? g.shape().str() : std::string("undefined"), " differs from δ's ", delta.shape());
  const auto gc = g.contiguous();
  const auto [B, n] = geometry::rows(delta);
  T* d = delta.data();
  const T* gp = gc.data();
  std::vector<double> mags;
  for (std::int64_t b = 0; b < B; ++b) {
    if (active && !(*active)[static_cast<std::size_t>(b)]) continue;
    T* r = d + b * n;
    const T* gr = gp + b * n;
    if (budget.norm == Norm::linf) {
      for (std::int64_t i = 0; i < n; ++i)
        r[i] = static_cast<T>(static_cast<double>(r[i]) + step * static_cast<double>((gr[i] > 0) - (gr[i] < 0)));
    } else if (budget.norm == Norm::l2) {
      double s = 0;
      for (std::int64_t i = 0; i < n; ++i) s += static_cast<double>(gr[i]) * static_cast<double>(gr[i]);
      if (!(s > 0) || !std::isfinite(s)) continue;
      const double k = step / std::sqrt(s);
      for (std::int64_t i = 0; i < n; ++i) r[i] = static_cast<T>(static_cast<double>(r[i]) + k * gr[i]);
    } else {
      mags.resize(static_cast<std::size_t>(n));
      for (std::int64_t i = 0; i < n; ++i) mags[static_cast<std::size_t>(i)] = std::abs(static_cast<double>(gr[i]));
      const auto k = std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(budget.l1_sparsity * n)));
      std::nth_element(mags.begin(), mags.begin() + (k - 1), mags.end(), std::greater<>());
      const double threshold = mags[static_cast<std::size_t>(k - 1)];
      if (!(threshold > 0)) continue;
      std::int64_t chosen = 0;
      for (std::int64_t i = 0; i < n; ++i) chosen += std::abs(static_cast<double>(gr[i])) >= threshold;
      const double each = step / static_cast<double>(chosen);
      for (std::int64_t i = 0; i < n; ++i)
        if (std::abs(static_cast<double>(gr[i])) >= threshold)
          r[i] = static_cast<T>(static_cast<double>(r[i]) + each * static_cast<double>((gr[i] > 0) - (gr[i] < 0)));
    }
  }
}

/// One PGD update, δ ← Π(δ + step · direction(g)): ascend_ then project_. On the CPU it is
/// those two passes; the CUDA backend (cuda/avgrad/cuda/pgd.cuh) does it in one kernel for
/// L∞ and L2 and gives the same values.
template <Floating T> void pgd_step_(Tensor<T, Cpu>& delta, const Tensor<T, Cpu>& g, const Tensor<T, Cpu>& x,
                                     const Budget& budget, double step, const std::vector<char>* active = nullptr) {
  ascend_(delta, g, budget, step, active);
  project_(delta, x, budget, active);
}

}  // namespace avgrad::attacks

namespace avgrad::backend {
/// The device seam of the PGD update: step(δ, g, x, budget, step, active). On the CPU,
/// pgd_step_ above; PgdStep<Cuda> (cuda/avgrad/cuda/pgd.cuh) is one fused kernel.
template <Device D> struct PgdStep;
template <> struct PgdStep<Cpu> {
  template <class T, class... A> static void step(Tensor<T, Cpu>& delta, const A&... a) {
    attacks::pgd_step_(delta, a...);
  }
};
}  // namespace avgrad::backend

namespace avgrad::attacks {

/// Π on a device: the fused PGD update with a zero gradient and a zero step is exactly the
/// projection (onto the ball, then into the range). L1 goes through the host, as the step.
template <Floating T, Device D>
requires(!std::same_as<D, Cpu>) void project_(Tensor<T, D>& delta, const Tensor<T, D>& x, const Budget& budget,
                                              const std::vector<char>* active = nullptr) {
  backend::PgdStep<D>::step(delta, zeros<T, D>(delta.shape()), x, budget, 0.0, active);
}

/// A random start inside the ball: L∞ uniform in [−ε, ε]^n; L2 and L1 a random direction
/// (Gaussian, resp. Laplace) scaled to radius ε·u, u ~ U(0, 1); then projected into the
/// valid range. Seeded: the same generator state gives the same start.
template <Floating T> void random_start_(Tensor<T, Cpu>& delta, const Tensor<T, Cpu>& x, const Budget& budget,
                                         Generator& gen, const std::vector<char>* active = nullptr) {
  const auto [B, n] = geometry::rows(delta);
  auto noise =
      budget.norm == Norm::linf ? rand<T>(delta.shape(), gen, -budget.eps, budget.eps) : randn<T>(delta.shape(), gen);
  auto radius = rand<double>(Shape{B}, gen, 0.0, 1.0).to_vector();
  T* d = delta.data();
  const T* z = noise.data();
  for (std::int64_t b = 0; b < B; ++b) {
    if (active && !(*active)[static_cast<std::size_t>(b)]) continue;
    T* r = d + b * n;
    const T* zr = z + b * n;
    if (budget.norm == Norm::linf) {
      std::copy(zr, zr + n, r);
      continue;
    }
    // L1: a Laplace direction from the Gaussian draw, |z|·z (heavier-tailed, sign kept).
    double s = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      const double v = budget.norm == Norm::l2 ? zr[i] : static_cast<double>(zr[i]) * std::abs(zr[i]);
      r[i] = static_cast<T>(v);
      s += budget.norm == Norm::l2 ? v * v : std::abs(v);
    }
    const double nrm = budget.norm == Norm::l2 ? std::sqrt(s) : s;
    const double k = nrm > 0 ? budget.eps * radius[static_cast<std::size_t>(b)] / nrm : 0.0;
    for (std::int64_t i = 0; i < n; ++i) r[i] = static_cast<T>(static_cast<double>(r[i]) * k);
  }
  project_(delta, x, budget, active);
}

/// The same start on a device: drawn on the host from the same generator state (so both
/// devices start alike), then moved; once per restart.
template <Floating T, Device D>
requires(!std::same_as<D, Cpu>) void random_start_(Tensor<T, D>& delta, const Tensor<T, D>& x, const Budget& budget,
                                                   Generator& gen, const std::vector<char>* active = nullptr) {
  auto host = delta.template to<Cpu>().contiguous().clone();
  random_start_(host, x.template to<Cpu>(), budget, gen, active);
  delta = host.template to<D>();
}

}  // namespace avgrad::attacks
