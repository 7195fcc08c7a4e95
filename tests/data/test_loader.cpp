// DataLoader, samplers and TensorDataset: batch contents and order, determinism across worker
// counts and epochs, class-balanced frequencies, bad-sample skipping vs propagation, and that
// breaking early or destroying a loader mid-epoch neither hangs (watchdog) nor leaks samples.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "avgrad/data/dataset.hpp"
#include "avgrad/data/loader.hpp"
#include "avgrad/ops/view.hpp"

#include "support/expect_error.hpp"

using namespace avgrad;
using namespace avgrad::data;
using avgrad::testing::expect_error;

namespace {

using Clock = std::chrono::steady_clock;

/// Runs body on another thread; a hang (deadlocked join, lost wake-up) fails the test instead of
/// stalling the suite. The stuck thread cannot be cancelled, so the process exits.
template <class F> void within_seconds(double limit, F&& body) {
  auto done = std::async(std::launch::async, std::forward<F>(body));
  if (done.wait_for(std::chrono::duration<double>(limit)) == std::future_status::timeout) {
    std::fprintf(stderr, "watchdog: test body still running after %.0f s (hang)\n", limit);
    std::fflush(stderr);
    std::_Exit(1);
  }
  done.get();  // rethrows a failure of the body
}

/// features (N, 2, 3): row i holds 100·i + j, labels i % K.
TensorDataset<float> rows_dataset(std::int64_t n, std::int64_t classes = 5) {
  auto x = Tensor<float, Cpu>::empty({n, 2, 3});
  for (std::int64_t i = 0; i < n * 6; ++i) x.data()[i] = static_cast<float>(100 * (i / 6) + i % 6);
  std::vector<std::int64_t> y(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) y[static_cast<std::size_t>(i)] = i % classes;
  return TensorDataset<float>(x, from_vector<std::int64_t>(y));
}

/// The sample index each batch row came from (row i's first element is 100·i).
std::vector<std::vector<std::int64_t>> batch_ids(DataLoader<TensorDataset<float>>& loader, std::int64_t epoch) {
  std::vector<std::vector<std::int64_t>> out;
  for (auto& b : loader.epoch(epoch)) {
    EXPECT_EQ(b.x.dim(), 3);
    EXPECT_EQ(b.x.size(0), b.labels.size(0));
    std::vector<std::int64_t> ids;
    for (std::int64_t r = 0; r < b.x.size(0); ++r) {
      const auto id = static_cast<std::int64_t>(b.x.at({r, 0, 0})) / 100;
      // every element of the row and its label belong to the same sample
      for (std::int64_t j = 0; j < 6; ++j) EXPECT_EQ(b.x.at({r, j / 3, j % 3}), static_cast<float>(100 * id + j));
      EXPECT_EQ(b.labels.at({r}), id % 5);
      ids.push_back(id);
    }
    out.push_back(std::move(ids));
  }
  return out;
}

/// A dataset of plain ints (no collate: batches are std::vector<int>) with hooks for failures,
/// delays and counting live samples.
struct Probe {
  std::atomic<std::int64_t> live{0};  // samples constructed and not yet destroyed
  std::atomic<std::int64_t> gets{0};
};
struct ProbeSample {
  std::int64_t i = 0;
  std::shared_ptr<Probe> probe;
  ProbeSample(std::int64_t i_, std::shared_ptr<Probe> p) : i(i_), probe(std::move(p)) { ++probe->live; }
  ProbeSample(const ProbeSample& o) : i(o.i), probe(o.probe) { ++probe->live; }
  ProbeSample(ProbeSample&& o) noexcept : i(o.i), probe(o.probe) { ++probe->live; }
  ProbeSample& operator=(const ProbeSample&) = delete;
  ~ProbeSample() { --probe->live; }
};
struct ProbeDataset {
  using sample_type = ProbeSample;
  std::int64_t n = 0;
  std::shared_ptr<Probe> probe = std::make_shared<Probe>();
  std::chrono::milliseconds delay{0};
  std::int64_t bad_modulus = 0;  // i % bad_modulus == bad_residue throws avgrad::Error
  std::int64_t bad_residue = 0;
  std::int64_t foreign_error_at = -1;  // throws std::runtime_error

