"""The CUDA kernel choice's measurement knobs, set from Python for a stretch of calls, and the
record of which kernels served them. The knobs are the environment variables XSEP_FWD_KERNEL,
XSEP_FWD_PIXELS, XSEP_FWD_STAGES, XSEP_FWD_WARPGROUPS, XSEP_FWD_PREFETCH, XSEP_FWD_CTAS, XSEP_FWD_DW,
XSEP_FWD_PAIR, XSEP_BWD_KERNEL, XSEP_BWD_CHANNELS and XSEP_BWD_PW_PIXELS (README, "GPU runs"),
XSEP_AUTOTUNE (the autotuner) and XSEP_PHASE_CLOCKS (the kernels' phase clocks);
the C++ side (csrc/kernels/kernel_knobs.h) reads each from the environment once, and
`kernel_knobs` overrides them in this process, so `xsep bench --variants` times several kernels
against one baseline.

    with kernel_knobs({"XSEP_FWD_KERNEL": "wgmma"}), recorded_dispatches() as lines:
        y = separable_conv2d(x, dw, pw)
    lines  # e.g. ['separable_conv2d: forward bfloat16 mma channels_last 3x3 wgmma (128 pixels, ...)']

A knob asks; the launcher takes it only where that kernel applies (else the default serves), so
read the recorded lines to know what ran.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from xsep import _dispatch_log
from xsep._extension import _C

# The values each knob takes (anything else is ignored by the launchers, so it is refused here).
KNOBS = {
    "XSEP_FWD_KERNEL": ("resident", "tiled", "halo", "wgmma", "streamed", "overlap"),
    "XSEP_FWD_PIXELS": ("64", "128"),
    # the resident kernel: 3; the wgmma one: 4..16; the streamed one: 2..8; the overlapped one: 3..16
    "XSEP_FWD_STAGES": tuple(str(s) for s in range(2, 17)),
    "XSEP_FWD_WARPGROUPS": ("2", "4"),  # the wgmma forward at 128 pixels (16-bit)
    # 1: the wgmma forward's depthwise phase with the next chunk's loads in flight (at 128 pixels:
    # the build for one CTA per SM, with channel quartets, where only one fits)
    "XSEP_FWD_PREFETCH": ("0", "1"),
    # the CTAs per SM the wgmma forward's build is for: at 128 pixels (16-bit) 2 (128 registers a
    # thread, channel pairs) or 1 (255: channel quartets, two-window quads); at 64 pixels several
    # or 1 (two Z chunks a depthwise pass, quartets, two-window quads). Unset: 1 where only one
    # fits beside its Z, else the other.
    "XSEP_FWD_CTAS": ("1", "2"),
    # where the wgmma forward's depthwise phase reads its windows: "staged", bands of x copied to
    # shared memory (the builds for one CTA per SM, stride 1, dilation 1); "global" (the default), x
    "XSEP_FWD_DW": ("global", "staged"),
    # the overlapped forward (XSEP_FWD_KERNEL=overlap) in clusters of two CTAs: "weights", on
    # neighbouring pixel tiles, each weight chunk read from L2 once for both (multicast); "z", on one
    # pixel tile, each computing half its Z and multiplying it all by half the output channels
    "XSEP_FWD_PAIR": ("weights", "z"),
    # 1: the wgmma forward's and the staged input-gradient kernel's CTAs stamp their phases'
    # clocks, and the launcher waits to keep them (tools/phase_clocks.py; measurement only: each
    # such launch synchronises)
    "XSEP_PHASE_CLOCKS": ("0", "1"),
    "XSEP_BWD_KERNEL": ("first", "staged", "wgmma", "resident"),
    "XSEP_BWD_CHANNELS": ("64", "128", "256"),  # 256: the wgmma input kernel (else 128)
    "XSEP_BWD_PW_PIXELS": ("512", "1024"),  # the resident pw kernel's split; 512: two CTAs per SM (Cout <= 128)
    # 1: the forward and the backward time every kernel that could serve a shape on its first call
    # and keep the fastest (csrc/cuda/autotune.h); off while any knob above picks a kernel, and
    # under torch.use_deterministic_algorithms(True)
    "XSEP_AUTOTUNE": ("0", "1"),
}


def validate(settings: Mapping[str, str]) -> dict[str, str]:
    """`settings` as a plain dict, or ValueError naming the knob or value that does not exist."""
    for name, value in settings.items():
        if name not in KNOBS:
            raise ValueError(f"unknown kernel knob {name!r}; the knobs are {', '.join(KNOBS)}")
        if value != "" and value not in KNOBS[name]:  # '' unsets: the launchers' own choice
            raise ValueError(f"{name}={value!r}: the values are {', '.join(KNOBS[name])}")
    return dict(settings)


def snapshot() -> dict[str, str]:
    """Every knob's value in force (from the environment or set here), '' where unset."""
    return {name: _C.kernel_knob(name) for name in KNOBS}


def current() -> dict[str, str]:
    """The knobs in force, unset ones left out."""
    return {name: value for name, value in snapshot().items() if value}


def apply(values: Mapping[str, str]) -> None:
    """Sets each knob in `values` ('' unsets it); the others keep theirs."""
    for name, value in values.items():
        _C.set_kernel_knob(name, value)


@contextmanager
def kernel_knobs(settings: Mapping[str, str]) -> Iterator[None]:
    """Sets the knobs in `settings` for the block (process-wide: not for concurrent callers) and
    restores the values before it."""
    settings = validate(settings)
    before = snapshot()
    try:
        apply(settings)
        yield
    finally:
        apply(before)


@contextmanager
def recorded_dispatches() -> Iterator[list[str]]:
    """Yields a list that, after the block, holds the distinct dispatch lines of its calls (the
    kernels and fallbacks that served them, as XSEP_LOG_DISPATCH=1 prints them)."""
    _C.take_dispatches()  # drop anything kept before
    _dispatch_log.take_recorded()
    _C.record_dispatches(True)
    _dispatch_log.record(True)
    lines: list[str] = []
    try:
        yield lines
    finally:
        _dispatch_log.record(False)
        _C.record_dispatches(False)
        lines += _C.take_dispatches() + _dispatch_log.take_recorded()
