// gradcheck: compares the tape's gradients with central finite differences.
// The scalar checked is L(x) = Σ f(x) ⊙ v for a fixed random v, so one backward
// checks vᵀJ for every input element; differences use eps in T (use double).
// Elements at kinks (ReLU at 0, max ties) are detected by disagreeing one-sided
// differences and skipped, so tests can use random inputs without hand-tuning.
#pragma once

#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "avgrad/autograd/engine.hpp"
#include "avgrad/ops/binary.hpp"

namespace avgrad {

struct GradcheckOptions {
  double eps = 1e-6;   ///< finite-difference step
  double atol = 1e-5;  ///< |analytic − numeric| ≤ atol + rtol·|numeric|
  double rtol = 1e-3;
  std::int64_t max_elements = 512;     ///< per input; larger inputs are checked on a random subset
  bool skip_kinks = true;              ///< skip elements whose one-sided differences disagree
  double kink_tol = 1e-3;              ///< relative disagreement that marks a kink
  double max_skipped_fraction = 0.25;  ///< more skipped elements than this fails the check
  std::uint64_t seed = 1234;
};

struct GradcheckResult {
  bool ok = true;
  std::int64_t checked = 0;
  std::int64_t skipped = 0;
  double max_abs_error = 0;
  std::string report;  ///< the first mismatches, naming input and element
  explicit operator bool() const { return ok; }
};

/// Checks d/dx of f at `inputs` for every input that requires grad. f must be
/// deterministic and must not modify its inputs. Inputs may be non-contiguous
/// views but must not overlap themselves (no stride-0 broadcast leaves).
/// On a device the analytic gradient comes from the device's backward and each perturbed
/// element is written through a one-element view (slow, exact: for small checks).
template <Floating T = double, Device D = Cpu>
GradcheckResult gradcheck(const std::type_identity_t<std::function<Tensor<T, D>(const std::vector<Tensor<T, D>>&)>>& f,
                          const std::type_identity_t<std::vector<Tensor<T, D>>>& inputs,
                          const GradcheckOptions& opt = {}) {
  GradcheckResult res;
  std::ostringstream report;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const auto& x = inputs[i];
    AVGRAD_CHECK(x.defined(), "gradcheck", "input ", i, " is undefined");
    AVGRAD_CHECK(x.is_leaf(), "gradcheck", "input ", i, " must be a leaf (detach() it first)");
    for (int d = 0; d < x.dim(); ++d)
      AVGRAD_CHECK(x.strides()[d] != 0 || x.shape()[d] <= 1, "gradcheck", "input ", i, " of shape ", x.shape(),
                   " has a stride-0 (broadcast) dim ", d, "; pass the small tensor and broadcast inside f");
  }
  Generator gen(opt.seed);
  Tensor<T, D> v;
  auto scalar_of = [&](const Tensor<T, D>& y) {
    NoGradGuard ng;
    auto p = detail::map<T>(
        y.detach(), v, [] AVGRAD_HOST_DEVICE(T a, T b) { return a * b; }, "gradcheck");
    double s = 0;
    for (T e : p.template to<Cpu>().to_vector()) s += static_cast<double>(e);
    return s;
  };

  // analytic: backward of Σ y ⊙ v
  std::vector<Tensor<T, D>> analytic(inputs.size());
  {
    EnableGradGuard eg;
    for (auto x : inputs) x.zero_grad();
    auto y = f(inputs);
    AVGRAD_CHECK(y.defined(), "gradcheck", "f returned an undefined tensor");
    v = randn<T, D>(y.shape(), gen);
    if (!y.requires_grad()) {
      res.report = "output does not require grad: f ignores every input that requires grad";
      bool any = false;
      for (const auto& x : inputs) any = any || x.requires_grad();
      res.ok = !any;
      return res;
    }
    y.backward(v);
    for (std::size_t i = 0; i < inputs.size(); ++i)
      if (inputs[i].requires_grad()) {
        analytic[i] = inputs[i].grad().defined() ? inputs[i].grad() : zeros_like(inputs[i]);
        auto xi = inputs[i];
        xi.zero_grad();
      }
  }

  // numeric: central differences, element by element, in no-grad mode
  NoGradGuard ng;
  const double l0 = scalar_of(f(inputs));  // the unperturbed value, shared by every element's check
  int reported = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].requires_grad()) continue;
    Tensor<T, D> x = inputs[i];
    const std::int64_t n = x.numel();
    std::vector<std::int64_t> offsets;
    for_each_offset(x.shape(), x.strides(), [&](std::int64_t o) { offsets.push_back(o); });
    std::vector<T> a = analytic[i].template to<Cpu>().to_vector();
    std::vector<std::int64_t> picks;
    if (n <= opt.max_elements) {
      for (std::int64_t e = 0; e < n; ++e) picks.push_back(e);
    } else {
      for (std::int64_t k = 0; k < opt.max_elements; ++k)
        picks.push_back(static_cast<std::int64_t>(gen.next_below(static_cast<std::uint64_t>(n))));
    }
    std::int64_t skipped_here = 0;
    for (std::int64_t e : picks) {
      const std::int64_t off = offsets[static_cast<std::size_t>(e)];
      auto element = Tensor<T, D>::from_storage(x.storage(), Shape{}, Strides{}, x.offset() + off);
      auto set = [&](T value) {
        if constexpr (std::same_as<D, Cpu>)
          *element.data() = value;
        else
          copy_(element, full<T, D>(Shape{}, value));
      };
      const T orig = element.template to<Cpu>().item();
      const T h = static_cast<T>(opt.eps);
      set(orig + h);
      double lp = scalar_of(f(inputs));
      set(orig - h);
      double lm = scalar_of(f(inputs));
      set(orig);
      double num = (lp - lm) / (2 * opt.eps);
      double fwd = (lp - l0) / opt.eps, bwd = (l0 - lm) / opt.eps;
      if (opt.skip_kinks && std::abs(fwd - bwd) > opt.kink_tol * std::max(1.0, std::abs(num)) + 1e3 * opt.eps) {
        ++res.skipped;
        ++skipped_here;
        continue;
      }
      ++res.checked;
      double an = static_cast<double>(a[static_cast<std::size_t>(e)]);
      double err = std::abs(an - num);
      res.max_abs_error = std::max(res.max_abs_error, err);
      if (!(err <= opt.atol + opt.rtol * std::abs(num))) {
        res.ok = false;
        if (reported++ < 8)
          report << "input " << i << " element " << e << ": analytic " << an << " numeric " << num << "\n";
      }
    }
    if (static_cast<double>(skipped_here) > opt.max_skipped_fraction * static_cast<double>(picks.size())) {
      res.ok = false;
      report << "input " << i << ": " << skipped_here << " of " << picks.size()
             << " elements sit at kinks; move the inputs away from non-differentiable points\n";
    }
  }
  res.report = report.str();
  return res;
}

}  // namespace avgrad