  std::int64_t size() const { return n; }
  ProbeSample get(std::int64_t i) const {
    ++probe->gets;
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    if (bad_modulus > 0 && i % bad_modulus == bad_residue)
      throw Error("ProbeDataset", "corrupt record " + std::to_string(i));
    if (i == foreign_error_at) throw std::runtime_error("disk vanished at " + std::to_string(i));
    return {i, probe};
  }
};
static_assert(Dataset<ProbeDataset> && !CollatingDataset<ProbeDataset> && !LabeledDataset<ProbeDataset>);
static_assert(std::same_as<batch_t<ProbeDataset>, std::vector<ProbeSample>>);
static_assert(LabeledDataset<TensorDataset<float>> && CollatingDataset<TensorDataset<float>>);

std::vector<std::int64_t> flat_ids(DataLoader<ProbeDataset>& loader, std::int64_t epoch,
                                   std::int64_t* batches = nullptr) {
  std::vector<std::int64_t> ids;
  std::int64_t nb = 0;
  for (auto& b : loader.epoch(epoch)) {
    ++nb;
    for (const auto& s : b) ids.push_back(s.i);
  }
  if (batches) *batches = nb;
  return ids;
}

double chi_square(const std::vector<std::int64_t>& counts, const std::vector<double>& p, std::int64_t total) {
  double chi2 = 0;
  for (std::size_t k = 0; k < counts.size(); ++k) {
    if (p[k] == 0) {
      EXPECT_EQ(counts[k], 0) << "class " << k << " has probability 0";
      continue;
    }
    const double e = p[k] * static_cast<double>(total);
    chi2 += (static_cast<double>(counts[k]) - e) * (static_cast<double>(counts[k]) - e) / e;
  }
  return chi2;
}

}  // namespace

// ---- TensorDataset and stacking ------------------------------------------------------------------

