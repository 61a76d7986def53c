"""xsep's operators: ``separable_conv2d`` (forward) and its backward, registered with
torch.library as ``torch.ops.xsep.separable_conv2d`` / ``separable_conv2d_backward``."""

from xsep import _extension  # noqa: F401  (registers the C++ kernels)
from xsep.ops import (
    _decomposition,  # noqa: F401  (ATen decomposition, for exporters)
    _registrations,  # noqa: F401  (fake kernels and autograd)
)
from xsep.ops._separable_conv2d import separable_conv2d

__all__ = ["separable_conv2d"]
