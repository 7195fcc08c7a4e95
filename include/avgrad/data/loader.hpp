// Samplers (index orders per epoch) and the DataLoader that turns a Dataset into batches, optionally
// built by worker threads. Keeps true: epoch e's batches depend only on (dataset, options, e) —
// never on the number of workers or on timing — and are delivered in sampler order; stopping early
// or destroying the loader joins every worker without waiting for the rest of the epoch.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <iterator>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "avgrad/core/error.hpp"
#include "avgrad/core/philox.hpp"
#include "avgrad/data/dataset.hpp"

namespace avgrad::data {

// ---- samplers ----------------------------------------------------------------------------------

/// An index order per epoch. indices(e) is const and a pure function of (configuration, e), so
/// a resumed run regenerates epoch e without replaying earlier ones, and concurrent epochs may
/// share one sampler.
class Sampler {
 public:
  virtual ~Sampler() = default;
  /// Number of indices per epoch.
  virtual std::int64_t size() const = 0;
  /// The indices of epoch `epoch` (>= 0), in the order samples are to be visited.
  virtual std::vector<std::int64_t> indices(std::int64_t epoch) const = 0;
};

namespace detail {

/// Epoch e draws from counters [e·2^40, (e+1)·2^40) of the seed's Philox stream: disjoint per
/// epoch, and found from (seed, e) alone.
inline Generator epoch_generator(std::uint64_t seed, std::int64_t epoch, const char* op) {
  AVGRAD_CHECK(epoch >= 0 && epoch < (std::int64_t{1} << 23), op, "epoch ", epoch, " outside [0, 2^23)");
  Generator g(seed);
  g.set_state(seed, static_cast<std::uint64_t>(epoch) << 40);
  return g;
}

/// Fisher–Yates with the generator's uniform integers.
inline void shuffle_in_place(std::vector<std::int64_t>& v, Generator& g) {
  for (std::size_t k = v.size(); k > 1; --k) std::swap(v[k - 1], v[g.next_below(k)]);
}

inline std::vector<std::int64_t> iota_indices(std::int64_t n) {
  std::vector<std::int64_t> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), std::int64_t{0});
  return v;
}

}  // namespace detail

/// 0, 1, …, n−1 every epoch.
class SequentialSampler : public Sampler {
 public:
  explicit SequentialSampler(std::int64_t n) : n_(n) { AVGRAD_CHECK(n >= 0, "SequentialSampler", "negative size ", n); }
  std::int64_t size() const override { return n_; }
  std::vector<std::int64_t> indices(std::int64_t) const override { return detail::iota_indices(n_); }

 private:
  std::int64_t n_;
};

/// A fresh permutation of 0..n−1 per epoch; epoch e's order depends only on (seed, e).
class RandomSampler : public Sampler {
 public:
  RandomSampler(std::int64_t n, std::uint64_t seed) : n_(n), seed_(seed) {
    AVGRAD_CHECK(n >= 0, "RandomSampler", "negative size ", n);
  }
  std::int64_t size() const override { return n_; }
  std::vector<std::int64_t> indices(std::int64_t epoch) const override {
    auto g = detail::epoch_generator(seed_, epoch, "RandomSampler");
    auto v = detail::iota_indices(n_);
    detail::shuffle_in_place(v, g);
    return v;
  }

 private:
  std::int64_t n_;
  std::uint64_t seed_;
};

/// A fixed index list, visited in the given order every epoch (a validation subset, a resume list).
class IndexSampler : public Sampler {
 public:
  explicit IndexSampler(std::vector<std::int64_t> indices) : indices_(std::move(indices)) {}
  std::int64_t size() const override { return static_cast<std::int64_t>(indices_.size()); }
  std::vector<std::int64_t> indices(std::int64_t) const override { return indices_; }

 private:
  std::vector<std::int64_t> indices_;
};

