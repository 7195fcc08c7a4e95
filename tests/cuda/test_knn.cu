// Exact kNN on the GPU against the CPU: L2 and cosine, self-exclusion, tiles smaller than the
// data, and the same errors for bad input.
#include "cuda_twin.cuh"

using namespace avgrad;
using namespace avgrad::metrics;

namespace {

/// Distances agree to rounding; indices agree except where two distances tie to rounding.
void expect_same_neighbours(const KnnResult<float>& g, const KnnResult<float>& c) {
  ASSERT_EQ(g.indices.shape(), c.indices.shape());
  const auto gi = g.indices.to_vector(), ci = c.indices.to_vector();
  const auto gd = g.distances.to_vector(), cd = c.distances.to_vector();
  for (std::size_t i = 0; i < ci.size(); ++i) {
    EXPECT_NEAR(gd[i], cd[i], 1e-4 * (1 + std::abs(cd[i]))) << "entry " << i;
    if (gi[i] != ci[i]) {
      // a swap of two neighbours whose distances tie to rounding
      const std::size_t row = i / static_cast<std::size_t>(c.indices.size(1)) * c.indices.size(1);
      bool found = false;
      for (std::size_t j = row; j < row + c.indices.size(1); ++j) found = found || ci[j] == gi[i];
      EXPECT_TRUE(found && std::abs(gd[i] - cd[i]) < 1e-4) << "entry " << i << ": gpu " << gi[i] << ", cpu " << ci[i];
    }
  }
}

TEST(CudaKnn, MatchesTheCpu) {
  AVGRAD_REQUIRE_GPU();
  Generator g(5);
  auto base = randn<float>({300, 24}, g), queries = randn<float>({70, 24}, g);
  for (KnnMetric metric : {KnnMetric::l2, KnnMetric::cosine}) {
    SCOPED_TRACE(metric == KnnMetric::l2 ? "l2" : "cosine");
    const KnnOptions o{.metric = metric, .block = 64};
    expect_same_neighbours(knn(queries.to<Cuda>(), base.to<Cuda>(), 7, o), knn(queries, base, 7, o));
    const KnnOptions self{.metric = metric, .exclude_self = true, .block = 128};
    expect_same_neighbours(knn(base.to<Cuda>(), base.to<Cuda>(), 5, self), knn(base, base, 5, self));
  }
}

TEST(CudaKnn, BadInputIsRejectedAsOnTheCpu) {
  AVGRAD_REQUIRE_GPU();
  auto base = from_vector<float>({1, 2, 0, 0, 3, 4}, {3, 2}).to<Cuda>();
  EXPECT_THROW(knn(base, base, 4), Error) << "k above N";
  EXPECT_THROW(knn(base, base, 1, {.metric = KnnMetric::cosine}), Error) << "zero-norm row under cosine";
  auto nan = from_vector<float>({1, std::nanf("")}, {1, 2}).to<Cuda>();
  EXPECT_THROW(knn(nan, base, 1), Error) << "non-finite query";
}

}  // namespace
