// CUDA backward, for now a composite of ATen ops (cuDNN): Z is recomputed from x (the forward
// saved nothing else), then the two convolutions' backward. Logged as a fallback. The fused
// backward kernels (issue "CUDA fused backward kernels") replace it.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../common/dispatch_log.h"
#include "../common/sepconv_geometry.h"
#include "sepconv_cuda_common.h"

namespace xsep::cuda {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> separable_conv2d_backward_cuda(
    const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& dw_weight, const at::Tensor& pw_weight,
    c10::IntArrayRef stride, c10::IntArrayRef padding, c10::IntArrayRef dilation, std::array<bool, 4> output_mask) {
  const char* fn = "separable_conv2d_backward";
  const SepConvGeometry g =
      check_separable_conv2d_args(fn, x, dw_weight, pw_weight, std::nullopt, stride, padding, dilation);
  check_cuda_inputs(fn, g, x);
  check_grad_out(fn, g, grad_out, x);
  const c10::cuda::CUDAGuard guard(x.device());
  log_dispatch("separable_conv2d_backward", "composite of ATen convolution_backward (no fused CUDA backward yet)");

  const auto [want_x, want_dw, want_pw, want_bias] = output_mask;
  const auto not_wanted = [&] { return at::empty({0}, x.options()); };
  at::Tensor grad_x = not_wanted(), grad_dw = not_wanted(), grad_pw = not_wanted(), grad_bias = not_wanted();
  if (want_x || want_dw || want_pw) {
    const at::Tensor padded = at::constant_pad_nd(x, {g.pl, g.pr, g.pt, g.pb});
    const at::Tensor z = at::conv2d(padded, dw_weight, std::nullopt, at::IntArrayRef{g.sh, g.sw}, at::IntArrayRef{0, 0},
                                     at::IntArrayRef{g.dh, g.dw}, g.C);
    const bool want_z = want_x || want_dw;
    auto [grad_z, gpw, unused_pw_bias] = at::convolution_backward(
        grad_out, z, pw_weight, std::nullopt, {1, 1}, {0, 0}, {1, 1}, false, {0, 0}, 1, {want_z, want_pw, false});
    if (want_pw) grad_pw = like_weight(gpw, pw_weight);
    if (want_z) {
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

}  // namespace

TORCH_LIBRARY_IMPL(xsep, CUDA, m) { m.impl("separable_conv2d_backward", separable_conv2d_backward_cuda); }

}  // namespace xsep::cuda