/// A fresh permutation of a fixed index list per epoch (a train split of a larger dataset).
class SubsetRandomSampler : public Sampler {
 public:
  SubsetRandomSampler(std::vector<std::int64_t> indices, std::uint64_t seed)
      : indices_(std::move(indices)), seed_(seed) {}
  std::int64_t size() const override { return static_cast<std::int64_t>(indices_.size()); }
  std::vector<std::int64_t> indices(std::int64_t epoch) const override {
    auto g = detail::epoch_generator(seed_, epoch, "SubsetRandomSampler");
    auto v = indices_;
    detail::shuffle_in_place(v, g);
    return v;
  }

 private:
  std::vector<std::int64_t> indices_;
  std::uint64_t seed_;
};

/// Class-balanced sampling with replacement (the study's AudioSet recipe, single-label form):
/// each of the `num_samples` draws per epoch picks a class k with probability ∝ w_k — uniform
/// over the classes that have samples when no weights are given — then a sample of class k
/// uniformly. Rare classes are therefore seen as often as common ones; their samples repeat.
/// Labels come from `label(i)`, so no sample is decoded to build the sampler.
/// Throws on negative labels, no samples with num_samples > 0, weights that are negative, not
/// finite, fewer than the classes present, positive on a class without samples, or all zero.
class ClassBalancedSampler : public Sampler {
 public:
  ClassBalancedSampler(const std::vector<std::int64_t>& labels, std::int64_t num_samples, std::uint64_t seed,
                       const std::vector<double>& class_weights = {})
      : num_samples_(num_samples), seed_(seed) {
    const char* op = "ClassBalancedSampler";
    AVGRAD_CHECK(num_samples >= 0, op, "negative num_samples ", num_samples);
    for (std::size_t i = 0; i < labels.size(); ++i) {
      const std::int64_t c = labels[i];
      AVGRAD_CHECK(c >= 0, op, "sample ", i, " has negative label ", c);
      if (static_cast<std::size_t>(c) >= members_.size()) members_.resize(static_cast<std::size_t>(c) + 1);
      members_[static_cast<std::size_t>(c)].push_back(static_cast<std::int64_t>(i));
    }
    AVGRAD_CHECK(num_samples == 0 || !labels.empty(), op, "no samples to draw ", num_samples, " from");
    const std::size_t K = class_weights.empty() ? members_.size() : class_weights.size();
    AVGRAD_CHECK(K >= members_.size(), op, class_weights.size(), " class weights for labels up to ",
                 static_cast<std::int64_t>(members_.size()) - 1);
    members_.resize(K);
    cumulative_.resize(K);
    double total = 0;
    for (std::size_t k = 0; k < K; ++k) {
      const bool present = !members_[k].empty();
      double w = present ? 1.0 : 0.0;
      if (!class_weights.empty()) {
        w = class_weights[k];
        AVGRAD_CHECK(std::isfinite(w) && w >= 0, op, "class ", k, " has weight ", w,
                     "; weights must be finite and >= 0");
        AVGRAD_CHECK(present || w == 0, op, "class ", k, " has weight ", w, " but no samples");
      }
      total += w;
      cumulative_[k] = total;
    }
    AVGRAD_CHECK(labels.empty() || total > 0, op, "every class weight is zero");
    if (total > 0)
      for (double& c : cumulative_) c /= total;
  }

  /// Same, with labels from a dataset's label(i).
  template <LabeledDataset D> ClassBalancedSampler(const D& dataset, std::int64_t num_samples, std::uint64_t seed,
                                                   const std::vector<double>& class_weights = {})
      : ClassBalancedSampler(labels_of(dataset), num_samples, seed, class_weights) {}

  std::int64_t size() const override { return num_samples_; }
  std::int64_t num_classes() const noexcept { return static_cast<std::int64_t>(members_.size()); }
  /// Probability that one draw picks class k.
  double class_probability(std::int64_t k) const {
    AVGRAD_CHECK(k >= 0 && k < num_classes(), "ClassBalancedSampler", "class ", k, " out of range [0, ", num_classes(),
                 ")");
    const auto i = static_cast<std::size_t>(k);
    return cumulative_[i] - (i ? cumulative_[i - 1] : 0.0);
  }

