// MapGather<Cuda> and AxisGather<Cuda>: the gathers behind pad, repeat, flip, roll,
// index_select, gather and scatter_add, and their adjoints. Index maps are checked on the
// host (as on the CPU) and uploaded once per call. The adjoint scatters are gathers too:
// the map is inverted on the host into, per target, the list of its sources, so each
// target sums its terms in a fixed order with no atomics and repeats bit for bit.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "avgrad/cuda/elementwise.cuh"
#include "avgrad/cuda/transfer.cuh"
#include "avgrad/ops/index.hpp"
#include "avgrad/ops/join.hpp"

namespace avgrad::cuda {

/// A host vector of indices as a device tensor (empty vector → undefined tensor).
inline Tensor<std::int64_t, Cuda> upload(const std::vector<std::int64_t>& v) {
  if (v.empty()) return {};
  return from_vector<std::int64_t>(v, Shape{static_cast<std::int64_t>(v.size())}).to<Cuda>();
}

/// Per-dim source maps of a gather over `rank` dims: dim d reads x at maps[off[d] + c] for
/// output coordinate c (off[d] < 0: the identity), a negative entry meaning `fill`.
struct MapsArg {
  int rank = 0;
  std::int64_t out[kMaxRank] = {}, xs[kMaxRank] = {}, off[kMaxRank] = {};
};

template <class T>
__global__ void gather_by_maps_kernel(const T* x, MapsArg m, const std::int64_t* maps, std::int64_t n, T fill, T* y) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    std::int64_t rem = i, off = 0;
    bool is_fill = false;
    for (int d = m.rank - 1; d >= 0; --d) {
      const std::int64_t c = rem % m.out[d];
      rem /= m.out[d];
      const std::int64_t s = m.off[d] < 0 ? c : maps[m.off[d] + c];
      is_fill = is_fill || s < 0;
      off += s * m.xs[d];
    }
    y[i] = is_fill ? fill : x[off];
  }
}

/// res (outer, n, inner) = Σ over the sources o of target i (CSR: first[i] … first[i+1]) of
/// g (outer, m, inner), in list order.
template <class T> __global__ void scatter_dim_kernel(const T* g, const std::int64_t* first, const std::int64_t* src,
                                                      std::int64_t n, std::int64_t m, std::int64_t inner,
                                                      std::int64_t total, T* res) {
  for (std::int64_t r = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; r < total;
       r += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t j = r % inner, i = (r / inner) % n, ob = r / (inner * n);
    T acc = 0;
    for (std::int64_t k = first[i]; k < first[i + 1]; ++k) acc += g[(ob * m + src[k]) * inner + j];
    res[r] = acc;
  }
}

/// Lines of an index shape along axis a: the offsets of each line's first element in the
/// index (contiguous), in dst/x and in src, and the line's stride in each.
struct LineArg {
  int rank = 0, axis = 0;
  std::int64_t shape[kMaxRank] = {}, istride[kMaxRank] = {}, s1[kMaxRank] = {}, s2[kMaxRank] = {};
};
__device__ inline void line_offsets(const LineArg& L, std::int64_t line, std::int64_t& oi, std::int64_t& o1,
                                    std::int64_t& o2) {
  oi = o1 = o2 = 0;
  for (int d = L.rank - 1; d >= 0; --d) {
    if (d == L.axis) continue;
    const std::int64_t c = line % L.shape[d];
    line /= L.shape[d];
    oi += c * L.istride[d];
    o1 += c * L.s1[d];
    o2 += c * L.s2[d];
  }
}

/// out[p] = x[p with p_a → idx[p]], one thread per element (out, idx contiguous).
template <class T>
__global__ void gather_along_kernel(const T* x, const std::int64_t* idx, LineArg L, std::int64_t n, T* out) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    std::int64_t rem = i, off = 0;
    for (int d = L.rank - 1; d >= 0; --d) {
      const std::int64_t c = rem % L.shape[d];
      rem /= L.shape[d];
      off += (d == L.axis ? idx[i] : c) * L.s1[d];
    }
    out[i] = x[off];
  }
}

/// dst[p with p_a → idx[p]] += src[p]: one thread per line, its terms in increasing p_a,
/// so lines write disjoint elements and the sums are ordered as on the CPU.
template <class T>
__global__ void scatter_add_along_kernel(T* dst, const std::int64_t* idx, const T* src, LineArg L, std::int64_t lines) {
  const std::int64_t ka = L.shape[L.axis];
  for (std::int64_t l = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; l < lines;
       l += std::int64_t(gridDim.x) * blockDim.x) {
    std::int64_t oi, od, os;
    line_offsets(L, l, oi, od, os);
    for (std::int64_t k = 0; k < ka; ++k)
      dst[od + idx[oi + k * L.istride[L.axis]] * L.s1[L.axis]] += src[os + k * L.s2[L.axis]];
  }
}

