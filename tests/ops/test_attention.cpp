// scaled_dot_product_attention: values against a direct loop, gradchecks with
// masks, causal attention and broadcast batch dims, fully masked rows, errors.
#include <cmath>

#include "avgrad/ops/attention.hpp"
#include "avgrad/ops/reduce.hpp"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::testing;

namespace {

/// out[b,i,:] = Σ_j softmax_j(q_i·k_j·s + add_ij | allowed_ij) v_j, in plain loops.
std::vector<double> reference(const TD& q, const TD& k, const TD& v, const std::vector<bool>* allowed, bool causal) {
  const auto B = q.size(0), Lq = q.size(1), Lk = k.size(1), E = q.size(2), Ev = v.size(2);
  std::vector<double> out(static_cast<std::size_t>(B * Lq * Ev), 0.0);
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t i = 0; i < Lq; ++i) {
      std::vector<double> s(static_cast<std::size_t>(Lk));
      double mx = -INFINITY;
      for (std::int64_t j = 0; j < Lk; ++j) {
        bool ok = (!allowed || (*allowed)[static_cast<std::size_t>(i * Lk + j)]) && (!causal || j <= i);
        double d = 0;
        for (std::int64_t e = 0; e < E; ++e) d += q.at({b, i, e}) * k.at({b, j, e});
        s[static_cast<std::size_t>(j)] = ok ? d / std::sqrt(double(E)) : -INFINITY;
        mx = std::max(mx, s[static_cast<std::size_t>(j)]);
      }
      if (std::isinf(mx)) continue;  // no key allowed: zeros
      double z = 0;
      for (auto& x : s) z += (x = std::exp(x - mx));
      for (std::int64_t j = 0; j < Lk; ++j)
        for (std::int64_t e = 0; e < Ev; ++e)
          out[static_cast<std::size_t>((b * Lq + i) * Ev + e)] += s[static_cast<std::size_t>(j)] / z * v.at({b, j, e});
    }
  return out;
}

TEST(Attention, MatchesDirectLoops) {
  auto q = leaf({2, 3, 4}, 1), k = leaf({2, 5, 4}, 2), v = leaf({2, 5, 6}, 3);
  expect_close(scaled_dot_product_attention(q, k, v), reference(q, k, v, nullptr, false), 1e-12);
  std::vector<bool> allowed{true,  false, true, true, false, false, false, false,
                            false, false, true, true, false, true,  true};
  auto m = from_vector<bool>(allowed, {3, 5});
  auto out = scaled_dot_product_attention(q, k, v, {.mask = m});
  expect_close(out, reference(q, k, v, &allowed, false), 1e-12);
  // row 1 has no allowed key: zeros, not NaN
  for (std::int64_t e = 0; e < 6; ++e) EXPECT_EQ(out.at({0, 1, e}), 0.0);
  auto kc = leaf({2, 3, 4}, 4), vc = leaf({2, 3, 6}, 5);
  expect_close(scaled_dot_product_attention(q, kc, vc, {.causal = true}), reference(q, kc, vc, nullptr, true), 1e-12);
}

TEST(Attention, Gradcheck) {
  Fn plain = [](const std::vector<TD>& x) { return scaled_dot_product_attention(x[0], x[1], x[2]); };
  expect_gradcheck(plain, {leaf({2, 3, 4}, 1), leaf({2, 5, 4}, 2), leaf({2, 5, 3}, 3)});
  // heads broadcast against a shared k/v, transposed q
  expect_gradcheck(plain, {leaf_transposed({2, 2, 3, 4}, 4), leaf({2, 1, 5, 4}, 5), leaf({1, 5, 3}, 6)});
  auto m = from_vector<bool>({true, false, true, true, false, false, false, false, true, true, true, true}, {3, 4});
  Fn masked = [m](const std::vector<TD>& x) {
    return scaled_dot_product_attention(x[0], x[1], x[2], {.mask = m, .additive_mask = x[3], .causal = true});
  };
  expect_gradcheck(masked, {leaf({2, 3, 4}, 7), leaf({2, 4, 4}, 8), leaf({2, 4, 2}, 9), leaf({1, 4}, 10)});
  Fn drop = [](const std::vector<TD>& x) {
    Generator g(11);
    return scaled_dot_product_attention(x[0], x[1], x[2], {.dropout_p = 0.3, .training = true, .generator = &g});
  };
  expect_gradcheck(drop, {leaf({2, 3, 4}, 12), leaf({2, 5, 4}, 13), leaf({2, 5, 3}, 14)});
}

TEST(Attention, FullyMaskedRowGetsZeroGradient) {
  auto q = leaf({1, 2, 3}, 1), k = leaf({1, 2, 3}, 2), v = leaf({1, 2, 3}, 3);
  auto m = from_vector<bool>({false, false, true, true}, {2, 2});
  sum(scaled_dot_product_attention(q, k, v, {.mask = m})).backward();
  for (double g : q.grad().to_vector()) EXPECT_TRUE(std::isfinite(g));
  for (std::int64_t e = 0; e < 3; ++e) EXPECT_EQ(q.grad().at({0, 0, e}), 0.0);
}

TEST(Attention, Errors) {
  auto q = zeros<float>({2, 3, 4});
  expect_error(
      [&] {
        (void)scaled_dot_product_attention(q, zeros<float>({2, 5, 3}), zeros<float>({2, 5, 4}));
      },
      {"scaled_dot_product_attention", "width E", "(2,3,4)", "(2,5,3)"});
  expect_error(
      [&] {
        (void)scaled_dot_product_attention(q, zeros<float>({2, 5, 4}), zeros<float>({2, 4, 4}));
      },
      {"length Lk"});
  expect_error(
      [&] {
        (void)scaled_dot_product_attention(q, q, q, {.mask = zeros<bool>({2, 2})});
      },
      {"scaled_dot_product_attention", "(2,2)", "(2,3,3)"});
  expect_error([&] { (void)scaled_dot_product_attention(q, q, q, {.dropout_p = 1.5}); }, {"dropout_p"});
}

}  // namespace
