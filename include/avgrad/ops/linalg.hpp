// Matrix products: matmul (NumPy/PyTorch semantics: vectors, matrices, batched
// N-D with broadcasting over the batch dims), bmm, and linear (x·wᵀ + b, as
// torch.nn.functional.linear). All run on backend::Blas<D>::gemm (cpu::gemm on the
// host, cuBLAS in cuda/avgrad/cuda/blas.cuh); a transposed view (strides (1, ld)) is
// handed to GEMM as op(A) = Aᵀ instead of being copied, and a batch that lines up in
// memory is folded into one large product. Float products run at this thread's
// MatmulPrecision (core/precision.hpp), fixed for a product's backward when it is recorded.
#pragma once

#include <algorithm>
#include <optional>
#include <vector>

#include <omp.h>

#include "avgrad/backend/cpu/gemm.hpp"
#include "avgrad/core/precision.hpp"
#include "avgrad/ops/reduce.hpp"

namespace avgrad {

namespace backend {

/// Row-major GEMM of one device: C (m, n) = alpha·op(A)·op(B) + beta·C, op(X) = Xᵀ when
/// trans_x; `gemm_batched` runs `count` such products given arrays of pointers.
template <Device D> struct Blas;

template <> struct Blas<Cpu> {
  /// `precision` lowers a float GEMM's operands (core/precision.hpp): each is rounded into a
  /// scratch copy, and the float GEMM accumulates their products.
  template <class T> static void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                                      T alpha, const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c,
                                      std::int64_t ldc, MatmulPrecision precision = MatmulPrecision::float32) {
    if constexpr (std::same_as<T, float>) {
      if (precision != MatmulPrecision::float32) {
        std::vector<float> ra, rb;
        a = rounded(a, gemm_extent(trans_a, m, k, lda), precision, ra);
        b = rounded(b, gemm_extent(trans_b, k, n, ldb), precision, rb);
        cpu::gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
      }
    }
    cpu::gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  template <class T> static void gemm_batched(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n,
                                              std::int64_t k, T alpha, const T* const* a, std::int64_t lda,
                                              const T* const* b, std::int64_t ldb, T beta, T* const* c,
                                              std::int64_t ldc, std::int64_t count,
                                              MatmulPrecision precision = MatmulPrecision::float32) {
    if (precision != MatmulPrecision::float32) {
      for (std::int64_t i = 0; i < count; ++i)
        gemm(trans_a, trans_b, m, n, k, alpha, a[i], lda, b[i], ldb, beta, c[i], ldc, precision);
      return;
    }
    cpu::gemm_batched(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, count);
  }

 private:
  static const float* rounded(const float* x, std::int64_t n, MatmulPrecision p, std::vector<float>& scratch) {
    scratch.resize(static_cast<std::size_t>(n));
#pragma omp parallel for if (n >= cpu::kParallelGrain && !omp_in_parallel())
    for (std::int64_t i = 0; i < n; ++i) scratch[static_cast<std::size_t>(i)] = round_to(p, x[i]);
    return scratch.data();
  }
};

}  // namespace backend

namespace detail {

/// The precision a GEMM of element type T runs at: this thread's setting for float, exact otherwise.
template <class T> MatmulPrecision gemm_precision() {
  return std::same_as<T, float> ? matmul_precision() : MatmulPrecision::float32;
}

/// How GEMM reads a strided rows×cols matrix: row-major with leading dimension
/// `ld` (strides (ld, 1)), or as the transpose of a row-major cols×rows matrix
/// (strides (1, ld)). `ok` is false for any other layout (the caller copies).
struct GemmLayout {
  bool ok = false;
  bool trans = false;
  std::int64_t ld = 1;
};

inline GemmLayout gemm_layout(std::int64_t rows, std::int64_t cols, std::int64_t s0, std::int64_t s1) {
  // Extent-1 dims place no constraint on their stride.
  if ((cols <= 1 || s1 == 1) && (rows <= 1 || s0 >= std::max<std::int64_t>(cols, 1)))
    return {true, false, rows <= 1 ? std::max<std::int64_t>(cols, 1) : s0};
  if ((rows <= 1 || s0 == 1) && (cols <= 1 || s1 >= std::max<std::int64_t>(rows, 1)))
    return {true, true, cols <= 1 ? std::max<std::int64_t>(rows, 1) : s1};
  return {};
}

/// The stride s with which the flat row-major index f over `dims` (outer→inner,
/// (extent, stride) pairs) maps to offset f·s, if one exists.
inline std::optional<std::int64_t> merged_stride(const std::vector<std::pair<std::int64_t, std::int64_t>>& dims) {
  std::optional<std::int64_t> s;
  std::int64_t span = 1;  // elements covered by the inner dims seen so far
  for (auto it = dims.rbegin(); it != dims.rend(); ++it) {
    auto [n, st] = *it;
    if (n == 1) continue;
    if (!s) {
      s = st;
      span = n;
    } else {
      if (st != *s * span) return std::nullopt;
      span *= n;
    }
  }
  return s.value_or(1);
}

/// A 2-D operand ready for GEMM: pointer, layout, and the tensor keeping it alive.
template <Floating T, Device D> struct GemmOperand {
  Tensor<T, D> keep;
  GemmLayout layout;
  const T* ptr() const { return keep.data(); }
};

/// x (r, c) as a GEMM operand; copies only when the strides fit no GEMM layout.
template <Floating T, Device D> GemmOperand<T, D> gemm_operand(const Tensor<T, D>& x) {
  GemmLayout l = gemm_layout(x.size(0), x.size(1), x.stride(0), x.stride(1));
  if (l.ok) return {x, l};
  auto c = copy_contiguous(x);
  return {c, gemm_layout(c.size(0), c.size(1), c.stride(0), c.stride(1))};
}

/// x (…, c) viewed as a matrix (prod(…), c) without copying when the leading
/// dims merge (any strides for c); a contiguous copy otherwise. No recording.
template <Floating T, Device D> Tensor<T, D> as_rows(const Tensor<T, D>& x) {
  const std::int64_t c = x.shape().back();
  const std::int64_t r = c == 0 ? 0 : x.numel() / c;
  std::vector<std::pair<std::int64_t, std::int64_t>> lead;
  for (int d = 0; d + 1 < x.dim(); ++d) lead.emplace_back(x.shape()[d], x.strides()[d]);
  if (auto s = merged_stride(lead))
    return Tensor<T, D>::from_storage(x.storage(), Shape{r, c}, Strides{*s, x.strides()[x.dim() - 1]}, x.offset());
  auto cc = copy_contiguous(x);
  return Tensor<T, D>::from_storage(cc.storage(), Shape{r, c}, Strides{c, 1}, 0);
}

/// C (out_batch…, m, n) = Σ A[i]·B[i] for a (Ba…, m, k), b (Bb…, k, n): i runs
/// over the broadcast batch shape of Ba, Bb and out_batch, and each product is
/// added into the output entry that i maps to (out_batch dims are equal to the
/// broadcast dims or 1/absent, which sums them: the backward of broadcasting).
/// No recording; fresh contiguous output.
template <Floating T, Device D> Tensor<T, D> matmul_kernel(Tensor<T, D> a, Tensor<T, D> b, const Shape& out_batch,
                                                           const char* op, MatmulPrecision precision) {
  const int ra = a.dim(), rb = b.dim();
  const std::int64_t m = a.shape()[ra - 2], k = a.shape()[ra - 1], n = b.shape()[rb - 1];
  GemmLayout la = gemm_layout(m, k, a.strides()[ra - 2], a.strides()[ra - 1]);
  if (!la.ok) {
    a = copy_contiguous(a);
    la = gemm_layout(m, k, a.strides()[ra - 2], a.strides()[ra - 1]);
  }
  GemmLayout lb = gemm_layout(k, n, b.strides()[rb - 2], b.strides()[rb - 1]);
  if (!lb.ok) {
    b = copy_contiguous(b);
    lb = gemm_layout(k, n, b.strides()[rb - 2], b.strides()[rb - 1]);
  }
  Shape ba, sa, bb, sb;
  for (int d = 0; d < ra - 2; ++d) {
    ba.push_back(a.shape()[d]);
    sa.push_back(a.strides()[d]);
  }
  for (int d = 0; d < rb - 2; ++d) {
    bb.push_back(b.shape()[d]);
    sb.push_back(b.strides()[d]);
  }
  const Shape full = broadcast_shapes(broadcast_shapes(ba, bb, op), out_batch, op);
  const Strides fa = broadcast_strides(ba, sa, full), fb = broadcast_strides(bb, sb, full);

  Shape out_shape = out_batch;
  out_shape.push_back(m);
  out_shape.push_back(n);
  auto c = Tensor<T, D>::empty(out_shape);
  if (c.numel() == 0) return c;
  T* cp = c.data();
  const std::int64_t nfull = full.numel(), nout = out_batch.numel();
  if (nfull == 0) return zeros<T, D>(out_shape);  // a sum over an empty batch
  Strides oc;
  for (int d = 0; d < out_batch.rank(); ++d) oc.push_back(contiguous_strides(out_shape)[d]);
  const Strides fc = broadcast_strides(out_batch, oc, full);
  const T* ap = a.data();
  const T* bp = b.data();

  auto dims_of = [&](const Strides& st, std::int64_t extent, std::int64_t stride) {
    std::vector<std::pair<std::int64_t, std::int64_t>> v;
    for (int d = 0; d < full.rank(); ++d) v.emplace_back(full[d], st[d]);
    v.emplace_back(extent, stride);
    return v;
  };
  bool b_single = true;
  for (int d = 0; d < full.rank(); ++d) b_single = b_single && (full[d] == 1 || fb[d] == 0);

  // Fold rows: B is one matrix and A's batch rows stack as (nfull·m, k) → one GEMM.
  if (nout == nfull && b_single) {
    if (auto s0 = merged_stride(dims_of(fa, m, a.strides()[ra - 2]))) {
      GemmLayout l = gemm_layout(nfull * m, k, *s0, a.strides()[ra - 1]);
      if (l.ok) {
        backend::Blas<D>::gemm(l.trans, lb.trans, nfull * m, n, k, T(1), ap, l.ld, bp, lb.ld, T(0), cp, n, precision);
        return c;
      }
    }
  }
  // Fold the batch into the contraction: Σ_i A_i·B_i = [A_1 … A_B]·[B_1; …; B_B] → one GEMM.
  if (nout == 1) {
    auto sa1 = merged_stride(dims_of(fa, k, a.strides()[ra - 1]));
    auto sb0 = merged_stride(dims_of(fb, k, b.strides()[rb - 2]));
    if (sa1 && sb0) {
      GemmLayout l1 = gemm_layout(m, nfull * k, a.strides()[ra - 2], *sa1);
      GemmLayout l2 = gemm_layout(nfull * k, n, *sb0, b.strides()[rb - 1]);
      if (l1.ok && l2.ok) {
        backend::Blas<D>::gemm(l1.trans, l2.trans, m, n, nfull * k, T(1), ap, l1.ld, bp, l2.ld, T(0), cp, n, precision);
        return c;
      }
    }
  }

  // General: one product per batch index, in row-major order of `full`.
  std::vector<const T*> pa(static_cast<std::size_t>(nfull)), pb(pa.size());
  std::vector<std::int64_t> oc_off(pa.size());
  for (std::int64_t i = 0; i < nfull; ++i) {
    std::int64_t rem = i, offa = 0, offb = 0, offc = 0;
    for (int d = full.rank() - 1; d >= 0; --d) {
      const std::int64_t idx = rem % full[d];
      rem /= full[d];
      offa += idx * fa[d];
      offb += idx * fb[d];
      offc += idx * fc[d];
    }
    pa[static_cast<std::size_t>(i)] = ap + offa;
    pb[static_cast<std::size_t>(i)] = bp + offb;
    oc_off[static_cast<std::size_t>(i)] = offc;
  }
  if (nout == nfull) {  // every product has its own output
    std::vector<T*> pc(pa.size());
    for (std::size_t i = 0; i < pc.size(); ++i) pc[i] = cp + oc_off[i];
    backend::Blas<D>::gemm_batched(la.trans, lb.trans, m, n, k, T(1), pa.data(), la.ld, pb.data(), lb.ld, T(0),
                                   pc.data(), n, nfull, precision);
    return c;
  }
  // Reduction: products sharing an output accumulate into it in batch order
  // (fixed, so the sum does not depend on the thread count); outputs in parallel.
  std::vector<std::int64_t> order(pa.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<std::int64_t>(i);
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t x, std::int64_t y) {
    return oc_off[static_cast<std::size_t>(x)] < oc_off[static_cast<std::size_t>(y)];
  });
  const std::int64_t per_out = nfull / nout;  // every output gets the same number of products
  // (a device queues its products in order on one stream instead)
  const bool par = std::same_as<D, Cpu> && nout > 1 && m * n * k < cpu::kSmallGemmWork && !omp_in_parallel() &&
                   omp_get_max_threads() > 1 && nfull * m * n * std::max<std::int64_t>(k, 1) >= cpu::kParallelGrain;
#pragma omp parallel for schedule(static) if (par)
  for (std::int64_t o = 0; o < nout; ++o) {
    for (std::int64_t j = 0; j < per_out; ++j) {
      const auto i = static_cast<std::size_t>(order[static_cast<std::size_t>(o * per_out + j)]);
      backend::Blas<D>::gemm(la.trans, lb.trans, m, n, k, T(1), pa[i], la.ld, pb[i], lb.ld, j == 0 ? T(0) : T(1),
                             cp + oc_off[i], n, precision);
    }
  }
  return c;
}

/// The batch dims (all but the last two) of a shape.
inline Shape batch_dims(const Shape& s) {
  Shape b;
  for (int d = 0; d + 2 < s.rank(); ++d) b.push_back(s[d]);
  return b;
}

}  // namespace detail