  std::vector<std::int64_t> indices(std::int64_t epoch) const override {
    auto g = detail::epoch_generator(seed_, epoch, "ClassBalancedSampler");
    std::vector<std::int64_t> out(static_cast<std::size_t>(num_samples_));
    for (auto& idx : out) {
      // upper_bound skips zero-weight classes (their cumulative equals the previous one); the
      // clamp covers u landing on the rounded last cumulative value.
      const double u = g.next_uniform();
      auto k =
          static_cast<std::size_t>(std::upper_bound(cumulative_.begin(), cumulative_.end(), u) - cumulative_.begin());
      while (k >= members_.size() || members_[k].empty()) k = k >= members_.size() ? members_.size() - 1 : k - 1;
      const auto& m = members_[k];
      idx = m[static_cast<std::size_t>(g.next_below(m.size()))];
    }
    return out;
  }

 private:
  template <class D> static std::vector<std::int64_t> labels_of(const D& dataset) {
    std::vector<std::int64_t> labels(static_cast<std::size_t>(dataset.size()));
    for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = dataset.label(static_cast<std::int64_t>(i));
    return labels;
  }

  std::int64_t num_samples_;
  std::uint64_t seed_;
  std::vector<std::vector<std::int64_t>> members_;  // sample indices by class
  std::vector<double> cumulative_;                  // normalised cumulative class weights
};

// ---- loader ----------------------------------------------------------------------------------------

/// DataLoader options. Aggregate: `DataLoader loader(ds, {.batch_size = 32, .shuffle = true, .num_workers = 2})`.
struct LoaderOptions {
  std::int64_t batch_size = 1;                       ///< >= 1
  bool shuffle = false;                              ///< RandomSampler(size, seed) when no sampler is given
  std::shared_ptr<const Sampler> sampler = nullptr;  ///< the index order; exclusive with shuffle
  bool drop_last = false;                            ///< drop the last batch when it would be short
  int num_workers = 0;                               ///< 0: batches are built in the consuming thread
  int prefetch = 2;                                  ///< batches in flight per worker (>= 1)
  std::uint64_t seed = 0x5eed;                       ///< for shuffle
  bool skip_bad = false;  ///< samples whose get() throws avgrad::Error are skipped and counted
};

