"""How a fused forward kernel's time splits between its depthwise and its pointwise phase, from
timings alone (run by the `forward-kernels` stage of tools/gpu_run.sh, on a GPU):

    XSEP_FWD_KERNEL=wgmma python3 tools/forward_phases.py --shape 32,728,19,19 --dtype bfloat16

A CTA computes its pixels' depthwise values once, then one GEMM tile per 128 output channels, so
the time grows linearly with the output channels: t = a + b * tiles. The fit's slope b is one
tile's GEMM over the whole grid (printed as TFLOP/s beside a cuBLAS matmul of the same dtype); its
intercept a is the depthwise phase plus the launch. Cout = 128 .. 1024 in steps of 128 (the CTA
count does not change with Cout while a tile's pixels fill the GPU: the launcher splits the
output channels only for small grids, reported as `split` in the dispatch log line printed here).
"""

from __future__ import annotations

import argparse
import os

import torch

from xsep._timing import median_ms
from xsep.ops import separable_conv2d


def fit_line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares (intercept, slope) of ys against xs."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return my - slope * mx, slope


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="32,728,19,19", help="N,C,H,W (3x3, stride 1, padding 1)")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--reps", type=int, default=50)
    args = parser.parse_args()
    n, c, h, w = (int(v) for v in args.shape.split(","))
    dtype = getattr(torch, args.dtype)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    device = torch.device("cuda")
    x = torch.randn(n, c, h, w, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    dw = (torch.randn(c, 1, 3, 3, device=device) / 3).to(dtype)

    a = torch.randn(8192, 8192, device=device, dtype=dtype)
    (matmul_ms,) = median_ms([lambda: a @ a], device, reps=10)
    peak = 2 * 8192**3 / (matmul_ms * 1e-3) / 1e12

    tiles = list(range(1, 9))
    times = []
    os.environ["XSEP_LOG_DISPATCH"] = "1"  # before the first call (read once): kernel lines on stderr
    for t in tiles:
        pw = (torch.randn(128 * t, c, 1, 1, device=device) / c**0.5).to(dtype)
        (ms,) = median_ms([lambda pw=pw: separable_conv2d(x, dw, pw, None, 1, 1)], device, reps=args.reps)
        times.append(ms)
        print(f"Cout {128 * t:5d}: {ms * 1e3:8.1f} us", flush=True)
    intercept, slope = fit_line(tiles, times)
    pixels = n * h * w
    tile_tflops = 2 * pixels * c * 128 / (slope * 1e-3) / 1e12
    worst = max(abs(intercept + slope * t - y) for t, y in zip(tiles, times, strict=True))
    print(
        f"{args.shape} {args.dtype}: t = {intercept * 1e3:.1f} us + {slope * 1e3:.1f} us per 128 output channels "
        f"(worst residual {worst * 1e3:.1f} us); a tile's GEMM runs at {tile_tflops:.0f} TFLOP/s, "
        f"{100 * tile_tflops / peak:.0f}% of cuBLAS's {peak:.0f} TFLOP/s on 8192^3"
    )


if __name__ == "__main__":
    main()
