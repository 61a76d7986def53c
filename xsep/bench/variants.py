"""Kernel variants for `xsep bench --variants`: the CUDA kernel choice's knobs (xsep._kernel_knobs),
set for one candidate's calls, so one run times several kernels against the same baseline.

A variant is a name below, or knobs written out: `XSEP_FWD_KERNEL=wgmma+XSEP_FWD_PIXELS=64`. A knob
asks for a kernel; where that kernel does not apply the launcher serves the call with its default,
and the row's `kernels` entry (the dispatch lines) says which ran.
"""

from __future__ import annotations

from xsep._kernel_knobs import validate

NAMED = {
    # forward
    "resident": {"XSEP_FWD_KERNEL": "resident"},
    "resident-3stage": {"XSEP_FWD_KERNEL": "resident", "XSEP_FWD_STAGES": "3"},
    "resident-64px": {"XSEP_FWD_KERNEL": "resident", "XSEP_FWD_PIXELS": "64"},
    "resident-128px": {"XSEP_FWD_KERNEL": "resident", "XSEP_FWD_PIXELS": "128"},
    "tiled": {"XSEP_FWD_KERNEL": "tiled"},
    "halo": {"XSEP_FWD_KERNEL": "halo"},
    "wgmma": {"XSEP_FWD_KERNEL": "wgmma"},
    "wgmma-64px": {"XSEP_FWD_KERNEL": "wgmma", "XSEP_FWD_PIXELS": "64"},
    "wgmma-4stage": {"XSEP_FWD_KERNEL": "wgmma", "XSEP_FWD_STAGES": "4"},
    "wgmma-4wg": {"XSEP_FWD_KERNEL": "wgmma", "XSEP_FWD_WARPGROUPS": "4"},
    # the largest weight ring its shared memory allows (up to 8 slots; the 728 layers take 5)
    "wgmma-8stage": {"XSEP_FWD_KERNEL": "wgmma", "XSEP_FWD_STAGES": "8"},
    # the wgmma kernel with the next depthwise chunk's loads in flight (at 128 pixels: the build for
    # one CTA per SM, channel quartets, where only one fits)
    "wgmma-prefetch": {"XSEP_FWD_KERNEL": "wgmma", "XSEP_FWD_PREFETCH": "1"},
    # the wgmma kernel's builds for two or more CTAs per SM even where one fits (the default before
    # the seventh session at 128 pixels, the eighth at 64; now the builds for one, with their registers)
    "wgmma-2cta": {"XSEP_FWD_KERNEL": "wgmma", "XSEP_FWD_CTAS": "2"},
    # the builds for one CTA per SM on every layer (the shallow ones at a fraction of their occupancy)
    "wgmma-1cta": {"XSEP_FWD_KERNEL": "wgmma", "XSEP_FWD_CTAS": "1"},
    # the wgmma kernel's depthwise phase from bands of x in shared memory (the builds for one CTA per
    # SM: the 728+ layers in 16 bits, TF32's 728+; elsewhere the default)
    "wgmma-staged": {"XSEP_FWD_KERNEL": "wgmma", "XSEP_FWD_DW": "staged"},
    "streamed": {"XSEP_FWD_KERNEL": "streamed"},
    "streamed-3stage": {"XSEP_FWD_KERNEL": "streamed", "XSEP_FWD_STAGES": "3"},
    # the depthwise phase and the GEMM on different warps at once, each 64-pixel tile's Z whole in one
    # of two buffers, or one where two do not fit (16-bit, and TF32 up to 728 channels; elsewhere the
    # default)
    "overlap": {"XSEP_FWD_KERNEL": "overlap"},
    "overlap-3stage": {"XSEP_FWD_KERNEL": "overlap", "XSEP_FWD_STAGES": "3"},
    # the same in clusters of two CTAs that take neighbouring pixel tiles and read each weight chunk
    # from L2 once for both (multicast): half the overlapped forward's weight traffic
    "overlap-pair-weights": {"XSEP_FWD_KERNEL": "overlap", "XSEP_FWD_PAIR": "weights"},
    # clusters of two CTAs on one pixel tile, each computing half its depthwise passes (copied into
    # the other's Z buffer) and multiplying all of Z by half the output channels (where there are two
    # tiles of 128 or more): no part recomputes Z, and a tile is two half-size items
    "overlap-pair-z": {"XSEP_FWD_KERNEL": "overlap", "XSEP_FWD_PAIR": "z"},
    # the autotuner: each shape's fastest forward and backward kernels, timed on its first call (the
    # timing runs before the bench's own, in its warm-up)
    "autotuned": {"XSEP_AUTOTUNE": "1"},
    # backward
    "bwd-first": {"XSEP_BWD_KERNEL": "first"},
    "bwd-staged": {"XSEP_BWD_KERNEL": "staged"},
    "bwd-wgmma": {"XSEP_BWD_KERNEL": "wgmma"},  # the Hopper default before the resident pw kernel
    "bwd-resident": {"XSEP_BWD_KERNEL": "resident"},
    "bwd-staged-128ch": {"XSEP_BWD_KERNEL": "staged", "XSEP_BWD_CHANNELS": "128"},
    "bwd-wgmma-128ch": {"XSEP_BWD_KERNEL": "wgmma", "XSEP_BWD_CHANNELS": "128"},
    "bwd-256ch": {"XSEP_BWD_CHANNELS": "256"},  # the default kernels, the wgmma input one at 256 channels
    "bwd-128ch": {"XSEP_BWD_CHANNELS": "128"},
    # 64 channels per input-gradient CTA everywhere (the default below 128 depthwise channels, and
    # everywhere before d6d19ed)
    "bwd-64ch": {"XSEP_BWD_CHANNELS": "64"},
    # the resident pw-gradient kernel with splits of 512 pixels, two CTAs per SM (Cout <= 128: the
    # default there since d6d19ed), or of 1024, one CTA per SM, everywhere (the default before)
    "bwd-pw512": {"XSEP_BWD_PW_PIXELS": "512"},
    "bwd-pw1024": {"XSEP_BWD_PW_PIXELS": "1024"},
    # both directions on Hopper's wgmma
    "all-wgmma": {"XSEP_FWD_KERNEL": "wgmma", "XSEP_BWD_KERNEL": "wgmma"},
}


