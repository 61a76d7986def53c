"""Loads the compiled operator library `xsep._C`, which registers torch.ops.xsep.*."""

import torch

try:
    from xsep import _C  # noqa: F401
except ImportError as error:
    raise ImportError(
        "xsep: the C++ extension xsep._C is not built or does not match the installed torch "
        f"({torch.__version__}). Build it from the repository root with\n"
        "    pip install --no-build-isolation -e .\n"
        f"(original error: {error})"
    ) from error
