// Normalisation layers with PyTorch's parameter and buffer names and defaults:
// LayerNorm, BatchNorm1d/2d/3d and GroupNorm.
#pragma once

#include <optional>

#include "avgrad/nn/activation.hpp"
#include "avgrad/nn/init.hpp"
#include "avgrad/nn/module.hpp"
#include "avgrad/ops/norm.hpp"

namespace avgrad::nn {

/// LayerNorm over the trailing `normalized_shape` dims; weight/bias of that shape
/// (ones/zeros), eps 1e-5, as torch.nn.LayerNorm.
template <Floating T, Device D = Cpu> class LayerNorm : public UnaryModule<T, D> {
 public:
  explicit LayerNorm(const Shape& normalized_shape, double eps = 1e-5, bool elementwise_affine = true)
      : shape_(normalized_shape), eps_(eps) {
    AVGRAD_CHECK(normalized_shape.rank() >= 1 && normalized_shape.numel() > 0, "LayerNorm",
                 "normalized_shape must be non-empty, got ", normalized_shape);
    if (elementwise_affine) {
      weight = ones<T, D>(normalized_shape);
      bias = zeros<T, D>(normalized_shape);
      this->register_parameter("weight", weight);
      this->register_parameter("bias", bias);
    }
  }
  Tensor<T, D> forward(const Tensor<T, D>& x) override { return layer_norm(x, shape_, weight, bias, eps_); }
  std::string describe() const override { return detail::concat("LayerNorm(", shape_, ", eps=", eps_, ")"); }

  Tensor<T, D> weight, bias;

 private:
  Shape shape_;
  double eps_;
};

/// Shared body of BatchNorm1d/2d/3d (torch.nn.BatchNorm*d). Parameters weight
/// (ones) and bias (zeros) of shape (C) when `affine`; buffers running_mean
/// (zeros), running_var (ones) and num_batches_tracked (a 0-d tensor, 0) when
/// `track_running_stats` — the key set of torch's state_dict (torch stores
/// num_batches_tracked as int64; here it is a T scalar holding the count).
///  training, tracking: batch mean and biased variance normalise; then
///    num_batches_tracked += 1 and r ← (1 − m)·r + m·batch (running_var takes the
///    unbiased variance), m = momentum, or 1/num_batches_tracked when momentum is
///    nullopt (a cumulative average, as torch's momentum=None);
///  eval, tracking: the running statistics normalise, nothing is updated;
///  not tracking: batch statistics in both modes, nothing is stored.
template <Floating T, Device D = Cpu> class BatchNormBase : public UnaryModule<T, D> {
 public:
  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    AVGRAD_CHECK(x.defined(), name_, "undefined input");
    check_rank(x);
    AVGRAD_CHECK(x.size(1) == features_, name_, "expected ", features_, " channels in dim 1 (num_features), got input ",
                 x.shape());
    const bool track = running_mean.defined();
    double factor = momentum_.value_or(0.0);
    if (this->is_training() && track) {
      NoGradGuard no_grad;
      apply_(
          num_batches_tracked, [] AVGRAD_HOST_DEVICE(T v) { return v + T(1); }, name_);
      if (!momentum_) factor = 1.0 / static_cast<double>(num_batches_tracked.template to<Cpu>().item());
    }
    const bool use_batch_stats = this->is_training() || !track;
    // running stats are passed only where they are read (eval) or updated (training)
    return batch_norm(x, weight, bias, track ? running_mean : Tensor<T, D>(), track ? running_var : Tensor<T, D>(),
                      use_batch_stats, factor, eps_);
  }

  /// As torch: "BatchNorm2d(8, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)".
  std::string describe() const override {
    return avgrad::detail::concat(name_, "(", features_, ", eps=", repr::py_float(eps_),
                                  ", momentum=", momentum_ ? repr::py_float(*momentum_) : std::string("None"),
                                  ", affine=", repr::py_bool(weight.defined()),
                                  ", track_running_stats=", repr::py_bool(running_mean.defined()), ")");
  }

  std::int64_t num_features() const { return features_; }
  double eps() const { return eps_; }
  std::optional<double> momentum() const { return momentum_; }

  Tensor<T, D> weight, bias;                                    ///< (C) when affine
  Tensor<T, D> running_mean, running_var, num_batches_tracked;  ///< (C), (C), () when tracking

