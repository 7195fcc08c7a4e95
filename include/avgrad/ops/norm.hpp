// Normalisation layers as fused ops: batch_norm, layer_norm and group_norm.
// Each forward makes one pass over a normalisation set for its statistics
// (shifted sums accumulated in double) and one pass for the output; each
// backward is a dedicated kernel (derivations beside them) instead of the tape
// of a composed mean/var/sub/div graph, so a backward costs two passes and
// saves only x, the weight and two numbers per set (mean, 1/σ).
//
// Notation: a normalisation set R of m elements, μ = mean, σ² = biased variance,
// r = 1/√(σ² + eps), x̂ = (x − μ)·r, y = γ·x̂ + β.
#pragma once

#include <omp.h>
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "avgrad/ops/binary.hpp"

namespace avgrad {

namespace detail {

/// Mean and biased variance of a set fed in runs. Sums d = x − K with K the set's
/// first element, in double: E[d²] − E[d]² then does not cancel when |μ| ≫ σ.
struct ShiftedMoments {
  double shift = 0, s1 = 0, s2 = 0;
  std::int64_t n = 0;

  template <class T> void add_run(const T* p, std::int64_t len) {
    if (len <= 0) return;
    if (n == 0) shift = static_cast<double>(p[0]);
    const double k = shift;
    double a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
    for (std::int64_t i = 0; i < len; ++i) {
      const double d = static_cast<double>(p[i]) - k;
      a += d;
      b += d * d;
    }
    s1 += a;
    s2 += b;
    n += len;
  }
  double mean() const { return n ? shift + s1 / static_cast<double>(n) : 0.0; }
  double var() const {
    if (!n) return 0.0;
    const double m1 = s1 / static_cast<double>(n);
    return std::max(0.0, s2 / static_cast<double>(n) - m1 * m1);
  }
};

/// Parallelise a loop of `items` independent items over `work` elements in all.
inline bool parallel_worth(std::int64_t work, std::int64_t items) {
  return work >= cpu::kParallelGrain && items > 1 && !omp_in_parallel();
}

/// 1/√(v + eps) elementwise, computed in double.
template <Floating T, Device D> Tensor<T, D> inv_std(const Tensor<T, D>& var, double eps) {
  return map<T>(var,
                [eps] AVGRAD_HOST_DEVICE(T v) { return static_cast<T>(1.0 / ::sqrt(static_cast<double>(v) + eps)); });
}

/// An affine parameter as a contiguous tensor of `c` entries; `fill` where undefined.
template <Floating T, Device D> Tensor<T, D> affine_or(const Tensor<T, D>& p, std::int64_t c, T fill) {
  return p.defined() ? p.detach().contiguous().reshape({c}) : full<T, D>(Shape{c}, fill);
}

// ---- batch norm kernels: x, g contiguous (N, C, S); one set per channel ---------

/// Per-channel mean and biased variance over (N, S).
template <Floating T> std::pair<Tensor<T, Cpu>, Tensor<T, Cpu>> batch_norm_moments(const Tensor<T, Cpu>& x,
                                                                                   std::int64_t N, std::int64_t C,
                                                                                   std::int64_t S) {
  auto mean = Tensor<T, Cpu>::empty(Shape{C}), var = Tensor<T, Cpu>::empty(Shape{C});
  const T* xp = x.data();
  T *mp = mean.data(), *vp = var.data();
#pragma omp parallel for if (parallel_worth(N * C * S, C))
  for (std::int64_t c = 0; c < C; ++c) {
    ShiftedMoments acc;
    for (std::int64_t n = 0; n < N; ++n) acc.add_run(xp + (n * C + c) * S, S);
    mp[c] = static_cast<T>(acc.mean());
    vp[c] = static_cast<T>(acc.var());
  }
  return {mean, var};
}

/// y = (x − μ_c)·(γ_c·r_c) + β_c: the output pass of training and eval alike.
template <Floating T> Tensor<T, Cpu> batch_norm_apply(const Tensor<T, Cpu>& x, const Shape& shape,
                                                      const Tensor<T, Cpu>& mean, const Tensor<T, Cpu>& rstd,
                                                      const Tensor<T, Cpu>& w, const Tensor<T, Cpu>& b, std::int64_t N,
                                                      std::int64_t C, std::int64_t S) {
  auto y = Tensor<T, Cpu>::empty(shape);
  const T *xp = x.data(), *mp = mean.data(), *rp = rstd.data(), *wp = w.data(), *bp = b.data();
  T* yp = y.data();
#pragma omp parallel for if (parallel_worth(N * C * S, N * C))
  for (std::int64_t row = 0; row < N * C; ++row) {
    const std::int64_t c = row % C;
    const T m = mp[c], a = wp[c] * rp[c], bb = bp[c];
    const T* xr = xp + row * S;
    T* yr = yp + row * S;
#pragma omp simd
    for (std::int64_t s = 0; s < S; ++s) yr[s] = (xr[s] - m) * a + bb;
  }
  return y;
}

template <Floating T, Device D = Cpu> struct NormGrads { Tensor<T, D> dx, dw, db; };

/// Backward of batch_norm. Per channel, over its m = N·S elements:
///   dβ = Σ g,  dγ = Σ g·x̂.
/// Eval: μ, r are constants, y = γr·x + const, so dx = γr·g.
/// Training: μ and σ depend on every x_i of the channel:
///   ∂μ/∂x_i = 1/m,  ∂σ²/∂x_i = 2(x_i − μ)/m  ⇒  ∂r/∂x_i = −r³(x_i − μ)/m = −r·x̂_i/m,
///   ∂x̂_j/∂x_i = r(δ_ij − 1/m) − r·x̂_j·x̂_i/m.
/// With ĝ = γg (γ constant on the channel):
///   dx_i = Σ_j ĝ_j ∂x̂_j/∂x_i = γr·(g_i − mean(g) − x̂_i·mean(g·x̂)),
/// and mean(g), mean(g·x̂) are dβ/m and dγ/m: one pass of sums, one pass for dx.
template <Floating T>
NormGrads<T> batch_norm_backward(const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& g, const Tensor<T, Cpu>& w,
                                 const Tensor<T, Cpu>& mean, const Tensor<T, Cpu>& rstd, std::int64_t N, std::int64_t C,
                                 std::int64_t S, bool training, bool need_dx, bool need_dw, bool need_db) {
  NormGrads<T> out;
  const T *xp = x.data(), *gp = g.data(), *wp = w.data(), *mp = mean.data(), *rp = rstd.data();
  const bool need_sums = need_dw || need_db || (need_dx && training);
  std::vector<double> sum_g(static_cast<std::size_t>(C), 0.0), sum_gx(static_cast<std::size_t>(C), 0.0);
  if (need_sums) {
#pragma omp parallel for if (parallel_worth(N * C * S, C))
    for (std::int64_t c = 0; c < C; ++c) {
      const double m = static_cast<double>(mp[c]), r = static_cast<double>(rp[c]);
      double sg = 0, sgx = 0;
      for (std::int64_t n = 0; n < N; ++n) {
        const T *xr = xp + (n * C + c) * S, *gr = gp + (n * C + c) * S;
        double a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
        for (std::int64_t s = 0; s < S; ++s) {
          const double gv = static_cast<double>(gr[s]);
          a += gv;
          b += gv * (static_cast<double>(xr[s]) - m);
        }
        sg += a;
        sgx += b;
      }
      sum_g[static_cast<std::size_t>(c)] = sg;
      sum_gx[static_cast<std::size_t>(c)] = sgx * r;  // Σ g·x̂ = r·Σ g(x − μ)
    }
  }
  if (need_dw) {
    out.dw = Tensor<T, Cpu>::empty(Shape{C});
    for (std::int64_t c = 0; c < C; ++c) out.dw.data()[c] = static_cast<T>(sum_gx[static_cast<std::size_t>(c)]);
  }
  if (need_db) {
    out.db = Tensor<T, Cpu>::empty(Shape{C});
    for (std::int64_t c = 0; c < C; ++c) out.db.data()[c] = static_cast<T>(sum_g[static_cast<std::size_t>(c)]);
  }
  if (need_dx) {
    out.dx = Tensor<T, Cpu>::empty(x.shape());
    T* dp = out.dx.data();
    const double inv_m = 1.0 / static_cast<double>(std::max<std::int64_t>(N * S, 1));
#pragma omp parallel for if (parallel_worth(N * C * S, N * C))
    for (std::int64_t row = 0; row < N * C; ++row) {
      const std::int64_t c = row % C;
      const auto cc = static_cast<std::size_t>(c);
      const T m = mp[c], r = rp[c], a = wp[c] * rp[c];
      const T mg = training ? static_cast<T>(sum_g[cc] * inv_m) : T(0);
      const T mgx = training ? static_cast<T>(sum_gx[cc] * inv_m) : T(0);
      const T *xr = xp + row * S, *gr = gp + row * S;
      T* dr = dp + row * S;
#pragma omp simd
      for (std::int64_t s = 0; s < S; ++s) dr[s] = a * (gr[s] - mg - (xr[s] - m) * r * mgx);
    }
  }
  return out;
}

// ---- row kernels (layer_norm, group_norm): x, g contiguous, one set per row ------

/// x as `rows` contiguous sets of cg·inner elements. Row r belongs to group
/// r % groups and its element j = k·inner + s uses affine channel (r % groups)·cg + k.
/// layer_norm: groups = 1, cg = K (normalized numel), inner = 1.
/// group_norm: rows = N·G, groups = G, cg = C/G, inner = spatial numel.
struct RowNormLayout {
  std::int64_t rows, groups, cg, inner;
  std::int64_t len() const { return cg * inner; }
  std::int64_t channels() const { return groups * cg; }
};

/// Calls f(j, k) for every element j of a row, k its channel within the row.
template <class F> inline void for_row(const RowNormLayout& L, F&& f) {
  if (L.inner == 1) {
    for (std::int64_t j = 0; j < L.cg; ++j) f(j, j);
  } else {
    for (std::int64_t k = 0; k < L.cg; ++k)
      for (std::int64_t s = 0; s < L.inner; ++s) f(k * L.inner + s, k);
  }
}

template <Floating T, Device D = Cpu> struct RowNormForward {
  Tensor<T, D> y, mean, rstd;  // y: x's shape; mean, rstd: (rows)
};

/// y = (x − μ_row)·r_row·γ_k + β_k, statistics per row.
template <Floating T> RowNormForward<T> row_norm_forward(const Tensor<T, Cpu>& x, const RowNormLayout& L,
                                                         const Tensor<T, Cpu>& w, const Tensor<T, Cpu>& b, double eps) {
  RowNormForward<T> out{Tensor<T, Cpu>::empty(x.shape()), Tensor<T, Cpu>::empty(Shape{L.rows}),
                        Tensor<T, Cpu>::empty(Shape{L.rows})};
  const std::int64_t len = L.len();
  const T *xp = x.data(), *wp = w.data(), *bp = b.data();
  T *yp = out.y.data(), *mp = out.mean.data(), *rp = out.rstd.data();
#pragma omp parallel for if (parallel_worth(L.rows * len, L.rows))
  for (std::int64_t r = 0; r < L.rows; ++r) {
    const T* xr = xp + r * len;
    T* yr = yp + r * len;
    ShiftedMoments acc;
    acc.add_run(xr, len);
    const T m = static_cast<T>(acc.mean()), k = static_cast<T>(1.0 / std::sqrt(acc.var() + eps));
    mp[r] = m;
    rp[r] = k;
    const T* wr = wp + (r % L.groups) * L.cg;
    const T* br = bp + (r % L.groups) * L.cg;
    for_row(L, [&](std::int64_t j, std::int64_t c) { yr[j] = (xr[j] - m) * k * wr[c] + br[c]; });
  }
  return out;
}

/// Backward of a row normalisation with γ varying inside the set: with ĝ_j = γ_j·g_j
/// the same derivation as batch_norm (∂x̂_j/∂x_i = r(δ_ij − 1/m − x̂_j·x̂_i/m)) gives
///   dx_i = r·(ĝ_i − mean(ĝ) − x̂_i·mean(ĝ·x̂))      (means over the row),
///   dγ_c = Σ g·x̂,  dβ_c = Σ g                       (over every element of channel c).
/// dx runs in parallel over rows; dγ, dβ over blocks of channels, each summing
/// its rows in a fixed order, so nothing depends on the thread count.
template <Floating T> NormGrads<T> row_norm_backward(const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& g,
                                                     const Tensor<T, Cpu>& w, const Tensor<T, Cpu>& mean,
                                                     const Tensor<T, Cpu>& rstd, const RowNormLayout& L, bool need_dx,
                                                     bool need_dw, bool need_db) {
  NormGrads<T> out;
  const std::int64_t len = L.len();
  const T *xp = x.data(), *gp = g.data(), *wp = w.data(), *mp = mean.data(), *rp = rstd.data();
  if (need_dx) {
    out.dx = Tensor<T, Cpu>::empty(x.shape());
    T* dp = out.dx.data();
    const double inv_len = 1.0 / static_cast<double>(std::max<std::int64_t>(len, 1));
#pragma omp parallel for if (parallel_worth(L.rows * len, L.rows))
    for (std::int64_t r = 0; r < L.rows; ++r) {
      const T *xr = xp + r * len, *gr = gp + r * len, *wr = wp + (r % L.groups) * L.cg;
      T* dr = dp + r * len;
      const T m = mp[r], k = rp[r];
      double s_g = 0, s_gx = 0;
      for_row(L, [&](std::int64_t j, std::int64_t c) {
        const double gh = static_cast<double>(gr[j]) * static_cast<double>(wr[c]);
        s_g += gh;
        s_gx += gh * static_cast<double>((xr[j] - m) * k);
      });
      const T mg = static_cast<T>(s_g * inv_len), mgx = static_cast<T>(s_gx * inv_len);
      for_row(L, [&](std::int64_t j, std::int64_t c) { dr[j] = k * (gr[j] * wr[c] - mg - (xr[j] - m) * k * mgx); });
    }
  }
  if (need_dw || need_db) {
    const std::int64_t C = L.channels(), per_group = L.rows / std::max<std::int64_t>(L.groups, 1);
    if (need_dw) out.dw = Tensor<T, Cpu>::empty(Shape{C});
    if (need_db) out.db = Tensor<T, Cpu>::empty(Shape{C});
    T* dwp = need_dw ? out.dw.data() : nullptr;
    T* dbp = need_db ? out.db.data() : nullptr;
    constexpr std::int64_t kBlock = 64;
    const std::int64_t blocks = (C + kBlock - 1) / kBlock;
#pragma omp parallel for if (parallel_worth(L.rows * len, blocks))
    for (std::int64_t blk = 0; blk < blocks; ++blk) {
      const std::int64_t c0 = blk * kBlock, c1 = std::min(C, c0 + kBlock);
      double aw[kBlock] = {}, ab[kBlock] = {};
      for (std::int64_t n = 0; n < per_group; ++n) {
        for (std::int64_t c = c0; c < c1; ++c) {
          const std::int64_t grp = c / L.cg, r = n * L.groups + grp;
          const std::int64_t off = r * len + (c - grp * L.cg) * L.inner;
          const T *xr = xp + off, *gr = gp + off;
          const T m = mp[r], k = rp[r];
          double sw = 0, sb = 0;
          for (std::int64_t s = 0; s < L.inner; ++s) {
            sw += static_cast<double>(gr[s] * ((xr[s] - m) * k));
            sb += static_cast<double>(gr[s]);
          }
          aw[c - c0] += sw;
          ab[c - c0] += sb;
        }
      }
      for (std::int64_t c = c0; c < c1; ++c) {
        if (dwp) dwp[c] = static_cast<T>(aw[c - c0]);
        if (dbp) dbp[c] = static_cast<T>(ab[c - c0]);
      }
    }
  }
  return out;
}

}  // namespace detail

namespace backend {
/// The device seam of the normalisation kernels: batch_moments, batch_apply,
/// batch_backward, row_forward and row_backward, with the detail:: kernels'
/// signatures on Tensor<T, D>. Norm<Cuda> lives in cuda/avgrad/cuda/norm.cuh.
template <Device D> struct Norm;
template <> struct Norm<Cpu> {
  template <class T, class... A> static auto batch_moments(const Tensor<T, Cpu>& x, A... a) {
    return detail::batch_norm_moments(x, a...);
  }
  template <class T, class... A> static auto batch_apply(const Tensor<T, Cpu>& x, const A&... a) {
    return detail::batch_norm_apply(x, a...);
  }
  template <class T, class... A> static auto batch_backward(const Tensor<T, Cpu>& x, const A&... a) {
    return detail::batch_norm_backward(x, a...);
  }
  template <class T, class... A> static auto row_forward(const Tensor<T, Cpu>& x, const A&... a) {
    return detail::row_norm_forward(x, a...);
  }
  template <class T, class... A> static auto row_backward(const Tensor<T, Cpu>& x, const A&... a) {
    return detail::row_norm_backward(x, a...);
  }
};
}  // namespace backend

namespace detail {

/// The op around the row kernels: forward, then a recorded dedicated backward.
/// weight, bias: undefined or of L.channels() elements (any shape; checked by the
/// caller); their gradients come back in their own shapes.
template <Floating T, Device D> Tensor<T, D> row_norm(const char* name, const Tensor<T, D>& x, const RowNormLayout& L,
                                                      const Tensor<T, D>& weight, const Tensor<T, D>& bias,
                                                      double eps) {
  const std::int64_t C = L.channels();
  auto xc = x.detach().contiguous();
  auto w = affine_or(weight, C, T(1));
  auto fw = backend::Norm<D>::row_forward(xc, L, w, affine_or(bias, C, T(0)), eps);
  if (!autograd::any_requires_grad<T, D>({&x, &weight, &bias})) return fw.y;
  autograd::Saved<T, D> sx(xc), sw(w);
  Tensor<T, D> mean = fw.mean, rstd = fw.rstd;
  Shape w_shape = weight.defined() ? weight.shape() : Shape{}, b_shape = bias.defined() ? bias.shape() : Shape{};
  return autograd::record<T, D>(name, fw.y, {x, weight, bias},
                                [=](const Tensor<T, D>& g, const std::vector<bool>& need) {
                                  auto r = backend::Norm<D>::row_backward(sx.get(name), g.contiguous(), sw.get(name),
                                                                          mean, rstd, L, need[0], need[1], need[2]);
                                  return autograd::Grads<T, D>{r.dx, need[1] ? r.dw.reshape(w_shape) : Tensor<T, D>(),
                                                               need[2] ? r.db.reshape(b_shape) : Tensor<T, D>()};
                                });
}

inline void check_eps(double eps, const char* op) {
  AVGRAD_CHECK(eps >= 0 && std::isfinite(eps), op, "eps must be finite and non-negative, got ", eps);
}

}  // namespace detail

/// Batch normalisation, one set per channel over (N, spatial).
/// x: (N, C, …) with any number of trailing spatial dims (rank ≥ 2), any strides;
/// weight γ, bias β: (C) or undefined (γ = 1, β = 0); running_mean, running_var:
/// (C) or both undefined. Returns y of x's shape, y = (x − μ)/√(σ² + eps)·γ + β.
/// training: μ, σ² are the batch mean and biased variance (needs N·spatial > 1);
///   given running stats are updated in place, outside the tape, version bumped:
///   r ← (1 − momentum)·r + momentum·batch, running_var taking the unbiased variance.
/// eval (training = false): μ, σ² are the running stats (required; not modified).
/// Gradients flow to x, weight and bias; never to the running stats.
/// Checks: shapes above, momentum in [0, 1], eps ≥ 0.
template <Floating T, Device D> Tensor<T, D> batch_norm(const Tensor<T, D>& x, const Tensor<T, D>& weight,
                                                        const Tensor<T, D>& bias, Tensor<T, D> running_mean,
                                                        Tensor<T, D> running_var, bool training, double momentum = 0.1,
                                                        double eps = 1e-5) {
  constexpr const char* op = "batch_norm";
  detail::check_defined(x, op);
  AVGRAD_CHECK(x.dim() >= 2, op, "expects input (N, C, ...) of rank >= 2, got shape ", x.shape());
  const std::int64_t N = x.shape()[0], C = x.shape()[1];
  std::int64_t S = 1;
  for (int d = 2; d < x.dim(); ++d) S *= x.shape()[d];
  auto check_param = [&](const Tensor<T, D>& p, const char* what) {
    if (p.defined())
      AVGRAD_CHECK(p.dim() == 1 && p.shape()[0] == C, op, what, " has shape ", p.shape(), " but input ", x.shape(),
                   " has C = ", C, " channels; expected (", C, ")");
  };
  check_param(weight, "weight");
  check_param(bias, "bias");
  check_param(running_mean, "running_mean");
  check_param(running_var, "running_var");
  AVGRAD_CHECK(running_mean.defined() == running_var.defined(), op,
               "pass both running_mean and running_var, or neither");
  AVGRAD_CHECK(training || running_mean.defined(), op,
               "eval mode (training = false) needs running_mean and running_var");
  AVGRAD_CHECK(momentum >= 0 && momentum <= 1, op, "momentum must be in [0, 1], got ", momentum);
  detail::check_eps(eps, op);
  AVGRAD_CHECK(!training || N * S > 1, op, "training needs more than one value per channel, got input ", x.shape());

  auto xc = x.detach().contiguous();
  Tensor<T, D> mean, rstd;
  if (training) {
    auto [mu, var_b] = backend::Norm<D>::batch_moments(xc, N, C, S);
    mean = mu;
    rstd = detail::inv_std(var_b, eps);
    if (running_mean.defined()) {
      NoGradGuard no_grad;
      const double mom = momentum, unbias = static_cast<double>(N * S) / static_cast<double>(N * S - 1);
      apply_(
          running_mean, mu, [mom] AVGRAD_HOST_DEVICE(T r, T b) { return static_cast<T>((1 - mom) * r + mom * b); }, op);
      apply_(
          running_var, var_b,
          [mom, unbias] AVGRAD_HOST_DEVICE(T r, T v) { return static_cast<T>((1 - mom) * r + mom * unbias * v); }, op);
    }
  } else {
    // copies: a later training step may update the running stats before this backward
    mean = detail::copy_contiguous(running_mean.detach());
    rstd = detail::inv_std(running_var.detach(), eps);
  }
  auto w = detail::affine_or(weight, C, T(1));
  auto y = backend::Norm<D>::batch_apply(xc, x.shape(), mean, rstd, w, detail::affine_or(bias, C, T(0)), N, C, S);
  if (!autograd::any_requires_grad<T, D>({&x, &weight, &bias})) return y;
  autograd::Saved<T, D> sx(xc), sw(w);
  return autograd::record<T, D>(op, y, {x, weight, bias}, [=](const Tensor<T, D>& g, const std::vector<bool>& need) {
    auto r = backend::Norm<D>::batch_backward(sx.get(op), g.contiguous(), sw.get(op), mean, rstd, N, C, S, training,
                                              need[0], need[1], need[2]);
    return autograd::Grads<T, D>{r.dx, r.dw, r.db};
  });
}

/// Layer normalisation over the trailing dims: x: (…, *normalized_shape), any strides;
/// normalized_shape: 1 to rank(x) positive extents equal to x's trailing dims;
/// weight, bias: normalized_shape or undefined. One set per leading index:
/// y = (x − μ)/√(σ² + eps)·γ + β (biased σ²), y of x's shape.
template <Floating T, Device D> Tensor<T, D> layer_norm(const Tensor<T, D>& x, const Shape& normalized_shape,
                                                        const Tensor<T, D>& weight = {}, const Tensor<T, D>& bias = {},
                                                        double eps = 1e-5) {
  constexpr const char* op = "layer_norm";
  detail::check_defined(x, op);
  const int k = normalized_shape.rank();
  AVGRAD_CHECK(k >= 1 && k <= x.dim(), op, "normalized_shape ", normalized_shape, " must name 1 to ", x.dim(),
               " trailing dims of input ", x.shape());
  for (int i = 0; i < k; ++i)
    AVGRAD_CHECK(normalized_shape[i] > 0 && x.shape()[x.dim() - k + i] == normalized_shape[i], op, "normalized_shape ",
                 normalized_shape, " does not match the trailing dims of input ", x.shape());
  for (const auto* p : {&weight, &bias})
    if (p->defined())
      AVGRAD_CHECK(p->shape() == normalized_shape, op, p == &weight ? "weight" : "bias", " has shape ", p->shape(),
                   ", expected normalized_shape ", normalized_shape);
  detail::check_eps(eps, op);
  const std::int64_t K = normalized_shape.numel();
  return detail::row_norm(op, x, detail::RowNormLayout{x.numel() / K, 1, K, 1}, weight, bias, eps);
}

/// Group normalisation: x: (N, C, …) (rank ≥ 2), any strides; the C channels split
/// into `groups` consecutive groups, one set per (sample, group) over its C/groups
/// channels and all spatial positions; weight, bias: (C) or undefined (per channel).
/// y = (x − μ)/√(σ² + eps)·γ_c + β_c (biased σ²), y of x's shape.
/// Checks: groups ≥ 1 divides C.
template <Floating T, Device D> Tensor<T, D> group_norm(const Tensor<T, D>& x, std::int64_t groups,
                                                        const Tensor<T, D>& weight = {}, const Tensor<T, D>& bias = {},
                                                        double eps = 1e-5) {
  constexpr const char* op = "group_norm";
  detail::check_defined(x, op);
  AVGRAD_CHECK(x.dim() >= 2, op, "expects input (N, C, ...) of rank >= 2, got shape ", x.shape());
  const std::int64_t N = x.shape()[0], C = x.shape()[1];
  AVGRAD_CHECK(groups >= 1 && C % groups == 0, op, "groups = ", groups, " must be positive and divide C = ", C,
               " of input ", x.shape());
  for (const auto* p : {&weight, &bias})
    if (p->defined())
      AVGRAD_CHECK(p->dim() == 1 && p->shape()[0] == C, op, p == &weight ? "weight" : "bias", " has shape ", p->shape(),
                   " but input ", x.shape(), " has C = ", C, " channels; expected (", C, ")");
  detail::check_eps(eps, op);
  std::int64_t S = 1;
  for (int d = 2; d < x.dim(); ++d) S *= x.shape()[d];
  return detail::row_norm(op, x, detail::RowNormLayout{N * groups, groups, C / groups, S}, weight, bias, eps);
}

}  // namespace avgrad
