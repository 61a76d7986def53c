// Shapes of one separable convolution, derived from (and checked against) its inputs.
// Shared by every backend's host code; kernels never see this (they get a params struct).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>
#include <c10/util/string_view.h>

#include <optional>

#include "../kernels/activation.h"

namespace xsep {

struct SepConvGeometry {
  int64_t N, C, H, W;        // input
  int64_t M;                 // depth multiplier
  int64_t Cmid;              // C * M, channels of the depthwise result
  int64_t Cout;              // output channels
  int64_t kh, kw;            // depthwise kernel
  int64_t sh, sw;            // stride
  int64_t pt, pb, pl, pr;    // padding: top, bottom, left, right
  int64_t dh, dw;            // dilation
  int64_t Ho, Wo;            // output
};

// Checks the op's arguments and derives the geometry. Throws a c10::Error (ValueError or
// TypeError in Python) that names `fn`, the argument and what it saw. The Python wrapper runs
// friendlier checks first; these guard direct torch.ops.xsep calls so none can crash.
SepConvGeometry check_separable_conv2d_args(
    const char* fn, const at::Tensor& x, const at::Tensor& dw_weight, const at::Tensor& pw_weight,
    const std::optional<at::Tensor>& bias, c10::IntArrayRef stride, c10::IntArrayRef padding,
    c10::IntArrayRef dilation);

// grad_out of the backward op has the output's shape, x's dtype and x's device.
void check_grad_out(const char* fn, const SepConvGeometry& g, const at::Tensor& grad_out, const at::Tensor& x);

// The memory format the op's output (and grad_x) takes: x's own, by PyTorch's rule.
at::MemoryFormat output_memory_format(const at::Tensor& x);

// The op's intermediate_activation argument: "none", "relu" or "elu"; anything else raises a
// ValueError naming it.
Activation parse_activation(const char* fn, c10::string_view name);

// A weight's gradient in the weight's dtype and memory format (so that it lands in optimizers'
// and DDP's buckets without a relayout).
at::Tensor like_weight(const at::Tensor& grad, const at::Tensor& weight);

}  // namespace xsep