inline LineArg line_arg(const Shape& ishape, int a, const Strides& s1, const Strides& s2) {
  LineArg L;
  L.rank = ishape.rank();
  L.axis = a;
  const Strides ic = contiguous_strides(ishape);
  for (int d = 0; d < L.rank; ++d) {
    L.shape[d] = ishape[d];
    L.istride[d] = ic[d];
    L.s1[d] = s1[d];
    L.s2[d] = s2.rank() ? s2[d] : 0;
  }
  return L;
}

}  // namespace avgrad::cuda

namespace avgrad::backend {

template <> struct MapGather<Cuda> {
  template <class T> static Tensor<T, Cuda> gather(const Tensor<T, Cuda>& x, const Shape& out_shape,
                                                   const detail::IndexMaps& maps, T fill) {
    auto y = Tensor<T, Cuda>::empty(out_shape);
    const std::int64_t n = out_shape.numel();
    if (n == 0) return y;
    cuda::MapsArg m;
    m.rank = out_shape.rank();
    std::vector<std::int64_t> flat;
    for (int d = 0; d < m.rank; ++d) {
      const auto& md = maps[static_cast<std::size_t>(d)];
      m.out[d] = out_shape[d];
      m.xs[d] = x.strides()[d];
      m.off[d] = md.empty() ? -1 : static_cast<std::int64_t>(flat.size());
      flat.insert(flat.end(), md.begin(), md.end());
    }
    auto dev = cuda::upload(flat);
    cuda::gather_by_maps_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, cuda::current_stream()>>>(
        x.data(), m, dev.defined() ? dev.data() : nullptr, n, fill, y.data());
    cuda::check_launch("gather_by_maps_kernel");
    return y;
  }

  /// One mapped dim at a time, as the CPU: res (…, n, …) = Σ_{o : map[o] = i} g (…, o, …).
  template <class T>
  static Tensor<T, Cuda> scatter(const Tensor<T, Cuda>& g, const Shape& in_shape, const detail::IndexMaps& maps) {
    if (g.numel() == 0) return zeros<T, Cuda>(in_shape);
    Tensor<T, Cuda> r = g.contiguous();
    for (int a = 0; a < g.dim(); ++a) {
      const auto& map = maps[static_cast<std::size_t>(a)];
      if (map.empty()) continue;
      const std::int64_t n = in_shape[a], m = r.shape()[a];
      std::vector<std::int64_t> first(static_cast<std::size_t>(n + 1), 0), src;
      for (auto i : map)
        if (i >= 0) ++first[static_cast<std::size_t>(i + 1)];
      for (std::int64_t i = 0; i < n; ++i) first[static_cast<std::size_t>(i + 1)] += first[static_cast<std::size_t>(i)];
      src.resize(static_cast<std::size_t>(first.back()));
      std::vector<std::int64_t> fill(first.begin(), first.end() - 1);
      for (std::int64_t o = 0; o < m; ++o) {
        const std::int64_t i = map[static_cast<std::size_t>(o)];
        if (i >= 0) src[static_cast<std::size_t>(fill[static_cast<std::size_t>(i)]++)] = o;
      }
      Shape rs = r.shape();
      rs[a] = n;
      auto res = Tensor<T, Cuda>::empty(rs);
      std::int64_t inner = 1;
      for (int d = a + 1; d < rs.rank(); ++d) inner *= rs[d];
      const std::int64_t total = rs.numel();
      if (total > 0) {
        auto dfirst = cuda::upload(first);
        auto dsrc = cuda::upload(src);
        cuda::scatter_dim_kernel<<<cuda::blocks_for(total), cuda::kThreads, 0, cuda::current_stream()>>>(
            r.data(), dfirst.data(), dsrc.defined() ? dsrc.data() : nullptr, n, m, inner, total, res.data());
        cuda::check_launch("scatter_dim_kernel");
      }
      r = res;
    }
    return r;
  }
};

template <> struct AxisGather<Cuda> {
  template <class T> static Tensor<T, Cuda> gather(const Tensor<T, Cuda>& x, int a,
                                                   const std::vector<std::int64_t>& idx, const Shape& ishape) {
    auto out = Tensor<T, Cuda>::empty(ishape);
    const std::int64_t n = ishape.numel();
    if (n == 0) return out;
    auto didx = cuda::upload(idx);
    cuda::gather_along_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, cuda::current_stream()>>>(
        x.data(), didx.data(), cuda::line_arg(ishape, a, x.strides(), Strides{}), n, out.data());
    cuda::check_launch("gather_along_kernel");
    return out;
  }
  template <class T> static void scatter_add(Tensor<T, Cuda>& dst, int a, const std::vector<std::int64_t>& idx,
                                             const Shape& ishape, const Tensor<T, Cuda>& src) {
    const std::int64_t n = ishape.numel();
    if (n == 0) return;
    auto didx = cuda::upload(idx);
    const std::int64_t lines = n / ishape[a];
    cuda::scatter_add_along_kernel<<<cuda::blocks_for(lines), cuda::kThreads, 0, cuda::current_stream()>>>(
        dst.data(), didx.data(), src.data(), cuda::line_arg(ishape, a, dst.strides(), src.strides()), lines);
    cuda::check_launch("scatter_add_along_kernel");
  }
};

}  // namespace avgrad::backend
