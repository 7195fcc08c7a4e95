// im2col / col2im for convolutions over 1, 2 or 3 spatial dims. One routine
// serves every rank: a geometry is normalised to 3 spatial dims by giving the
// missing leading dims extent 1, kernel 1, stride 1, padding 0, dilation 1.
//
// Layout: the image is (C, iD, iH, iW) contiguous; the column matrix is
// (C·kD·kH·kW, oD·oH·oW) row-major, rows ordered (c, kd, kh, kw) and columns
// (od, oh, ow), so the rows of channel group g form one contiguous block and a
// convolution is W_g (C_out/G, C/G·k) · cols_g (C/G·k, L).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>

#include <omp.h>

#include "avgrad/backend/cpu/loops.hpp"

namespace avgrad::cpu {

/// Geometry of one convolution, normalised to 3 spatial dims (d = 0, 1, 2 = D, H, W).
/// out[d] is given, not derived, so a transposed convolution may use an output
/// that the usual formula would round differently (output_padding).
struct ConvGeometry {
  std::int64_t channels = 0;  ///< image channels C
  std::array<std::int64_t, 3> in{1, 1, 1}, out{1, 1, 1}, kernel{1, 1, 1};
  std::array<std::int64_t, 3> stride{1, 1, 1}, pad{0, 0, 0}, dilation{1, 1, 1};

