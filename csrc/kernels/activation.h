// The optional activation between the depthwise and the pointwise part (the Xception paper's
// Figure 10 compares none, ReLU and ELU), with its derivative, for the CPU and CUDA kernels alike.
// NaN behaves as in torch.relu / F.elu and their backward.
#pragma once

#include <cmath>

#include "host_device.h"

namespace xsep {

enum class Activation : int { kNone = 0, kRelu = 1, kElu = 2 };

template <typename T>
XSEP_HD T activate(Activation a, T v) {
  using std::expm1;
  if (a == Activation::kRelu) return v < T(0) ? T(0) : v;      // NaN < 0 is false: NaN stays
  if (a == Activation::kElu) return v > T(0) ? v : expm1(v);   // alpha = 1
  return v;
}

// d activate / d pre, at the pre-activation value.
template <typename T>
XSEP_HD T activation_grad(Activation a, T pre) {
  using std::exp;
  if (a == Activation::kRelu) return pre > T(0) ? T(1) : T(0);
  if (a == Activation::kElu) return pre <= T(0) ? exp(pre) : T(1);
  return T(1);
}

}  // namespace xsep
