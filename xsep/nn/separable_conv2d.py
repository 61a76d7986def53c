"""`SeparableConv2d`: the drop-in module for a depthwise conv followed by a 1x1 conv."""

from __future__ import annotations

import math

import torch
from torch import nn

from xsep._conv_args import Padding, pair
from xsep.ops import separable_conv2d
from xsep.reference import check_intermediate_activation, separable_conv2d_reference


class SeparableConv2d(nn.Module):
    """Depthwise KxK convolution then pointwise 1x1 convolution, fused, no activation between.

    Replaces ``nn.Conv2d(C, C*M, k, stride, padding, dilation, groups=C, bias=False)`` followed by
    ``nn.Conv2d(C*M, Cout, 1, bias=bias)``, and is initialised exactly as that pair would be
    (same draws in the same order from the same generator).

    Input (N, C, H, W), NCHW or channels_last; output (N, Cout, Ho, Wo) in the same format.

    For the Xception paper's experiments: ``intermediate_activation`` ("none", "relu", "elu")
    between the two parts, fused; ``segments`` = S splits the spatial conv into S groups (S = C,
    the default, is the depthwise conv; S = 1 a regular KxK conv; only S = C is fused).

    Parameters:
        depthwise_weight: (C*M, C/S, kh, kw); (C*M, 1, kh, kw) by default
        pointwise_weight: (Cout, C*M, 1, 1)
        bias: (Cout,) or None
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: Padding = 0,
        dilation: int | tuple[int, int] = 1,
        depth_multiplier: int = 1,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        intermediate_activation: str = "none",
        segments: int | None = None,
    ) -> None:
        super().__init__()
        fn = "SeparableConv2d"
        check_intermediate_activation(fn, intermediate_activation)
        segments = in_channels if segments is None else segments
        if (
            not isinstance(segments, int)
            or segments < 1
            or in_channels % segments != 0
            or (in_channels * depth_multiplier) % segments != 0
        ):
            raise ValueError(
                f"{fn}: segments must divide in_channels={in_channels} (and in_channels * depth_multiplier); "
                f"got {segments!r}"
            )
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{fn}: {name} must be a positive int; got {value!r}")
        if not isinstance(depth_multiplier, int) or depth_multiplier < 1:
            raise ValueError(f"{fn}: depth_multiplier must be a positive int; got {depth_multiplier!r}")
        if isinstance(padding, str) and padding not in ("same", "valid"):
            raise ValueError(f"{fn}: padding must be an int, a pair of ints, 'same' or 'valid'; got {padding!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = pair(fn, "kernel_size", kernel_size)
        self.stride = pair(fn, "stride", stride)
        self.dilation = pair(fn, "dilation", dilation)
        self.padding = padding if isinstance(padding, str) else pair_padding(fn, padding)
        self.depth_multiplier = depth_multiplier
        self.intermediate_activation = intermediate_activation
        self.segments = segments
        factory = {"device": device, "dtype": dtype}
        mid = in_channels * depth_multiplier
        per_segment = in_channels // segments  # 1: depthwise
        self.depthwise_weight = nn.Parameter(torch.empty(mid, per_segment, *self.kernel_size, **factory))
        self.pointwise_weight = nn.Parameter(torch.empty(out_channels, mid, 1, 1, **factory))
        self.bias = nn.Parameter(torch.empty(out_channels, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Conv2d's initialisation for each of the two convs (kaiming-uniform, a=sqrt(5))."""
        nn.init.kaiming_uniform_(self.depthwise_weight, a=math.sqrt(5))
        nn.init.kaiming_uniform_(self.pointwise_weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.pointwise_weight.shape[1])
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return separable_conv2d(
            x,
            self.depthwise_weight,
            self.pointwise_weight,
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.intermediate_activation,
        )

    def __prepare_scriptable__(self) -> nn.Module:
        """torch.jit.script compiles this stand-in (same parameters, scriptable forward)."""
        from xsep.nn._scriptable import ScriptableSeparableConv2d

        fused = {SeparableConv2d.forward: True, UnfusedSeparableConv2d.forward: False}.get(type(self).forward)
        if fused is None:  # a subclass with a forward of its own: scripted as written
            return self
        return ScriptableSeparableConv2d(self, fused)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding not in ((0, 0), "valid"):
            s += f", padding={self.padding!r}" if isinstance(self.padding, str) else f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.depth_multiplier != 1:
            s += f", depth_multiplier={self.depth_multiplier}"
        if self.segments != self.in_channels:
            s += f", segments={self.segments}"
        if self.intermediate_activation != "none":
            s += f", intermediate_activation={self.intermediate_activation!r}"
        if self.bias is None:
            s += ", bias=False"
        return s

    @classmethod
    def from_convs(cls, depthwise: nn.Conv2d, pointwise: nn.Conv2d) -> SeparableConv2d:
        """The fused module equal to ``pointwise(depthwise(x))``, weights copied.

        depthwise: nn.Conv2d with groups == in_channels (out_channels a multiple of it),
        zero padding. pointwise: nn.Conv2d 1x1, stride 1, no padding, groups 1. A depthwise
        bias folds into the pointwise one: b = b_pw + W_pw @ b_dw.
        """
        reason = pair_mismatch(depthwise, pointwise)
        if reason is not None:
            raise ValueError(f"SeparableConv2d.from_convs: {reason}")
        weight = depthwise.weight
        has_bias = depthwise.bias is not None or pointwise.bias is not None
        fused = cls(
            depthwise.in_channels,
            pointwise.out_channels,
            depthwise.kernel_size,
            depthwise.stride,
            depthwise.padding,
            depthwise.dilation,
            depth_multiplier=depthwise.out_channels // depthwise.in_channels,
            bias=has_bias,
            device=weight.device,
            dtype=weight.dtype,
        )
        with torch.no_grad():
            fused.depthwise_weight.copy_(depthwise.weight)
            fused.pointwise_weight.copy_(pointwise.weight)
            if has_bias:
                w_pw = pointwise.weight.flatten(1)
                b = pointwise.bias.clone() if pointwise.bias is not None else w_pw.new_zeros(w_pw.shape[0])
                if depthwise.bias is not None:
                    b += w_pw @ depthwise.bias
                fused.bias.copy_(b)
        fused.train(depthwise.training)
        return fused