def parse_variant(spec: str) -> tuple[str, dict[str, str]]:
    """(name, knobs) of a named variant or of `KNOB=VALUE+KNOB=VALUE`; ValueError if neither."""
    if spec in NAMED:
        return spec, dict(NAMED[spec])
    if "=" not in spec:
        raise ValueError(f"unknown variant {spec!r}: a name ({', '.join(NAMED)}) or KNOB=VALUE[+KNOB=VALUE]")
    knobs = {}
    for part in spec.split("+"):
        name, _, value = part.partition("=")
        knobs[name] = value
    if knobs.get("XSEP_PHASE_CLOCKS", "") not in ("", "0"):
        # each such launch waits for its kernel: a timing of it would time the wait
        raise ValueError(f"{spec!r}: XSEP_PHASE_CLOCKS is not a kernel variant; tools/phase_clocks.py reads the clocks")
    return spec, validate(knobs)


def affects(knobs: dict[str, str], direction: str) -> bool:
    """Whether any of `knobs` can change what a `direction` row times (the backward alone replays a
    forward recorded under the run's own knobs)."""
    forward = any(k.startswith("XSEP_FWD_") or k == "XSEP_AUTOTUNE" for k in knobs)
    backward = any(k.startswith("XSEP_BWD_") or k == "XSEP_AUTOTUNE" for k in knobs)
    return {"forward": forward, "backward": backward}.get(direction, forward or backward)
