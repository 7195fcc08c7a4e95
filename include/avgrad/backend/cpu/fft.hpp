// Real FFTs of any length for the CPU backend (forward and unnormalised inverse) on raw pointers, with cached plans.
//
// Algorithm (all twiddles precomputed in the plan in long double, then rounded to T, so a
// transform does no trigonometry and no allocation; the caller passes scratch memory):
//  * Even n: the n reals are packed as n/2 complex values z_j = x_2j + i·x_2j+1, transformed by a
//    complex FFT of length n/2, and split into the n/2+1 bins by one twiddle pass (the inverse
//    runs the same steps backwards). Half the work of a complex transform of length n.
//  * Odd n: a complex FFT of length n on (x, 0); the inverse rebuilds the full Hermitian spectrum.
//    Odd lengths are rare in practice, so the factor 2 lost here was not worth more code.
//  * Complex FFT: Stockham auto-sort passes (no bit reversal) on split re/im arrays, ping-ponging
//    between two buffers. Radix 8, 4, 2, 3 and 5 have hand-written butterflies, other primes up to
//    kMaxGenericPrime a generic O(p²) butterfly. Split arrays and a loop over the contiguous
//    "inner" index with one twiddle per outer index let the compiler vectorise every fixed-radix
//    pass without intrinsics. The radix-8 passes go last so that the second-to-last pass still
//    has ≥ 8 contiguous elements, and the last pass (inner length 1) runs a flat loop over the
//    outer index instead (strided loads, contiguous stores, contiguous twiddles).
//  * Lengths with a prime factor > kMaxGenericPrime use Bluestein's algorithm: a chirp-modulated
//    circular convolution of 5-smooth length m >= 2N-1 computed with two mixed-radix FFTs, so any
//    length costs O(n log n).
//  * The inverse complex transform is the forward one on swapped (im, re) arrays:
//    IDFT(x) = swap(DFT(swap(x))), swapping being free with split arrays.
// Plans are immutable after construction, so one plan may be used from many threads at once
// (each with its own scratch). Nothing here is parallelised: callers split batches of frames.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "avgrad/core/error.hpp"

#if defined(__GNUC__)
#define AVGRAD_FFT_INLINE inline __attribute__((always_inline))
#else
#define AVGRAD_FFT_INLINE inline
#endif

