// Tensor<T, D>: a shared handle to (storage, shape, strides, offset) plus the
// autograd slots. Copies share everything (like torch.Tensor); views share the
// storage; clone() and contiguous() are the only copies. Factories live here too.
//
// Invariants: rank <= 8; strides may be 0 (broadcast) or any non-negative value;
// element (i0..in) lives at data()[sum(ik * stride[k])], data() = storage + offset.
#pragma once

#include <cmath>
#include <cstdint>
#include <iomanip>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "avgrad/core/device.hpp"
#include "avgrad/core/dtype.hpp"
#include "avgrad/core/error.hpp"
#include "avgrad/core/philox.hpp"
#include "avgrad/core/shape.hpp"
#include "avgrad/core/storage.hpp"

namespace avgrad {

namespace autograd {
class Node;
template <Floating T, Device D> class AccumulateGrad;
}  // namespace autograd

template <Element T, Device D = Cpu> class Tensor;

namespace detail {

/// The shared state behind a Tensor handle.
template <Element T, Device D> struct TensorImpl {
  std::shared_ptr<Storage<T, D>> storage;
  Shape shape;
  Strides strides;
  std::int64_t offset = 0;

  // Autograd slots (meaningful for floating T only).
  bool requires_grad = false;                      ///< leaf flag set by the user
  std::shared_ptr<autograd::Node> grad_fn;         ///< producer, for non-leaves
  std::shared_ptr<TensorImpl> grad;                ///< accumulated leaf gradient
  std::weak_ptr<autograd::Node> grad_accumulator;  ///< one per leaf per live graph
};

}  // namespace detail

/// Options for Tensor::backward().
struct BackwardOptions {
  bool retain_graph = false;  ///< keep saved tensors so backward can run again
};

template <Element T, Device D> class Tensor {
 public:
  using value_type = T;
  using device_type = D;
  using Impl = detail::TensorImpl<T, D>;

  /// An undefined tensor (no storage). Ops reject it with a clear error.
  Tensor() = default;
  explicit Tensor(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

  /// A fresh contiguous tensor with uninitialised contents.
  static Tensor empty(const Shape& shape) {
    for (auto d : shape) AVGRAD_CHECK(d >= 0, "empty", "negative extent in shape ", shape);
    auto impl = std::make_shared<Impl>();
    impl->storage = std::make_shared<Storage<T, D>>(shape.numel());
    impl->shape = shape;
    impl->strides = contiguous_strides(shape);
    return Tensor(std::move(impl));
  }
  /// A view over (storage, shape, strides, offset); bounds are checked.
  static Tensor from_storage(std::shared_ptr<Storage<T, D>> storage, const Shape& shape, const Strides& strides,
                             std::int64_t offset) {
    AVGRAD_CHECK(shape.rank() == strides.rank(), "as_strided", "shape ", shape, " and strides ", strides,
                 " differ in rank");
    std::int64_t hi = offset;
    bool any_empty = false;
    for (int i = 0; i < shape.rank(); ++i) {
      AVGRAD_CHECK(shape[i] >= 0 && strides[i] >= 0, "as_strided", "negative extent or stride: shape ", shape,
                   " strides ", strides);
      if (shape[i] == 0) any_empty = true;
      hi += (shape[i] - 1) * strides[i];
    }
    AVGRAD_CHECK(offset >= 0 && (any_empty || hi < storage->size()), "as_strided", "view shape ", shape, " strides ",
                 strides, " offset ", offset, " exceeds storage of ", storage->size(), " elements");
    auto impl = std::make_shared<Impl>();
    impl->storage = std::move(storage);
    impl->shape = shape;
    impl->strides = strides;
    impl->offset = offset;
    return Tensor(std::move(impl));
  }

  // ---- metadata -----------------------------------------------------------
  bool defined() const noexcept { return impl_ != nullptr; }
  const Shape& shape() const { return checked().shape; }
  const Strides& strides() const { return checked().strides; }
  std::int64_t offset() const { return checked().offset; }
  int dim() const { return shape().rank(); }
  std::int64_t size(std::int64_t axis) const { return shape()[normalize_axis(axis, dim(), "size")]; }
  std::int64_t stride(std::int64_t axis) const { return strides()[normalize_axis(axis, dim(), "stride")]; }
  std::int64_t numel() const { return shape().numel(); }
  static constexpr std::string_view dtype() { return dtype_name<T>(); }
  static constexpr std::string_view device() { return D::name; }

  /// True when elements are laid out in row-major order with no gaps.
  bool is_contiguous() const {
    const Impl& t = checked();
    std::int64_t expect = 1;
    for (int i = t.shape.rank() - 1; i >= 0; --i) {
      if (t.shape[i] == 1) continue;
      if (t.strides[i] != expect) return false;
      expect *= t.shape[i];
    }
    return true;
  }

  T* data() { return checked().storage->data() + impl_->offset; }
  const T* data() const { return checked().storage->data() + impl_->offset; }
  const std::shared_ptr<Storage<T, D>>& storage() const { return checked().storage; }
  Impl* impl() const noexcept { return impl_.get(); }
  const std::shared_ptr<Impl>& impl_ptr() const noexcept { return impl_; }
  /// True when both handles share one impl (the same tensor, not just equal values).
  bool is_same(const Tensor& o) const noexcept { return impl_ == o.impl_; }

  // ---- element access (host tensors; for tests and small glue code) --------
  /// Element at a full multi-index; bounds-checked.
  T at(std::initializer_list<std::int64_t> idx) const requires std::same_as<D, Cpu> {
    return data()[linear_offset(idx, "at")];
  }
  /// Writes one element (bumps the version: saved copies in a graph are stale).
  void set(std::initializer_list<std::int64_t> idx, T value) requires std::same_as<D, Cpu> {
    data()[linear_offset(idx, "set")] = value;
    impl_->storage->bump_version();
  }
  /// The value of a one-element tensor.
  T item() const requires std::same_as<D, Cpu> {
    AVGRAD_CHECK(numel() == 1, "item", "tensor of shape ", shape(), " has ", numel(), " elements, expected 1");
    return *data();
  }
  /// Elements in row-major order.
  std::vector<T> to_vector() const requires std::same_as<D, Cpu>;

  // ---- autograd -------------------------------------------------------------
  bool requires_grad() const {
    const Impl& t = checked();
    return t.requires_grad || t.grad_fn != nullptr;
  }
  /// Marks a leaf as requiring grad (in place; returns *this for chaining).
  Tensor& requires_grad_(bool on = true) {
    static_assert(Floating<T>, "only floating tensors can require grad");
    Impl& t = checked();
    AVGRAD_CHECK(t.grad_fn == nullptr || on, "requires_grad_",
                 "cannot clear requires_grad on a non-leaf; use detach()");
    t.requires_grad = on;
    return *this;
  }
  bool is_leaf() const { return checked().grad_fn == nullptr; }
  const std::shared_ptr<autograd::Node>& grad_fn() const { return checked().grad_fn; }
  /// Accumulated gradient of a leaf (undefined until a backward reached it).
  Tensor grad() const {
    const Impl& t = checked();
    return t.grad ? Tensor(t.grad) : Tensor();
  }
  void set_grad(const Tensor& g) { checked().grad = g.impl_; }
  /// Drops the accumulated gradient (set_to_none semantics, like PyTorch's default).
  void zero_grad() { checked().grad.reset(); }
  /// Same storage, no history, requires_grad false.
  Tensor detach() const {
    const Impl& t = checked();
    auto impl = std::make_shared<Impl>();
    impl->storage = t.storage;
    impl->shape = t.shape;
    impl->strides = t.strides;
    impl->offset = t.offset;
    return Tensor(std::move(impl));
  }
  /// Reverse-mode sweep from this tensor (defined in autograd/engine.hpp).
  void backward(const Tensor& seed = Tensor(), BackwardOptions opts = {}) const;

  // ---- views and copies (defined in ops/view.hpp) ---------------------------
  Tensor reshape(const Shape& shape) const;
  Tensor view(const Shape& shape) const;
  Tensor permute(const Shape& order) const;
  Tensor transpose(std::int64_t a, std::int64_t b) const;
  Tensor t() const;
  Tensor narrow(std::int64_t axis, std::int64_t start, std::int64_t length) const;
  Tensor slice(std::int64_t axis, std::int64_t start, std::int64_t stop, std::int64_t step = 1) const;
  Tensor select(std::int64_t axis, std::int64_t index) const;
  Tensor expand(const Shape& shape) const;
  Tensor squeeze() const;
  Tensor squeeze(std::int64_t axis) const;
  Tensor unsqueeze(std::int64_t axis) const;
  Tensor flatten(std::int64_t start = 0, std::int64_t end = -1) const;
  Tensor contiguous() const;
  Tensor clone() const;
  template <Element U> Tensor<U, D> to() const;
  /// A contiguous copy on device E (this tensor itself when E is D). A copy is not
  /// recorded by autograd: a leaf that requires grad arrives as a new leaf that requires
  /// grad (how a model's parameters move); moving a non-leaf is refused, since its graph
  /// could not reach the copy. Build a graph on one device.
  template <Device E> Tensor<T, E> to() const;

  // ---- printing ---------------------------------------------------------------
  friend std::ostream& operator<<(std::ostream& os, const Tensor& x) requires std::same_as<D, Cpu> {
    if (!x.defined()) return os << "Tensor(undefined)";
    os << "Tensor(shape=" << x.shape() << ", dtype=" << dtype_name<T>() << ", device=" << D::name;
    if (x.requires_grad()) os << ", requires_grad";
    os << ")\n";
    auto v = x.to_vector();
    const std::int64_t cap = 64;
    os << std::setprecision(6) << '[';
    for (std::int64_t i = 0; i < std::min<std::int64_t>(cap, static_cast<std::int64_t>(v.size())); ++i) {
      if (i) os << (x.dim() && i % x.shape().back() == 0 ? ",\n " : ", ");
      if constexpr (std::same_as<T, bool> || std::same_as<T, std::uint8_t>)
        os << int(v[i]);
      else
        os << v[i];
    }
    if (static_cast<std::int64_t>(v.size()) > cap) os << ", ... (" << v.size() << " elements)";
    return os << ']';
  }
  std::string str() const requires std::same_as<D, Cpu> {
    std::ostringstream os;
    os << *this;
    return os.str();
  }

 private:
  Impl& checked() const {
    AVGRAD_CHECK(impl_ != nullptr, "Tensor", "use of an undefined tensor");
    return *impl_;
  }
  std::int64_t linear_offset(std::initializer_list<std::int64_t> idx, const char* op) const {
    const Impl& t = checked();
    AVGRAD_CHECK(static_cast<int>(idx.size()) == t.shape.rank(), op, "index of rank ", idx.size(),
                 " for tensor of shape ", t.shape);
    std::int64_t off = 0;
    int k = 0;
    for (std::int64_t i : idx) {
      AVGRAD_CHECK(i >= 0 && i < t.shape[k], op, "index ", i, " out of range for dim ", k, " of shape ", t.shape);
      off += i * t.strides[k++];
    }
    return off;
  }

  std::shared_ptr<Impl> impl_;
};

/// Calls f(offset) for every element of (shape, strides) in row-major order.
template <class F> void for_each_offset(const Shape& shape, const Strides& strides, F&& f) {
  const int r = shape.rank();
  if (shape.numel() == 0) return;
  std::array<std::int64_t, kMaxRank> idx{};
  std::int64_t off = 0;
  const std::int64_t n = shape.numel();
  for (std::int64_t e = 0; e < n; ++e) {
    f(off);
    for (int k = r - 1; k >= 0; --k) {
      if (++idx[k] < shape[k]) {
        off += strides[k];
        break;
      }
      off -= (shape[k] - 1) * strides[k];
      idx[k] = 0;
    }
  }
}

template <Element T, Device D> std::vector<T> Tensor<T, D>::to_vector() const requires std::same_as<D, Cpu> {
  std::vector<T> out;
  out.reserve(static_cast<std::size_t>(numel()));
  const T* p = data();
  for_each_offset(shape(), strides(), [&](std::int64_t off) { out.push_back(p[off]); });
  return out;
}

namespace backend {
/// Device hooks of the factories and of Tensor::to<Device>(). The CPU paths are written
/// inline below; the CUDA backend specialises these in cuda/avgrad/cuda/ (nvcc only), so a
/// Tensor<T, Cuda> factory used without those headers fails to compile, not to run.
template <Device D> struct Fill;                    // constant(p, n, v), uniform(...), normal(...)
template <Device From, Device To> struct Transfer;  // copy(Tensor<T, From>) -> Tensor<T, To>
}  // namespace backend

template <Element T, Device D> template <Device E> Tensor<T, E> Tensor<T, D>::to() const {
  if constexpr (std::same_as<E, D>) {
    return *this;
  } else {
    const Impl& t = checked();
    AVGRAD_CHECK(t.grad_fn == nullptr, "to", "moving a non-leaf that requires grad from ", D::name, " to ", E::name,
                 " would cut its graph; detach() it first or build the graph on ", E::name);
    auto out = backend::Transfer<D, E>::copy(*this);
    if constexpr (Floating<T>)
      if (t.requires_grad) out.requires_grad_();
    return out;
  }
}

// ---- factories ----------------------------------------------------------------

template <Element T, Device D = Cpu> Tensor<T, D> empty(const Shape& shape) { return Tensor<T, D>::empty(shape); }

template <Element T, Device D = Cpu> Tensor<T, D> full(const Shape& shape, T value) {
  auto t = Tensor<T, D>::empty(shape);
  T* p = t.data();
  const std::int64_t n = t.numel();
  if constexpr (std::same_as<D, Cpu>) {
#pragma omp parallel for simd if (n > 65536)
    for (std::int64_t i = 0; i < n; ++i) p[i] = value;
  } else {
    backend::Fill<D>::constant(p, n, value);
  }
  return t;
}
template <Element T, Device D = Cpu> Tensor<T, D> zeros(const Shape& shape) { return full<T, D>(shape, T(0)); }
template <Element T, Device D = Cpu> Tensor<T, D> ones(const Shape& shape) { return full<T, D>(shape, T(1)); }
template <Element T, Device D = Cpu> Tensor<T, D> scalar(T value) { return full<T, D>(Shape{}, value); }

/// [start, stop) with the given step, like numpy.arange.
template <Element T, Device D = Cpu> Tensor<T, D> arange(double start, double stop, double step = 1.0) {
  if constexpr (!std::same_as<D, Cpu>)
    return arange<T, Cpu>(start, stop, step).template to<D>();  // small: built on the host
  else {
    AVGRAD_CHECK(step != 0 && std::isfinite(start) && std::isfinite(stop) && std::isfinite(step), "arange",
                 "invalid range start=", start, " stop=", stop, " step=", step);
    auto n = static_cast<std::int64_t>(std::ceil((stop - start) / step));
    auto t = Tensor<T, D>::empty(Shape{std::max<std::int64_t>(n, 0)});
    for (std::int64_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<T>(start + static_cast<double>(i) * step);
    return t;
  }
}
template <Element T, Device D = Cpu> Tensor<T, D> arange(double stop) { return arange<T, D>(0.0, stop, 1.0); }

/// `steps` evenly spaced values from start to stop inclusive.
template <Floating T, Device D = Cpu> Tensor<T, D> linspace(double start, double stop, std::int64_t steps) {
  if constexpr (!std::same_as<D, Cpu>)
    return linspace<T, Cpu>(start, stop, steps).template to<D>();  // small: built on the host
  else {
    AVGRAD_CHECK(steps >= 0, "linspace", "negative number of steps ", steps);
    auto t = Tensor<T, D>::empty(Shape{steps});
    const double h = steps > 1 ? (stop - start) / static_cast<double>(steps - 1) : 0.0;
    for (std::int64_t i = 0; i < steps; ++i)
      t.data()[i] = static_cast<T>(i == steps - 1 && steps > 1 ? stop : start + h * static_cast<double>(i));
    return t;
  }
}

/// n x m identity (m defaults to n).
template <Element T, Device D = Cpu> Tensor<T, D> eye(std::int64_t n, std::int64_t m = -1) {
  if constexpr (!std::same_as<D, Cpu>)
    return eye<T, Cpu>(n, m).template to<D>();  // small: built on the host
  else {
    if (m < 0) m = n;
    auto t = zeros<T, D>(Shape{n, m});
    for (std::int64_t i = 0; i < std::min(n, m); ++i) t.data()[i * m + i] = T(1);
    return t;
  }
}

/// Uniform in [low, high) from the Philox stream of `gen`.
template <Floating T, Device D = Cpu>
Tensor<T, D> rand(const Shape& shape, Generator& gen = default_generator(), double low = 0.0, double high = 1.0) {
  auto t = Tensor<T, D>::empty(shape);
  const std::int64_t n = t.numel();
  const std::uint64_t off = gen.advance(static_cast<std::uint64_t>(n));
  const std::uint64_t key = gen.seed();
  T* p = t.data();
  const T lo = static_cast<T>(low), span = static_cast<T>(high - low);
  if constexpr (std::same_as<D, Cpu>) {
#pragma omp parallel for if (n > 16384)
    for (std::int64_t i = 0; i < n; ++i) p[i] = lo + span * philox_uniform<T>(key, off, static_cast<std::uint64_t>(i));
  } else {
    backend::Fill<D>::uniform(p, n, key, off, lo, span);  // the same Philox stream as the CPU
  }
  return t;
}

/// Normal(mean, std) from the Philox stream of `gen`.
template <Floating T, Device D = Cpu>
Tensor<T, D> randn(const Shape& shape, Generator& gen = default_generator(), double mean = 0.0, double std = 1.0) {
  auto t = Tensor<T, D>::empty(shape);
  const std::int64_t n = t.numel();
  const std::uint64_t off = gen.advance(static_cast<std::uint64_t>(n));
  const std::uint64_t key = gen.seed();
  T* p = t.data();
  if constexpr (std::same_as<D, Cpu>) {
#pragma omp parallel for if (n > 16384)
    for (std::int64_t i = 0; i < n; ++i)
      p[i] =
          static_cast<T>(mean + std * static_cast<double>(philox_normal<T>(key, off, static_cast<std::uint64_t>(i))));
  } else {
    backend::Fill<D>::normal(p, n, key, off, mean, std);
  }
  return t;
}

/// Uniform integers in [low, high).
template <Element T, Device D = Cpu>
Tensor<T, D> randint(std::int64_t low, std::int64_t high, const Shape& shape, Generator& gen = default_generator()) {
  if constexpr (!std::same_as<D, Cpu>)
    return randint<T, Cpu>(low, high, shape, gen).template to<D>();  // small: built on the host
  else {
    AVGRAD_CHECK(high > low, "randint", "empty range [", low, ", ", high, ")");
    auto t = Tensor<T, D>::empty(shape);
    const std::int64_t n = t.numel();
    const std::uint64_t off = gen.advance(static_cast<std::uint64_t>(n));
    const auto span = static_cast<std::uint64_t>(high - low);
    for (std::int64_t i = 0; i < n; ++i) {
      PhiloxBlock b = philox4x32_10(off + static_cast<std::uint64_t>(i), 3, gen.seed());
      std::uint64_t x = (static_cast<std::uint64_t>(b.v[0]) << 32) | b.v[1];
      t.data()[i] = static_cast<T>(low + static_cast<std::int64_t>(x % span));
    }
    return t;
  }
}

/// Copies values into a new tensor; values.size() must equal shape.numel().
template <Element T, Device D = Cpu> Tensor<T, D> from_vector(const std::vector<T>& values, const Shape& shape) {
  if constexpr (!std::same_as<D, Cpu>)
    return from_vector<T, Cpu>(values, shape).template to<D>();  // small: built on the host
  else {
    AVGRAD_CHECK(static_cast<std::int64_t>(values.size()) == shape.numel(), "from_vector", values.size(),
                 " values do not fill shape ", shape);
    auto t = Tensor<T, D>::empty(shape);
    std::copy(values.begin(), values.end(), t.data());
    return t;
  }
}
template <Element T, Device D = Cpu> Tensor<T, D> from_vector(const std::vector<T>& values) {
  return from_vector<T, D>(values, Shape{static_cast<std::int64_t>(values.size())});
}

/// Non-owning contiguous view of caller memory; the caller keeps it alive and
/// must not free it while any view exists.
template <Element T, Device D = Cpu> Tensor<T, D> from_blob(T* data, const Shape& shape) {
  AVGRAD_CHECK(data != nullptr || shape.numel() == 0, "from_blob", "null pointer for shape ", shape);
  auto storage = std::make_shared<Storage<T, D>>(data, shape.numel());
  return Tensor<T, D>::from_storage(std::move(storage), shape, contiguous_strides(shape), 0);
}

/// Same shape, dtype, device; uninitialised / zeros / ones.
template <Element T, Device D> Tensor<T, D> empty_like(const Tensor<T, D>& x) { return Tensor<T, D>::empty(x.shape()); }
template <Element T, Device D> Tensor<T, D> zeros_like(const Tensor<T, D>& x) { return zeros<T, D>(x.shape()); }
template <Element T, Device D> Tensor<T, D> ones_like(const Tensor<T, D>& x) { return ones<T, D>(x.shape()); }

}  // namespace avgrad
