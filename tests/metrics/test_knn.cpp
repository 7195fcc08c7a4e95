// Exact kNN against a brute-force double-precision reference, hand-computed examples, tie order, odd block sizes,
// the symmetric (queries = base) path, thread-count determinism and the error messages.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "avgrad/metrics/knn.hpp"
#include "support/expect_error.hpp"

using namespace avgrad;
using namespace avgrad::metrics;
using avgrad::testing::expect_error;

namespace {

// Distances by their definition, in double, straight from the coordinates (no norm expansion).
std::vector<double> ref_row(const std::vector<double>& q, const std::vector<double>& b, std::int64_t qi, std::int64_t N,
                            std::int64_t D, KnnMetric metric) {
  std::vector<double> d(static_cast<std::size_t>(N));
  for (std::int64_t j = 0; j < N; ++j) {
    double s = 0, qq = 0, bb = 0, qb = 0;
    for (std::int64_t c = 0; c < D; ++c) {
      const double x = q[qi * D + c], y = b[j * D + c];
      s += (x - y) * (x - y), qq += x * x, bb += y * y, qb += x * y;
    }
    d[static_cast<std::size_t>(j)] = metric == KnnMetric::l2 ? std::sqrt(s) : 1 - qb / std::sqrt(qq * bb);
  }
  return d;
}

template <class T> void check_against_reference(const Tensor<T, Cpu>& q, const Tensor<T, Cpu>& b, std::int64_t k,
                                                KnnOptions opt, double tol) {
  const auto r = knn(q, b, k, opt);
  const std::int64_t Q = q.size(0), N = b.size(0), D = q.size(1);
  ASSERT_EQ(r.indices.shape(), (Shape{Q, k}));
  ASSERT_EQ(r.distances.shape(), (Shape{Q, k}));
  std::vector<double> qd, bd;
  for (T v : q.to_vector()) qd.push_back(v);
  for (T v : b.to_vector()) bd.push_back(v);
  const auto idx = r.indices.to_vector();
  const auto dist = r.distances.to_vector();
  for (std::int64_t i = 0; i < Q; ++i) {
    const auto d = ref_row(qd, bd, i, N, D, opt.metric);
    std::vector<std::int64_t> order(static_cast<std::size_t>(N));
    std::iota(order.begin(), order.end(), 0);
    if (opt.exclude_self) order.erase(order.begin() + i);
    std::stable_sort(order.begin(), order.end(), [&](auto x, auto y) { return d[x] < d[y]; });
    std::vector<std::int64_t> seen;
    for (std::int64_t t = 0; t < k; ++t) {
      const std::int64_t j = idx[static_cast<std::size_t>(i * k + t)];
      ASSERT_GE(j, 0);
      ASSERT_LT(j, N);
      if (opt.exclude_self) {
        EXPECT_NE(j, i);
      }
      seen.push_back(j);
      // Rank t holds a point whose true distance is the t-th smallest (near-ties may swap within tol).
      EXPECT_NEAR(d[static_cast<std::size_t>(j)], d[static_cast<std::size_t>(order[t])], tol) << "query " << i;
      EXPECT_NEAR(dist[static_cast<std::size_t>(i * k + t)], d[static_cast<std::size_t>(j)], tol) << "query " << i;
      if (t > 0) {
        EXPECT_LE(dist[static_cast<std::size_t>(i * k + t - 1)], dist[static_cast<std::size_t>(i * k + t)]);
      }
    }
    std::sort(seen.begin(), seen.end());
    EXPECT_EQ(std::adjacent_find(seen.begin(), seen.end()), seen.end()) << "duplicate neighbour, query " << i;
  }
}

template <class T> Tensor<T, Cpu> data(std::int64_t rows, std::int64_t D, std::uint64_t seed) {
  Generator g(seed);
  return randn<T>(Shape{rows, D}, g);
}

TEST(Knn, MatchesBruteForceDouble) {
  for (auto metric : {KnnMetric::l2, KnnMetric::cosine})
    for (auto [Q, N, D, block] : {std::array<std::int64_t, 4>{5, 37, 3, 8}, {17, 50, 16, 7}, {1, 9, 4, 1024}}) {
      const auto q = data<double>(Q, D, 1), b = data<double>(N, D, 2);
      for (std::int64_t k : {std::int64_t(1), std::int64_t(4), N})
        check_against_reference(q, b, k, {metric, false, block}, 1e-9);
    }
}

TEST(Knn, MatchesBruteForceFloat) {
  for (auto metric : {KnnMetric::l2, KnnMetric::cosine}) {
    const auto q = data<float>(13, 32, 3), b = data<float>(61, 32, 4);
    for (std::int64_t k : {1, 10, 61}) check_against_reference(q, b, k, {metric, false, 16}, 2e-4);
  }
}

TEST(Knn, ExcludeSelfSymmetricAndCopiedBaseAgree) {
  for (auto metric : {KnnMetric::l2, KnnMetric::cosine})
    for (std::int64_t block : {5, 13, 64}) {  // none divides N = 41; 64 is a single block
      const auto x = data<double>(41, 6, 5);
      const KnnOptions opt{metric, true, block};
      for (std::int64_t k : {1, 3, 40}) {
        check_against_reference(x, x, k, opt, 1e-9);                      // same tensor: symmetric path
        const auto a = knn(x, x, k, opt), c = knn(x, x.clone(), k, opt);  // copy: general path
        EXPECT_EQ(a.indices.to_vector(), c.indices.to_vector());
      }
    }
}

TEST(Knn, SameResultForEveryThreadCount) {
  const auto x = data<float>(300, 24, 6);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto one = knn(x, x, 7, {KnnMetric::l2, true, 32});
  const auto one_general = knn(data<float>(50, 24, 7), x, 7, {KnnMetric::l2, false, 16});
  omp_set_num_threads(2);
  const auto two = knn(x, x, 7, {KnnMetric::l2, true, 32});
  const auto two_general = knn(data<float>(50, 24, 7), x, 7, {KnnMetric::l2, false, 16});
  omp_set_num_threads(saved);
  EXPECT_EQ(one.indices.to_vector(), two.indices.to_vector());
  EXPECT_EQ(one.distances.to_vector(), two.distances.to_vector());
  EXPECT_EQ(one_general.indices.to_vector(), two_general.indices.to_vector());
  EXPECT_EQ(one_general.distances.to_vector(), two_general.distances.to_vector());
}

TEST(Knn, TiesGoToTheLowerIndex) {
  // Points 0 and 2 coincide with the query (distance 0); 1, 3 and 4 are all at distance 1.
  const auto b = from_vector<double>({0, 0, 1, 0, 0, 0, 1, 0, -1, 0}, {5, 2});
  const auto q = from_vector<double>({0, 0}, {1, 2});
  for (std::int64_t block : {1, 2, 3, 8}) {
    const auto r = knn(q, b, 5, {KnnMetric::l2, false, block});
    EXPECT_EQ(r.indices.to_vector(), (std::vector<std::int64_t>{0, 2, 1, 3, 4}));
    EXPECT_EQ(r.distances.to_vector(), (std::vector<double>{0, 0, 1, 1, 1}));
  }
}

TEST(Knn, TinyExampleByHand) {
  // base (0,0) (3,4) (1,0) (0,2); query (3,3) is at √18, 1, √13, √10 from them.
  const auto b = from_vector<double>({0, 0, 3, 4, 1, 0, 0, 2}, {4, 2});
  const auto q = from_vector<double>({0, 0, 3, 3}, {2, 2});
  const auto r = knn(q, b, 2, {KnnMetric::l2, false, 3});
  EXPECT_EQ(r.indices.to_vector(), (std::vector<std::int64_t>{0, 2, 1, 3}));
  const auto d = r.distances.to_vector();
  EXPECT_NEAR(d[0], 0, 1e-12);
  EXPECT_NEAR(d[1], 1, 1e-12);
  EXPECT_NEAR(d[2], 1, 1e-12);
  EXPECT_NEAR(d[3], std::sqrt(10.0), 1e-12);
  // Cosine: (2,0) against (1,0), (0,1), (1,1) → 0, 1, 1 − 1/√2.
  const auto c =
      knn(from_vector<double>({2, 0}, {1, 2}), from_vector<double>({1, 0, 0, 1, 1, 1}, {3, 2}), 3, {KnnMetric::cosine});
  EXPECT_EQ(c.indices.to_vector(), (std::vector<std::int64_t>{0, 2, 1}));
  EXPECT_NEAR(c.distances.to_vector()[1], 1 - 1 / std::sqrt(2.0), 1e-12);
  EXPECT_NEAR(c.distances.to_vector()[2], 1, 1e-12);
}

TEST(Knn, Errors) {
  const auto b = data<double>(6, 3, 8), q = data<double>(2, 3, 9);
  expect_error([&] { knn(q, b, 0); }, {"knn", "k = 0", "[1, 6]"});
  expect_error([&] { knn(q, b, 7); }, {"k = 7", "[1, 6]"});
  expect_error([&] { knn(b, b, 6, {KnnMetric::l2, true}); }, {"k = 6", "[1, 5]"});
  expect_error([&] { knn(q, b, 1, {KnnMetric::l2, true}); }, {"exclude_self", "Q = 2"});
  expect_error([&] { knn(data<double>(2, 4, 1), b, 1); }, {"4 columns", "3"});
  expect_error([&] { knn(q, b, 1, {KnnMetric::l2, false, 0}); }, {"block"});
  auto bad = b.clone();
  bad.set({1, 2}, std::nan(""));
  expect_error([&] { knn(q, bad, 1); }, {"base", "non-finite", "row 1", "column 2"});
  auto inf = q.clone();
  inf.set({0, 1}, INFINITY);
  expect_error([&] { knn(inf, b, 1); }, {"queries", "row 0", "column 1"});
  auto zero = b.clone();
  for (std::int64_t c = 0; c < 3; ++c) zero.set({4, c}, 0.0);
  expect_error([&] { knn(q, zero, 1, {KnnMetric::cosine}); }, {"base row 4", "zero norm"});
  EXPECT_NO_THROW(knn(q, zero, 1));  // a zero row is fine for L2
}

}  // namespace
