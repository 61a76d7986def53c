// CUDA glue of the forward: checks, device guard, current stream, dtype dispatch to the fused
// kernels in csrc/kernels, launch check. float64 (outside the kernels' contract) goes through a
// composite of ATen convolutions, logged as a fallback.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../common/dispatch_log.h"
#include "../common/sepconv_geometry.h"
#include "../kernels/sepconv_fwd.h"
#include "autotune.h"
#include "sepconv_cuda_common.h"

namespace xsep::cuda {
namespace {

at::Tensor separable_conv2d_cuda(const at::Tensor& x, const at::Tensor& dw_weight, const at::Tensor& pw_weight,
                                 const std::optional<at::Tensor>& bias, c10::IntArrayRef stride,
                                 c10::IntArrayRef padding, c10::IntArrayRef dilation,
                                 c10::string_view intermediate_activation) {
  const char* fn = "separable_conv2d";
  const Activation act = parse_activation(fn, intermediate_activation);
  const SepConvGeometry g = check_separable_conv2d_args(fn, x, dw_weight, pw_weight, bias, stride, padding, dilation);
  check_cuda_inputs(fn, g, x);
  const c10::cuda::CUDAGuard guard(x.device());

  if (x.scalar_type() == at::kDouble) {
    log_dispatch("separable_conv2d", "forward float64 fallback (ATen convolutions)");
    return composite_forward(g, x, dw_weight, pw_weight, bias, act);
  }
  const at::MemoryFormat fmt = output_memory_format(x);
  at::Tensor y = at::empty({g.N, g.Cout, g.Ho, g.Wo}, x.options().memory_format(fmt));
  if (y.numel() == 0) return y;
  if (g.C == 0) return bias.has_value() ? y.copy_(bias->view({1, g.Cout, 1, 1}).expand_as(y)) : y.zero_();

  // The kernels read x through its strides (any layout or view: no hidden copy) and the small
  // weights as dense matrices.
  const at::Tensor dw = dw_weight.contiguous();
  const at::Tensor pw = pw_weight.contiguous();
  const at::Tensor b = bias.has_value() ? bias->contiguous() : at::Tensor();
  SepConvParams p = make_params(g, x, y, fmt);
  p.y = y.mutable_data_ptr();
  p.dw_weight = dw.const_data_ptr();
  p.pw_weight = pw.const_data_ptr();
  p.bias = b.defined() ? b.const_data_ptr() : nullptr;
  p.allow_tf32 = at::globalContext().allowTF32CuDNN();
  p.activation = act;

  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const DType dtype = kernel_dtype(fn, x);
  // One launch, with the kernel knobs in force on this thread. The scratch the chosen kernel asks
  // for (the wgmma kernel's packed weight) comes from the caching allocator on this stream, asked
  // for under the same knobs (stream-ordered: freed after the launch, reused only behind it).
  const auto launch = [&]() -> LaunchResult {
    at::Tensor workspace;
    p.workspace = nullptr;
    if (const size_t bytes = sepconv_forward_workspace_bytes(p, dtype); bytes > 0) {
      workspace = at::empty({static_cast<int64_t>(bytes)}, x.options().dtype(at::kByte));
      p.workspace = workspace.mutable_data_ptr();
    }
    switch (dtype) {
      case DType::kFloat16: return sepconv_forward_fp16(p, stream);
      case DType::kBFloat16: return sepconv_forward_bf16(p, stream);
      default: return sepconv_forward_fp32(p, stream);
    }
  };
  if (autotune_wanted()) {
    // XSEP_AUTOTUNE=1: the fastest kernel for this shape, timed on its first call (autotune.h).
    const Autotuned choice = autotuned(TunedOp::kForward, autotune_key(p, dtype, x.get_device()), stream, launch);
    if (choice.knobs != nullptr) {
      const ScopedKnobOverrides scope(*choice.knobs);
      const LaunchResult r = launch();
      C10_CUDA_CHECK(static_cast<cudaError_t>(r.error));
      if (dispatch_log_active()) log_dispatch("separable_conv2d", std::string(r.variant) + " (" + choice.summary + ")");
      return y;
    }
  }
  const LaunchResult r = launch();
  C10_CUDA_CHECK(static_cast<cudaError_t>(r.error));
  log_dispatch("separable_conv2d", r.variant);
  return y;
}

}  // namespace

TORCH_LIBRARY_IMPL(xsep, CUDA, m) { m.impl("separable_conv2d", separable_conv2d_cuda); }

}  // namespace xsep::cuda
