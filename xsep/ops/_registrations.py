"""What torch.library needs besides the C++ kernels: fake (meta) kernels for tracing and
torch.compile, and the autograd formula that routes gradients to the fused backward op.

Autograd saves x and the two weights only; the depthwise intermediate (and, with an
intermediate activation, its pre-activation value) is recomputed.
"""

from __future__ import annotations

import torch
from torch._prims_common import suggest_memory_format

from xsep._conv_args import output_hw
from xsep.ops._checks import check_tensors
from xsep.reference import check_intermediate_activation

_FORWARD = "xsep::separable_conv2d"
_BACKWARD = "xsep::separable_conv2d_backward"


@torch.library.register_fake(_FORWARD)
def _separable_conv2d_fake(x, dw_weight, pw_weight, bias, stride, padding, dilation, intermediate_activation="none"):
    fn = "separable_conv2d"
    check_intermediate_activation(fn, intermediate_activation)  # as the C++ kernels do, so tracing fails alike
    check_tensors(fn, x, dw_weight, pw_weight, bias)
    kernel = (dw_weight.shape[2], dw_weight.shape[3])
    ho, wo = output_hw(fn, (x.shape[2], x.shape[3]), kernel, tuple(stride), tuple(padding), tuple(dilation))
    shape = (x.shape[0], pw_weight.shape[0], ho, wo)
    return x.new_empty(shape).contiguous(memory_format=suggest_memory_format(x))


@torch.library.register_fake(_BACKWARD)
def _separable_conv2d_backward_fake(
    grad_out, x, dw_weight, pw_weight, stride, padding, dilation, intermediate_activation, output_mask
):
    check_tensors("separable_conv2d_backward", x, dw_weight, pw_weight, None)

    def wanted(i: int, like: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
        if not output_mask[i]:
            return x.new_empty((0,))
        return like.new_empty(like.shape).contiguous(memory_format=memory_format)

    return (
        wanted(0, x, suggest_memory_format(x)),
        wanted(1, dw_weight, suggest_memory_format(dw_weight)),
        wanted(2, pw_weight, suggest_memory_format(pw_weight)),
        x.new_empty((pw_weight.shape[0],)) if output_mask[3] else x.new_empty((0,)),
    )


def _setup_context(ctx, inputs, output):
    x, dw_weight, pw_weight, bias, stride, padding, dilation, intermediate_activation = inputs
    ctx.save_for_backward(x, dw_weight, pw_weight)
    ctx.geometry = (stride, padding, dilation, intermediate_activation)
    ctx.has_bias = bias is not None


def _backward(ctx, grad_out):
    x, dw_weight, pw_weight = ctx.saved_tensors
    needs = ctx.needs_input_grad
    mask = [needs[0], needs[1], needs[2], ctx.has_bias and needs[3]]
    if not any(mask):
        return (None,) * 8
    grads = torch.ops.xsep.separable_conv2d_backward(grad_out, x, dw_weight, pw_weight, *ctx.geometry, mask)
    return (*(g if wanted else None for g, wanted in zip(grads, mask, strict=True)), None, None, None, None)


torch.library.register_autograd(_FORWARD, _backward, setup_context=_setup_context)
