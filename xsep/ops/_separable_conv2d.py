"""The public functional op."""

from __future__ import annotations

import torch

from xsep._conv_args import Padding, output_hw, pair, resolve_padding
from xsep.ops._checks import check_tensors


def separable_conv2d(
    x: torch.Tensor,
    dw_weight: torch.Tensor,
    pw_weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: Padding = 0,
    dilation: int | tuple[int, int] = 1,
) -> torch.Tensor:
    """Fused depthwise KxK convolution followed by a pointwise 1x1 convolution.

    Equal, to rounding, to
    ``conv2d(conv2d(x, dw_weight, stride=stride, padding=padding, dilation=dilation, groups=C),
    pw_weight, bias)`` without writing the depthwise result to memory (nor saving it for
    backward: the backward recomputes it from x).

    Args:
        x: (N, C, H, W), NCHW or channels_last; the output keeps x's memory format.
        dw_weight: (C*M, 1, kh, kw); M is the depth multiplier, channel c*M+m reads channel c.
        pw_weight: (Cout, C*M, 1, 1).
        bias: (Cout,) or None.
        stride, dilation: of the depthwise conv; an int or (h, w).
        padding: of the depthwise conv; an int, (ph, pw), "valid", or "same" (TensorFlow's
            rule: output = ceil(input / stride), the odd pixel padded at the bottom/right).

    Returns:
        (N, Cout, Ho, Wo) in x's dtype and memory format. float16, bfloat16, float32 and
        float64; fp32 accumulation always. Under torch.autocast the inputs are cast to the
        autocast dtype.
    """
    fn = "separable_conv2d"
    stride, dilation = pair(fn, "stride", stride), pair(fn, "dilation", dilation)
    autocast = isinstance(x, torch.Tensor) and torch.is_autocast_enabled(x.device.type)
    check_tensors(fn, x, dw_weight, pw_weight, bias, same_dtype=not autocast)
    kernel = (dw_weight.shape[2], dw_weight.shape[3])
    pad = resolve_padding(fn, padding, (x.shape[2], x.shape[3]), kernel, stride, dilation)
    output_hw(fn, (x.shape[2], x.shape[3]), kernel, stride, pad, dilation)  # raises if the kernel can't fit
    return torch.ops.xsep.separable_conv2d(x, dw_weight, pw_weight, bias, stride, pad, dilation)
