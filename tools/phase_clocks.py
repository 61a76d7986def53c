"""Where the instrumented kernels' time goes, phase by phase, from the clocks their CTAs stamp
themselves (XSEP_PHASE_CLOCKS=1: csrc/kernels/phase_clocks.h); run by the `phase-clocks` stage of
tools/gpu_run.sh, on a GPU:

    python3 tools/phase_clocks.py --batch 32 --dtype bfloat16,float32 --variants default,wgmma-prefetch

For each Xception layer shape (or --shape N,C,H,W,Cout) and each variant (xsep/bench/variants.py;
`default`: the kernels the environment chooses): one warm forward and backward, then one of each
with the clocks on. Per layer and instrumented kernel it prints the CTAs, how many shared an SM at
once, the kernel's span (first CTA start to last CTA end, on the global timer), and a median CTA's
time split into its phases:
  - the wgmma forward: the tap table, the depthwise phase (Z into shared memory), the K loops of its
    output-channel tiles (the wgmma and the waits for the weight ring), the bias-and-store epilogues;
  - the staged input-gradient kernel (the backward): its tables and weights, the dZ GEMM, dZ times
    the activation's derivative (none in Xception), grad_x, grad_dw's partial sums;
  - the overlapped forward (XSEP_FWD_KERNEL=overlap), whose roles run at once: the producers'
    depthwise passes and their waits for a free Z buffer, the consumer warpgroup's GEMM and stores
    and its waits for a full one (each role's phases, over all its tiles, add up to about the
    CTA's time: waiting producers mean the GEMM sets the pace, a waiting consumer the depthwise);
and what each phase takes of all the CTAs' cycles. Cycles become microseconds at each CTA's own clock
(its cycles over its global-timer nanoseconds). `--json FILE` keeps the summaries.

The stamps are thread 0's, after a barrier where a phase ends (so the slowest thread's), except a
forward tile's K loop and stores (thread 0's warpgroup's). A launch with the clocks on waits for
its kernel, so the stamps, not the call's wall time, are the measurement.
"""

from __future__ import annotations

import argparse
import json
import statistics

# The record's slots (csrc/kernels/phase_clocks.h, enum PhaseClockSlot), and the stamps' count.
SM, START_NS, END_NS, START, END, COUNT, STAMPS = range(7)
MAX_STAMPS = 34
SLOTS = STAMPS + MAX_STAMPS
# The wgmma forward's stamps (enum FwdClockStamp): table, depthwise, then a pair per tile.
FWD_FIRST_TILE = 2
MAX_TILES = (MAX_STAMPS - FWD_FIRST_TILE) // 2
FORWARD = "wgmma forward"
INPUT_GRADIENT = "staged input-gradient"
OVERLAP = "overlapped forward"
PEER_WAIT = "peer_wait"
# Each kernel's phases, in order (the last, "rest", runs from the last stamp to the end). The
# overlapped forward's record holds sums (enum OverlapClockSum), producers' then the consumer's;
# its "rest" is the consumer's time outside its tiles. Its last sum, the pair build's waits for the
# peer CTA's release of a ring slot (PEER_WAIT), is a part of "gemm_stores", not a phase of its own.
PHASES = {
    FORWARD: ("table", "depthwise", "gemm", "stores", "rest"),
    INPUT_GRADIENT: ("tables", "dz", "activation", "grad_x", "grad_dw", "rest"),
    OVERLAP: ("depthwise", "buffer_wait", "gemm_stores", "z_wait", "rest"),
}


