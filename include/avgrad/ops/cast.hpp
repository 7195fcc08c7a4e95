// Element-type conversion: cast<TO>(x) is x's values as TO on x's device, in a fresh contiguous
// tensor. To the 16-bit storage types it rounds to nearest even (core/half.hpp); to integers it
// truncates as static_cast does. Not recorded by autograd, like to<Device>(): a tensor that
// requires grad (in grad mode) is refused rather than silently cut from its graph.
#pragma once

#include "avgrad/autograd/grad_mode.hpp"
#include "avgrad/ops/detail/elementwise.hpp"

namespace avgrad {

namespace fn {
/// v ↦ static_cast<TO>(v) on host and device.
template <class TO> struct CastTo {
  template <class TI> AVGRAD_HOST_DEVICE TO operator()(TI v) const { return static_cast<TO>(v); }
};
}  // namespace fn

template <Element TO, Element TI, Device D> Tensor<TO, D> cast(const Tensor<TI, D>& x) {
  detail::check_defined(x, "cast");
  if constexpr (Floating<TI>)
    AVGRAD_CHECK(!(x.requires_grad() && grad_enabled()), "cast",
                 "the input requires grad and a cast is not differentiable; cast x.detach()");
  return detail::map<TO>(x, fn::CastTo<TO>{});
}

}  // namespace avgrad
