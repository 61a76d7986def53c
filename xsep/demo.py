"""`xsep demo`: the fused op against PyTorch's two convolutions on one Xception layer.

Prints the error against the fp64 reference and the time of each, forward and
forward+backward, in the fastest memory format PyTorch has for the unfused pair.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from xsep._timing import median_ms
from xsep.ops import separable_conv2d
from xsep.reference import check_error, separable_conv2d_reference


def _unfused(x, dw, pw, c):
    return F.conv2d(F.conv2d(x, dw, None, 1, 1, 1, c), pw)


def run(batch: int, channels: int, size: int, out_channels: int, device: torch.device, reps: int) -> None:
    torch.manual_seed(0)
    shape = (batch, channels, size, size)
    x = torch.randn(shape, device=device).contiguous(memory_format=torch.channels_last)
    dw = torch.randn(channels, 1, 3, 3, device=device) / 3
    pw = torch.randn(out_channels, channels, 1, 1, device=device) / channels**0.5
    print(f"xsep demo on {device}: x {shape} channels_last, 3x3 depthwise + 1x1 -> {out_channels} channels, fp32")

    y = separable_conv2d(x, dw, pw, None, 1, 1)
    exact = separable_conv2d_reference(x.double(), dw.double(), pw.double(), None, 1, 1)
    check = check_error(y, _unfused(x, dw, pw, channels), exact)
    print(f"  max |error| vs fp64 reference: fused {check.error:.2e}, unfused PyTorch {check.error_unfused:.2e}")

    leaves = [t.detach().requires_grad_() for t in (x, dw, pw)]
    grad = torch.randn_like(y)

    def fused_fb():
        separable_conv2d(*leaves, None, 1, 1).backward(grad)

    def unfused_fb():
        _unfused(*leaves, channels).backward(grad)

    with torch.no_grad():
        t_fused, t_unfused = median_ms(
            [lambda: separable_conv2d(x, dw, pw, None, 1, 1), lambda: _unfused(x, dw, pw, channels)], device, reps=reps
        )
    tb_fused, tb_unfused = median_ms([fused_fb, unfused_fb], device, reps=reps)
    inter_mb = batch * channels * size * size * 4 / 2**20
    for name, fused, unfused in (("forward", t_fused, t_unfused), ("forward+backward", tb_fused, tb_unfused)):
        print(f"  {name:16s} fused {fused:8.2f} ms   unfused {unfused:8.2f} ms   speed-up {unfused / fused:.2f}x")
    print(f"  the fused op never writes the {inter_mb:.1f} MiB depthwise intermediate, nor saves it for backward")
    if not check.ok:
        raise SystemExit("xsep demo: the fused output does not match the reference")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="xsep demo", description=__doc__)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--channels", type=int, default=728)
    parser.add_argument("--size", type=int, default=19)
    parser.add_argument("--out-channels", type=int, default=728)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args(argv)
    run(args.batch, args.channels, args.size, args.out_channels, torch.device(args.device), args.reps)


if __name__ == "__main__":
    main()
