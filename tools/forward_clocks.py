"""Where the wgmma forward's time goes, phase by phase, from the clocks its CTAs stamp themselves
(XSEP_FWD_CLOCKS=1: csrc/kernels/phase_clocks.h); run by the `forward-clocks` stage of
tools/gpu_run.sh, on a GPU:

    python3 tools/forward_clocks.py --batch 32 --dtype bfloat16,float32 --variants wgmma-prefetch,wgmma-4wg

For each Xception layer shape (or --shape N,C,H,W,Cout) and each variant (xsep/bench/variants.py;
unset: the kernels the environment chooses), one warm call, then one call with the clocks on. It
prints, per layer: the CTAs, how many shared an SM at once, the kernel's span (first CTA start to
last CTA end, on the global timer), and a median CTA's time split into the tap table, the depthwise
phase (Z into shared memory), the K loops of its output-channel tiles (the wgmma and the waits for
the weight ring), the bias-and-store epilogues, and the rest. Cycles become microseconds at each
CTA's own clock (its cycles over its global-timer nanoseconds). `--json FILE` keeps the summaries.

The stamps are thread 0's, after barriers where the phase ends at one (the tap table, the depthwise
phase); a tile's K loop and stores are thread 0's warpgroup's. The call with the clocks on waits for
its kernel, so only the stamps, not the call's wall time, are the measurement.
"""

from __future__ import annotations

import argparse
import json
import statistics

# The record's slots (csrc/kernels/phase_clocks.h, enum PhaseClockSlot).
SM, START_NS, END_NS, START, TABLE_DONE, DEPTHWISE_DONE, END, TILES, TILE_STAMPS = range(9)
MAX_TILES = 16
SLOTS = TILE_STAMPS + 2 * MAX_TILES
PHASES = ("table", "depthwise", "gemm", "stores", "rest")


def cta_phases(r: list[int]) -> dict[str, int]:
    """One CTA's record -> cycles per phase (and 'total'); the phases sum to the total."""
    tiles = r[TILES]
    stamped = min(tiles, MAX_TILES)
    gemm = stores = 0
    last = r[DEPTHWISE_DONE]
    for t in range(stamped):
        k_done, stored = r[TILE_STAMPS + 2 * t], r[TILE_STAMPS + 2 * t + 1]
        gemm += k_done - last
        stores += stored - k_done
        last = stored
    return {
        "table": r[TABLE_DONE] - r[START],
        "depthwise": r[DEPTHWISE_DONE] - r[TABLE_DONE],
        "gemm": gemm,
        "stores": stores,
        "rest": r[END] - last,  # tiles past MAX_TILES, and the end
        "total": r[END] - r[START],
        "tiles": tiles,
    }


def most_at_once(intervals: list[tuple[int, int]]) -> int:
    """The most intervals (start, end) that overlap at any moment."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])  # an end before a start
    now = most = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def summarize(flat: list[int], slots: int = SLOTS) -> dict:
    """The records of one launch (flat, `slots` values a CTA) -> the launch's summary: CTAs, SMs,
    the most CTAs on an SM at once, the span (us), the median CTA's phases (us), each phase's share
    of all CTAs' cycles."""
    if slots != SLOTS:
        raise ValueError(f"a record has {slots} slots; this reader knows {SLOTS} (csrc/kernels/phase_clocks.h)")
    if not flat or len(flat) % slots:
        raise ValueError(f"{len(flat)} values are not whole records of {slots}")
    records = [flat[i : i + slots] for i in range(0, len(flat), slots)]
    per_sm: dict[int, list[tuple[int, int]]] = {}
    phases, micro = [], []
    for r in records:
        per_sm.setdefault(r[SM], []).append((r[START_NS], r[END_NS]))
        ph = cta_phases(r)
        ns = max(r[END_NS] - r[START_NS], 1)
        ghz = ph["total"] / ns  # this CTA's clock: cycles per ns
        phases.append(ph)
        micro.append({k: ph[k] / ghz / 1e3 for k in (*PHASES, "total")} | {"ghz": ghz})
    total = sum(ph["total"] for ph in phases) or 1
    median = {k: statistics.median(m[k] for m in micro) for k in (*PHASES, "total", "ghz")}
    return {
        "ctas": len(records),
        "sms": len(per_sm),
        "most_ctas_per_sm": max(most_at_once(v) for v in per_sm.values()),
        "span_us": (max(r[END_NS] for r in records) - min(r[START_NS] for r in records)) / 1e3,
        "tiles": statistics.median(ph["tiles"] for ph in phases),
        "median_us": median,
        "share": {k: sum(ph[k] for ph in phases) / total for k in PHASES},
    }