namespace avgrad::cpu {

namespace detail::fft {

/// Largest prime handled by the generic O(p²) butterfly; a larger prime factor switches the
/// whole complex transform to Bluestein (at p ≈ 50 the generic pass already costs about as
/// much per element as Bluestein's three transforms of about 4× the length).
inline constexpr std::int64_t kMaxGenericPrime = 47;

/// exp(-2πi·num/den) in long double, with num reduced modulo den first so that the angle
/// stays small and the result is accurate to well below double's last bit.
inline std::pair<long double, long double> unit_root(std::int64_t num, std::int64_t den) {
  constexpr long double two_pi = 6.283185307179586476925286766559005768L;
  num %= den;
  if (num < 0) num += den;
  if ((4 * num) % den == 0) {  // exact quarter turns: cos(π/2) in floating point is not 0
    constexpr long double re[4] = {1, 0, -1, 0}, im[4] = {0, -1, 0, 1};
    return {re[4 * num / den], im[4 * num / den]};
  }
  const long double a = two_pi * static_cast<long double>(num) / static_cast<long double>(den);
  return {std::cos(a), -std::sin(a)};
}

/// (xr + i·xi) *= (wr + i·wi)
template <class T> AVGRAD_FFT_INLINE void cmul(T& xr, T& xi, T wr, T wi) {
  const T r = xr * wr - xi * wi;
  xi = xr * wi + xi * wr;
  xr = r;
}

// Forward butterflies: x_j <- sum_m x_m·exp(-2πi·jm/P), in place on P values held in registers.

struct Radix2 {
  static constexpr int P = 2;
  template <class T> static AVGRAD_FFT_INLINE void run(T* r, T* i) {
    const T ar = r[0], ai = i[0];
    r[0] = ar + r[1];
    i[0] = ai + i[1];
    r[1] = ar - r[1];
    i[1] = ai - i[1];
  }
};

struct Radix3 {
  static constexpr int P = 3;
  template <class T> static AVGRAD_FFT_INLINE void run(T* r, T* i) {
    constexpr T half = T(0.5);
    constexpr T s = T(0.866025403784438646763723170752936183L);  // sin(2π/3)
    const T tr = r[1] + r[2], ti = i[1] + i[2];
    const T dr = r[1] - r[2], di = i[1] - i[2];
    const T mr = r[0] - half * tr, mi = i[0] - half * ti;
    r[0] += tr;
    i[0] += ti;
    // x1 = m - i·s·d, x2 = m + i·s·d
    r[1] = mr + s * di;
    i[1] = mi - s * dr;
    r[2] = mr - s * di;
    i[2] = mi + s * dr;
  }
};

struct Radix4 {
  static constexpr int P = 4;
  template <class T> static AVGRAD_FFT_INLINE void run(T* r, T* i) {
    const T t0r = r[0] + r[2], t0i = i[0] + i[2];
    const T t1r = r[0] - r[2], t1i = i[0] - i[2];
    const T t2r = r[1] + r[3], t2i = i[1] + i[3];
    const T t3r = r[1] - r[3], t3i = i[1] - i[3];
    r[0] = t0r + t2r;
    i[0] = t0i + t2i;
    r[2] = t0r - t2r;
    i[2] = t0i - t2i;
    // x1 = t1 - i·t3, x3 = t1 + i·t3
    r[1] = t1r + t3i;
    i[1] = t1i - t3r;
    r[3] = t1r - t3i;
    i[3] = t1i + t3r;
  }
};

struct Radix5 {
  static constexpr int P = 5;
  template <class T> static AVGRAD_FFT_INLINE void run(T* r, T* i) {
    constexpr T c1 = T(0.309016994374947424102293417182819059L);   // cos(2π/5)
    constexpr T c2 = T(-0.809016994374947424102293417182819059L);  // cos(4π/5)
    constexpr T s1 = T(0.951056516295153572116439333379382143L);   // sin(2π/5)
    constexpr T s2 = T(0.587785252292473129168705954639072769L);   // sin(4π/5)
    // pairs m, 5-m: x_m·w^jm + x_(5-m)·w^-jm = sum·cos(θ) - i·diff·sin(θ)
    const T a1r = r[1] + r[4], a1i = i[1] + i[4], d1r = r[1] - r[4], d1i = i[1] - i[4];
    const T a2r = r[2] + r[3], a2i = i[2] + i[3], d2r = r[2] - r[3], d2i = i[2] - i[3];
    const T x0r = r[0], x0i = i[0];
    const T m1r = x0r + c1 * a1r + c2 * a2r, m1i = x0i + c1 * a1i + c2 * a2i;
    const T m2r = x0r + c2 * a1r + c1 * a2r, m2i = x0i + c2 * a1i + c1 * a2i;
    const T n1r = s1 * d1r + s2 * d2r, n1i = s1 * d1i + s2 * d2i;
    const T n2r = s2 * d1r - s1 * d2r, n2i = s2 * d1i - s1 * d2i;
    r[0] = x0r + a1r + a2r;
    i[0] = x0i + a1i + a2i;
    r[1] = m1r + n1i;
    i[1] = m1i - n1r;
    r[4] = m1r - n1i;
    i[4] = m1i + n1r;
    r[2] = m2r + n2i;
    i[2] = m2i - n2r;
    r[3] = m2r - n2i;
    i[3] = m2i + n2r;
  }
};

struct Radix8 {
  static constexpr int P = 8;
  template <class T> static AVGRAD_FFT_INLINE void run(T* r, T* i) {
    constexpr T h = T(0.707106781186547524400844362104849039L);  // 1/√2
    // two radix-4 DFTs on the even and odd samples, then x_j = E_j + w8^j·O_j, x_j+4 = E_j - w8^j·O_j
    T er[4] = {r[0], r[2], r[4], r[6]}, ei[4] = {i[0], i[2], i[4], i[6]};
    T orr[4] = {r[1], r[3], r[5], r[7]}, oi[4] = {i[1], i[3], i[5], i[7]};
    Radix4::run(er, ei);
    Radix4::run(orr, oi);
    // w8 = (1 - i)/√2, w8² = -i, w8³ = -(1 + i)/√2
    const T o1r = h * (orr[1] + oi[1]), o1i = h * (oi[1] - orr[1]);
    const T o2r = oi[2], o2i = -orr[2];
    const T o3r = h * (oi[3] - orr[3]), o3i = -h * (orr[3] + oi[3]);
    r[0] = er[0] + orr[0];
    i[0] = ei[0] + oi[0];
    r[4] = er[0] - orr[0];
    i[4] = ei[0] - oi[0];
    r[1] = er[1] + o1r;
    i[1] = ei[1] + o1i;
    r[5] = er[1] - o1r;
    i[5] = ei[1] - o1i;
    r[2] = er[2] + o2r;
    i[2] = ei[2] + o2i;
    r[6] = er[2] - o2r;
    i[6] = ei[2] - o2i;
    r[3] = er[3] + o3r;
    i[3] = ei[3] + o3i;
    r[7] = er[3] - o3r;
    i[7] = ei[3] - o3i;
  }
};

/// One Stockham pass with a fixed radix P. Notation: the pass combines P interleaved
/// sub-transforms of length L into transforms of length L·P, and r = N/(L·P) such groups remain.
/// Input element (c, m, q) at c + r·m + r·P·q (c < r, m < P, q < L), output element (c, q, j) at
/// c + r·q + (N/P)·j: y_j = sum_m exp(-2πi·jm/P)·(w_q^m·x_m) with w_q^m = exp(-2πi·qm/(L·P)),
/// stored at tw[(m-1)·L + q]. Tw = false skips the twiddles (L == 1, where they are all 1).
template <class B, bool Tw, class T> void radix_pass(std::int64_t L, std::int64_t r, const T* __restrict ir,
                                                     const T* __restrict ii, T* __restrict orr, T* __restrict oi,
                                                     const T* __restrict twr, const T* __restrict twi) {
  constexpr int P = B::P;
  const std::int64_t rows = L * r;  // N/P: distance between output rows j
  if (r == 1) {
    // last pass: the inner length is 1, so vectorise over q (stride-P loads, unit-stride stores)
    for (std::int64_t q = 0; q < L; ++q) {
      T xr[P], xi[P];
#pragma GCC unroll 16
      for (int m = 0; m < P; ++m) {
        xr[m] = ir[m + P * q];
        xi[m] = ii[m + P * q];
      }
      if constexpr (Tw) {
#pragma GCC unroll 16
        for (int m = 1; m < P; ++m) cmul(xr[m], xi[m], twr[(m - 1) * L + q], twi[(m - 1) * L + q]);
      }
      B::run(xr, xi);
#pragma GCC unroll 16
      for (int j = 0; j < P; ++j) {
        orr[q + rows * j] = xr[j];
        oi[q + rows * j] = xi[j];
      }
    }
    return;
  }
  for (std::int64_t q = 0; q < L; ++q) {
    T wr[P], wi[P];
    if constexpr (Tw) {
#pragma GCC unroll 16
      for (int m = 1; m < P; ++m) {
        wr[m] = twr[(m - 1) * L + q];
        wi[m] = twi[(m - 1) * L + q];
      }
    }
    const T* __restrict pr = ir + r * P * q;
    const T* __restrict pi = ii + r * P * q;
    T* __restrict qr = orr + r * q;
    T* __restrict qi = oi + r * q;
    // the contiguous inner loop the compiler vectorises: one twiddle set for all c
    for (std::int64_t c = 0; c < r; ++c) {
      T xr[P], xi[P];
#pragma GCC unroll 16
      for (int m = 0; m < P; ++m) {
        xr[m] = pr[c + r * m];
        xi[m] = pi[c + r * m];
      }
      if constexpr (Tw) {
#pragma GCC unroll 16
        for (int m = 1; m < P; ++m) cmul(xr[m], xi[m], wr[m], wi[m]);
      }
      B::run(xr, xi);
#pragma GCC unroll 16
      for (int j = 0; j < P; ++j) {
        qr[c + rows * j] = xr[j];
        qi[c + rows * j] = xi[j];
      }
    }
  }
}

/// The same pass for any odd prime p (scalar): pairs m and p-m share one cosine and one sine,
/// so a butterfly costs about p²/2 complex multiply-adds. cs/sn hold cos/-sin(2πk/p), k < p;
/// tmp has room for 4·p values.
template <class T> void generic_pass(int p, std::int64_t L, std::int64_t r, const T* ir, const T* ii, T* orr, T* oi,
                                     const T* twr, const T* twi, const T* cs, const T* sn, T* tmp) {
  const std::int64_t rows = L * r;
  const int h = (p - 1) / 2;
  T* xr = tmp;  // x_m after twiddling
  T* xi = tmp + p;
  T* sr = tmp + 2 * p;  // sums x_m + x_(p-m) (index m), then differences (index h + m)
  T* si = tmp + 3 * p;
  for (std::int64_t q = 0; q < L; ++q) {
    for (std::int64_t c = 0; c < r; ++c) {
      const std::int64_t base = c + r * p * q;
      for (int m = 0; m < p; ++m) {
        xr[m] = ir[base + r * m];
        xi[m] = ii[base + r * m];
        if (m > 0) cmul(xr[m], xi[m], twr[(m - 1) * L + q], twi[(m - 1) * L + q]);
      }
      T y0r = xr[0], y0i = xi[0];
      for (int m = 1; m <= h; ++m) {
        sr[m] = xr[m] + xr[p - m];
        si[m] = xi[m] + xi[p - m];
        sr[h + m] = xr[m] - xr[p - m];
        si[h + m] = xi[m] - xi[p - m];
        y0r += sr[m];
        y0i += si[m];
      }
      T* outr = orr + c + r * q;
      T* outi = oi + c + r * q;
      outr[0] = y0r;
      outi[0] = y0i;
      for (int j = 1; j <= h; ++j) {
        // y_j = a - i·b, y_(p-j) = a + i·b with a = x0 + sum cos·s_m, b = sum sin·d_m
        T ar = xr[0], ai = xi[0], br = 0, bi = 0;
        int k = 0;
        for (int m = 1; m <= h; ++m) {
          k += j;
          if (k >= p) k -= p;
          ar += cs[k] * sr[m];
          ai += cs[k] * si[m];
          br -= sn[k] * sr[h + m];  // sn = -sin
          bi -= sn[k] * si[h + m];
        }
        outr[rows * j] = ar + bi;
        outi[rows * j] = ai - br;
        outr[rows * (p - j)] = ar - bi;
        outi[rows * (p - j)] = ai + br;
      }
    }
  }
}

/// Splits Z = DFT_M(z), z_j = x_2j + i·x_2j+1, into the bins 1..M-1 of the real length-2M input x:
/// with E_k = (Z_k + conj Z_(M-k))/2 and O_k = (Z_k - conj Z_(M-k))/(2i) the DFTs of the even and
/// odd samples, X_k = E_k + w^k·O_k. Each k is computed on its own (X_(M-k) = conj(E_k - w^k·O_k)
/// would halve the arithmetic, but its reversed interleaved stores stop GCC from vectorising).
template <class T> void split_spectrum(std::int64_t M, const T* __restrict zr, const T* __restrict zi,
                                       const T* __restrict wr, const T* __restrict wi, T* __restrict out) {
  const T half = T(0.5);
  for (std::int64_t k = 1; k < M; ++k) {
    const T ar = zr[k], ai = zi[k], br = zr[M - k], bi = zi[M - k];
    const T er = half * (ar + br), ei = half * (ai - bi);
    const T o_r = half * (ai + bi), o_i = half * (br - ar);
    out[2 * k] = er + (o_r * wr[k] - o_i * wi[k]);
    out[2 * k + 1] = ei + (o_r * wi[k] + o_i * wr[k]);
  }
}

/// The inverse of split_spectrum for k in 1..M-1: Z'_k = (X_k + conj X_(M-k)) + i·(X_k - conj
/// X_(M-k))·conj(w^k) equals (2/n)·DFT_M(z) for z_j = y_2j + i·y_2j+1 and y the unnormalised
/// Hermitian inverse of X, so the unnormalised inverse DFT of Z' is exactly z. Z' is written swapped
/// (re into zi, im into zr) for the forward transform that computes the inverse.
template <class T> void merge_spectrum(std::int64_t M, const T* __restrict xr, const T* __restrict xi,
                                       const T* __restrict wr, const T* __restrict wi, T* __restrict zr,
                                       T* __restrict zi) {
  for (std::int64_t k = 1; k < M; ++k) {
    const T ar = xr[k], ai = xi[k], br = xr[M - k], bi = xi[M - k];
    const T pr = ar + br, pi = ai - bi;
    const T dr = ar - br, di = ai + bi;
    const T qr = dr * wr[k] + di * wi[k], qi = di * wr[k] - dr * wi[k];  // d·conj(w^k)
    zi[k] = pr - qi;
    zr[k] = pi + qr;
  }
}

/// Smallest 2^a·3^b·5^c >= n (the Bluestein convolution length).
inline std::int64_t next_smooth(std::int64_t n) {
  for (std::int64_t m = std::max<std::int64_t>(n, 1);; ++m) {
    std::int64_t k = m;
    for (std::int64_t f : {2, 3, 5})
      while (k % f == 0) k /= f;
    if (k == 1) return m;
  }
}

/// Forward complex DFT of length N on split arrays: out_k = sum_t in_t·exp(-2πi·kt/N).
template <class T> class ComplexFft {
 public:
  explicit ComplexFft(std::int64_t n) : n_(n) {
    std::int64_t largest = 1;
    for (std::int64_t k = n, f = 2; k > 1; ++f) {
      if (f * f > k) f = k;
      while (k % f == 0) {
        k /= f;
        largest = f;
      }
    }
    if (largest > kMaxGenericPrime)
      init_bluestein();
    else
      init_mixed_radix();
  }

  std::int64_t size() const { return n_; }
  /// T elements of scratch forward() needs.
  std::size_t scratch_size() const { return scratch_; }

  /// out = DFT(in); in and out are split (re, im) arrays of N values each and must not overlap
  /// each other or the scratch.
  void forward(const T* ir, const T* ii, T* orr, T* oi, T* scratch) const {
    if (blue_)
      bluestein(ir, ii, orr, oi, scratch);
    else
      mixed_radix(ir, ii, orr, oi, scratch);
  }

 private:
  struct Pass {
    int p;
    std::int64_t L, r;
    std::size_t tw;       // offset of this pass's twiddles in twr_/twi_
    std::size_t dft = 0;  // generic prime: offset of its cos/sin table
  };

  void init_mixed_radix() {
    // factors: 8s go last (see the file comment), before them 2 or 4, then 3s, 5s and other primes
    std::vector<int> head, eights;
    std::int64_t k = n_;
    while (k % 8 == 0) {
      eights.push_back(8);
      k /= 8;
    }
    if (k % 4 == 0) {
      head.push_back(4);
      k /= 4;
    }
    if (k % 2 == 0) {
      head.push_back(2);
      k /= 2;
    }
    for (std::int64_t f = 3; k > 1; f += 2)
      while (k % f == 0) {
        head.push_back(static_cast<int>(f));
        k /= f;
      }
    head.insert(head.end(), eights.begin(), eights.end());
    std::int64_t L = 1, max_generic = 0;
    std::vector<long double> wr, wi;
    for (int p : head) {
      Pass s{p, L, n_ / (L * p), wr.size()};
      for (int m = 1; m < p; ++m)
        for (std::int64_t q = 0; q < L; ++q) {
          auto [c, sn] = unit_root(q * m, L * p);
          wr.push_back(c);
          wi.push_back(sn);
        }
      if (p != 2 && p != 3 && p != 4 && p != 5 && p != 8) {
        s.dft = wr.size();
        for (int j = 0; j < p; ++j) {
          auto [c, sn] = unit_root(j, p);
          wr.push_back(c);
          wi.push_back(sn);
        }
        max_generic = std::max<std::int64_t>(max_generic, p);
      }
      passes_.push_back(s);
      L *= p;
    }
    twr_.assign(wr.begin(), wr.end());
    twi_.assign(wi.begin(), wi.end());
    scratch_ = static_cast<std::size_t>(2 * n_ + 4 * max_generic);
  }

  void init_bluestein() {
    const std::int64_t m = next_smooth(2 * n_ - 1);
    inner_ = std::make_unique<ComplexFft<T>>(m);
    // chirp c_j = exp(-πi·j²/N); j² is reduced modulo 2N exactly in integers
    std::vector<long double> cr(static_cast<std::size_t>(n_)), ci(cr.size());
    for (std::int64_t j = 0; j < n_; ++j) {
      auto [c, s] = unit_root((j * j) % (2 * n_), 2 * n_);
      cr[static_cast<std::size_t>(j)] = c;
      ci[static_cast<std::size_t>(j)] = s;
    }
    chr_.assign(cr.begin(), cr.end());
    chi_.assign(ci.begin(), ci.end());
    // filter b_j = conj(c_|j|) on the circle of length m, transformed once in double and scaled
    // by 1/m, which absorbs the normalisation of the inverse transform in forward()
    const std::size_t mm = static_cast<std::size_t>(m);
    std::vector<double> br(mm, 0.0), bi(mm, 0.0), fr(mm), fi(mm);
    for (std::int64_t j = 0; j < n_; ++j) {
      br[static_cast<std::size_t>(j)] = static_cast<double>(cr[static_cast<std::size_t>(j)]);
      bi[static_cast<std::size_t>(j)] = -static_cast<double>(ci[static_cast<std::size_t>(j)]);
      if (j > 0) {
        br[static_cast<std::size_t>(m - j)] = br[static_cast<std::size_t>(j)];
        bi[static_cast<std::size_t>(m - j)] = bi[static_cast<std::size_t>(j)];
      }
    }
    ComplexFft<double> plan(m);
    std::vector<double> work(plan.scratch_size());
    plan.forward(br.data(), bi.data(), fr.data(), fi.data(), work.data());
    filr_.resize(mm);
    fili_.resize(mm);
    for (std::size_t j = 0; j < mm; ++j) {
      filr_[j] = static_cast<T>(fr[j] / static_cast<double>(m));
      fili_[j] = static_cast<T>(fi[j] / static_cast<double>(m));
    }
    blue_ = true;
    scratch_ = 4 * mm + inner_->scratch_size();
  }

  void mixed_radix(const T* ir, const T* ii, T* orr, T* oi, T* scratch) const {
    const std::size_t np = passes_.size();
    if (np == 0) {  // N == 1
      orr[0] = ir[0];
      oi[0] = ii[0];
      return;
    }
    T* tr = scratch;
    T* ti = scratch + n_;
    T* tmp = scratch + 2 * n_;
    // ping-pong so that the last pass writes `out`
    const T* sr = ir;
    const T* si = ii;
    for (std::size_t s = 0; s < np; ++s) {
      const bool to_out = (np - 1 - s) % 2 == 0;
      T* dr = to_out ? orr : tr;
      T* di = to_out ? oi : ti;
      run_pass(passes_[s], sr, si, dr, di, tmp);
      sr = dr;
      si = di;
    }
  }

  void run_pass(const Pass& s, const T* sr, const T* si, T* dr, T* di, T* tmp) const {
    const T* wr = twr_.data() + s.tw;
    const T* wi = twi_.data() + s.tw;
    const bool tw = s.L > 1;
    switch (s.p) {
      case 2:
        return tw ? radix_pass<Radix2, true>(s.L, s.r, sr, si, dr, di, wr, wi)
                  : radix_pass<Radix2, false>(s.L, s.r, sr, si, dr, di, wr, wi);
      case 3:
        return tw ? radix_pass<Radix3, true>(s.L, s.r, sr, si, dr, di, wr, wi)
                  : radix_pass<Radix3, false>(s.L, s.r, sr, si, dr, di, wr, wi);
      case 4:
        return tw ? radix_pass<Radix4, true>(s.L, s.r, sr, si, dr, di, wr, wi)
                  : radix_pass<Radix4, false>(s.L, s.r, sr, si, dr, di, wr, wi);
      case 5:
        return tw ? radix_pass<Radix5, true>(s.L, s.r, sr, si, dr, di, wr, wi)
                  : radix_pass<Radix5, false>(s.L, s.r, sr, si, dr, di, wr, wi);
      case 8:
        return tw ? radix_pass<Radix8, true>(s.L, s.r, sr, si, dr, di, wr, wi)
                  : radix_pass<Radix8, false>(s.L, s.r, sr, si, dr, di, wr, wi);
      default:
        return generic_pass(s.p, s.L, s.r, sr, si, dr, di, wr, wi, twr_.data() + s.dft, twi_.data() + s.dft, tmp);
    }
  }

  // out_k = c_k · sum_t (in_t·c_t)·conj(c_(k-t)): a circular convolution of length m done with
  // two forward transforms (the second on swapped arrays, which makes it an inverse).
  void bluestein(const T* ir, const T* ii, T* orr, T* oi, T* scratch) const {
    const std::int64_t m = inner_->size();
    T* ar = scratch;
    T* ai = ar + m;
    T* br = ai + m;
    T* bi = br + m;
    T* rest = bi + m;
    for (std::int64_t j = 0; j < n_; ++j) {
      ar[j] = ir[j] * chr_[j] - ii[j] * chi_[j];
      ai[j] = ir[j] * chi_[j] + ii[j] * chr_[j];
    }
    std::fill(ar + n_, ar + m, T(0));
    std::fill(ai + n_, ai + m, T(0));
    inner_->forward(ar, ai, br, bi, rest);
    // product with the filter, written swapped (re into ai, im into ar) for the inverse
    for (std::int64_t j = 0; j < m; ++j) {
      ai[j] = br[j] * filr_[j] - bi[j] * fili_[j];
      ar[j] = br[j] * fili_[j] + bi[j] * filr_[j];
    }
    inner_->forward(ar, ai, br, bi, rest);
    // the convolution is swap(b): re in bi, im in br
    for (std::int64_t k = 0; k < n_; ++k) {
      orr[k] = bi[k] * chr_[k] - br[k] * chi_[k];
      oi[k] = bi[k] * chi_[k] + br[k] * chr_[k];
    }
  }

  std::int64_t n_;
  std::size_t scratch_ = 0;
  std::vector<Pass> passes_;
  std::vector<T> twr_, twi_;
  bool blue_ = false;
  std::unique_ptr<ComplexFft<T>> inner_;
  std::vector<T> chr_, chi_, filr_, fili_;
};

}  // namespace detail::fft

/// Plan for real transforms of length n >= 1 (see the file comment for the algorithm).
/// forward: out[2k] + i·out[2k+1] = sum_{t<n} in[t]·exp(-2πi·kt/n), k < bins() = n/2 + 1.
/// inverse: out[t] = sum_{k<n} X_k·exp(+2πi·kt/n), unnormalised, X_k = in[2k] + i·in[2k+1] for
/// k < bins() and X_(n-k) = conj(X_k); the imaginary parts of X_0 (and X_(n/2) for even n) are
/// ignored. inverse(forward(x)) == n·x. Both need scratch_size() elements of caller scratch and
/// do not allocate; a plan is immutable, so threads may share it (with their own scratch).
template <class T> class RealFft {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "RealFft: T must be float or double");

