// CUDA glue of the backward: checks, device guard, current stream, the plan and its fp32
// workspace, dtype dispatch to the fused kernels in csrc/kernels, launch check. float64 and the
// shapes the plan cannot take (a depth multiplier above 64, a halo larger than a tile) go
// through a composite of ATen ops instead, logged as a fallback. With XSEP_AUTOTUNE=1 the kernels
// that serve a shape are the fastest of those timed on its first call (autotune.h).
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <torch/library.h>

#include <cstdio>
#include <string>

#include "../common/dispatch_log.h"
#include "../common/sepconv_geometry.h"
#include "../kernels/sepconv_bwd.h"
#include "autotune.h"
#include "sepconv_cuda_common.h"

namespace xsep::cuda {
namespace {

using Grads = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// d act(z) / dz times grad, with ATen ops.
at::Tensor activation_backward(const at::Tensor& grad, const at::Tensor& z, Activation act) {
  switch (act) {
    case Activation::kRelu: return grad * (z > 0);
    case Activation::kElu: return grad * at::where(z <= 0, z.exp(), at::ones_like(z));
    default: return grad;
  }
}

// Z recomputed from x with ATen (cuDNN), then the two convolutions' backward.
Grads composite_backward(const SepConvGeometry& g, const at::Tensor& grad_out, const at::Tensor& x,
                         const at::Tensor& dw_weight, const at::Tensor& pw_weight, Activation act,
                         std::array<bool, 4> output_mask) {
  const auto [want_x, want_dw, want_pw, want_bias] = output_mask;
  const auto not_wanted = [&] { return at::empty({0}, x.options()); };
  at::Tensor grad_x = not_wanted(), grad_dw = not_wanted(), grad_pw = not_wanted(), grad_bias = not_wanted();
  if (want_x || want_dw || want_pw) {
    const at::Tensor padded = at::constant_pad_nd(x, {g.pl, g.pr, g.pt, g.pb});
    const at::Tensor z = at::conv2d(padded, dw_weight, std::nullopt, at::IntArrayRef{g.sh, g.sw}, at::IntArrayRef{0, 0},
                                    at::IntArrayRef{g.dh, g.dw}, g.C);
    const bool want_z = want_x || want_dw;
    auto [grad_a, gpw, unused_pw_bias] = at::convolution_backward(grad_out, apply_activation(z, act), pw_weight,
                                                                  std::nullopt, {1, 1}, {0, 0}, {1, 1}, false, {0, 0},
                                                                  1, {want_z, want_pw, false});
    if (want_pw) grad_pw = like_weight(gpw, pw_weight);
    if (want_z) {
      const at::Tensor grad_z = activation_backward(grad_a, z, act);
      auto [grad_padded, gdw, unused_dw_bias] =
          at::convolution_backward(grad_z, padded, dw_weight, std::nullopt, {g.sh, g.sw}, {0, 0}, {g.dh, g.dw}, false,
                                   {0, 0}, g.C, {want_x, want_dw, false});
      if (want_x) grad_x = grad_padded.narrow(2, g.pt, g.H).narrow(3, g.pl, g.W).contiguous(output_memory_format(x));
      if (want_dw) grad_dw = like_weight(gdw, dw_weight);
    }
  }
  if (want_bias) {
    const auto acc = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    grad_bias = grad_out.sum({0, 2, 3}, false, acc).to(x.scalar_type());
  }
  return {grad_x, grad_dw, grad_pw, grad_bias};
}

// t itself where it has dense channels_last strides (as with_dense_channels_last assumes, also
// where a size of 1 would let other strides pass as channels_last) and a 16-byte aligned start,
// else a fresh channels_last tensor holding t's values (or, copy_values false, only its shape).
at::Tensor dense_channels_last(const at::Tensor& t, bool copy_values = true) {
  const int64_t c = t.size(1), row = t.size(3) * c;
  const bool dense = t.stride(0) == t.size(2) * row && t.stride(1) == 1 && t.stride(2) == row && t.stride(3) == c;
  if (dense && reinterpret_cast<uintptr_t>(t.const_data_ptr()) % 16 == 0) return t;
  at::Tensor copy = at::empty(t.sizes(), t.options().memory_format(at::MemoryFormat::ChannelsLast));
  return copy_values ? copy.copy_(t) : copy;
}

Grads separable_conv2d_backward_cuda(const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& dw_weight,
                                     const at::Tensor& pw_weight, c10::IntArrayRef stride, c10::IntArrayRef padding,
                                     c10::IntArrayRef dilation, c10::string_view intermediate_activation,
                                     std::array<bool, 4> output_mask) {
  const char* fn = "separable_conv2d_backward";
  const Activation act = parse_activation(fn, intermediate_activation);
  const SepConvGeometry g =
      check_separable_conv2d_args(fn, x, dw_weight, pw_weight, std::nullopt, stride, padding, dilation);
  check_cuda_inputs(fn, g, x);
  check_grad_out(fn, g, grad_out, x);
  const c10::cuda::CUDAGuard guard(x.device());

  if (x.scalar_type() == at::kDouble) {
    log_dispatch("separable_conv2d_backward", "backward float64 fallback (ATen convolution_backward)");
    return composite_backward(g, grad_out, x, dw_weight, pw_weight, act, output_mask);
  }
  const auto [want_x, want_dw, want_pw, want_bias] = output_mask;
  const at::MemoryFormat fmt = output_memory_format(x);
  const auto not_wanted = [&] { return at::empty({0}, x.options()); };
  // Outputs in x's dtype; the weight gradients take the weights' layout at the end (like_weight).
  at::Tensor grad_x = want_x ? at::empty(x.sizes(), x.options().memory_format(fmt)) : not_wanted();
  at::Tensor grad_dw = want_dw ? at::empty({g.Cmid, 1, g.kh, g.kw}, x.options()) : not_wanted();
  at::Tensor grad_pw = want_pw ? at::empty({g.Cout, g.Cmid, 1, 1}, x.options()) : not_wanted();
  at::Tensor grad_bias = want_bias ? at::empty({g.Cout}, x.options()) : not_wanted();
  const auto finish = [&] {
    if (want_dw) grad_dw = like_weight(grad_dw, dw_weight);
    if (want_pw) grad_pw = like_weight(grad_pw, pw_weight);
    return Grads{grad_x, grad_dw, grad_pw, grad_bias};
  };
  if (grad_out.numel() == 0 || x.numel() == 0) {  // nothing flows: every gradient is zero
    for (at::Tensor* t : {&grad_x, &grad_dw, &grad_pw, &grad_bias}) t->zero_();
    return finish();
  }

  const at::Tensor dw = dw_weight.contiguous();
  const at::Tensor pw = pw_weight.contiguous();
  const DType dtype = kernel_dtype(fn, x);
  // p's pointers and strides at the tensors the kernels read and write (x, grad_out, grad_x, in
  // layout `layout`): the call's own, or channels_last copies of them (below).
  const auto point_at = [&](SepConvBwdParams& p, const at::Tensor& x_k, const at::Tensor& grad_out_k,
                            const at::Tensor& grad_x_k, at::MemoryFormat layout) {
    p.fwd = make_params(g, x_k, grad_out_k, layout);  // y's strides are grad_out's
    p.fwd.dw_weight = dw.const_data_ptr();
    p.fwd.pw_weight = pw.const_data_ptr();
    p.fwd.allow_tf32 = at::globalContext().allowTF32CuDNN();
    p.fwd.activation = act;
    p.grad_y = grad_out_k.const_data_ptr();
    if (want_x) {
      p.grad_x = grad_x_k.mutable_data_ptr();
      for (int d = 0; d < 4; ++d) p.gx_stride[d] = grad_x_k.stride(d);
    }
  };
  SepConvBwdParams planned{};
  point_at(planned, x, grad_out, grad_x, fmt);
  planned.grad_dw = want_dw ? grad_dw.mutable_data_ptr() : nullptr;
  planned.grad_pw = want_pw ? grad_pw.mutable_data_ptr() : nullptr;
  planned.grad_bias = want_bias ? grad_bias.mutable_data_ptr() : nullptr;
  int num_sms = 0, major = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, x.device().index()));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, x.device().index()));
  if (!plan_backward(planned, num_sms)) {  // (no kernel knob changes whether it plans)
    log_dispatch("separable_conv2d_backward",
                 "backward fallback (ATen convolution_backward): no fused tile fits this depth multiplier / halo");
    return composite_backward(g, grad_out, x, dw_weight, pw_weight, act, output_mask);
  }
  const int element_bytes = static_cast<int>(x.element_size());
  const bool tensor_cores = element_bytes == 2 || planned.fwd.allow_tf32;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();

  // One backward, with the kernel knobs in force on this thread (the copies, the pw-gradient split
  // and the workspace follow them). A layout the staged kernels cannot read (NCHW, a view) runs on
  // channels_last copies where they can read those; grad_x is copied back into the call's layout at
  // the end. The workspace and copies come from the caching allocator on this stream.
  bool copies = false;  // the last launch's
  const auto launch = [&]() -> LaunchResult {
    SepConvBwdParams p = planned;
    at::Tensor grad_x_k = grad_x;
    at::Tensor x_k, grad_out_k;  // the copies, live until the launch is enqueued
    copies = backward_wants_channels_last_copies(p, major, element_bytes, tensor_cores);
    if (copies) {
      try {
        x_k = dense_channels_last(x);
        grad_out_k = dense_channels_last(grad_out);
        if (want_x) grad_x_k = dense_channels_last(grad_x, /*copy_values=*/false);
        point_at(p, x_k, grad_out_k, grad_x_k, at::MemoryFormat::ChannelsLast);
      } catch (const c10::OutOfMemoryError&) {  // no room for the copies: the call's own layout
        copies = false;
        grad_x_k = grad_x;
      }
    }
    if (resident_pw_wanted(p, major, element_bytes)) plan_resident_pw(p, num_sms);
    const at::Tensor workspace = at::empty({backward_workspace_floats(p)}, x.options().dtype(at::kFloat));
    p.workspace = workspace.mutable_data_ptr<float>();
    LaunchResult r{};
    switch (dtype) {
      case DType::kFloat16: r = sepconv_backward_fp16(p, stream); break;
      case DType::kBFloat16: r = sepconv_backward_bf16(p, stream); break;
      default: r = sepconv_backward_fp32(p, stream); break;
    }
    if (r.error == cudaSuccess && want_x && !grad_x_k.is_same(grad_x)) grad_x.copy_(grad_x_k);
    return r;
  };
  const auto log_line = [&](const LaunchResult& r, const std::string& tuned) {
    if (!dispatch_log_active()) return;
    std::string line = r.variant;
    if (copies) line += " on channels_last copies of x, grad_y and grad_x";
    if (!tuned.empty()) line += " (" + tuned + ")";
    log_dispatch("separable_conv2d_backward", line);
  };
  if (autotune_wanted()) {
    // XSEP_AUTOTUNE=1: the fastest backward for this shape and these gradients, timed on its first
    // call (autotune.h).
    char wanted[64];
    std::snprintf(wanted, sizeof(wanted), " gya%d want%d%d%d%d",
                  static_cast<int>(reinterpret_cast<uintptr_t>(grad_out.const_data_ptr()) % 16),
                  static_cast<int>(want_x), static_cast<int>(want_dw), static_cast<int>(want_pw),
                  static_cast<int>(want_bias));
    const Autotuned choice =
        autotuned(TunedOp::kBackward, autotune_key(planned.fwd, dtype, x.get_device()) + wanted, stream, launch);
    if (choice.knobs != nullptr) {
      const ScopedKnobOverrides scope(*choice.knobs);
      const LaunchResult r = launch();
      C10_CUDA_CHECK(static_cast<cudaError_t>(r.error));
      log_line(r, choice.summary);
      return finish();
    }
  }
  const LaunchResult r = launch();
  C10_CUDA_CHECK(static_cast<cudaError_t>(r.error));
  log_line(r, "");
  return finish();
}

}  // namespace

TORCH_LIBRARY_IMPL(xsep, CUDA, m) { m.impl("separable_conv2d_backward", separable_conv2d_backward_cuda); }

}  // namespace xsep::cuda
