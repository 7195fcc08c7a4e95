// Views and copies: reshape/view, permute/transpose, narrow/slice/select,
// expand, squeeze/unsqueeze, flatten share storage with their input; contiguous,
// clone and to<U> copy. Each records a backward that routes the gradient back
// to the input's layout.
#pragma once

#include <algorithm>
#include <numeric>
#include <optional>

#include "avgrad/ops/detail/elementwise.hpp"

namespace avgrad {

namespace detail {

/// Resolves one -1 extent and checks the element count.
inline Shape infer_shape(const Shape& requested, std::int64_t numel, const char* op) {
  Shape s = requested;
  int infer = -1;
  std::int64_t known = 1;
  for (int i = 0; i < s.rank(); ++i) {
    if (s[i] == -1) {
      AVGRAD_CHECK(infer < 0, op, "only one dimension can be -1 in ", requested);
      infer = i;
    } else {
      AVGRAD_CHECK(s[i] >= 0, op, "invalid extent ", s[i], " in ", requested);
      known *= s[i];
    }
  }
  if (infer >= 0) {
    AVGRAD_CHECK(known != 0 && numel % known == 0, op, "cannot infer -1 in ", requested, " for ", numel, " elements");
    s[infer] = numel / known;
  }
  AVGRAD_CHECK(s.numel() == numel, op, "shape ", requested, " is invalid for input of ", numel, " elements");
  return s;
}

/// Strides that view (shape, strides) as new_shape without copying, if any exist.
inline std::optional<Strides> view_strides(const Shape& shape, const Strides& strides, const Shape& new_shape) {
  Strides out = Shape::filled(new_shape.rank(), 1);
  if (shape.numel() == 0 || shape.rank() == 0) return contiguous_strides(new_shape);
  // Walk old dims in chunks that are contiguous among themselves; each chunk
  // must map onto a run of new dims with the same element count.
  int nd = new_shape.rank() - 1;
  std::int64_t chunk_base_stride = strides.rank() ? strides[strides.rank() - 1] : 1;
  std::int64_t tensor_numel = 1, view_numel = 1;
  for (int td = shape.rank() - 1; td >= 0; --td) {
    tensor_numel *= shape[td];
    if (td == 0 || (shape[td - 1] != 1 && strides[td - 1] != tensor_numel * chunk_base_stride)) {
      while (nd >= 0 && (view_numel < tensor_numel || new_shape[nd] == 1)) {
        out[nd] = view_numel * chunk_base_stride;
        view_numel *= new_shape[nd];
        --nd;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (td > 0) {
        chunk_base_stride = strides[td - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (nd != -1) return std::nullopt;
  return out;
}

template <Element T, Device D>
Tensor<T, D> make_view(const Tensor<T, D>& x, const Shape& shape, const Strides& strides, std::int64_t offset) {
  return Tensor<T, D>::from_storage(x.storage(), shape, strides, offset);
}

/// Records a view's backward for floating tensors; integer views carry no history.
template <Element T, Device D, class F>
Tensor<T, D> record_view(const char* name, Tensor<T, D> out, const Tensor<T, D>& x, F&& backward) {
  if constexpr (Floating<T>) {
    if (autograd::any_requires_grad<T, D>({&x}))
      return autograd::record<T, D>(name, out, {x},
                                    [bw = std::forward<F>(backward)](const Tensor<T, D>& g, const std::vector<bool>&) {
                                      return autograd::Grads<T, D>{bw(g)};
                                    });
  }
  return out;
}

/// A copy of x into a fresh contiguous tensor (no recording).
template <Element T, Device D> Tensor<T, D> copy_contiguous(const Tensor<T, D>& x) {
  return map<T>(x, Identity{});
}

/// Scatters g into zeros of `shape` through the view `make(zeros)`: the backward
/// of narrow/slice/select.
template <Floating T, Device D, class MakeView>
Tensor<T, D> scatter_into_zeros(const Tensor<T, D>& g, const Shape& shape, MakeView make) {
  auto z = zeros<T, D>(shape);
  auto v = make(z);
  map_into(
      v, g, Identity{}, "view backward");
  return z;
}

}  // namespace detail

template <Element T, Device D> Tensor<T, D> Tensor<T, D>::view(const Shape& requested) const {
  Shape s = detail::infer_shape(requested, numel(), "view");
  auto st = detail::view_strides(shape(), strides(), s);
  AVGRAD_CHECK(st.has_value(), "view", "shape ", s, " is not compatible with the strides ", strides(), " of input ",
               shape(), "; use reshape() (which copies when needed)");
  Shape in = shape();
  return detail::record_view("view", detail::make_view(*this, s, *st, offset()), *this,
                             [in](const auto& g) { return g.reshape(in); });
}

template <Element T, Device D> Tensor<T, D> Tensor<T, D>::reshape(const Shape& requested) const {
  Shape s = detail::infer_shape(requested, numel(), "reshape");
  if (auto st = detail::view_strides(shape(), strides(), s)) {
    Shape in = shape();
    return detail::record_view("reshape", detail::make_view(*this, s, *st, offset()), *this,
                               [in](const auto& g) { return g.reshape(in); });
  }
  return contiguous().view(s);
}

template <Element T, Device D> Tensor<T, D> Tensor<T, D>::permute(const Shape& order) const {
  const int r = dim();
  AVGRAD_CHECK(order.rank() == r, "permute", "order ", order, " has ", order.rank(), " entries for rank ", r);
  Shape s, st, inverse = Shape::filled(r, 0);
  std::vector<bool> used(static_cast<std::size_t>(r), false);
  for (int i = 0; i < r; ++i) {
    int a = normalize_axis(order[i], r, "permute");
    AVGRAD_CHECK(!used[static_cast<std::size_t>(a)], "permute", "axis ", a, " repeated in ", order);
    used[static_cast<std::size_t>(a)] = true;
    s.push_back(shape()[a]);
    st.push_back(strides()[a]);
    inverse[a] = i;
  }
  return detail::record_view("permute", detail::make_view(*this, s, st, offset()), *this,
                             [inverse](const auto& g) { return g.permute(inverse); });
}

template <Element T, Device D> Tensor<T, D> Tensor<T, D>::transpose(std::int64_t a, std::int64_t b) const {
  const int r = dim();
  int ia = normalize_axis(a, r, "transpose"), ib = normalize_axis(b, r, "transpose");
  Shape order = Shape::filled(r, 0);
  for (int i = 0; i < r; ++i) order[i] = i;
  std::swap(order[ia], order[ib]);
  return permute(order);
}

template <Element T, Device D> Tensor<T, D> Tensor<T, D>::t() const {
  AVGRAD_CHECK(dim() == 2, "t", "expects a 2-D tensor, got shape ", shape());
  return transpose(0, 1);
}

template <Element T, Device D>
Tensor<T, D> Tensor<T, D>::slice(std::int64_t axis, std::int64_t start, std::int64_t stop, std::int64_t step) const {
  const int a = normalize_axis(axis, dim(), "slice");
  const std::int64_t n = shape()[a];
  AVGRAD_CHECK(step > 0, "slice", "step must be positive, got ", step);
  if (start < 0) start += n;
  if (stop < 0) stop += n;
  start = std::clamp<std::int64_t>(start, 0, n);
  stop = std::clamp<std::int64_t>(stop, start, n);
  Shape s = shape(), st = strides();
  s[a] = (stop - start + step - 1) / step;
  st[a] *= step;
  const std::int64_t off = offset() + start * strides()[a];
  Shape in = shape();
  return detail::record_view("slice", detail::make_view(*this, s, st, off), *this, [=](const auto& g) {
    return detail::scatter_into_zeros(g, in, [&](const Tensor& z) { return z.detach().slice(a, start, stop, step); });
  });
}

template <Element T, Device D>
Tensor<T, D> Tensor<T, D>::narrow(std::int64_t axis, std::int64_t start, std::int64_t length) const {
  const int a = normalize_axis(axis, dim(), "narrow");
  const std::int64_t n = shape()[a];
  if (start < 0) start += n;
  AVGRAD_CHECK(start >= 0 && length >= 0 && start + length <= n, "narrow", "range [", start, ", ", start + length,
               ") out of bounds for dim ", a, " of shape ", shape());
  return slice(a, start, start + length);
}

template <Element T, Device D> Tensor<T, D> Tensor<T, D>::select(std::int64_t axis, std::int64_t index) const {
  const int a = normalize_axis(axis, dim(), "select");
  const std::int64_t n = shape()[a];
  AVGRAD_CHECK(index >= -n && index < n, "select", "index ", index, " out of range for dim ", a, " of shape ", shape());
  if (index < 0) index += n;
  Shape s = shape(), st = strides();
  s.erase(a);
  st.erase(a);
  const std::int64_t off = offset() + index * strides()[a];
  Shape in = shape();
  return detail::record_view("select", detail::make_view(*this, s, st, off), *this, [=](const auto& g) {
    return detail::scatter_into_zeros(g, in, [&](const Tensor& z) { return z.detach().select(a, index); });
  });
}

template <Element T, Device D> Tensor<T, D> Tensor<T, D>::expand(const Shape& target) const {
  AVGRAD_CHECK(target.rank() >= dim(), "expand", "cannot expand shape ", shape(), " to fewer dims ", target);
  Shape s = target;
  const int lead = target.rank() - dim();
  for (int i = 0; i < dim(); ++i) {
    if (s[lead + i] == -1) s[lead + i] = shape()[i];
    AVGRAD_CHECK(shape()[i] == s[lead + i] || shape()[i] == 1, "expand", "cannot expand shape ", shape(), " to ",
                 target, " (dim ", i, ")");
  }
  for (int i = 0; i < lead; ++i) AVGRAD_CHECK(s[i] >= 0, "expand", "invalid target ", target);
  Strides st = broadcast_strides(shape(), strides(), s);
  Shape in = shape();
  return detail::record_view("expand", detail::make_view(*this, s, st, offset()), *this,
                             [in](const auto& g) { return detail::sum_to(g, in); });
}

template <Element T, Device D> Tensor<T, D> Tensor<T, D>::squeeze() const {
  Shape s;
  for (auto d : shape())
    if (d != 1) s.push_back(d);
  return reshape(s);
}

template <Element T, Device D> Tensor<T, D> Tensor<T, D>::squeeze(std::int64_t axis) const {
  const int a = normalize_axis(axis, dim(), "squeeze");
  if (shape()[a] != 1) return *this;
  Shape s = shape();
  s.erase(a);
  return reshape(s);
}

template <Element T, Device D> Tensor<T, D> Tensor<T, D>::unsqueeze(std::int64_t axis) const {
  const int a = normalize_axis(axis, dim() + 1, "unsqueeze");
  Shape s = shape();
  s.insert(a, 1);
  return reshape(s);
}

template <Element T, Device D> Tensor<T, D> Tensor<T, D>::flatten(std::int64_t start, std::int64_t end) const {
  if (dim() == 0) return reshape(Shape{1});
  const int a = normalize_axis(start, dim(), "flatten"), b = normalize_axis(end, dim(), "flatten");
  AVGRAD_CHECK(a <= b, "flatten", "start dim ", a, " after end dim ", b);
  Shape s;
  for (int i = 0; i < a; ++i) s.push_back(shape()[i]);
  std::int64_t m = 1;
  for (int i = a; i <= b; ++i) m *= shape()[i];
  s.push_back(m);
  for (int i = b + 1; i < dim(); ++i) s.push_back(shape()[i]);
  return reshape(s);
}

template <Element T, Device D> Tensor<T, D> Tensor<T, D>::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

template <Element T, Device D> Tensor<T, D> Tensor<T, D>::clone() const {
  auto out = detail::copy_contiguous(*this);
  return detail::record_view("clone", out, *this, [](const auto& g) { return g; });
}

namespace autograd {
/// Backward of a dtype cast: converts the gradient back to the input's type.
template <Floating U, Floating T, Device D> class CastNode final : public TypedNode<U, D> {
 public:
  explicit CastNode(Shape s) : TypedNode<U, D>(s) {}
  std::string_view name() const override { return "to"; }
  void apply(const std::vector<bool>& needed) override {
    auto g = this->take_pending();
    if (!g.defined() || !needed[0]) return;
    static_cast<TypedNode<T, D>*>(this->next[0].get())->accumulate(g.template to<T>());
  }
};
}  // namespace autograd

template <Element T, Device D> template <Element U> Tensor<U, D> Tensor<T, D>::to() const {
  if constexpr (std::same_as<T, U>) {
    return *this;
  } else {
    auto out = detail::map<U>(*this, [] AVGRAD_HOST_DEVICE(T v) { return static_cast<U>(v); });
    if constexpr (Floating<T> && Floating<U>) {
      if (autograd::any_requires_grad<T, D>({this})) {
        auto node = std::make_shared<autograd::CastNode<U, T, D>>(out.shape());
        node->next.push_back(autograd::gradient_edge(*this));
        out.impl()->grad_fn = std::move(node);
      }
    }
    return out;
  }
}

}  // namespace avgrad
