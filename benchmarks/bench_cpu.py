"""CPU speed of the fused op against PyTorch's two convolutions (oneDNN), fp32.

    python benchmarks/bench_cpu.py [--reps 15] [--out benchmarks/results/cpu-<host>.json]

For each shape and memory format: checks the fused output against the fp64 reference (a row
whose output is wrong is reported as failed, not timed), then times forward and
forward+backward of the fused op and of the unfused pair in the same format, interleaved,
and reports medians and ratios (unfused / fused: > 1 means xsep is faster), also against
the faster of the unfused pair's two formats.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metadata import run_metadata

from xsep._timing import median_ms
from xsep.ops import separable_conv2d
from xsep.reference import separable_conv2d_reference

# (name, N, C, H=W, Cout): the two shapes of the foundation issue.
SHAPES = [("728->728 @19x19", 8, 728, 19, 728), ("64->128 @147x147", 4, 64, 147, 128)]
FORMATS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def unfused(x, dw, pw):
    return F.conv2d(F.conv2d(x, dw, None, 1, 1, 1, x.shape[1]), pw)


def bench_shape(name, n, c, h, cout, memory_format, reps):
    x = torch.randn(n, c, h, h).contiguous(memory_format=memory_format)
    dw = torch.randn(c, 1, 3, 3) / 3
    pw = torch.randn(cout, c, 1, 1) / c**0.5
    exact = separable_conv2d_reference(x.double(), dw.double(), pw.double(), None, 1, 1)
    err = (separable_conv2d(x, dw, pw, None, 1, 1).double() - exact).abs().max().item()
    err_unfused = (unfused(x, dw, pw).double() - exact).abs().max().item()
    row = {
        "shape": name,
        "N": n,
        "C": c,
        "H": h,
        "W": h,
        "Cout": cout,
        "max_error": err,
        "max_error_unfused": err_unfused,
    }
    if err > 2 * err_unfused + 1e-5 * exact.abs().max().item():
        return row | {"status": "failed: output differs from the reference"}

    leaves = [t.detach().requires_grad_() for t in (x, dw, pw)]
    grad = torch.randn(exact.shape).contiguous(memory_format=memory_format)
    with torch.no_grad():
        fwd = median_ms(
            [lambda: separable_conv2d(x, dw, pw, None, 1, 1), lambda: unfused(x, dw, pw)], x.device, reps=reps
        )
    fwd_bwd = median_ms(
        [
            lambda: separable_conv2d(*leaves, None, 1, 1).backward(grad),
            lambda: unfused(*leaves).backward(grad),
        ],
        x.device,
        reps=reps,
    )
    return row | {
        "status": "ok",
        "forward_ms": {"xsep": fwd[0], "unfused": fwd[1]},
        "forward_backward_ms": {"xsep": fwd_bwd[0], "unfused": fwd_bwd[1]},
        "intermediate_mib_not_written": n * c * h * h * 4 / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    for name, n, c, h, cout in SHAPES:
        for fmt_name, fmt in FORMATS.items():
            row = bench_shape(name, n, c, h, cout, fmt, args.reps) | {"memory_format": fmt_name}
            rows.append(row)
            print(f"{name:18s} {fmt_name:13s} {row['status']}", flush=True)

    print(
        f"\n{'shape':18s} {'format':13s} {'direction':17s} {'xsep ms':>9s} {'unfused ms':>11s} "
        f"{'ratio':>6s} {'vs best fmt':>11s}"
    )
    for row in rows:
        if row["status"] != "ok":
            continue
        for direction in ("forward_ms", "forward_backward_ms"):
            best = min(r[direction]["unfused"] for r in rows if r["shape"] == row["shape"] and r["status"] == "ok")
            t = row[direction]
            row[direction] |= {"ratio": t["unfused"] / t["xsep"], "ratio_vs_best_format": best / t["xsep"]}
            print(
                f"{row['shape']:18s} {row['memory_format']:13s} {direction[:-3]:17s} {t['xsep']:9.2f} "
                f"{t['unfused']:11.2f} {t['ratio']:6.2f} {t['ratio_vs_best_format']:11.2f}"
            )

    out = args.out or Path(__file__).parent / "results" / f"cpu-{platform.node() or 'host'}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"metadata": run_metadata(torch.device("cpu")), "rows": rows}, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
