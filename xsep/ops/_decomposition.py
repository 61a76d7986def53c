"""The op as standard ATen convolutions, registered in PyTorch's decomposition table.

Exporters that lower unknown operators through that table — `torch.onnx.export` (the dynamo
exporter) does — then see a depthwise `convolution` (after a `constant_pad_nd` when the padding is
asymmetric), the intermediate activation if any, and a 1x1 `convolution`: standard ONNX nodes
(`Conv`, `Relu`/`Elu`), no custom domain. torch.compile's inductor uses its own, curated table,
so it keeps calling the fused kernels.
"""

from __future__ import annotations

import torch
from torch._decomp import register_decomposition

aten = torch.ops.aten


@register_decomposition(torch.ops.xsep.separable_conv2d.default)
def separable_conv2d_decomposition(
    x: torch.Tensor,
    dw_weight: torch.Tensor,
    pw_weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    intermediate_activation: str = "none",
) -> torch.Tensor:
    top, bottom, left, right = padding
    if top == bottom and left == right:
        conv_padding = [top, left]
    else:
        x = aten.constant_pad_nd(x, [left, right, top, bottom], 0.0)
        conv_padding = [0, 0]
    z = aten.convolution(x, dw_weight, None, stride, conv_padding, dilation, False, [0, 0], x.shape[1])
    if intermediate_activation == "relu":
        z = aten.relu(z)
    elif intermediate_activation == "elu":
        z = aten.elu(z)
    return aten.convolution(z, pw_weight, bias, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)