namespace detail {

/// What a loader and its epochs share: an epoch may outlive the loader that started it.
template <Dataset D> struct LoaderState {
  static constexpr std::size_t kKeptErrors = 16;

  std::shared_ptr<const D> owner;  // null when the loader borrows the dataset
  const D* dataset = nullptr;
  std::int64_t dataset_size = 0;
  LoaderOptions opt;
  std::shared_ptr<const Sampler> sampler;
  std::atomic<std::int64_t> skipped{0};
  mutable std::mutex errors_mutex;
  std::deque<std::string> errors;  // the last kKeptErrors skip reasons

  void record_skip(std::string message) {
    skipped.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard lock(errors_mutex);
    errors.push_back(std::move(message));
    if (errors.size() > kKeptErrors) errors.pop_front();
  }
};

/// One pass over an epoch: the index list, the worker threads and the ring of finished batches.
///
/// Batch b is built whole by one thread. Workers claim batches in order from a shared counter, but
/// only while b < consumed + capacity (capacity = num_workers · prefetch), so at most `capacity`
/// batches exist unconsumed and batch b's ring slot b % capacity is free when it is claimed. The
/// consumer takes slot b % capacity for b = 0, 1, … — delivery order is the sampler's order
/// whatever the timing, and a failure surfaces at the batch where it happened.
template <Dataset D> class EpochRun {
 public:
  using sample_type = typename D::sample_type;
  using batch_type = batch_t<D>;

  EpochRun(std::shared_ptr<LoaderState<D>> state, std::int64_t epoch) : state_(std::move(state)), epoch_(epoch) {
    const LoaderOptions& opt = state_->opt;
    indices_ = state_->sampler->indices(epoch);
    for (std::size_t k = 0; k < indices_.size(); ++k)
      AVGRAD_CHECK(indices_[k] >= 0 && indices_[k] < state_->dataset_size, "DataLoader", "sampler index ", indices_[k],
                   " at position ", k, " of epoch ", epoch, " is outside the dataset [0, ", state_->dataset_size, ")");
    const auto n = static_cast<std::int64_t>(indices_.size());
    num_batches_ = opt.drop_last ? n / opt.batch_size : (n + opt.batch_size - 1) / opt.batch_size;
    if (opt.num_workers > 0 && num_batches_ > 0) {
      capacity_ = static_cast<std::int64_t>(opt.num_workers) * opt.prefetch;
      slots_.resize(static_cast<std::size_t>(capacity_));
      try {
        for (int w = 0; w < opt.num_workers; ++w) workers_.emplace_back([this] { work(); });
      } catch (...) {
        stop();  // threads already started wait on the condition variables: release and join them
        throw;
      }
    }
  }
  EpochRun(const EpochRun&) = delete;
  EpochRun& operator=(const EpochRun&) = delete;
  ~EpochRun() { stop(); }

  std::int64_t num_batches() const noexcept { return num_batches_; }
  std::int64_t epoch() const noexcept { return epoch_; }

  /// Moves to the next batch that has at least one sample; false at the end of the epoch.
  /// Rethrows a failure of the batch it reaches, after which the pass is over.
  bool advance() {
    current_.reset();
    while (next_ < num_batches_) {
      const std::int64_t b = next_++;
      std::optional<batch_type> got;
      try {
        got = workers_.empty() ? produce(b) : take(b);
      } catch (...) {
        next_ = num_batches_;
        throw;
      }
      if (got) {
        current_ = std::move(got);
        return true;
      }
    }
    return false;
  }
  bool has_current() const noexcept { return current_.has_value(); }
  batch_type& current() {
    AVGRAD_CHECK(current_.has_value(), "DataLoader", "dereferencing an iterator at the end of the epoch");
    return *current_;
  }
  bool start() noexcept { return !std::exchange(started_, true); }

 private:
  struct Slot {
    bool ready = false;
    std::optional<batch_type> batch;  // empty when every sample of the batch was skipped
    std::exception_ptr error;
  };

  /// Builds batch b from its samples; runs in a worker, or in the consumer with num_workers 0.
  std::optional<batch_type> produce(std::int64_t b) {
    const LoaderOptions& opt = state_->opt;
    const std::int64_t lo = b * opt.batch_size;
    const std::int64_t hi = std::min<std::int64_t>(lo + opt.batch_size, static_cast<std::int64_t>(indices_.size()));
    std::vector<sample_type> samples;
    samples.reserve(static_cast<std::size_t>(hi - lo));
    for (std::int64_t k = lo; k < hi; ++k) {
      // Checked per sample so that a break or a destroyed loader does not wait for whole batches.
      if (stopping_.load(std::memory_order_relaxed)) return std::nullopt;
      const std::int64_t i = indices_[static_cast<std::size_t>(k)];
      try {
        samples.emplace_back(state_->dataset->get(i));
      } catch (const Error& e) {
        std::string where =
            ::avgrad::detail::concat("sample ", i, " (batch ", b, " of epoch ", epoch_, ") failed: ", e.what());
        if (!opt.skip_bad) throw Error("DataLoader", where);
        state_->record_skip(std::move(where));
      }
      // Other exception types (bad_alloc, a logic error in the dataset) are not bad data: they
      // propagate unchanged, whatever skip_bad says.
    }
    if (samples.empty()) return std::nullopt;
    // CUDA seam: a pin_memory option will copy the collated tensors into page-locked host buffers
    // here, still in the worker, so the trainer's host-to-device copy can be asynchronous.
    return data::collate<D>(std::move(samples));
  }

  void work() {
    for (;;) {
      std::int64_t b;
      {
        std::unique_lock lock(mutex_);
        can_claim_.wait(lock, [&] { return stop_ || claimed_ >= num_batches_ || claimed_ < consumed_ + capacity_; });
        if (stop_ || claimed_ >= num_batches_) return;
        b = claimed_++;
      }
      Slot s;
      try {
        s.batch = produce(b);
      } catch (...) {
        s.error = std::current_exception();
      }
      s.ready = true;
      {
        std::lock_guard lock(mutex_);
        if (stop_) return;
        slots_[static_cast<std::size_t>(b % capacity_)] = std::move(s);
      }
      ready_.notify_one();
    }
  }

  std::optional<batch_type> take(std::int64_t b) {
    Slot s;
    {
      std::unique_lock lock(mutex_);
      Slot& slot = slots_[static_cast<std::size_t>(b % capacity_)];
      ready_.wait(lock, [&] { return slot.ready; });
      s = std::move(slot);
      slot = Slot{};
      consumed_ = b + 1;
    }
    can_claim_.notify_one();  // the window moved by one batch
    if (s.error) std::rethrow_exception(s.error);
    return std::move(s.batch);
  }

  void stop() noexcept {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
      stopping_.store(true, std::memory_order_relaxed);
    }
    can_claim_.notify_all();
    ready_.notify_all();
    workers_.clear();  // joins; a worker inside get() finishes that one sample first
  }

