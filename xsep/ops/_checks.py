"""Input validation with messages that name the argument and what was seen.

Runs in the public wrapper and in the fake (meta) kernels, so eager calls and torch.compile
reject bad input the same way. The C++ kernels check again, so a direct torch.ops call can
not crash either.
"""

from __future__ import annotations

import torch

_FLOATING = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check_tensor(fn: str, name: str, t: object) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor; got {type(t).__name__}")
    if t.is_quantized:
        raise TypeError(f"{fn}: {name} must be a floating-point tensor, not quantized; got {t.dtype} (dequantize it)")
    if t.layout != torch.strided:
        raise TypeError(f"{fn}: {name} must be a dense (strided) tensor; got layout {t.layout}")
    if t.is_nested:
        raise TypeError(f"{fn}: {name} must be a dense tensor; got a nested tensor")
    if t.dtype not in _FLOATING:
        raise TypeError(f"{fn}: {name} must be float16, bfloat16, float32 or float64; got {t.dtype}")
    return t


def check_tensors(
    fn: str,
    x: torch.Tensor,
    dw_weight: torch.Tensor,
    pw_weight: torch.Tensor,
    bias: torch.Tensor | None,
    *,
    same_dtype: bool = True,
    segments: bool = False,
) -> None:
    """Checks ranks, shapes, dtypes and devices of the op's tensors.

    same_dtype=False skips the dtype agreement check (under autocast, which casts them).
    segments=True also accepts a spatial weight (C*M, C/S, kh, kw) of S segments (S divides C and
    C*M); otherwise it must be depthwise, (C*M, 1, kh, kw).
    """
    named = [("x", x), ("dw_weight", dw_weight), ("pw_weight", pw_weight)]
    if bias is not None:
        named.append(("bias", bias))
    for name, t in named:
        _check_tensor(fn, name, t)
    if x.dim() != 4:
        raise ValueError(f"{fn}: x must have shape (N, C, H, W); got {tuple(x.shape)}")
    channels = x.shape[1]
    if segments and dw_weight.dim() == 4 and dw_weight.shape[1] != 1:
        per_segment = dw_weight.shape[1]
        if per_segment < 1 or channels % per_segment != 0 or dw_weight.shape[0] % (channels // per_segment) != 0:
            raise ValueError(
                f"{fn}: dw_weight must have shape (C*M, C/S, kh, kw) for S segments dividing C={channels} and "
                f"C*M; got {tuple(dw_weight.shape)}"
            )
    elif dw_weight.dim() != 4 or dw_weight.shape[1] != 1:
        raise ValueError(f"{fn}: dw_weight must have shape (C*M, 1, kh, kw); got {tuple(dw_weight.shape)}")
    mid = dw_weight.shape[0]
    depthwise_ok = (channels > 0 and mid > 0 and mid % channels == 0) or (channels == 0 and mid == 0)
    if dw_weight.shape[1] == 1 and not depthwise_ok:
        raise ValueError(
            f"{fn}: dw_weight must have shape (C*M, 1, kh, kw) with C*M divisible by C={channels}; "
            f"got {tuple(dw_weight.shape)}"
        )
    if dw_weight.shape[2] < 1 or dw_weight.shape[3] < 1:
        raise ValueError(f"{fn}: dw_weight's kernel must be at least 1x1; got {tuple(dw_weight.shape)}")
    if pw_weight.dim() != 4 or pw_weight.shape[1] != mid or pw_weight.shape[2:] != (1, 1):
        raise ValueError(f"{fn}: pw_weight must have shape (Cout, C*M={mid}, 1, 1); got {tuple(pw_weight.shape)}")
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != pw_weight.shape[0]):
        raise ValueError(f"{fn}: bias must have shape (Cout={pw_weight.shape[0]},); got {tuple(bias.shape)}")
    devices = {name: t.device for name, t in named}
    if len(set(devices.values())) > 1:
        seen = ", ".join(f"{name} on {device}" for name, device in devices.items())
        raise ValueError(f"{fn}: all tensors must be on one device; got {seen}")
    dtypes = {name: t.dtype for name, t in named}
    if same_dtype and len(set(dtypes.values())) > 1:
        seen = ", ".join(f"{name} {dtype}" for name, dtype in dtypes.items())
        raise TypeError(f"{fn}: all tensors must share one dtype (or run under torch.autocast); got {seen}")