def describe(label: str, s: dict) -> str:
    m = s["median_us"]
    split = " + ".join(f"{k} {m[k]:.1f}" for k in PHASES)
    shares = ", ".join(f"{k} {100 * s['share'][k]:.0f}%" for k in PHASES)
    return (
        f"{label}: {s['ctas']} CTAs on {s['sms']} SMs, at most {s['most_ctas_per_sm']} at once; span "
        f"{s['span_us']:.1f} us; median CTA {m['total']:.1f} us at {m['ghz']:.2f} GHz = {split} "
        f"({s['tiles']:g} tiles); all CTAs' cycles: {shares}"
    )


def main() -> None:
    import torch

    from xsep._extension import _C
    from xsep._kernel_knobs import kernel_knobs, recorded_dispatches
    from xsep.bench.shapes import XCEPTION
    from xsep.bench.variants import parse_variant
    from xsep.ops import separable_conv2d

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--shape", action="append", default=[], help="N,C,H,W,Cout (3x3, stride 1, padding 1)")
    parser.add_argument("--dtype", default="bfloat16", help="comma-separated: bfloat16, float16, float32 (TF32)")
    parser.add_argument("--variants", default="", help="comma-separated kernel variants (xsep/bench/variants.py)")
    parser.add_argument("--json", help="write the summaries here")
    args = parser.parse_args()
    shapes = [tuple(int(v) for v in s.split(",")) for s in args.shape] or [
        (args.batch, s.C, s.H, s.H, s.Cout) for s in XCEPTION
    ]
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    device = torch.device("cuda")
    results = []
    for dtype_name in args.dtype.split(","):
        dtype = getattr(torch, dtype_name)
        for n, c, h, w, cout in shapes:
            x = torch.randn(n, c, h, w, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
            dw = (torch.randn(c, 1, 3, 3, device=device) / 3).to(dtype)
            pw = (torch.randn(cout, c, 1, 1, device=device) / c**0.5).to(dtype)
            for spec in [v for v in args.variants.split(",") if v] or ["default"]:
                name, knobs = ("default", {}) if spec == "default" else parse_variant(spec)
                label = f"{c}->{cout} @{h} N={n} {dtype_name} [{name}]"
                with kernel_knobs(knobs):
                    separable_conv2d(x, dw, pw, None, 1, 1)  # warm: the choice's caches, the allocator
                    torch.cuda.synchronize()
                    _C.take_forward_phase_clocks()  # nothing older than the next call
                    with kernel_knobs({"XSEP_FWD_CLOCKS": "1"}), recorded_dispatches() as lines:
                        separable_conv2d(x, dw, pw, None, 1, 1)
                _, slots, flat = _C.take_forward_phase_clocks()
                if not flat:  # another kernel served the call
                    print(f"{label}: no wgmma forward, no clocks ({'; '.join(lines)})", flush=True)
                    continue
                summary = summarize(flat, slots)
                print(describe(label, summary), flush=True)
                results.append({"layer": label, "dispatch": lines, **summary})
    if args.json:
        with open(args.json, "w") as f:
            meta = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
            json.dump({**meta, "rows": results}, f, indent=1)


if __name__ == "__main__":
    main()
