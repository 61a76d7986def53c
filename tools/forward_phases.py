"""How a fused forward kernel's time splits between its depthwise and its pointwise phase, from
timings alone (run by the `forward-phases` stage of tools/gpu_run.sh, on a GPU):

    python3 tools/forward_phases.py --shape 32,728,19,19 --dtype bfloat16 --variants wgmma,wgmma-64px,resident

(each variant a name or knobs of xsep/bench/variants.py; unset: the kernels the environment chooses)

A CTA computes its pixels' depthwise values once, then one GEMM tile per 128 output channels, so
the time grows linearly with the output channels: t = a + b * tiles. The fit's slope b is one
tile's GEMM over the whole grid (printed as TFLOP/s beside a cuBLAS matmul of the same dtype); its
intercept a is the depthwise phase plus the launch (and the wgmma kernel's weight packing, which
grows with Cout too, but is a small copy). Cout = 128 .. 1024 in steps of 128 (the CTA
count does not change with Cout while a tile's pixels fill the GPU: the launcher splits the
output channels only for small grids, reported as `split` in the dispatch log line printed here).
The streamed kernel (variant `streamed`) recomputes Z for every tile of output channels, so its
slope holds both phases and its intercept only the launch and the packing.
"""

from __future__ import annotations

import argparse

import torch

from xsep._kernel_knobs import kernel_knobs, recorded_dispatches
from xsep._timing import median_ms
from xsep.bench.variants import parse_variant
from xsep.ops import separable_conv2d


def fit_line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares (intercept, slope) of ys against xs."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return my - slope * mx, slope


def phases(x: torch.Tensor, dw: torch.Tensor, reps: int, peak: float, label: str) -> None:
    """Times the forward at Cout = 128 .. 1024 and prints the fit for the knobs in force."""
    n, c, h, w = x.shape
    tiles = list(range(1, 9))
    times = []
    with recorded_dispatches() as kernels:
        for t in tiles:
            pw = (torch.randn(128 * t, c, 1, 1, device=x.device) / c**0.5).to(x.dtype)
            (ms,) = median_ms([lambda pw=pw: separable_conv2d(x, dw, pw, None, 1, 1)], x.device, reps=reps)
            times.append(ms)
            print(f"{label} Cout {128 * t:5d}: {ms * 1e3:8.1f} us", flush=True)
    for line in kernels:
        print(f"{label} dispatch: {line}")
    intercept, slope = fit_line(tiles, times)
    tile_tflops = 2 * n * h * w * c * 128 / (slope * 1e-3) / 1e12
    worst = max(abs(intercept + slope * t - y) for t, y in zip(tiles, times, strict=True))
    print(
        f"{label} {n},{c},{h},{w} {x.dtype}: t = {intercept * 1e3:.1f} us + {slope * 1e3:.1f} us per 128 output "
        f"channels (worst residual {worst * 1e3:.1f} us); a tile's GEMM runs at {tile_tflops:.0f} TFLOP/s, "
        f"{100 * tile_tflops / peak:.0f}% of cuBLAS's {peak:.0f} TFLOP/s on 8192^3",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="32,728,19,19", help="N,C,H,W (3x3, stride 1, padding 1)")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--variants", default="", help="comma-separated kernel variants (xsep/bench/variants.py)")
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
    for spec in [v for v in args.variants.split(",") if v] or [None]:
        if spec is None:
            phases(x, dw, args.reps, peak, "default")
            continue
        name, knobs = parse_variant(spec)
        with kernel_knobs(knobs):
            phases(x, dw, args.reps, peak, name)


if __name__ == "__main__":
    main()
