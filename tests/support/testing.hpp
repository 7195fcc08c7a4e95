// Shared helpers for the test suite: random inputs, gradcheck assertions and
// error-message assertions, so each test states only what it checks.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "avgrad/autograd/gradcheck.hpp"
#include "avgrad/core/tensor.hpp"
#include "support/expect_error.hpp"

namespace avgrad::testing {

using TD = Tensor<double, Cpu>;
using TF = Tensor<float, Cpu>;
using Fn = std::function<TD(const std::vector<TD>&)>;

/// A double leaf with N(0,1) (or U(lo,hi)) entries that requires grad.
inline TD leaf(const Shape& s, std::uint64_t seed, double lo = 0, double hi = 0) {
  Generator g(seed);
  TD t = (lo == hi) ? randn<double>(s, g) : rand<double>(s, g, lo, hi);
  t.requires_grad_();
  return t;
}

/// A non-contiguous leaf of shape s: the transpose of a contiguous tensor with
/// the last two dims swapped (s must have rank >= 2).
inline TD leaf_transposed(const Shape& s, std::uint64_t seed, double lo = 0, double hi = 0) {
  Shape t = s;
  std::swap(t[t.rank() - 1], t[t.rank() - 2]);
  Generator g(seed);
  TD base = (lo == hi) ? randn<double>(t, g) : rand<double>(t, g, lo, hi);
  TD v = base.transpose(-1, -2);
  v.requires_grad_();
  return v;
}

inline void expect_gradcheck(const Fn& f, const std::vector<TD>& inputs, GradcheckOptions opt = {}) {
  auto r = gradcheck<double>(f, inputs, opt);
  EXPECT_TRUE(r.ok) << r.report << "(checked " << r.checked << ", skipped " << r.skipped << ")";
  EXPECT_GT(r.checked, 0) << "gradcheck compared no element";
}

template <class T> void expect_close(const Tensor<T, Cpu>& a, const std::vector<T>& expected, double tol = 1e-6) {
  auto v = a.to_vector();
  ASSERT_EQ(v.size(), expected.size());
  for (std::size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(double(v[i]), double(expected[i]), tol) << "element " << i;
}

/// The largest |a − e| / max(1, |e|) over the elements: the error measure of the PyTorch
/// reference comparisons (absolute near zero, relative for large values). Shapes must agree.
inline double worst_relative_error(const TD& actual, const TD& expected) {
  EXPECT_EQ(actual.shape(), expected.shape());
  if (!(actual.shape() == expected.shape())) return INFINITY;
  auto a = actual.contiguous().to_vector(), e = expected.contiguous().to_vector();
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::abs(a[i] - e[i]) / std::max(1.0, std::abs(e[i])));
  return worst;
}

}  // namespace avgrad::testing