 public:
  explicit RealFft(std::int64_t n) : n_(check_length(n)), half_(n % 2 == 0 ? n / 2 : 0), cfft_(half_ ? half_ : n) {
    const std::int64_t len = cfft_.size();
    scratch_ = static_cast<std::size_t>(4 * len + 2) + cfft_.scratch_size();
    if (half_) {
      // w^k = exp(-2πi·k/n) for the split of the packed transform, k < n/2
      const std::int64_t h = half_;
      wr_.resize(static_cast<std::size_t>(h));
      wi_.resize(static_cast<std::size_t>(h));
      for (std::int64_t k = 0; k < h; ++k) {
        auto [c, s] = detail::fft::unit_root(k, n_);
        wr_[static_cast<std::size_t>(k)] = static_cast<T>(c);
        wi_[static_cast<std::size_t>(k)] = static_cast<T>(s);
      }
    }
  }

  std::int64_t size() const { return n_; }
  std::int64_t bins() const { return n_ / 2 + 1; }
  std::size_t scratch_size() const { return scratch_; }

  /// in: n reals; out: 2·bins() reals (re, im interleaved); they must not alias.
  void forward(const T* in, T* out, T* scratch) const {
    const std::int64_t len = cfft_.size();
    T* zr = scratch;
    T* zi = zr + len;
    T* yr = zi + len;
    T* yi = yr + len;
    T* rest = yi + len + 2;
    if (!half_) {
      std::copy(in, in + n_, zr);
      std::fill(zi, zi + n_, T(0));
      cfft_.forward(zr, zi, yr, yi, rest);
      for (std::int64_t k = 0; k < bins(); ++k) {
        out[2 * k] = yr[k];
        out[2 * k + 1] = yi[k];
      }
      out[1] = 0;  // the DC bin of a real signal is real; rounding left a tiny residue there
      return;
    }
    const std::int64_t M = half_;
    for (std::int64_t j = 0; j < M; ++j) {
      zr[j] = in[2 * j];
      zi[j] = in[2 * j + 1];
    }
    cfft_.forward(zr, zi, yr, yi, rest);
    out[0] = yr[0] + yi[0];
    out[1] = 0;
    out[2 * M] = yr[0] - yi[0];
    out[2 * M + 1] = 0;
    detail::fft::split_spectrum(M, yr, yi, wr_.data(), wi_.data(), out);
  }