/// Matrix product with NumPy/PyTorch semantics:
///   a (K) · b (K) → scalar; a (M, K) · b (K, N) → (M, N);
///   a (K) · b (…, K, N) → (…, N) (a read as (1, K)); a (…, M, K) · b (K) → (…, M);
///   a (…A, M, K) · b (…B, K, N) → (broadcast(…A, …B), M, N).
/// Checks: rank >= 1, inner dims equal, batch dims broadcast. Transposed views
/// are read in place; output is fresh and contiguous.
/// `precision` (float tensors only; doubles are never lowered) sets the GEMM precision of this
/// product and its backward; the two-argument form uses this thread's matmul_precision().
template <Floating T, Device D>
Tensor<T, D> matmul(const Tensor<T, D>& a, const Tensor<T, D>& b, MatmulPrecision precision) {
  if constexpr (!std::same_as<T, float>) precision = MatmulPrecision::float32;
  detail::check_defined(a, "matmul");
  detail::check_defined(b, "matmul");
  AVGRAD_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul", "both operands need at least 1 dim: ", a.shape(), " @ ",
               b.shape());
  const bool va = a.dim() == 1, vb = b.dim() == 1;
  Tensor<T, D> a2 = va ? a.detach().unsqueeze(0) : a.detach();  // (…A, M, K)
  Tensor<T, D> b2 = vb ? b.detach().unsqueeze(1) : b.detach();  // (…B, K, N)
  AVGRAD_CHECK(a2.shape().back() == b2.shape()[b2.dim() - 2], "matmul", "inner dims differ: ", a.shape(), " @ ",
               b.shape());
  const Shape sba = detail::batch_dims(a2.shape()), sbb = detail::batch_dims(b2.shape());
  for (int i = 1; i <= std::min(sba.rank(), sbb.rank()); ++i) {
    const std::int64_t x = sba[sba.rank() - i], y = sbb[sbb.rank() - i];
    AVGRAD_CHECK(x == y || x == 1 || y == 1, "matmul", "batch dims do not broadcast: ", a.shape(), " @ ", b.shape());
  }
  const Shape batch = broadcast_shapes(sba, sbb, "matmul");
  Tensor<T, D> y2 = detail::matmul_kernel(a2, b2, batch, "matmul", precision);  // (batch…, M, N)
  Shape ys = batch;
  if (!va) ys.push_back(a2.shape()[a2.dim() - 2]);
  if (!vb) ys.push_back(b2.shape().back());
  Tensor<T, D> y = Tensor<T, D>::from_storage(y2.storage(), ys, contiguous_strides(ys), 0);  // drops the unit dims
  if (!autograd::any_requires_grad<T, D>({&a, &b})) return y;
  // Each operand is needed only for the other's gradient.
  autograd::Saved<T, D> sa(b.requires_grad() ? a : Tensor<T, D>()), sb(a.requires_grad() ? b : Tensor<T, D>());
  const Shape shape_a = a.shape(), shape_b = b.shape(), shape_y2 = y2.shape();
  return autograd::record<T, D>("matmul", y, {a, b}, [=](const Tensor<T, D>& g, const std::vector<bool>& need) {
    // y2 = a2·b2 per batch entry ⇒ da2 = g2·b2ᵀ, db2 = a2ᵀ·g2, each summed over the
    // batch dims its operand was broadcast along (out_batch = that operand's batch dims).
    Tensor<T, D> g2 = g.reshape(shape_y2);  // (batch…, M, N)
    autograd::Grads<T, D> out(2);
    if (need[0]) {
      const auto& bv = sb.get("matmul");
      Tensor<T, D> bb = vb ? bv.unsqueeze(1) : bv;  // (…B, K, N)
      Shape ab = va ? Shape{} : detail::batch_dims(shape_a);
      out[0] = detail::matmul_kernel(g2, bb.transpose(-1, -2), ab, "matmul", precision).reshape(shape_a);  // (…A, M, K)
    }
    if (need[1]) {
      const auto& av = sa.get("matmul");
      Tensor<T, D> aa = va ? av.unsqueeze(0) : av;  // (…A, M, K)
      Shape bbatch = vb ? Shape{} : detail::batch_dims(shape_b);
      out[1] =
          detail::matmul_kernel(aa.transpose(-1, -2), g2, bbatch, "matmul", precision).reshape(shape_b);  // (…B, K, N)
    }
    return out;
  });
}