def pair_padding(fn: str, padding: int | tuple[int, int]) -> tuple[int, int]:
    values = (padding, padding) if isinstance(padding, int) else tuple(padding)
    if len(values) != 2 or any(not isinstance(v, int) or v < 0 for v in values):
        raise ValueError(f"{fn}: padding must be a non-negative int or pair of ints; got {padding!r}")
    return values  # type: ignore[return-value]


def pair_mismatch(depthwise: nn.Module, pointwise: nn.Module) -> str | None:
    """Why (depthwise, pointwise) is not a fusable pair, or None when it is."""
    if type(depthwise) is not nn.Conv2d or type(pointwise) is not nn.Conv2d:
        return f"expected two nn.Conv2d; got {type(depthwise).__name__} and {type(pointwise).__name__}"
    c = depthwise.in_channels
    if depthwise.groups != c or depthwise.out_channels % c != 0:
        return (
            f"the first conv must be depthwise (groups == in_channels, out_channels a multiple of it); "
            f"got in_channels={c}, out_channels={depthwise.out_channels}, groups={depthwise.groups}"
        )
    if depthwise.padding_mode != "zeros":
        return f"the depthwise conv must pad with zeros; got padding_mode={depthwise.padding_mode!r}"
    if (
        pointwise.kernel_size != (1, 1)
        or pointwise.stride != (1, 1)
        or pointwise.padding not in ((0, 0), "valid")
        or pointwise.dilation != (1, 1)
        or pointwise.groups != 1
    ):
        return (
            "the second conv must be pointwise (1x1, stride 1, no padding, groups 1); got "
            f"kernel_size={pointwise.kernel_size}, stride={pointwise.stride}, padding={pointwise.padding}, "
            f"groups={pointwise.groups}"
        )
    if pointwise.in_channels != depthwise.out_channels:
        return (
            f"channels do not chain: depthwise out_channels={depthwise.out_channels}, "
            f"pointwise in_channels={pointwise.in_channels}"
        )
    if depthwise.weight.dtype != pointwise.weight.dtype or depthwise.weight.device != pointwise.weight.device:
        return "the two convs' weights differ in dtype or device"
    return None


class UnfusedSeparableConv2d(SeparableConv2d):
    """The same module (same parameters, same names, same initialisation) computed by PyTorch's two
    unfused convolutions: the baseline that `backend='reference'` models are built from."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return separable_conv2d_reference(
            x,
            self.depthwise_weight,
            self.pointwise_weight,
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.intermediate_activation,
        )