  /// in: 2·bins() reals (re, im interleaved); out: n reals; they must not alias.
  void inverse(const T* in, T* out, T* scratch) const {
    const std::int64_t len = cfft_.size();
    T* zr = scratch;
    T* zi = zr + len;
    T* yr = zi + len;
    T* yi = yr + len;
    T* rest = yi + len + 2;  // yr..yi + 2 hold the deinterleaved input below
    // the inverse is the forward transform of the swapped arrays, swapped back:
    // z (re, im) is stored as (zi, zr) below and the result is read as (yi, yr)
    if (!half_) {
      const std::int64_t h = bins();
      zi[0] = in[0];
      zr[0] = 0;
      for (std::int64_t k = 1; k < h; ++k) {
        zi[k] = in[2 * k];
        zr[k] = in[2 * k + 1];
        zi[n_ - k] = in[2 * k];
        zr[n_ - k] = -in[2 * k + 1];
      }
      cfft_.forward(zr, zi, yr, yi, rest);
      std::copy(yi, yi + n_, out);
      return;
    }
    const std::int64_t M = half_;
    // X deinterleaved first (into the y buffers, free until the transform): the merge loop reads
    // it forwards and backwards, which the compiler vectorises only on split arrays
    T* xr = yr;
    T* xi = yr + (M + 1);
    for (std::int64_t k = 0; k <= M; ++k) {
      xr[k] = in[2 * k];
      xi[k] = in[2 * k + 1];
    }
    zi[0] = xr[0] + xr[M];
    zr[0] = xr[0] - xr[M];
    detail::fft::merge_spectrum(M, xr, xi, wr_.data(), wi_.data(), zr, zi);
    cfft_.forward(zr, zi, yr, yi, rest);
    for (std::int64_t j = 0; j < M; ++j) {
      out[2 * j] = yi[j];
      out[2 * j + 1] = yr[j];
    }
  }

 private:
  static std::int64_t check_length(std::int64_t n) {
    AVGRAD_CHECK(n >= 1, "RealFft", "length must be >= 1, got n = ", n);
    return n;
  }

  std::int64_t n_;
  std::int64_t half_;  // n/2 for even n (the packed complex length), 0 for odd n
  detail::fft::ComplexFft<T> cfft_;
  std::size_t scratch_ = 0;
  std::vector<T> wr_, wi_;
};

/// The shared plan for (T, n), built on first use and kept for the life of the program;
/// safe to call from any thread (OpenMP included). Throws avgrad::Error for n < 1.
template <class T> std::shared_ptr<const RealFft<T>> real_fft_plan(std::int64_t n) {
  static std::mutex mu;
  static std::unordered_map<std::int64_t, std::shared_ptr<const RealFft<T>>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(n);
  if (it != cache.end()) return it->second;
  auto plan = std::make_shared<const RealFft<T>>(n);  // throws for n < 1: nothing is cached
  cache.emplace(n, plan);
  return plan;
}

}  // namespace avgrad::cpu