def cta_phases(kernel: str, r: list[int]) -> dict[str, int]:
    """One CTA's record -> cycles per phase and 'total' (the phases sum to it), and 'count'."""
    stamp = r[STAMPS:]
    if kernel == FORWARD:
        gemm = stores = 0
        last = stamp[1]
        for t in range(min(r[COUNT], MAX_TILES)):
            k_done, stored = stamp[FWD_FIRST_TILE + 2 * t], stamp[FWD_FIRST_TILE + 2 * t + 1]
            gemm += k_done - last
            stores += stored - k_done
            last = stored
        phases = {"table": stamp[0] - r[START], "depthwise": stamp[1] - stamp[0], "gemm": gemm, "stores": stores}
    elif kernel == OVERLAP:
        names = PHASES[kernel][:-1]
        phases = dict(zip(names, stamp[: len(names)], strict=True))
        last = r[START] + phases["gemm_stores"] + phases["z_wait"]
        return phases | {
            "rest": r[END] - last,
            "total": r[END] - r[START],
            "count": r[COUNT],
            PEER_WAIT: stamp[len(names)],
        }
    elif kernel == INPUT_GRADIENT:
        names = PHASES[kernel][:-1]
        bounds = [r[START], *stamp[: len(names)]]
        phases = {name: bounds[i + 1] - bounds[i] for i, name in enumerate(names)}
        last = bounds[-1]
    else:
        raise ValueError(f"no phases known for kernel {kernel!r} (known: {', '.join(PHASES)})")
    return phases | {"rest": r[END] - last, "total": r[END] - r[START], "count": r[COUNT]}


