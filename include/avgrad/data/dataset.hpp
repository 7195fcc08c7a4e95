// The Dataset concept the DataLoader consumes, batch-building helpers (a copying stack with no
// autograd) and TensorDataset over N-first tensors. A dataset's const get() may be called from
// several loader threads at once, so it must not mutate shared state without its own locking.
#pragma once

#include <concepts>
#include <cstdint>
#include <cstring>
#include <functional>
#include <iterator>
#include <ranges>
#include <type_traits>
#include <utility>
#include <vector>

#include "avgrad/core/error.hpp"
#include "avgrad/core/tensor.hpp"

namespace avgrad::data {

/// A dataset: random access to samples. `get(i)` for i in [0, size()) is const and thread-safe.
template <class D>
concept Dataset = requires(const D& d, std::int64_t i) {
  typename D::sample_type;
  { d.size() } -> std::convertible_to<std::int64_t>;
  { d.get(i) } -> std::convertible_to<typename D::sample_type>;
};

/// Optional: single-label datasets expose `label(i)` so the class-balanced sampler can group
/// samples by class without decoding them.
template <class D>
concept LabeledDataset = Dataset<D> && requires(const D& d, std::int64_t i) {
  { d.label(i) } -> std::convertible_to<std::int64_t>;
};

/// Optional: `using batch_type = ...;` and `static batch_type collate(std::vector<sample_type>&&)`.
/// The loader yields batch_type when present, else the std::vector<sample_type> itself.
template <class D>
concept CollatingDataset = Dataset<D> && requires(std::vector<typename D::sample_type>&& v) {
  typename D::batch_type;
  { D::collate(std::move(v)) } -> std::convertible_to<typename D::batch_type>;
};

namespace detail {
template <class D> struct BatchOf { using type = std::vector<typename D::sample_type>; };
template <CollatingDataset D> struct BatchOf<D> { using type = typename D::batch_type; };
}  // namespace detail

/// What a DataLoader over D yields per step.
template <Dataset D> using batch_t = typename detail::BatchOf<D>::type;

/// Turns B samples into one batch: D::collate when the dataset has one, else the samples as they are.
template <Dataset D> batch_t<D> collate(std::vector<typename D::sample_type>&& samples) {
  if constexpr (CollatingDataset<D>)
    return D::collate(std::move(samples));
  else
    return std::move(samples);
}

/// Stacks the tensors proj(item) of B items, all of one shape S, into a fresh contiguous (B, S...)
/// tensor. Contiguous inputs are copied with one memcpy each; strided ones element by element.
/// No autograd: batches are inputs, not graph nodes. Throws when `items` is empty, a tensor is
/// undefined, or shapes differ (naming the position and both shapes).
template <class Range, class Proj = std::identity>
auto stack_batch(const Range& items, Proj proj = {}, const char* op = "stack_batch") {
  using Item = std::ranges::range_value_t<Range>;
  using X = std::remove_cvref_t<std::invoke_result_t<Proj&, const Item&>>;
  using T = typename X::value_type;
  static_assert(std::same_as<X, Tensor<T, Cpu>>, "stack_batch: the projection must yield a host tensor");
  const auto count = static_cast<std::int64_t>(std::ranges::size(items));
  AVGRAD_CHECK(count > 0, op, "cannot stack an empty batch");
  auto it = std::ranges::begin(items);
  const X& first = std::invoke(proj, *it);
  AVGRAD_CHECK(first.defined(), op, "item 0 holds an undefined tensor");
  const Shape sample_shape = first.shape();
  AVGRAD_CHECK(sample_shape.rank() < kMaxRank, op, "a sample of shape ", sample_shape,
               " leaves no room for the batch axis");
  Shape batch_shape = sample_shape;
  batch_shape.insert(0, count);
  auto out = Tensor<T, Cpu>::empty(batch_shape);  // (B, S...)
  const std::int64_t per = sample_shape.numel();
  T* dst = out.data();
  for (std::int64_t k = 0; k < count; ++k, ++it, dst += per) {
    const X& x = std::invoke(proj, *it);
    AVGRAD_CHECK(x.defined(), op, "item ", k, " holds an undefined tensor");
    AVGRAD_CHECK(x.shape() == sample_shape, op, "item ", k, " has shape ", x.shape(), " but item 0 has shape ",
                 sample_shape);
    if (per == 0) continue;
    if (x.is_contiguous()) {
      std::memcpy(static_cast<void*>(dst), static_cast<const void*>(x.data()),
                  static_cast<std::size_t>(per) * sizeof(T));
    } else {
      const T* src = x.data();
      T* d = dst;
      for_each_offset(x.shape(), x.strides(), [&](std::int64_t off) { *d++ = src[off]; });
    }
  }
  return out;
}

/// Gathers the scalars proj(item) of B items into a (B) tensor of T (labels, lengths, ids).
template <Element T, class Range, class Proj> Tensor<T, Cpu> stack_values(const Range& items, Proj proj) {
  auto out = Tensor<T, Cpu>::empty(Shape{static_cast<std::int64_t>(std::ranges::size(items))});  // (B)
  T* p = out.data();
  for (const auto& item : items) *p++ = static_cast<T>(std::invoke(proj, item));
  return out;
}

/// Samples are rows of N-first tensors: features (N, ...) and int64 labels (N), like
/// torch.utils.data.TensorDataset. get(i) returns a view of row i (no copy); collate stacks rows
/// into fresh contiguous batches, so a batch never aliases the dataset.
template <Element T> class TensorDataset {
 public:
  struct Sample {
    Tensor<T, Cpu> x;  // (...): one row of the features, a view
    std::int64_t label = 0;
  };
  struct Batch {
    Tensor<T, Cpu> x;                  // (B, ...)
    Tensor<std::int64_t, Cpu> labels;  // (B)
  };
  using sample_type = Sample;
  using batch_type = Batch;

  /// features (N, ...) of any strides, labels (N). Throws on rank or length mismatch.
  TensorDataset(Tensor<T, Cpu> features, const Tensor<std::int64_t, Cpu>& labels) : features_(std::move(features)) {
    AVGRAD_CHECK(features_.defined() && labels.defined(), "TensorDataset", "features and labels must be defined");
    AVGRAD_CHECK(features_.dim() >= 1, "TensorDataset", "features must be (N, ...), got shape ", features_.shape());
    AVGRAD_CHECK(labels.dim() == 1 && labels.size(0) == features_.size(0), "TensorDataset", "labels of shape ",
                 labels.shape(), " do not match features of shape ", features_.shape(), ": expected (",
                 features_.size(0), ")");
    labels_ = labels.to_vector();  // label(i) is then a plain load, safe from any thread
    row_shape_ = features_.shape();
    row_shape_.erase(0);
    row_strides_ = features_.strides();
    row_strides_.erase(0);
  }

  std::int64_t size() const noexcept { return static_cast<std::int64_t>(labels_.size()); }

  Sample get(std::int64_t i) const {
    check_index(i);
    // A view over the same storage: rows are copied once, by collate, straight into the batch.
    auto row = Tensor<T, Cpu>::from_storage(features_.storage(), row_shape_, row_strides_,
                                            features_.offset() + i * features_.stride(0));
    return {std::move(row), labels_[static_cast<std::size_t>(i)]};
  }

  std::int64_t label(std::int64_t i) const {
    check_index(i);
    return labels_[static_cast<std::size_t>(i)];
  }

  static Batch collate(std::vector<Sample>&& samples) {
    return {stack_batch(samples, &Sample::x, "TensorDataset::collate"),
            stack_values<std::int64_t>(samples, &Sample::label)};
  }

  const Tensor<T, Cpu>& features() const noexcept { return features_; }

 private:
  void check_index(std::int64_t i) const {
    AVGRAD_CHECK(i >= 0 && i < size(), "TensorDataset", "index ", i, " out of range [0, ", size(), ")");
  }

  Tensor<T, Cpu> features_;
  std::vector<std::int64_t> labels_;
  Shape row_shape_;
  Strides row_strides_;
};

}  // namespace avgrad::data
