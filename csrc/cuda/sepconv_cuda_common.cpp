#include "sepconv_cuda_common.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <cuda_runtime_api.h>

#include <limits>

namespace xsep::cuda {

void check_cuda_inputs(const char* fn, const SepConvGeometry& g, const at::Tensor& x) {
  TORCH_CHECK_VALUE(x.is_cuda(), fn, ": the CUDA kernel got x on ", x.device());
  int major = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, x.device().index()));
  TORCH_CHECK(major >= 8, fn, ": the CUDA kernels need compute capability 8.0 or newer (Ampere); ", x.device(),
              " has ", major, ".x");
  // Sizes and intermediate coordinates (oy * sh - pt + ky * dh, ...) are 32-bit in the kernels.
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max() / 4;
  for (const int64_t v : {g.N, g.C, g.H + g.pt + g.pb, g.W + g.pl + g.pr, g.Cmid, g.Cout, g.Ho, g.Wo,
                          g.kh * g.dh, g.kw * g.dw, g.sh * g.Ho, g.sw * g.Wo}) {
    TORCH_CHECK_VALUE(v <= kMax, fn, ": a size (", v, ") is beyond what the CUDA kernels index with 32 bits");
  }
}

DType kernel_dtype(const char* fn, const at::Tensor& x) {
  const at::ScalarType t = x.scalar_type();
  TORCH_CHECK_TYPE(t == at::kHalf || t == at::kBFloat16 || t == at::kFloat, fn, ": no CUDA kernel for dtype ", t);
  return t == at::kHalf ? DType::kFloat16 : t == at::kBFloat16 ? DType::kBFloat16 : DType::kFloat32;
}

SepConvParams make_params(const SepConvGeometry& g, const at::Tensor& x, const at::Tensor& y, at::MemoryFormat fmt) {
  SepConvParams p{};
  p.N = static_cast<int>(g.N);
  p.C = static_cast<int>(g.C);
  p.H = static_cast<int>(g.H);
  p.W = static_cast<int>(g.W);
  p.M = static_cast<int>(g.M);
  p.Cmid = static_cast<int>(g.Cmid);
  p.Cout = static_cast<int>(g.Cout);
  p.kh = static_cast<int>(g.kh);
  p.kw = static_cast<int>(g.kw);
  p.sh = static_cast<int>(g.sh);
  p.sw = static_cast<int>(g.sw);
  p.pt = static_cast<int>(g.pt);
  p.pl = static_cast<int>(g.pl);
  p.dh = static_cast<int>(g.dh);
  p.dw = static_cast<int>(g.dw);
  p.Ho = static_cast<int>(g.Ho);
  p.Wo = static_cast<int>(g.Wo);
  for (int d = 0; d < 4; ++d) {
    p.x_stride[d] = x.stride(d);
    p.y_stride[d] = y.stride(d);
  }
  p.x = x.const_data_ptr();
  p.channels_last = fmt == at::MemoryFormat::ChannelsLast;
  set_output_divisors(p);
  return p;
}

at::Tensor apply_activation(const at::Tensor& z, Activation act) {
  switch (act) {
    case Activation::kRelu: return at::relu(z);
    case Activation::kElu: return at::elu(z);
    default: return z;
  }
}

at::Tensor composite_forward(const SepConvGeometry& g, const at::Tensor& x, const at::Tensor& dw_weight,
                             const at::Tensor& pw_weight, const std::optional<at::Tensor>& bias, Activation act) {
  const at::Tensor padded = at::constant_pad_nd(x, {g.pl, g.pr, g.pt, g.pb});
  const at::Tensor z = at::conv2d(padded, dw_weight, std::nullopt, at::IntArrayRef{g.sh, g.sw}, at::IntArrayRef{0, 0},
                                  at::IntArrayRef{g.dh, g.dw}, g.C);
  return at::conv2d(apply_activation(z, act), pw_weight, bias).contiguous(output_memory_format(x));
}

}  // namespace xsep::cuda