  std::shared_ptr<LoaderState<D>> state_;
  std::int64_t epoch_;
  std::vector<std::int64_t> indices_;
  std::int64_t num_batches_ = 0;
  std::int64_t next_ = 0;  // consumer: next batch to deliver
  bool started_ = false;
  std::optional<batch_type> current_;

  std::mutex mutex_;
  std::condition_variable can_claim_, ready_;
  std::int64_t capacity_ = 0, claimed_ = 0, consumed_ = 0;  // guarded by mutex_
  bool stop_ = false;                                       // guarded by mutex_
  std::atomic<bool> stopping_{false};                       // stop_, readable without the lock
  std::vector<Slot> slots_;
  std::vector<std::jthread> workers_;  // last: joined (by stop) before the state above goes away
};

}  // namespace detail

/// One pass over epoch e: a single-use input range of batches. Workers start on construction
/// (prefetching while the caller does other work); destroying it stops and joins them.
template <Dataset D> class Epoch {
 public:
  using batch_type = batch_t<D>;

  class iterator {
   public:
    using iterator_concept = std::input_iterator_tag;
    using value_type = batch_type;
    using difference_type = std::ptrdiff_t;

    iterator() = default;
    explicit iterator(detail::EpochRun<D>* run) : run_(run) {}
    batch_type& operator*() const { return run_->current(); }
    batch_type* operator->() const { return &run_->current(); }
    iterator& operator++() {
      run_->advance();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) {
      return it.run_ == nullptr || !it.run_->has_current();
    }

   private:
    detail::EpochRun<D>* run_ = nullptr;
  };

  Epoch(std::shared_ptr<detail::LoaderState<D>> state, std::int64_t epoch)
      : run_(std::make_unique<detail::EpochRun<D>>(std::move(state), epoch)) {}

  /// Fetches the first batch. Only once per Epoch: batches are consumed as they are delivered.
  iterator begin() {
    AVGRAD_CHECK(run_->start(), "DataLoader", "epoch ", run_->epoch(), " is already being iterated; start a new one");
    run_->advance();
    return iterator(run_.get());
  }
  std::default_sentinel_t end() const noexcept { return {}; }

  /// Batches in this epoch (fewer are delivered when skip_bad empties a whole batch).
  std::int64_t len() const noexcept { return run_->num_batches(); }
  std::int64_t epoch() const noexcept { return run_->epoch(); }

 private:
  std::unique_ptr<detail::EpochRun<D>> run_;
};

