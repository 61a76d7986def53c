"""`xsep bench` / `python -m xsep.bench`: the fused op against PyTorch's two convolutions.

On a GPU the baseline is cuDNN (`cudnn.benchmark=True`), on the CPU oneDNN; both in NCHW and
channels_last, the faster one counting. Each row first checks xsep's output against the fp64
reference (a wrong output is reported failed, not timed), then times every candidate
interleaved with CUDA events (or perf_counter), rotating input sets so caches don't flatter.

    xsep bench                                  # GPU: Xception's shapes, N=32,128, all modes, forward
    xsep bench --device cpu                     # CPU: the foundation shapes, fp32
    xsep bench --shape 8,728,19,19,728,3,1 --modes bf16 --directions forward,backward
    xsep bench --baselines pytorch,reference,compile   # more baselines (compile: ~30 s per row on a CPU)
    xsep bench --modes bf16 --variants wgmma,wgmma-64px  # CUDA kernel variants beside the default
    xsep bench --suite stack,xception           # whole networks: see xsep/bench/models.py

Suites: `layers` (the per-layer table above), `stack` (Xception's 34 separable convs: training
step time and peak memory vs nn.Conv2d pairs), `xception` (the network: inference and a training
step, AMP bf16, channels_last, eager and compiled, vs backend="reference").
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import signal
import sys
from collections import defaultdict
from pathlib import Path

import torch

from xsep.bench import models, variants
from xsep.bench.metadata import REPO, run_metadata
from xsep.bench.roofline import measure_machine
from xsep.bench.run import BASELINES, failure_text, measure_row
from xsep.bench.shapes import FOUNDATION_CPU, XCEPTION, parse_shape

DIRECTIONS = ("forward", "backward", "forward_backward")
MODES = ("bf16", "fp16", "fp32-tf32", "fp32")


def _csv(text: str) -> list[str]:
    return [t for t in text.split(",") if t]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="xsep bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--shape", action="append", default=[], help="N,C,H,W,Cout,k,stride (repeatable)")
    parser.add_argument("--batch", default=None, help="batch sizes for the preset shapes, e.g. 32,128")
    parser.add_argument("--modes", default=None, help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--directions", default="forward", help=f"comma-separated, of {', '.join(DIRECTIONS)}")
    parser.add_argument("--suite", default="layers", help="comma-separated, of layers, " + ", ".join(models.SUITES))
    parser.add_argument(
        "--baselines", default=None, help=f"layer baselines, of {', '.join(BASELINES)} (default: pytorch,reference)"
    )
    parser.add_argument(
        "--variants",
        default=None,
        help="CUDA kernel variants timed beside the default, each a name of "
        + ", ".join(variants.NAMED)
        + " or KNOB=VALUE[+KNOB=VALUE] (see xsep/bench/variants.py); comma-separated",
    )
    parser.add_argument("--image-size", type=int, default=299, help="networks: input size (299 = the paper's)")
    parser.add_argument("--graph", default=None, help="networks: eager,compiled (default: both on a GPU, eager on CPU)")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--input-sets", type=int, default=3, help="input sets rotated between calls")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results", help="folder for the files")
    parser.add_argument("--name", default=None, help="file name stem (default: bench-<device>)")
    args = parser.parse_args(argv)
    cuda = args.device.startswith("cuda")
    args.modes = _csv(args.modes) if args.modes else (list(MODES) if cuda else ["fp32"])
    args.directions = _csv(args.directions)
    args.suite = _csv(args.suite)
    args.baselines = _csv(args.baselines or "pytorch,reference")
    args.graph = _csv(args.graph or ("eager,compiled" if cuda else "eager"))
    try:
        args.variants = dict(variants.parse_variant(v) for v in _csv(args.variants or ""))
    except ValueError as error:
        parser.error(f"--variants: {error}")
    for value, allowed, what in (
        (args.modes, MODES, "--modes"),
        (args.directions, DIRECTIONS, "--directions"),
        (args.suite, ("layers", *models.SUITES), "--suite"),
        (args.baselines, BASELINES, "--baselines"),
        (args.graph, ("eager", "compiled"), "--graph"),
    ):
        bad = [v for v in value if v not in allowed]
        if bad:
            parser.error(f"{what}: unknown {bad}; choose from {', '.join(allowed)}")
    if not cuda and any(m != "fp32" and m != "bf16" for m in args.modes):
        parser.error("--modes: on the CPU only fp32 and bf16 are meaningful")
    if "xception" in args.suite and args.image_size < 71:
        parser.error(f"--image-size: Xception needs at least 71 pixels; got {args.image_size}")
    args.network_batches = [int(b) for b in _csv(args.batch or ("32,128" if cuda else "2"))]
    if args.shape:
        args.cases = [parse_shape(s) for s in args.shape]
    elif cuda:
        batches = [int(b) for b in _csv(args.batch or "32,128")]
        args.cases = [(s, n) for n in batches for s in XCEPTION]
    else:
        args.cases = (
            FOUNDATION_CPU if args.batch is None else [(s, int(b)) for b in _csv(args.batch) for s, _ in FOUNDATION_CPU]
        )
    return args


def geometric_means(rows: list[dict]) -> dict[str, float]:
    """Geometric mean of the speed-up over the shapes, per (mode, direction, N), and per kernel
    variant as `<mode> <direction> N=<N> [<variant>]` (over the rows where it ran correctly)."""
    groups = defaultdict(list)
    for r in rows:
        if r["status"] == "ok":
            key = f"{r['mode']} {r['direction']} N={r['N']}"
            groups[key].append(math.log(r["speedup"]))
            for name, v in r.get("variants", {}).items():
                if v["status"] == "ok":
                    groups[f"{key} [{name}]"].append(math.log(v["speedup"]))
    return {k: math.exp(sum(v) / len(v)) for k, v in groups.items()}


def variant_summary(row: dict) -> str:
    """The row's kernel variants: speed-up over the baseline each, or why it was not timed."""
    parts = []
    for name, v in row.get("variants", {}).items():
        parts.append(f"{name} {v['speedup']:.2f}x" if v["status"] == "ok" else f"{name} FAILED")
    return ", ".join(parts)


