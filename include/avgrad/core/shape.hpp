// Shape and strides: a fixed-capacity small vector of extents (rank <= 8), the
// broadcasting rule, and the helpers views use. Strides are in elements.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "avgrad/core/error.hpp"

namespace avgrad {

inline constexpr int kMaxRank = 8;

/// Extents or strides of a tensor. Value type, no heap allocation.
class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<std::int64_t> dims) { assign(dims.begin(), dims.end()); }
  explicit Shape(std::span<const std::int64_t> dims) { assign(dims.begin(), dims.end()); }
  Shape(const std::vector<std::int64_t>& dims) { assign(dims.begin(), dims.end()); }

  static Shape filled(int rank, std::int64_t value) {
    AVGRAD_CHECK(rank >= 0 && rank <= kMaxRank, "Shape", "rank ", rank, " outside [0, ", kMaxRank, "]");
    Shape s;
    s.rank_ = rank;
    for (int i = 0; i < rank; ++i) s.d_[i] = value;
    return s;
  }

  int size() const noexcept { return rank_; }
  int rank() const noexcept { return rank_; }
  bool empty() const noexcept { return rank_ == 0; }
  std::int64_t& operator[](int i) noexcept { return d_[i]; }
  std::int64_t operator[](int i) const noexcept { return d_[i]; }
  const std::int64_t* begin() const noexcept { return d_.data(); }
  const std::int64_t* end() const noexcept { return d_.data() + rank_; }
  std::int64_t* begin() noexcept { return d_.data(); }
  std::int64_t* end() noexcept { return d_.data() + rank_; }
  std::int64_t back() const noexcept { return d_[rank_ - 1]; }

  void push_back(std::int64_t v) {
    AVGRAD_CHECK(rank_ < kMaxRank, "Shape", "rank would exceed ", kMaxRank);
    d_[rank_++] = v;
  }
  void insert(int pos, std::int64_t v) {
    AVGRAD_CHECK(rank_ < kMaxRank, "Shape", "rank would exceed ", kMaxRank);
    for (int i = rank_; i > pos; --i) d_[i] = d_[i - 1];
    d_[pos] = v;
    ++rank_;
  }
  void erase(int pos) {
    for (int i = pos; i + 1 < rank_; ++i) d_[i] = d_[i + 1];
    --rank_;
  }

  /// Product of extents (1 for rank 0).
  std::int64_t numel() const noexcept {
    std::int64_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= d_[i];
    return n;
  }
  std::vector<std::int64_t> vec() const { return {begin(), end()}; }

  friend bool operator==(const Shape& a, const Shape& b) noexcept {
    return a.rank_ == b.rank_ && std::equal(a.begin(), a.end(), b.begin());
  }
  friend std::ostream& operator<<(std::ostream& os, const Shape& s) {
    os << '(';
    for (int i = 0; i < s.rank_; ++i) os << (i ? "," : "") << s.d_[i];
    return os << ')';
  }
  std::string str() const { return detail::concat(*this); }

 private:
  template <class It> void assign(It first, It last) {
    auto n = std::distance(first, last);
    AVGRAD_CHECK(n <= kMaxRank, "Shape", "rank ", n, " exceeds the maximum ", kMaxRank);
    rank_ = static_cast<int>(n);
    std::copy(first, last, d_.begin());
  }

  std::array<std::int64_t, kMaxRank> d_{};
  int rank_ = 0;
};

using Strides = Shape;

/// Row-major (C-order) strides of a contiguous tensor of this shape.
inline Strides contiguous_strides(const Shape& shape) {
  Strides s = Shape::filled(shape.rank(), 1);
  std::int64_t acc = 1;
  for (int i = shape.rank() - 1; i >= 0; --i) {
    s[i] = acc;
    acc *= std::max<std::int64_t>(shape[i], 1);
  }
  return s;
}

/// Normalises a possibly negative axis into [0, rank); throws naming the op.
inline int normalize_axis(std::int64_t axis, int rank, const char* op) {
  AVGRAD_CHECK(axis >= -rank && axis < std::max(rank, 1), op, "axis ", axis, " out of range for rank ", rank);
  return static_cast<int>(axis < 0 ? axis + rank : axis);
}

/// NumPy broadcasting: align trailing dims; each pair equal or one of them 1.
inline Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  int r = std::max(a.rank(), b.rank());
  Shape out = Shape::filled(r, 1);
  for (int i = 0; i < r; ++i) {
    int ia = a.rank() - r + i, ib = b.rank() - r + i;
    std::int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    AVGRAD_CHECK(da == db || da == 1 || db == 1, op, "shapes ", a, " and ", b, " do not broadcast (dim ", i, ": ", da,
                 " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

/// Strides that read a tensor of (shape, strides) as if it had shape `target`
/// (0 stride on broadcast dims). Requires shape to broadcast to target.
inline Strides broadcast_strides(const Shape& shape, const Strides& strides, const Shape& target) {
  Strides out = Shape::filled(target.rank(), 0);
  int off = target.rank() - shape.rank();
  for (int i = 0; i < shape.rank(); ++i) out[off + i] = (shape[i] == 1 && target[off + i] != 1) ? 0 : strides[i];
  return out;
}

}  // namespace avgrad
