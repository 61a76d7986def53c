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
    """Median wall time in ms of each of `fns`, run interleaved so drift hits all alike.

    On a GPU each call is timed with CUDA events on the current stream; on the CPU with
    perf_counter. `prepare[i]`, if given, runs untimed before every call of `fns[i]` (xsep bench
    sets a kernel variant's knobs with it).
    """
    prepare = list(prepare) if prepare is not None else [None] * len(fns)
    for fn, before in zip(fns, prepare, strict=True):
        for _ in range(warmup):
            if before is not None:
                before()
            fn()
    samples: list[list[float]] = [[] for _ in fns]
    cuda = device.type == "cuda"
    for _ in range(reps):
        for i, fn in enumerate(fns):
            if prepare[i] is not None:
                prepare[i]()
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                samples[i].append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                samples[i].append((time.perf_counter() - t0) * 1e3)
    return [statistics.median(s) for s in samples]