def markdown_table(rows: list[dict]) -> str:
    with_variants = any(r.get("variants") for r in rows)
    head = (
        "| shape | N | mode | direction | xsep ms | baseline ms | speed-up | TFLOP/s | GB/s | % of bound | max err "
        "| vs other baselines |" + (" kernel variants (vs the baseline) |" if with_variants else "") + "\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if with_variants else "") + "\n"
    )
    lines = []
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['shape']} | {r['N']} | {r['mode']} | {r['direction']} | {r['status']} |||||||")
            continue
        others = ", ".join(f"{b} {v:.2f}x" for b, v in r["speedup_vs"].items() if b != "pytorch")
        lines.append(
            f"| {r['shape']} | {r['N']} | {r['mode']} | {r['direction']} | {r['xsep_ms']:.3f} | {r['baseline_ms']:.3f} "
            f"| {r['speedup']:.2f}x | {r['tflops']:.3g} | {r['gbs']:.3g} | {r['pct_of_bound']:.0f}% "
            f"| {r['max_error']:.1e} | {others} |" + (f" {variant_summary(r)} |" if with_variants else "")
        )
    return head + "\n".join(lines) + "\n"


def autotuned_choices(rows: list[dict]) -> list[str]:
    """Markdown lines: for each row where variant `autotuned` ran, the kernels that served it (its
    dispatch lines from `kernels`, each with the times the autotuner measured): what the autotuner
    chose per shape, the table the default kernel choices are read against."""
    table = []
    for r in rows:
        chosen = r.get("kernels", {}).get("xsep[autotuned]_channels_last")
        if chosen:
            kernels = "<br>".join(line.split(": ", 1)[-1] for line in chosen)
            table.append(f"| {r['shape']} | {r['N']} | {r['mode']} | {r['direction']} | {kernels} |")
    if not table:
        return []
    head = ["", "Kernels the autotuner chose (variant `autotuned`):", "", "| shape | N | mode | direction | kernels |"]
    return [*head, "|---|---|---|---|---|", *table]


CSV_COLUMNS = [
    "shape", "N", "C", "H", "W", "Cout", "kernel", "stride", "mode", "direction", "status", "xsep_ms", "baseline_ms",
    "speedup", "speedup_channels_last", "bound_ms", "pct_of_bound", "tflops", "gbs", "max_error", "max_error_unfused",
]  # fmt: skip


