"""xsep: fused depthwise-separable convolutions (depthwise KxK + pointwise 1x1) for PyTorch.

xsep.ops.separable_conv2d   the functional op (torch.ops.xsep.separable_conv2d)
xsep.nn.SeparableConv2d     the drop-in module
xsep.convert(model)         fuse the depthwise -> pointwise pairs of an existing model
xsep.reference              the unfused PyTorch definition (the test oracle)
"""

from xsep import models, nn, ops, reference
from xsep.nn import convert

__version__ = "0.1.0"
__all__ = ["__version__", "convert", "models", "nn", "ops", "reference"]
