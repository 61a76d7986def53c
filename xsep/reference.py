"""The unfused definition of the op in plain PyTorch: the oracle every test compares against.

    y = conv2d(act(conv2d(x, dw_weight, stride, padding, dilation, groups=S)), pw_weight, bias)

with S = C / dw_weight.shape[1] segments (S = C: the depthwise conv, the default and the fused
case) and act the intermediate activation ("none", the default and Xception's; "relu"; "elu").
Deliberately simple: explicit padding with F.pad (so TensorFlow-style asymmetric "same" is
exact), then PyTorch's two convolutions, whose intermediate goes to memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from xsep._conv_args import Padding, pair, resolve_padding

INTERMEDIATE_ACTIVATIONS = ("none", "relu", "elu")


def check_intermediate_activation(fn: str, name: object) -> str:
    """`name` if it is one of INTERMEDIATE_ACTIVATIONS; a ValueError naming `fn` otherwise."""
    if name not in INTERMEDIATE_ACTIVATIONS:
        raise ValueError(f"{fn}: intermediate_activation must be 'none', 'relu' or 'elu'; got {name!r}")
    return name


def intermediate_activation_fn(fn: str, name: str):
    """The activation called `name` (one of INTERMEDIATE_ACTIVATIONS) as a function of a tensor."""
    return {"none": lambda z: z, "relu": F.relu, "elu": F.elu}[check_intermediate_activation(fn, name)]


def separable_conv2d_reference(
    x: torch.Tensor,
    dw_weight: torch.Tensor,
    pw_weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: Padding = 0,
    dilation: int | tuple[int, int] = 1,
    intermediate_activation: str = "none",
) -> torch.Tensor:
    """Spatial KxK conv (depthwise, or in segments), optional activation, then pointwise 1x1 conv.

    x: (N, C, H, W); dw_weight: (C*M, C/S, kh, kw) (C/S = 1: depthwise); pw_weight: (Cout, C*M, 1, 1);
    bias: (Cout,) or None. Returns (N, Cout, Ho, Wo).
    """
    fn = "separable_conv2d_reference"
    act = intermediate_activation_fn(fn, intermediate_activation)
    stride, dilation = pair(fn, "stride", stride), pair(fn, "dilation", dilation)
    kernel = (dw_weight.shape[2], dw_weight.shape[3])
    top, bottom, left, right = resolve_padding(fn, padding, (x.shape[2], x.shape[3]), kernel, stride, dilation)
    x = F.pad(x, (left, right, top, bottom))
    z = F.conv2d(x, dw_weight, None, stride, 0, dilation, groups=x.shape[1] // max(1, dw_weight.shape[1]))
    return F.conv2d(act(z), pw_weight, bias)


# How close the fused op must be to the exact (fp64) result: at most ERROR_FACTOR x the error the
# unfused op makes in the same dtype, plus a floor (relative to the output's scale) for when that
# error is ~0. One rule for the tests, the benchmarks' correctness check and the demo.
ERROR_FACTOR = 2.0
ERROR_FLOOR = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}
# float32 on CUDA with torch.backends.cudnn.allow_tf32 (PyTorch's default, which xsep's kernels
# follow as cuDNN does): the products are rounded to TF32, whose mantissa is float16's (10 bits).
# The unfused op may or may not use TF32 for a given shape (cuDNN picks), so its error is no guide.
TF32_ERROR_FLOOR = ERROR_FLOOR[torch.float16]


def error_floor(actual: torch.Tensor) -> float:
    """The relative floor of check_error for a result of xsep's: its dtype's, or TF32's."""
    if actual.dtype == torch.float32 and actual.is_cuda and torch.backends.cudnn.allow_tf32:
        return TF32_ERROR_FLOOR
    return ERROR_FLOOR[actual.dtype]


@dataclass(frozen=True)
class ErrorCheck:
    error: float  # max |actual - exact|
    error_unfused: float  # max |unfused - exact|
    bound: float

    @property
    def ok(self) -> bool:
        return self.error <= self.bound


def check_error(
    actual: torch.Tensor, unfused: torch.Tensor, exact: torch.Tensor, magnitude: torch.Tensor | None = None
) -> ErrorCheck:
    """actual and unfused in one dtype; exact the fp64 reference of the same inputs.

    The floor is relative to the largest |exact|, or, when given, to the largest `magnitude`: the
    same computation on absolute values (sum of |terms|), which is what rounding errors scale with
    when the terms cancel (a result near 0 made of terms near 1 is exact only to ~eps of the terms).
    Call it under the TF32 setting the result was computed with (see error_floor).
    """
    if exact.numel() == 0:
        return ErrorCheck(0.0, 0.0, 0.0)
    error = (actual.double() - exact).abs().max().item()
    error_unfused = (unfused.double() - exact).abs().max().item()
    scale = max(exact.abs().max().item(), magnitude.abs().max().item() if magnitude is not None else 0.0, 1e-30)
    return ErrorCheck(error, error_unfused, ERROR_FACTOR * error_unfused + error_floor(actual) * scale)
