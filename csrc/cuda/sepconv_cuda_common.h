// Shared by the CUDA glue files: device checks, the params struct from tensors, and the
// composite (unfused, ATen) paths used where no fused kernel applies.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

#include "../common/sepconv_geometry.h"
#include "../kernels/sepconv_params.h"

namespace xsep::cuda {

// The device is CUDA, of compute capability 8.0 or newer, and every size fits the kernels' ints.
void check_cuda_inputs(const char* fn, const SepConvGeometry& g, const at::Tensor& x);

// The kernels' element type for x's dtype (fp16, bf16, fp32); a TypeError naming fn for any other.
DType kernel_dtype(const char* fn, const at::Tensor& x);

// Sizes, element strides of x and y (or of grad_y), the pointer to x. The output pointer, the
// weights and the flags are the caller's.
SepConvParams make_params(const SepConvGeometry& g, const at::Tensor& x, const at::Tensor& y, at::MemoryFormat fmt);

// The unfused op from ATen convolutions (cuDNN): explicit (possibly asymmetric) padding, then the
// depthwise convolution, the activation, and the pointwise convolution. Output in x's memory format.
at::Tensor composite_forward(const SepConvGeometry& g, const at::Tensor& x, const at::Tensor& dw_weight,
                             const at::Tensor& pw_weight, const std::optional<at::Tensor>& bias, Activation act);

// The intermediate activation with ATen ops (the composite paths).
at::Tensor apply_activation(const at::Tensor& z, Activation act);

}  // namespace xsep::cuda