def most_at_once(intervals: list[tuple[int, int]]) -> int:
    """The most intervals (start, end) that overlap at any moment."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])  # an end before a start
    now = most = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def summarize(kernel: str, flat: list[int], slots: int = SLOTS) -> dict:
    """One launch's records (flat, `slots` values a CTA) -> its summary: CTAs, SMs, the most CTAs on
    an SM at once, the span (us), the median CTA's phases (us), each phase's share of all CTAs'
    cycles, and the median count (the forward's output-channel tiles; the overlapped forward's
    tiles: pixel tile and output-channel part)."""
    if slots != SLOTS:
        raise ValueError(f"a record has {slots} slots; this reader knows {SLOTS} (csrc/kernels/phase_clocks.h)")
    if not flat or len(flat) % slots:
        raise ValueError(f"{len(flat)} values are not whole records of {slots}")
    names = PHASES.get(kernel)
    if names is None:
        raise ValueError(f"no phases known for kernel {kernel!r} (known: {', '.join(PHASES)})")
    records = [flat[i : i + slots] for i in range(0, len(flat), slots)]
    per_sm: dict[int, list[tuple[int, int]]] = {}
    phases, micro = [], []
    extra = (PEER_WAIT,) if kernel == OVERLAP else ()  # parts of a phase, not phases
    for r in records:
        per_sm.setdefault(r[SM], []).append((r[START_NS], r[END_NS]))
        ph = cta_phases(kernel, r)
        ghz = ph["total"] / max(r[END_NS] - r[START_NS], 1)  # this CTA's clock: cycles per ns
        phases.append(ph)
        micro.append({k: ph[k] / ghz / 1e3 for k in (*names, *extra, "total")} | {"ghz": ghz})
    total = sum(ph["total"] for ph in phases) or 1
    return {
        "kernel": kernel,
        "ctas": len(records),
        "sms": len(per_sm),
        "most_ctas_per_sm": max(most_at_once(v) for v in per_sm.values()),
        "span_us": (max(r[END_NS] for r in records) - min(r[START_NS] for r in records)) / 1e3,
        "count": statistics.median(ph["count"] for ph in phases),
        "median_us": {k: statistics.median(m[k] for m in micro) for k in (*names, *extra, "total", "ghz")},
        "share": {k: sum(ph[k] for ph in phases) / total for k in names},
    }


def describe(label: str, s: dict) -> str:
    names = PHASES[s["kernel"]]
    m = s["median_us"]
    split = " + ".join(f"{k} {m[k]:.1f}" for k in names)
    shares = ", ".join(f"{k} {100 * s['share'][k]:.0f}%" for k in names)
    tiles = f" ({s['count']:g} tiles)" if s["kernel"] in (FORWARD, OVERLAP) else ""
    if s["kernel"] == OVERLAP:  # two roles at once: each one's split of the CTA's time
        split = (
            f"producers: depthwise {m['depthwise']:.1f} + waiting for a free buffer {m['buffer_wait']:.1f}; "
            f"consumer: GEMM and stores {m['gemm_stores']:.1f} + waiting for Z {m['z_wait']:.1f} + rest {m['rest']:.1f}"
        )
        if m[PEER_WAIT] > 0:  # the pair build
            split += f" (of the GEMM and stores, waiting for the peer CTA's slot release {m[PEER_WAIT]:.1f})"
    return (
        f"{label} {s['kernel']}: {s['ctas']} CTAs on {s['sms']} SMs, at most {s['most_ctas_per_sm']} at once; "
        f"span {s['span_us']:.1f} us; median CTA {m['total']:.1f} us at {m['ghz']:.2f} GHz = {split}{tiles}; "
        f"all CTAs' cycles: {shares}"
    )


def step(x, dw, pw) -> None:
    """One forward and backward of the layer (3x3, padding 1, no bias)."""
    import torch

    from xsep.ops import separable_conv2d

    y = separable_conv2d(x, dw, pw, None, 1, 1)
    y.backward(torch.ones_like(y))


def main(argv: list[str] | None = None) -> None:
    import torch

    from xsep._extension import _C
    from xsep._kernel_knobs import kernel_knobs, recorded_dispatches
    from xsep.bench.shapes import XCEPTION
    from xsep.bench.variants import parse_variant

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--shape", action="append", default=[], help="N,C,H,W,Cout (3x3, stride 1, padding 1)")
    parser.add_argument("--dtype", default="bfloat16", help="comma-separated: bfloat16, float16, float32 (TF32)")
    parser.add_argument(
        "--variants", default="default", help="comma-separated kernel variants (xsep/bench/variants.py)"
    )
    parser.add_argument("--json", help="write the summaries here")
    parser.add_argument("--device", default="cuda", help="cuda; cpu runs the same steps with nothing to read")
    args = parser.parse_args(argv)
    shapes = [tuple(int(v) for v in s.split(",")) for s in args.shape] or [
        (args.batch, s.C, s.H, s.H, s.Cout) for s in XCEPTION
    ]
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    device = torch.device(args.device)

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    results = []
    for dtype_name in args.dtype.split(","):
        dtype = getattr(torch, dtype_name)
        for n, c, h, w, cout in shapes:
            x = torch.randn(n, c, h, w, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
            dw = (torch.randn(c, 1, 3, 3, device=device) / 3).to(dtype).requires_grad_()
            pw = (torch.randn(cout, c, 1, 1, device=device) / c**0.5).to(dtype).requires_grad_()
            x.requires_grad_()
            for spec in [v for v in args.variants.split(",") if v]:
                name, knobs = ("default", {}) if spec == "default" else parse_variant(spec)
                label = f"{c}->{cout} @{h} N={n} {dtype_name} [{name}]"

                with kernel_knobs(knobs):
                    step(x, dw, pw)  # warm: the choice's caches, the allocator
                    synchronize()
                    _C.take_phase_clocks()  # nothing older than the next step
                    with kernel_knobs({"XSEP_PHASE_CLOCKS": "1"}), recorded_dispatches() as lines:
                        step(x, dw, pw)
                        synchronize()
                launches = _C.take_phase_clocks()
                if not any(flat for _, _, flat in launches):
                    print(f"{label}: no instrumented kernel ran ({'; '.join(lines)})", flush=True)
                for kernel, slots, flat in launches:
                    if flat:
                        summary = summarize(kernel, flat, slots)
                        print(describe(label, summary), flush=True)
                        results.append({"layer": label, "dispatch": lines, **summary})
    if args.json:
        with open(args.json, "w") as f:
            name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
            meta = {"device": name, "torch": torch.__version__}
            json.dump({**meta, "rows": results}, f, indent=1)


if __name__ == "__main__":
    main()
