"""Timing for the demo and the benchmarks (never for tests): medians after warm-up."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import torch


def median_ms(
    fns: Sequence[Callable[[], object]],
    device: torch.device,
    warmup: int = 3,
    reps: int = 15,
    prepare: Sequence[Callable[[], object] | None] | None = None,
) -> list[float]:
    """Median time in ms of each of `fns`, run interleaved so drift hits all alike.

    On a GPU each call is timed with a pair of CUDA events on the current stream, the calls
    enqueued back to back and waited for once at the end, as the GPU meets them in a training loop
    (and as triton's do_bench times): a pair then times the GPU's work for its call, and the host's
    time to launch it only where the host falls behind (a call whose launch takes longer than the
    GPU work queued before it). Waiting after every call would add each call's launch time to its
    figure, since the GPU idles from the start event until the call's first kernel arrives. On the
    CPU: perf_counter around each call. `prepare[i]`, if given, runs untimed before every call of
    `fns[i]` (xsep bench sets a kernel variant's knobs with it; host-side only).
    """
    prepare = list(prepare) if prepare is not None else [None] * len(fns)
    for fn, before in zip(fns, prepare, strict=True):
        for _ in range(warmup):
            if before is not None:
                before()
            fn()
    samples: list[list[float]] = [[] for _ in fns]
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)  # the warm-up's work is not any call's
    events: list[list[tuple[torch.cuda.Event, torch.cuda.Event]]] = [[] for _ in fns]
    for _ in range(reps):
        for i, fn in enumerate(fns):
            if prepare[i] is not None:
                prepare[i]()
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                events[i].append((start, end))
            else:
                t0 = time.perf_counter()
                fn()
                samples[i].append((time.perf_counter() - t0) * 1e3)
    if cuda:
        torch.cuda.synchronize(device)
        samples = [[start.elapsed_time(end) for start, end in pairs] for pairs in events]
    return [statistics.median(s) for s in samples]