 protected:
  BatchNormBase(const char* name, const char* ranks, int min_rank, int max_rank, std::int64_t num_features, double eps,
                std::optional<double> momentum, bool affine, bool track_running_stats)
      : name_(name),
        ranks_(ranks),
        min_rank_(min_rank),
        max_rank_(max_rank),
        features_(num_features),
        eps_(eps),
        momentum_(momentum) {
    AVGRAD_CHECK(num_features > 0, name, "num_features must be positive, got ", num_features);
    AVGRAD_CHECK(eps >= 0 && std::isfinite(eps), name, "eps must be finite and non-negative, got ", eps);
    AVGRAD_CHECK(!momentum || (*momentum >= 0 && *momentum <= 1), name, "momentum must be in [0, 1], got ",
                 momentum.value_or(0));
    if (affine) {
      weight = ones<T, D>({num_features});
      bias = zeros<T, D>({num_features});
      this->register_parameter("weight", weight);
      this->register_parameter("bias", bias);
    }
    if (track_running_stats) {
      running_mean = zeros<T, D>({num_features});
      running_var = ones<T, D>({num_features});
      num_batches_tracked = zeros<T, D>(Shape{});
      this->register_buffer("running_mean", running_mean);
      this->register_buffer("running_var", running_var);
      this->register_buffer("num_batches_tracked", num_batches_tracked);
    }
  }

 private:
  void check_rank(const Tensor<T, D>& x) const {
    AVGRAD_CHECK(x.dim() >= min_rank_ && x.dim() <= max_rank_, name_, "expected ", ranks_, " input, got shape ",
                 x.shape(), " (rank ", x.dim(), ")");
  }

  const char* name_;
  const char* ranks_;
  int min_rank_, max_rank_;
  std::int64_t features_;
  double eps_;
  std::optional<double> momentum_;
};

/// torch.nn.BatchNorm1d over (N, C) or (N, C, L): statistics per channel C.
template <Floating T, Device D = Cpu> class BatchNorm1d : public BatchNormBase<T, D> {
 public:
  explicit BatchNorm1d(std::int64_t num_features, double eps = 1e-5, std::optional<double> momentum = 0.1,
                       bool affine = true, bool track_running_stats = true)
      : BatchNormBase<T, D>("BatchNorm1d", "(N, C) or (N, C, L)", 2, 3, num_features, eps, momentum, affine,
                            track_running_stats) {}
};

/// torch.nn.BatchNorm2d over (N, C, H, W).
template <Floating T, Device D = Cpu> class BatchNorm2d : public BatchNormBase<T, D> {
 public:
  explicit BatchNorm2d(std::int64_t num_features, double eps = 1e-5, std::optional<double> momentum = 0.1,
                       bool affine = true, bool track_running_stats = true)
      : BatchNormBase<T, D>("BatchNorm2d", "(N, C, H, W)", 4, 4, num_features, eps, momentum, affine,
                            track_running_stats) {}
};

/// torch.nn.BatchNorm3d over (N, C, D, H, W).
template <Floating T, Device D = Cpu> class BatchNorm3d : public BatchNormBase<T, D> {
 public:
  explicit BatchNorm3d(std::int64_t num_features, double eps = 1e-5, std::optional<double> momentum = 0.1,
                       bool affine = true, bool track_running_stats = true)
      : BatchNormBase<T, D>("BatchNorm3d", "(N, C, D, H, W)", 5, 5, num_features, eps, momentum, affine,
                            track_running_stats) {}
};

/// torch.nn.GroupNorm: x (N, C, …) with C = num_channels split into num_groups
/// consecutive groups, statistics per (sample, group); weight (ones) and bias
/// (zeros) of shape (C) when affine; the same in training and eval.
template <Floating T, Device D = Cpu> class GroupNorm : public UnaryModule<T, D> {
 public:
  GroupNorm(std::int64_t num_groups, std::int64_t num_channels, double eps = 1e-5, bool affine = true)
      : groups_(num_groups), channels_(num_channels), eps_(eps) {
    AVGRAD_CHECK(num_groups > 0 && num_channels > 0 && num_channels % num_groups == 0, "GroupNorm", "num_channels ",
                 num_channels, " must be divisible by num_groups ", num_groups, " (both positive)");
    AVGRAD_CHECK(eps >= 0 && std::isfinite(eps), "GroupNorm", "eps must be finite and non-negative, got ", eps);
    if (affine) {
      weight = ones<T, D>({num_channels});
      bias = zeros<T, D>({num_channels});
      this->register_parameter("weight", weight);
      this->register_parameter("bias", bias);
    }
  }
  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    AVGRAD_CHECK(x.defined() && x.dim() >= 2 && x.size(1) == channels_, "GroupNorm", "expected input (N, ", channels_,
                 ", …), got ", x.defined() ? x.shape().str() : std::string("undefined"));
    return group_norm(x, groups_, weight, bias, eps_);
  }
  /// As torch: "GroupNorm(2, 8, eps=1e-05, affine=True)".
  std::string describe() const override {
    return avgrad::detail::concat("GroupNorm(", groups_, ", ", channels_, ", eps=", repr::py_float(eps_),
                                  ", affine=", repr::py_bool(weight.defined()), ")");
  }
  std::int64_t num_groups() const { return groups_; }
  std::int64_t num_channels() const { return channels_; }

  Tensor<T, D> weight, bias;

 private:
  std::int64_t groups_, channels_;
  double eps_;
};

}  // namespace avgrad::nn
