"""What `torch.jit.script` compiles in place of a SeparableConv2d (`__prepare_scriptable__`): the same
parameters (same names, same objects) and geometry, with a forward TorchScript can compile — the
op's Python wrapper checks arguments with f-strings TorchScript rejects. Bad input still raises: the
C++ op checks every argument again and names what it saw.
"""

from typing import List  # noqa: UP035  (TorchScript resolves typing.List in class annotations)

import torch
import torch.nn.functional as F
from torch import nn


@torch.jit.script
def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's "same" along one axis (as xsep._conv_args.same_padding)."""
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class ScriptableSeparableConv2d(nn.Module):
    """A SeparableConv2d (fused=True) or UnfusedSeparableConv2d (fused=False), scriptable."""

    kernel_size: List[int]  # noqa: UP006
    stride: List[int]  # noqa: UP006
    dilation: List[int]  # noqa: UP006
    fixed_padding: List[int]  # noqa: UP006

    def __init__(self, module: nn.Module, fused: bool) -> None:
        super().__init__()
        self.fused = fused and module.segments == module.in_channels  # the fused op is depthwise only
        self.groups = module.segments
        self.intermediate_activation = module.intermediate_activation
        self.depthwise_weight = module.depthwise_weight
        self.pointwise_weight = module.pointwise_weight
        self.bias = module.bias
        self.kernel_size = list(module.kernel_size)
        self.stride = list(module.stride)
        self.dilation = list(module.dilation)
        self.same = module.padding == "same"
        fixed = (0, 0) if isinstance(module.padding, str) else module.padding  # "valid" is no padding
        self.fixed_padding = [fixed[0], fixed[0], fixed[1], fixed[1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padding = self.fixed_padding
        if self.same:
            top, bottom = _same_padding(x.shape[2], self.kernel_size[0], self.stride[0], self.dilation[0])
            left, right = _same_padding(x.shape[3], self.kernel_size[1], self.stride[1], self.dilation[1])
            padding = [top, bottom, left, right]
        if self.fused:
            return torch.ops.xsep.separable_conv2d(
                x,
                self.depthwise_weight,
                self.pointwise_weight,
                self.bias,
                self.stride,
                padding,
                self.dilation,
                self.intermediate_activation,
            )
        x = F.pad(x, [padding[2], padding[3], padding[0], padding[1]])
        z = F.conv2d(x, self.depthwise_weight, None, self.stride, 0, self.dilation, self.groups)
        if self.intermediate_activation == "relu":
            z = F.relu(z)
        elif self.intermediate_activation == "elu":
            z = F.elu(z)
        return F.conv2d(z, self.pointwise_weight, self.bias)