TEST(TensorDataset, RowsAreViewsAndCollateStacksContiguousCopies) {
  auto ds = rows_dataset(4);
  ASSERT_EQ(ds.size(), 4);
  auto s = ds.get(2);
  EXPECT_EQ(s.x.shape(), Shape({2, 3}));
  EXPECT_EQ(s.x.at({1, 2}), 205.0f);
  EXPECT_EQ(s.label, 2);
  EXPECT_EQ(s.x.storage(), ds.features().storage());  // a view, not a copy
  std::vector<TensorDataset<float>::Sample> samples{ds.get(3), ds.get(0)};
  auto b = TensorDataset<float>::collate(std::move(samples));
  EXPECT_EQ(b.x.shape(), Shape({2, 2, 3}));
  EXPECT_TRUE(b.x.is_contiguous());
  EXPECT_NE(b.x.storage(), ds.features().storage());
  EXPECT_EQ(b.x.to_vector(), (std::vector<float>{300, 301, 302, 303, 304, 305, 0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(b.labels.to_vector(), (std::vector<std::int64_t>{3, 0}));
}

TEST(TensorDataset, StridedFeaturesStackInLogicalOrder) {
  // features (N=3, 2) as the transpose of a (2, 3) tensor: rows are strided views.
  auto base = from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  TensorDataset<double> ds(base.t(), from_vector<std::int64_t>({0, 1, 0}));
  EXPECT_EQ(ds.get(1).x.to_vector(), (std::vector<double>{2, 5}));
  std::vector<TensorDataset<double>::Sample> samples{ds.get(2), ds.get(1), ds.get(0)};
  auto b = TensorDataset<double>::collate(std::move(samples));
  EXPECT_EQ(b.x.shape(), Shape({3, 2}));
  EXPECT_EQ(b.x.to_vector(), (std::vector<double>{3, 6, 2, 5, 1, 4}));
}

TEST(TensorDataset, Errors) {
  auto x = zeros<float>({4, 2});
  expect_error([&] { TensorDataset<float>(x, zeros<std::int64_t>({3})); }, {"TensorDataset", "(3)", "(4,2)"});
  expect_error([&] { TensorDataset<float>(scalar<float>(1), zeros<std::int64_t>({1})); },
               {"TensorDataset", "(N, ...)"});
  TensorDataset<float> ds(x, zeros<std::int64_t>({4}));
  expect_error([&] { ds.get(4); }, {"TensorDataset", "index 4", "[0, 4)"});
  expect_error([&] { ds.get(-1); }, {"TensorDataset", "index -1"});
}

TEST(StackBatch, ShapeMismatchAndEmpty) {
  std::vector<Tensor<float, Cpu>> xs{zeros<float>({2, 3}), zeros<float>({2, 3}), zeros<float>({3, 2})};
  expect_error([&] { stack_batch(xs); }, {"stack_batch", "item 2", "(3,2)", "(2,3)"});
  expect_error([&] { stack_batch(std::vector<Tensor<float, Cpu>>{}); }, {"stack_batch", "empty"});
  xs.pop_back();
  auto y = stack_batch(xs);
  EXPECT_EQ(y.shape(), Shape({2, 2, 3}));
}

// ---- order, drop_last, determinism -----------------------------------------------------------------

TEST(DataLoader, SequentialBatchesAndPartialLast) {
  DataLoader loader(rows_dataset(10), {.batch_size = 3});
  EXPECT_EQ(loader.len(), 4);
  auto ids = batch_ids(loader, 0);
  EXPECT_EQ(ids, (std::vector<std::vector<std::int64_t>>{{0, 1, 2}, {3, 4, 5}, {6, 7, 8}, {9}}));
}

TEST(DataLoader, DropLastDropsOnlyAShortBatch) {
  within_seconds(10, [] {
    DataLoader loader(rows_dataset(10), {.batch_size = 3, .drop_last = true, .num_workers = 2});
    EXPECT_EQ(loader.len(), 3);
    EXPECT_EQ(batch_ids(loader, 0), (std::vector<std::vector<std::int64_t>>{{0, 1, 2}, {3, 4, 5}, {6, 7, 8}}));
    DataLoader exact(rows_dataset(9), {.batch_size = 3, .drop_last = true});
    EXPECT_EQ(exact.len(), 3);
    EXPECT_EQ(batch_ids(exact, 0).size(), 3u);
  });
}

TEST(DataLoader, SameSeedSameBatchesForAnyWorkerCount) {
  within_seconds(10, [] {
    const auto ds = rows_dataset(103);
    std::vector<std::vector<std::int64_t>> reference;
    for (int workers : {0, 1, 3}) {
      for (int prefetch : {1, 2}) {
        SCOPED_TRACE("workers " + std::to_string(workers) + " prefetch " + std::to_string(prefetch));
        DataLoader loader(ds,
                          {.batch_size = 8, .shuffle = true, .num_workers = workers, .prefetch = prefetch, .seed = 7});
        auto ids = batch_ids(loader, 0);
        ASSERT_EQ(ids.size(), 13u);
        EXPECT_EQ(ids.back().size(), 103u % 8);
        if (reference.empty()) reference = ids;
        EXPECT_EQ(ids, reference);
      }
    }
    // shuffled: a permutation of every sample, not the identity
    std::vector<std::int64_t> all;
    for (auto& b : reference) all.insert(all.end(), b.begin(), b.end());
    std::vector<std::int64_t> sorted = all;
    std::sort(sorted.begin(), sorted.end());
    std::vector<std::int64_t> iota(103);
    std::iota(iota.begin(), iota.end(), 0);
    EXPECT_EQ(sorted, iota);
    EXPECT_NE(all, iota);
  });
}

TEST(DataLoader, EpochsDifferButAreReproducible) {
  within_seconds(10, [] {
    const auto ds = rows_dataset(50);
    DataLoader a(ds, {.batch_size = 10, .shuffle = true, .num_workers = 2, .seed = 11});
    const auto e0 = batch_ids(a, 0), e1 = batch_ids(a, 1), e5 = batch_ids(a, 5);
    EXPECT_NE(e0, e1);
    EXPECT_NE(e1, e5);
    // a resumed run (fresh loader, same seed) reproduces epoch 5 without replaying 0..4
    DataLoader b(ds, {.batch_size = 10, .shuffle = true, .seed = 11});
    EXPECT_EQ(batch_ids(b, 5), e5);
    EXPECT_EQ(batch_ids(b, 0), e0);
    // set_epoch + begin()/end() runs the same epoch
    b.set_epoch(1);
    std::vector<std::vector<std::int64_t>> via_begin;
    for (auto& batch : b) {
      std::vector<std::int64_t> ids;
      for (std::int64_t r = 0; r < batch.x.size(0); ++r)
        ids.push_back(static_cast<std::int64_t>(batch.x.at({r, 0, 0})) / 100);
      via_begin.push_back(ids);
    }
    EXPECT_EQ(via_begin, e1);
    // another seed, another order
    DataLoader c(ds, {.batch_size = 10, .shuffle = true, .seed = 12});
    EXPECT_NE(batch_ids(c, 0), e0);
  });
}

TEST(DataLoader, BatchesWithoutCollateAreSampleVectors) {
  within_seconds(10, [] {
    ProbeDataset ds{.n = 7};
    DataLoader loader(ds, {.batch_size = 3, .num_workers = 2});
    std::int64_t nb = 0;
    EXPECT_EQ(flat_ids(loader, 0, &nb), (std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6}));
    EXPECT_EQ(nb, 3);
    EXPECT_EQ(ds.probe->live.load(), 0);
  });
}

TEST(DataLoader, EmptyDataset) {
  within_seconds(10, [] {
    ProbeDataset ds{.n = 0};
    for (int workers : {0, 2}) {
      DataLoader loader(ds, {.batch_size = 4, .shuffle = true, .num_workers = workers});
      EXPECT_EQ(loader.len(), 0);
      std::int64_t nb = 0;
      EXPECT_TRUE(flat_ids(loader, 0, &nb).empty());
      EXPECT_EQ(nb, 0);
      for ([[maybe_unused]] auto& b : loader) ADD_FAILURE() << "a batch from an empty dataset";
    }
  });
}

TEST(DataLoader, OptionErrors) {
  ProbeDataset ds{.n = 5};
  expect_error([&] { DataLoader loader(ds, {.batch_size = 0}); }, {"DataLoader", "batch_size", "got 0"});
  expect_error([&] { DataLoader loader(ds, {.batch_size = 2, .num_workers = -1}); }, {"DataLoader", "num_workers"});
  expect_error([&] { DataLoader loader(ds, {.batch_size = 2, .prefetch = 0}); }, {"DataLoader", "prefetch"});
  expect_error(
      [&] {
        DataLoader loader(ds, {.batch_size = 2, .shuffle = true, .sampler = std::make_shared<SequentialSampler>(5)});
      },
      {"DataLoader", "exclusive"});
  DataLoader outside(ds, {.batch_size = 2, .sampler = std::make_shared<IndexSampler>(std::vector<std::int64_t>{1, 5})});
  expect_error([&] { outside.epoch(0); }, {"DataLoader", "sampler index 5", "position 1", "[0, 5)"});
  DataLoader once(ds, {.batch_size = 2});
  auto ep = once.epoch(0);
  (void)ep.begin();
  expect_error([&] { (void)ep.begin(); }, {"DataLoader", "already being iterated"});
}

TEST(DataLoader, IndexAndSubsetSamplers) {
  ProbeDataset ds{.n = 20};
  DataLoader fixed(
      ds, {.batch_size = 2, .sampler = std::make_shared<IndexSampler>(std::vector<std::int64_t>{7, 3, 3, 19})});
  EXPECT_EQ(flat_ids(fixed, 0), (std::vector<std::int64_t>{7, 3, 3, 19}));
  EXPECT_EQ(flat_ids(fixed, 4), (std::vector<std::int64_t>{7, 3, 3, 19}));
  const std::vector<std::int64_t> subset{2, 4, 6, 8, 10, 12, 14, 16};
  SubsetRandomSampler sampler(subset, 3);
  auto e0 = sampler.indices(0), e1 = sampler.indices(1);
  EXPECT_NE(e0, e1);
  EXPECT_EQ(e0, SubsetRandomSampler(subset, 3).indices(0));
  std::sort(e0.begin(), e0.end());
  EXPECT_EQ(e0, subset);
  RandomSampler rs(1000, 9);
  auto p = rs.indices(2);
  std::set<std::int64_t> distinct(p.begin(), p.end());
  EXPECT_EQ(distinct.size(), 1000u);
  EXPECT_EQ(*distinct.begin(), 0);
  EXPECT_EQ(*distinct.rbegin(), 999);
}

// ---- class-balanced sampling ----------------------------------------------------------------------

TEST(ClassBalancedSampler, ClassesAreDrawnUniformlyOnImbalancedLabels) {
  // 5000 / 500 / 50 / 5 / 1 samples per class, shuffled positions
  std::vector<std::int64_t> labels;
  const std::vector<std::int64_t> per_class{5000, 500, 50, 5, 1};
  for (std::size_t k = 0; k < per_class.size(); ++k)
    labels.insert(labels.end(), per_class[k], static_cast<std::int64_t>(k));
  for (std::size_t i = 0; i < labels.size(); ++i) std::swap(labels[i], labels[(i * 7919) % labels.size()]);
  auto x = zeros<float>({static_cast<std::int64_t>(labels.size()), 1});
  TensorDataset<float> ds(x, from_vector<std::int64_t>(labels));
  const std::int64_t draws = 50000;
  ClassBalancedSampler sampler(ds, draws, 21);
  EXPECT_EQ(sampler.size(), draws);
  EXPECT_EQ(sampler.num_classes(), 5);
  for (std::int64_t epoch : {0, 1}) {
    auto idx = sampler.indices(epoch);
    ASSERT_EQ(static_cast<std::int64_t>(idx.size()), draws);
    std::vector<std::int64_t> counts(5, 0);
    std::set<std::int64_t> class3;
    for (auto i : idx) {
      ++counts[static_cast<std::size_t>(labels[static_cast<std::size_t>(i)])];
      if (labels[static_cast<std::size_t>(i)] == 3) class3.insert(i);
    }
    // χ² with 4 degrees of freedom: P(χ² > 25) ≈ 5e-5; the natural frequencies (90% class 0) give ≈ 2e5.
    const double chi2 = chi_square(counts, std::vector<double>(5, 0.2), draws);
    EXPECT_LT(chi2, 25.0) << "counts " << counts[0] << " " << counts[1] << " " << counts[2] << " " << counts[3] << " "
                          << counts[4];
    EXPECT_EQ(class3.size(), 5u);  // within a class, every member gets drawn
  }
  EXPECT_NE(sampler.indices(0), sampler.indices(1));
  EXPECT_EQ(sampler.indices(1), ClassBalancedSampler(labels, draws, 21).indices(1));
}

TEST(ClassBalancedSampler, ClassWeightsSetClassProbabilities) {
  // class 2 has no samples and weight 0; classes 0..4 otherwise drawn in proportion 1:2:0:1:4
  std::vector<std::int64_t> labels{0, 0, 0, 0, 0, 0, 1, 3, 3, 4, 0, 1};
  const std::vector<double> w{1, 2, 0, 1, 4};
  const std::int64_t draws = 40000;
  ClassBalancedSampler sampler(labels, draws, 5, w);
  const std::vector<double> p{1.0 / 8, 2.0 / 8, 0, 1.0 / 8, 4.0 / 8};
  for (std::int64_t k = 0; k < 5; ++k) EXPECT_NEAR(sampler.class_probability(k), p[static_cast<std::size_t>(k)], 1e-15);
  std::vector<std::int64_t> counts(5, 0);
  for (auto i : sampler.indices(0)) ++counts[static_cast<std::size_t>(labels[static_cast<std::size_t>(i)])];
  EXPECT_LT(chi_square(counts, p, draws), 22.0);  // 3 dof (class 2 is fixed at 0): P ≈ 7e-5

  // uniform default skips the empty class 2
  ClassBalancedSampler uniform(labels, 100, 5);
  EXPECT_EQ(uniform.class_probability(2), 0.0);
  EXPECT_DOUBLE_EQ(uniform.class_probability(4), 0.25);

  expect_error(
      [&] {
        ClassBalancedSampler(labels, 10, 1, {1, 1, 1, 1, 1});
      },
      {"ClassBalancedSampler", "class 2", "no samples"});
  expect_error(
      [&] {
        ClassBalancedSampler(labels, 10, 1, {1, -1, 0, 1, 1});
      },
      {"ClassBalancedSampler", "class 1", "-1"});
  expect_error([&] { ClassBalancedSampler(labels, 10, 1, {1, 1}); }, {"ClassBalancedSampler", "2 class weights"});
  expect_error([&] { ClassBalancedSampler(labels, 10, 1, {0, 0, 0, 0, 0}); }, {"ClassBalancedSampler", "zero"});
  expect_error(
      [&] {
        ClassBalancedSampler({0, -2}, 10, 1);
      },
      {"ClassBalancedSampler", "sample 1", "negative label -2"});
  expect_error([&] { ClassBalancedSampler(std::vector<std::int64_t>{}, 10, 1); },
               {"ClassBalancedSampler", "no samples"});
}

TEST(ClassBalancedSampler, DrivesALoader) {
  within_seconds(10, [] {
    auto ds = rows_dataset(40, 4);
    auto sampler = std::make_shared<ClassBalancedSampler>(ds, 30, 2);
    DataLoader loader(ds, {.batch_size = 8, .sampler = sampler, .num_workers = 2});
    EXPECT_EQ(loader.len(), 4);
    std::int64_t rows = 0;
    std::vector<std::int64_t> expected = sampler->indices(3), seen;
    for (auto& b : loader.epoch(3)) {
      rows += b.x.size(0);
      for (std::int64_t r = 0; r < b.x.size(0); ++r) seen.push_back(static_cast<std::int64_t>(b.x.at({r, 0, 0})) / 100);
    }
    EXPECT_EQ(rows, 30);
    EXPECT_EQ(seen, expected);
  });
}

// ---- bad samples and exceptions -----------------------------------------------------------------

TEST(DataLoader, SkipBadCountsAndReports) {
  within_seconds(10, [] {
    for (int workers : {0, 2}) {
      SCOPED_TRACE("workers " + std::to_string(workers));
      ProbeDataset ds{.n = 30, .bad_modulus = 7, .bad_residue = 3};  // 3, 10, 17, 24 are bad
      DataLoader loader(ds, {.batch_size = 4, .num_workers = workers, .skip_bad = true});
      std::int64_t nb = 0;
      const auto ids = flat_ids(loader, 0, &nb);
      std::vector<std::int64_t> expected;
      for (std::int64_t i = 0; i < 30; ++i)
        if (i % 7 != 3) expected.push_back(i);
      EXPECT_EQ(ids, expected);
      EXPECT_EQ(nb, 8);  // batch boundaries stay at sampler positions: short batches, not refilled
      EXPECT_EQ(loader.skipped(), 4);
      const auto errors = loader.last_errors();
      ASSERT_EQ(errors.size(), 4u);
      std::set<std::string> joined(errors.begin(), errors.end());
      bool found = false;
      for (const auto& e : errors)
        if (e.find("sample 10 ") != std::string::npos) {
          found = true;
          EXPECT_NE(e.find("corrupt record 10"), std::string::npos) << e;
          EXPECT_NE(e.find("batch 2"), std::string::npos) << e;
        }
      EXPECT_TRUE(found);
      flat_ids(loader, 1);
      EXPECT_EQ(loader.skipped(), 8);  // counted over the loader's lifetime
    }
  });
}

TEST(DataLoader, BatchOfOnlyBadSamplesIsDropped) {
  within_seconds(10, [] {
    ProbeDataset ds{.n = 6, .bad_modulus = 100, .bad_residue = 2};
    ProbeDataset all_bad{.n = 6, .bad_modulus = 1, .bad_residue = 0};
    DataLoader loader(all_bad, {.batch_size = 2, .num_workers = 1, .skip_bad = true});
    std::int64_t nb = -1;
    EXPECT_TRUE(flat_ids(loader, 0, &nb).empty());
    EXPECT_EQ(nb, 0);
    EXPECT_EQ(loader.skipped(), 6);
    DataLoader single(ds, {.batch_size = 1, .skip_bad = true});
    EXPECT_EQ(flat_ids(single, 0), (std::vector<std::int64_t>{0, 1, 3, 4, 5}));
  });
}

TEST(DataLoader, BadSamplePropagatesWithIndexAndCause) {
  within_seconds(10, [] {
    for (int workers : {0, 3}) {
      SCOPED_TRACE("workers " + std::to_string(workers));
      ProbeDataset ds{.n = 30, .bad_modulus = 100, .bad_residue = 13};
      DataLoader loader(ds, {.batch_size = 4, .num_workers = workers});
      std::vector<std::int64_t> delivered;
      expect_error(
          [&] {
            for (auto& b : loader.epoch(0))
              for (auto& s : b) delivered.push_back(s.i);
          },
          {"DataLoader", "sample 13", "batch 3", "epoch 0", "ProbeDataset: corrupt record 13"});
      // in-order delivery: batches 0..2 arrived before the failing batch 3
      std::vector<std::int64_t> first12(12);
      std::iota(first12.begin(), first12.end(), 0);
      EXPECT_EQ(delivered, first12);
      EXPECT_EQ(loader.skipped(), 0);
    }
  });
}

TEST(DataLoader, WorkerExceptionOfAnyTypeIsRethrown) {
  within_seconds(10, [] {
    for (int workers : {0, 1, 3}) {
      SCOPED_TRACE("workers " + std::to_string(workers));
      ProbeDataset ds{.n = 40, .foreign_error_at = 21};
      DataLoader loader(ds, {.batch_size = 5, .num_workers = workers, .skip_bad = true});
      std::int64_t batches = 0;
      try {
        for ([[maybe_unused]] auto& b : loader.epoch(0)) ++batches;
        ADD_FAILURE() << "no exception";
      } catch (const std::runtime_error& e) {
        EXPECT_EQ(std::string(e.what()), "disk vanished at 21");  // original type and message
      }
      EXPECT_EQ(batches, 4);  // batches 0..3, then batch 4 holds sample 21
      EXPECT_EQ(loader.skipped(), 0);
    }
  });
}

// ---- stopping early, destruction, overlap ------------------------------------------------------------

TEST(DataLoader, EarlyBreakAndDestructionDoNotHangOrLeak) {
  within_seconds(10, [] {
    ProbeDataset ds{.n = 2000, .delay = std::chrono::milliseconds(2)};
    {
      DataLoader loader(ds, {.batch_size = 16, .num_workers = 3, .prefetch = 2});
      std::int64_t seen = 0;
      for (auto& b : loader.epoch(0)) {
        EXPECT_EQ(b.front().i, 16 * seen);
        if (++seen == 2) break;
      }
      EXPECT_EQ(ds.probe->live.load(), 0);  // the epoch's workers are joined and its batches freed
      // bounded prefetch: at most 3 workers × 2 batches beyond what was consumed were started
      EXPECT_LE(ds.probe->gets.load(), 16 * (2 + 3 * 2 + 1));
      // begin()/end() style: destroy the loader while a pass is mid-epoch
      auto it = loader.begin();
      ++it;
      EXPECT_EQ(it->front().i, 16);
    }
    EXPECT_EQ(ds.probe->live.load(), 0);
    {
      // an epoch that is never iterated, and an owning loader destroyed with workers running
      DataLoader owning(ProbeDataset{.n = 500, .delay = std::chrono::milliseconds(2)},
                        {.batch_size = 4, .num_workers = 2});
      auto ep = owning.epoch(0);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    // an epoch outliving its loader keeps the shared state alive and still finishes
    auto ep = DataLoader(ProbeDataset{.n = 9}, {.batch_size = 2, .num_workers = 2}).epoch(0);
    std::int64_t n = 0;
    for (auto& b : ep) n += static_cast<std::int64_t>(b.size());
    EXPECT_EQ(n, 9);
  });
}

TEST(DataLoader, TwoWorkersOverlapSlowSamples) {
  within_seconds(10, [] {
    ProbeDataset ds{.n = 16, .delay = std::chrono::milliseconds(25)};
    auto run = [&](int workers) {
      DataLoader loader(ds, {.batch_size = 1, .num_workers = workers});
      const auto t0 = Clock::now();
      std::int64_t n = 0;
      for (auto& b : loader.epoch(0)) n += static_cast<std::int64_t>(b.size());
      EXPECT_EQ(n, 16);
      return std::chrono::duration<double>(Clock::now() - t0).count();
    };
    const double serial = run(0), parallel = run(2);
    // ideal ratio 0.5 (sleeping workers need no CPU); 0.8 leaves room for a loaded machine
    EXPECT_GT(serial, 16 * 0.025 * 0.95);
    EXPECT_LT(parallel, 0.8 * serial) << "serial " << serial << " s, 2 workers " << parallel << " s";
  });
}