/// Batches of a Dataset in sampler order. `for (auto& batch : loader.epoch(e))` runs epoch e;
/// `set_epoch(e)` + `for (auto& batch : loader)` does the same through begin()/end().
/// The dataset is borrowed (const D&: the caller keeps it alive), moved in (D&&) or shared.
/// Batches are batch_t<D>: D::collate's result, or std::vector<sample_type>. The collate runs in
/// the worker. Batch b holds the samples at sampler positions [b·B, (b+1)·B), minus skipped ones.
/// Throws on batch_size < 1, num_workers < 0, prefetch < 1, shuffle together with a sampler; an
/// epoch throws on sampler indices outside the dataset.
template <Dataset D> class DataLoader {
 public:
  using dataset_type = D;
  using sample_type = typename D::sample_type;
  using batch_type = batch_t<D>;
  using iterator = typename Epoch<D>::iterator;

  DataLoader(const D& dataset, LoaderOptions opt = {}) { init(nullptr, &dataset, std::move(opt)); }
  DataLoader(D&& dataset, LoaderOptions opt = {}) {
    auto owner = std::make_shared<const D>(std::move(dataset));
    const D* p = owner.get();
    init(std::move(owner), p, std::move(opt));
  }
  DataLoader(std::shared_ptr<const D> dataset, LoaderOptions opt = {}) {
    AVGRAD_CHECK(dataset != nullptr, "DataLoader", "null dataset");
    const D* p = dataset.get();
    init(std::move(dataset), p, std::move(opt));
  }

  /// Batches per epoch: ⌈n/B⌉, or ⌊n/B⌋ with drop_last, n = the sampler's size.
  std::int64_t len() const noexcept {
    const std::int64_t n = state_->sampler->size(), B = state_->opt.batch_size;
    return state_->opt.drop_last ? n / B : (n + B - 1) / B;
  }

  /// A pass over epoch e (independent of set_epoch and of other passes).
  Epoch<D> epoch(std::int64_t e) const { return Epoch<D>(state_, e); }

  void set_epoch(std::int64_t e) noexcept { epoch_ = e; }
  std::int64_t current_epoch() const noexcept { return epoch_; }
  /// Starts a pass over the set_epoch epoch, stopping one begin() started earlier.
  iterator begin() {
    current_.reset();
    current_.emplace(state_, epoch_);
    return current_->begin();
  }
  std::default_sentinel_t end() const noexcept { return {}; }

  /// Samples skipped by skip_bad over the loader's lifetime, and the last (up to 16) reasons,
  /// oldest first; each names the sample index, batch, epoch and the dataset's message.
  std::int64_t skipped() const noexcept { return state_->skipped.load(); }
  std::vector<std::string> last_errors() const {
    std::lock_guard lock(state_->errors_mutex);
    return {state_->errors.begin(), state_->errors.end()};
  }

  const D& dataset() const noexcept { return *state_->dataset; }
  const LoaderOptions& options() const noexcept { return state_->opt; }
  const Sampler& sampler() const noexcept { return *state_->sampler; }

 private:
  void init(std::shared_ptr<const D> owner, const D* dataset, LoaderOptions opt) {
    const char* op = "DataLoader";
    AVGRAD_CHECK(opt.batch_size >= 1, op, "batch_size must be >= 1, got ", opt.batch_size);
    AVGRAD_CHECK(opt.num_workers >= 0, op, "num_workers must be >= 0, got ", opt.num_workers);
    AVGRAD_CHECK(opt.prefetch >= 1, op, "prefetch must be >= 1, got ", opt.prefetch);
    AVGRAD_CHECK(!(opt.shuffle && opt.sampler), op, "shuffle and sampler are exclusive: a sampler sets the order");
    state_ = std::make_shared<detail::LoaderState<D>>();
    state_->owner = std::move(owner);
    state_->dataset = dataset;
    state_->dataset_size = static_cast<std::int64_t>(dataset->size());
    AVGRAD_CHECK(state_->dataset_size >= 0, op, "dataset reports negative size ", state_->dataset_size);
    if (opt.sampler)
      state_->sampler = opt.sampler;
    else if (opt.shuffle)
      state_->sampler = std::make_shared<RandomSampler>(state_->dataset_size, opt.seed);
    else
      state_->sampler = std::make_shared<SequentialSampler>(state_->dataset_size);
    state_->opt = std::move(opt);
  }

  std::shared_ptr<detail::LoaderState<D>> state_;
  std::int64_t epoch_ = 0;
  std::optional<Epoch<D>> current_;  // the pass begin() started; its workers stop with the loader
};

template <class D> DataLoader(std::shared_ptr<D>, LoaderOptions = {}) -> DataLoader<std::remove_const_t<D>>;

}  // namespace avgrad::data
