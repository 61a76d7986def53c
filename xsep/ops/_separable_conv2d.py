"""The public functional op."""

from __future__ import annotations

import torch

from xsep._conv_args import Padding, output_hw, pair, resolve_padding
from xsep._dispatch_log import log_dispatch
from xsep.ops._checks import check_tensors
from xsep.reference import check_intermediate_activation, separable_conv2d_reference


def separable_conv2d(
    x: torch.Tensor,
    dw_weight: torch.Tensor,
    pw_weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: Padding = 0,
    dilation: int | tuple[int, int] = 1,
    intermediate_activation: str = "none",
) -> torch.Tensor:
    """Fused depthwise KxK convolution followed by a pointwise 1x1 convolution.

    Equal, to rounding, to
    ``conv2d(act(conv2d(x, dw_weight, stride=stride, padding=padding, dilation=dilation, groups=C)),
    pw_weight, bias)`` without writing the depthwise result to memory (nor saving it for
    backward: the backward recomputes it from x).

    Args:
        x: (N, C, H, W), NCHW or channels_last; the output keeps x's memory format.
        dw_weight: (C*M, 1, kh, kw); M is the depth multiplier, channel c*M+m reads channel c.
            Also (C*M, C/S, kh, kw): the spatial conv in S segments (grouped, groups=S), the
            Xception paper's spectrum between a regular conv (S=1) and the depthwise one (S=C).
            Only the depthwise case is fused; other segment counts run PyTorch's convolutions
            (logged with XSEP_LOG_DISPATCH=1).
        pw_weight: (Cout, C*M, 1, 1).
        bias: (Cout,) or None.
        stride, dilation: of the depthwise conv; an int or (h, w).
        padding: of the depthwise conv; an int, (ph, pw), "valid", or "same" (TensorFlow's
            rule: output = ceil(input / stride), the odd pixel padded at the bottom/right).
        intermediate_activation: "none" (Xception's, the default), "relu" or "elu", applied
            between the two convolutions (the paper's Figure 10), fused on chip.

    Returns:
        (N, Cout, Ho, Wo) in x's dtype and memory format. float16, bfloat16, float32 and
        float64; fp32 accumulation always. Under torch.autocast the inputs are cast to the
        autocast dtype.
    """
    fn = "separable_conv2d"
    check_intermediate_activation(fn, intermediate_activation)
    stride, dilation = pair(fn, "stride", stride), pair(fn, "dilation", dilation)
    autocast = isinstance(x, torch.Tensor) and torch.is_autocast_enabled(x.device.type)
    check_tensors(fn, x, dw_weight, pw_weight, bias, same_dtype=not autocast, segments=True)
    kernel = (dw_weight.shape[2], dw_weight.shape[3])
    pad = resolve_padding(fn, padding, (x.shape[2], x.shape[3]), kernel, stride, dilation)
    output_hw(fn, (x.shape[2], x.shape[3]), kernel, stride, pad, dilation)  # raises if the kernel can't fit
    if dw_weight.shape[1] != 1:  # S < C segments: no fused kernel for a grouped spatial conv
        log_dispatch(fn, f"{x.shape[1] // dw_weight.shape[1]} segments: PyTorch's convolutions (unfused)")
        return separable_conv2d_reference(
            x, dw_weight, pw_weight, bias, stride, padding, dilation, intermediate_activation
        )
    op = torch.ops.xsep.separable_conv2d
    return op(x, dw_weight, pw_weight, bias, stride, pad, dilation, intermediate_activation)