NETWORK_CSV_COLUMNS = [
    "suite", "N", "image_size", "direction", "compiled", "precision", "memory_format", "status", "xsep_ms",
    "baseline_ms", "speedup", "xsep_images_per_s", "baseline_images_per_s", "xsep_peak_mib", "baseline_peak_mib",
    "memory_ratio", "max_error", "max_error_unfused",
]  # fmt: skip


def write_csv(rows: list[dict], path: Path, columns: list[str]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def plot_speedups(rows: list[dict], path: Path) -> None:
    """Speed-up per layer: one bar group per (shape, N), one bar per (mode, direction)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r["status"] == "ok"]
    layers = list(dict.fromkeys(f"{r['shape']}\nN={r['N']}" for r in ok))
    series = list(dict.fromkeys(f"{r['mode']} {r['direction']}" for r in ok))
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(layers) + 2), 4.5))
    for i, name in enumerate(series):
        values = {f"{r['shape']}\nN={r['N']}": r["speedup"] for r in ok if f"{r['mode']} {r['direction']}" == name}
        xs = [j + (i - (len(series) - 1) / 2) * width for j, layer in enumerate(layers) if layer in values]
        ax.bar(xs, [values[layer] for layer in layers if layer in values], width, label=name)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(layers)), layers, fontsize=8)
    ax.set_ylabel("speed-up over the baseline (x)")
    ax.set_title("xsep vs the faster of PyTorch's two memory formats")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    machine = measure_machine(device, args.modes)
    print(
        f"xsep bench on {device}: copy {machine.bandwidth_gbs:.0f} GB/s, matmul peak "
        + ", ".join(f"{m} {p:.1f} TFLOP/s" for m, p in machine.peak_tflops.items()),
        flush=True,
    )
    # Results are rewritten as rows come in, so a run cut short still leaves what it measured.
    rows, network_rows = [], []

    def save_so_far() -> None:
        write_results(args, device, machine, rows, network_rows, geometric_means(rows), complete=False)

    # Stopped by a time limit (`timeout` sends SIGTERM): keep the rows measured so far.
    previous_handler = signal.signal(signal.SIGTERM, _raise_system_exit)
    try:
        if "layers" in args.suite:
            run_layers(args, device, machine, rows, save_so_far)
        run_networks(args, device, network_rows, save_so_far)
    except (SystemExit, KeyboardInterrupt):
        save_so_far()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    means = geometric_means(rows)
    if means:
        print("\ngeometric mean speed-up over the shapes:")
        for key, value in means.items():
            print(f"  {key:32s} {value:.2f}x")
    write_results(args, device, machine, rows, network_rows, means)
    variant_failed = any(v["status"] != "ok" for r in rows for v in r.get("variants", {}).values())
    if variant_failed or any(r["status"] != "ok" for r in rows + network_rows):
        sys.exit(1)


def _raise_system_exit(signum, frame) -> None:
    raise SystemExit(128 + signum)


SAVE_EVERY = 10  # rows between partial writes of the result files (a plot takes ~0.5 s)


def run_layers(args: argparse.Namespace, device: torch.device, machine, rows: list[dict], save_so_far) -> None:
    """Measures every (mode, direction, shape) into `rows`."""
    from tqdm import tqdm

    jobs = [(m, d, c) for m in args.modes for d in args.directions for c in args.cases]
    baselines = tuple(args.baselines)
    with tqdm(total=len(jobs), unit="row", dynamic_ncols=True, leave=False) as progress:
        for mode, direction, (shape, n) in jobs:
            progress.set_description(f"{shape.name} N={n} {mode} {direction}")
            try:
                row = measure_row(
                    shape, n, mode, direction, device, machine, args.reps, args.input_sets, baselines, args.variants
                )
            except RuntimeError as error:  # e.g. a CUDA fault: a failed row, and the run goes on
                row = {"shape": shape.name, "N": n, "mode": mode, "direction": direction}
                row["status"] = f"failed: {failure_text(error)}"
            rows.append(row)
            head = f"{row['shape']:16s} N={n:<4d} {mode:9s} {direction:16s}"
            if row["status"] == "ok":
                others = "  ".join(f"vs {b} {v:.2f}x" for b, v in row["speedup_vs"].items() if b != "pytorch")
                progress.write(
                    f"{head} xsep {row['xsep_ms']:8.3f} ms  baseline {row['baseline_ms']:8.3f} ms  "
                    f"{row['speedup']:5.2f}x  {row['pct_of_bound']:5.1f}% of bound  {others}"
                    + (f"  variants: {variant_summary(row)}" if row["variants"] else "")
                )
            else:
                progress.write(f"{head} {row['status']}")
            progress.update()
            if len(rows) % SAVE_EVERY == 0:
                save_so_far()


def run_networks(args: argparse.Namespace, device: torch.device, rows: list[dict], save_so_far) -> None:
    """Measures every network row into `rows`."""
    for suite in (s for s in args.suite if s in models.SUITES):
        directions = models.DIRECTIONS if suite == "xception" else ("train_step",)
        for n in args.network_batches:
            for direction in directions:
                for graph in args.graph:
                    row = models.measure_network(
                        suite, n, args.image_size, direction, graph == "compiled", device, args.reps, args.input_sets
                    )
                    rows.append(row)
                    save_so_far()
                    head = f"{suite} N={n} {args.image_size}px {direction} {graph}"
                    if row["status"] != "ok":
                        print(f"{head}: {row['status']}", flush=True)
                        continue
                    memory = f", peak memory {row['memory_ratio']:.2f}x" if row["memory_ratio"] is not None else ""
                    print(
                        f"{head}: xsep {row['xsep_ms']:.1f} ms ({row['xsep_images_per_s']:.1f} img/s), "
                        f"baseline {row['baseline_ms']:.1f} ms, {row['speedup']:.2f}x{memory}",
                        flush=True,
                    )


def write_results(args, device, machine, rows, network_rows, means, complete: bool = True) -> None:
    """The .json/.md (and .csv/.png) files; `complete` False while rows are still coming in."""
    meta = run_metadata(device) | {
        "bandwidth_gbs": machine.bandwidth_gbs,
        "peak_tflops": machine.peak_tflops,
        "reps": args.reps,
        "input_sets": args.input_sets,
        "variants": args.variants,
        "complete": complete,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / (args.name or f"bench-{device.type}")
    result = {"metadata": meta, "geomean_speedup": means, "rows": rows, "network_rows": network_rows}
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        f"# xsep bench: {meta['device_name']}",
        "",
        f"`{meta['command']}`  ",
        f"commit {meta['git_commit']}, csrc tree {meta['csrc_tree']}, torch {meta['torch']}",
        "",
    ]
    if meta.get("kernel_choice"):
        md += ["Kernel variants forced: " + ", ".join(f"`{k}={v}`" for k, v in meta["kernel_choice"].items()), ""]
    if args.variants:
        md += [
            "Kernel variants timed beside the default (channels_last; `kernels` in the JSON says which ran): "
            + ", ".join(
                f"{name} (`{'+'.join(f'{k}={v}' for k, v in knobs.items())}`)" for name, knobs in args.variants.items()
            ),
            "",
        ]
    if not complete:
        md += ["**Partial**: the run stopped before every row was measured.", ""]
    written = [".json", ".md"]
    if rows:
        md += [markdown_table(rows), "Geometric mean speed-up over the shapes:", ""]
        md += [f"- {k}: {v:.2f}x" for k, v in means.items()]
        md += autotuned_choices(rows)
        write_csv(rows, stem.with_suffix(".csv"), CSV_COLUMNS)
        plot_speedups(rows, stem.with_suffix(".png"))
        written += [".csv", ".png"]
    if network_rows:
        md += ["", "Networks (xsep vs the same network on PyTorch's two convolutions):", ""]
        md += [models.markdown_table(network_rows)]
        write_csv(network_rows, stem.parent / f"{stem.name}-networks.csv", NETWORK_CSV_COLUMNS)
        written.append("-networks.csv")
    stem.with_suffix(".md").write_text("\n".join(md) + "\n")
    if complete:
        print(f"\nwrote {stem}: " + ", ".join(written))


if __name__ == "__main__":
    main()
