"""The analytic lower bound of a separable conv and the machine figures it divides by.

time_bound = max(bytes / bandwidth, flops / peak); bandwidth and peak are measured on the same
device in the same run (a large device-to-device copy counting bytes read and written; a large
matmul in the dtype), not taken from a datasheet.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from xsep._timing import median_ms


@dataclass(frozen=True)
class Machine:
    bandwidth_gbs: float  # GB/s, read + write
    peak_tflops: dict[str, float]  # per math mode, TFLOP/s


def measure_machine(device: torch.device, modes: list[str]) -> Machine:
    """Copy bandwidth and matmul peak of `device`, for each math mode in `modes`."""
    peaks = {}
    size = 8192 if device.type == "cuda" else 2048
    for mode in modes:
        dtype, tf32 = math_mode(mode)
        a = torch.randn(size, size, dtype=dtype, device=device)
        b = torch.randn(size, size, dtype=dtype, device=device)
        with tf32_enabled(tf32):
            (ms,) = median_ms([lambda a=a, b=b: a @ b], device, warmup=3, reps=10)
        peaks[mode] = 2 * size**3 / (ms * 1e-3) / 1e12
    bandwidth = _copy_bandwidth_gbs(device)
    return Machine(bandwidth, peaks)


def _copy_bandwidth_gbs(device: torch.device) -> float:
    numel = 2**28 if device.type == "cuda" else 2**25  # 1 GiB / 128 MiB of fp32
    src = torch.empty(numel, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    (ms,) = median_ms([lambda: dst.copy_(src)], device, warmup=3, reps=10)
    return 2 * numel * 4 / (ms * 1e-3) / 1e9


def math_mode(mode: str) -> tuple[torch.dtype, bool]:
    """'bf16' | 'fp16' | 'fp32-tf32' | 'fp32' -> (dtype, TF32 allowed)."""
    return {
        "bf16": (torch.bfloat16, False),
        "fp16": (torch.float16, False),
        "fp32-tf32": (torch.float32, True),
        "fp32": (torch.float32, False),
    }[mode]


class tf32_enabled:
    """TF32 for convolutions (cuDNN's flag, which xsep follows) and matmuls, restored on exit."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __enter__(self) -> None:
        self.saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
        torch.backends.cudnn.allow_tf32 = self.enabled
        torch.backends.cuda.matmul.allow_tf32 = self.enabled

    def __exit__(self, *exc) -> None:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = self.saved


def layer_cost(n: int, c: int, h: int, cout: int, k: int, stride: int, element_bytes: int, direction: str):
    """(bytes, flops) the fused op must at least move and compute.

    forward: read x, write y. backward: read x and dY, write dX (the intermediate is recomputed:
    its flops count again). Weights are small and ignored in bytes.
    """
    ho = -(-h // stride)
    pixels_in, pixels_out = n * h * h, n * ho * ho
    dw_flops, pw_flops = 2 * pixels_out * c * k * k, 2 * pixels_out * c * cout
    fwd_bytes = (pixels_in * c + pixels_out * cout) * element_bytes
    fwd_flops = dw_flops + pw_flops
    # backward: recompute Z (dw), dZ = dY W (pw), dW_pw = dY^T Z (pw), dX and dW_dw (2 x dw)
    bwd_bytes = (2 * pixels_in * c + pixels_out * cout) * element_bytes
    bwd_flops = 3 * dw_flops + 2 * pw_flops
    if direction == "forward":
        return fwd_bytes, fwd_flops
    if direction == "backward":
        return bwd_bytes, bwd_flops
    return fwd_bytes + bwd_bytes, fwd_flops + bwd_flops


def bound_ms(bytes_: float, flops: float, machine: Machine, mode: str) -> float:
    return max(bytes_ / (machine.bandwidth_gbs * 1e9), flops / (machine.peak_tflops[mode] * 1e12)) * 1e3