template <Floating T, Device D> Tensor<T, D> matmul(const Tensor<T, D>& a, const Tensor<T, D>& b) {
  return matmul(a, b, detail::gemm_precision<T>());
}

/// Batched matrix product: a (B, M, K) · b (B, K, N) → (B, M, N); no broadcasting.
template <Floating T, Device D> Tensor<T, D> bmm(const Tensor<T, D>& a, const Tensor<T, D>& b) {
  detail::check_defined(a, "bmm");
  detail::check_defined(b, "bmm");
  AVGRAD_CHECK(a.dim() == 3 && b.dim() == 3, "bmm", "expects two 3-D tensors, got ", a.shape(), " @ ", b.shape());
  AVGRAD_CHECK(a.size(0) == b.size(0), "bmm", "batch sizes differ: ", a.shape(), " @ ", b.shape());
  AVGRAD_CHECK(a.size(2) == b.size(1), "bmm", "inner dims differ: ", a.shape(), " @ ", b.shape());
  return matmul(a, b);
}

/// y = x·wᵀ + b as torch.nn.functional.linear: x (…, IN), w (OUT, IN), optional
/// bias (OUT) (pass an undefined tensor for none) → y (…, OUT). x (IN) gives (OUT).
/// One GEMM forward (the bias is the initial C); backward: dx one GEMM, dw one
/// GEMM, db a row sum, each only when needed.
template <Floating T, Device D>
Tensor<T, D> linear(const Tensor<T, D>& x, const Tensor<T, D>& w, const Tensor<T, D>& bias = Tensor<T, D>()) {
  detail::check_defined(x, "linear");
  detail::check_defined(w, "linear");
  AVGRAD_CHECK(w.dim() == 2, "linear", "weight must be 2-D (OUT, IN), got ", w.shape());
  AVGRAD_CHECK(x.dim() >= 1, "linear", "input must have at least 1 dim, got ", x.shape());
  const std::int64_t in = w.size(1), out_f = w.size(0);
  AVGRAD_CHECK(x.shape().back() == in, "linear", "input features differ: x ", x.shape(), " vs weight ", w.shape());
  const bool has_bias = bias.defined();
  if (has_bias)
    AVGRAD_CHECK(bias.dim() == 1 && bias.size(0) == out_f, "linear", "bias must be (", out_f, "), got ", bias.shape(),
                 " for weight ", w.shape());
  Tensor<T, D> x2 = detail::as_rows(x.detach());  // (M, IN)
  const std::int64_t rows = x2.size(0);
  const MatmulPrecision precision = detail::gemm_precision<T>();  // the backward products use it too
  auto xo = detail::gemm_operand(x2);
  auto wo = detail::gemm_operand(w.detach());  // w (OUT, IN); op(B) = wᵀ flips its layout
  Shape ys = x.shape();
  ys[ys.rank() - 1] = out_f;
  auto y = Tensor<T, D>::empty(ys);  // (…, OUT) = (M, OUT) row-major
  T* yp = y.data();
  if (has_bias)  // the bias broadcast over the rows is GEMM's initial C
    backend::Loops<D>::map1(yp, Strides{out_f, 1}, bias.data(), Strides{0, bias.stride(0)}, Shape{rows, out_f},
                            detail::Identity{});
  backend::Blas<D>::gemm(xo.layout.trans, !wo.layout.trans, rows, out_f, in, T(1), xo.ptr(), xo.layout.ld, wo.ptr(),
                         wo.layout.ld, has_bias ? T(1) : T(0), yp, out_f, precision);
  if (!autograd::any_requires_grad<T, D>({&x, &w, &bias})) return y;
  autograd::Saved<T, D> sx(w.requires_grad() ? x : Tensor<T, D>()), sw(x.requires_grad() ? w : Tensor<T, D>());
  const Shape shape_x = x.shape();
  std::vector<Tensor<T, D>> inputs{x, w};
  if (has_bias) inputs.push_back(bias);
  return autograd::record<T, D>("linear", y, inputs, [=](const Tensor<T, D>& g, const std::vector<bool>& need) {
    autograd::Grads<T, D> out(need.size());
    Tensor<T, D> g2 = detail::as_rows(g);  // (M, OUT)
    auto go = detail::gemm_operand(g2);
    if (need[0]) {  // dx (M, IN) = g (M, OUT) · w (OUT, IN)
      auto wv = detail::gemm_operand(sw.get("linear"));
      auto dx = Tensor<T, D>::empty(shape_x);
      backend::Blas<D>::gemm(go.layout.trans, wv.layout.trans, rows, in, out_f, T(1), go.ptr(), go.layout.ld, wv.ptr(),
                             wv.layout.ld, T(0), dx.data(), in, precision);
      out[0] = dx;
    }
    if (need[1]) {  // dw (OUT, IN) = gᵀ (OUT, M) · x (M, IN)
      auto xv = detail::gemm_operand(detail::as_rows(sx.get("linear")));
      auto dw = Tensor<T, D>::empty(Shape{out_f, in});
      backend::Blas<D>::gemm(!go.layout.trans, xv.layout.trans, out_f, in, rows, T(1), go.ptr(), go.layout.ld, xv.ptr(),
                             xv.layout.ld, T(0), dw.data(), in, precision);
      out[1] = dw;
    }
    if (has_bias && need[2]) out[2] = detail::sum_kernel(g2, {0}, false);  // db (OUT) = Σ_rows g
    return out;
  });
}

}  // namespace avgrad