  std::int64_t in_size() const { return in[0] * in[1] * in[2]; }
  std::int64_t out_size() const { return out[0] * out[1] * out[2]; }
  std::int64_t kernel_size() const { return kernel[0] * kernel[1] * kernel[2]; }
  std::int64_t col_rows() const { return channels * kernel_size(); }
  /// A 1×1×1 kernel with stride 1 and no padding: the column matrix is the image itself.
  bool is_pointwise() const {
    for (int d = 0; d < 3; ++d)
      if (kernel[d] != 1 || stride[d] != 1 || pad[d] != 0 || in[d] != out[d]) return false;
    return true;
  }
};

/// Output extent of a convolution along one dim (may be <= 0 for an oversized kernel).
inline std::int64_t conv_out_extent(std::int64_t in, std::int64_t k, std::int64_t s, std::int64_t p, std::int64_t d) {
  const std::int64_t span = in + 2 * p - d * (k - 1) - 1;
  return span < 0 ? 0 : span / s + 1;
}

namespace detail {

/// The range [lo, hi) of output positions o whose input position o·s + off lies in [0, n).
inline void valid_range(std::int64_t off, std::int64_t s, std::int64_t n, std::int64_t out, std::int64_t& lo,
                        std::int64_t& hi) {
  lo = off >= 0 ? 0 : (-off + s - 1) / s;
  hi = (n - 1 - off) < 0 ? 0 : (n - 1 - off) / s + 1;
  lo = std::min(lo, out);
  hi = std::clamp(hi, lo, out);
}

/// Visits the part of every column row of channel c that covers output
/// positions [p0, p1), one output line (od, oh) at a time:
/// f(row, base, line, iw0, a, b, lo, hi): column entry ow of this line is
/// cols[row·(p1 − p0) + base + ow] for ow in [a, b); it reads
/// image[line + ow·sW + iw0] when `line` >= 0 and ow is in [lo, hi), and is
/// padding (zero) otherwise.
template <class F>
void for_each_segment(const ConvGeometry& g, std::int64_t c, std::int64_t p0, std::int64_t p1, F&& f) {
  const std::int64_t oW = g.out[2], oH = g.out[1];
  const std::int64_t first = p0 / oW, last = (p1 - 1) / oW;  // output lines (od·oH + oh) touched
  const std::int64_t od0 = first / oH, oh0 = first % oH;     // the first line's coordinates
  std::int64_t row = c * g.kernel_size();
  for (std::int64_t kd = 0; kd < g.kernel[0]; ++kd)
    for (std::int64_t kh = 0; kh < g.kernel[1]; ++kh)
      for (std::int64_t kw = 0; kw < g.kernel[2]; ++kw, ++row) {
        const std::int64_t iw0 = kw * g.dilation[2] - g.pad[2];
        std::int64_t lo, hi;
        valid_range(iw0, g.stride[2], g.in[2], oW, lo, hi);
        // walk the lines with (od, oh) stepped, not divided out of li: rows are short (a video
        // map is 8–32 wide), so per-line index arithmetic is a visible share of the copy
        std::int64_t od = od0, oh = oh0;
        for (std::int64_t li = first; li <= last; ++li) {
          const std::int64_t id = od * g.stride[0] - g.pad[0] + kd * g.dilation[0];
          const std::int64_t ih = oh * g.stride[1] - g.pad[1] + kh * g.dilation[1];
          const bool inside = id >= 0 && id < g.in[0] && ih >= 0 && ih < g.in[1];
          const std::int64_t line = inside ? ((c * g.in[0] + id) * g.in[1] + ih) * g.in[2] : -1;
          const std::int64_t a = li == first ? p0 - li * oW : 0, b = li == last ? p1 - li * oW : oW;
          f(row, li * oW - p0, line, iw0, a, b, lo, hi);
          if (++oh == oH) oh = 0, ++od;
        }
      }
}

inline bool split_channels(const ConvGeometry& g, std::int64_t width) {
  return !omp_in_parallel() && g.channels > 1 && g.col_rows() * width >= kParallelGrain;
}

}  // namespace detail

/// Columns [p0, p1) of the column matrix (output positions, row-major over
/// (od, oh, ow)), written to `cols` as a (C·k, p1 − p0) row-major block:
/// cols[(c,kd,kh,kw), p − p0] = img[c, od·sD − pD + kd·dD, oh·sH − pH + kh·dH,
/// ow·sW − pW + kw·dW] for p = (od, oh, ow), or 0 where that is padding.
/// Writes every entry; runs in parallel over channels when called outside a
/// parallel region with enough work.
template <class T> void im2col(const T* img, T* cols, const ConvGeometry& g, std::int64_t p0, std::int64_t p1) {
  if (p1 <= p0) return;
  const std::int64_t sw = g.stride[2], width = p1 - p0;
#pragma omp parallel for schedule(static) if (detail::split_channels(g, width))
  for (std::int64_t c = 0; c < g.channels; ++c) {
    detail::for_each_segment(g, c, p0, p1,
                             [&](std::int64_t row, std::int64_t base, std::int64_t line, std::int64_t iw0,
                                 std::int64_t a, std::int64_t b, std::int64_t lo, std::int64_t hi) {
                               // entry ow of this line: cols[o + ow]; image[line + ow·sW + iw0]
                               // (indices, not pointers: o and iw0 may be negative)
                               const std::int64_t o = row * width + base;
                               if (line < 0) {
                                 std::fill(cols + (o + a), cols + (o + b), T(0));
                                 return;
                               }
                               const std::int64_t va = std::clamp(lo, a, b), vb = std::clamp(hi, va, b);
                               std::fill(cols + (o + a), cols + (o + va), T(0));
                               if (sw == 1)
                                 std::copy(img + (line + va + iw0), img + (line + vb + iw0), cols + (o + va));
                               else
                                 for (std::int64_t ow = va; ow < vb; ++ow) cols[o + ow] = img[line + ow * sw + iw0];
                               std::fill(cols + (o + vb), cols + (o + b), T(0));
                             });
  }
}

/// The whole column matrix (C·k, oD·oH·oW).
template <class T> void im2col(const T* img, T* cols, const ConvGeometry& g) { im2col(img, cols, g, 0, g.out_size()); }

/// The adjoint of im2col on columns [p0, p1): img[c, …] += every entry of the
/// (C·k, p1 − p0) block `cols` that im2col would have read from it. `img` must
/// be initialised (zeros, or a bias to add onto). Channels are independent, so
/// they run in parallel; within a channel the accumulation order is fixed, so
/// the result does not depend on the thread count.
template <class T> void col2im(const T* cols, T* img, const ConvGeometry& g, std::int64_t p0, std::int64_t p1) {
  if (p1 <= p0) return;
  const std::int64_t sw = g.stride[2], width = p1 - p0;
#pragma omp parallel for schedule(static) if (detail::split_channels(g, width))
  for (std::int64_t c = 0; c < g.channels; ++c) {
    detail::for_each_segment(g, c, p0, p1,
                             [&](std::int64_t row, std::int64_t base, std::int64_t line, std::int64_t iw0,
                                 std::int64_t a, std::int64_t b, std::int64_t lo, std::int64_t hi) {
                               if (line < 0) return;
                               const std::int64_t o = row * width + base;
                               const std::int64_t va = std::clamp(lo, a, b), vb = std::clamp(hi, va, b);
                               if (sw == 1) {
                                 if (vb == va) return;
                                 T* __restrict d = img + (line + va + iw0);
                                 const T* __restrict q = cols + (o + va);
                                 for (std::int64_t i = 0; i < vb - va; ++i) d[i] += q[i];
                               } else
                                 for (std::int64_t ow = va; ow < vb; ++ow) img[line + ow * sw + iw0] += cols[o + ow];
                             });
  }
}

template <class T> void col2im(const T* cols, T* img, const ConvGeometry& g) { col2im(cols, img, g, 0, g.out_size()); }

}  // namespace avgrad::cpu
