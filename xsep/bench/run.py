"""Measures one benchmark row: the fused op against the baselines, same shapes, dtype, memory
format and process, after checking the fused output (and, for rows that time the backward, every
gradient) against the fp64 reference.

Baselines (each in NCHW and channels_last, the faster counting):
  pytorch    PyTorch's two convolutions (cuDNN / oneDNN) — the one the headline speed-up is against
  reference  xsep's own unfused path (xsep.reference: explicit padding, then the two convolutions),
             what `backend="reference"` models run
  compile    torch.compile of PyTorch's two convolutions (compiled afresh per row)
"""

from __future__ import annotations

import functools
import itertools

import torch
import torch.nn.functional as F

from xsep import _kernel_knobs
from xsep._kernel_knobs import kernel_knobs, recorded_dispatches
from xsep._timing import median_ms
from xsep.bench.roofline import Machine, bound_ms, layer_cost, math_mode, tf32_enabled
from xsep.bench.shapes import LayerShape
from xsep.bench.variants import affects
from xsep.ops import separable_conv2d
from xsep.reference import check_error, separable_conv2d_reference

FORMATS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def _unfused(x, dw, pw, stride, padding):
    return F.conv2d(F.conv2d(x, dw, None, stride, padding, 1, x.shape[1]), pw)


def _xsep(x, dw, pw, stride, padding):
    return separable_conv2d(x, dw, pw, None, stride, padding)


def _reference(x, dw, pw, stride, padding):
    return separable_conv2d_reference(x, dw, pw, None, stride, padding)


BASELINES = ("pytorch", "reference", "compile")


def baseline_fn(name: str):
    if name == "pytorch":
        return _unfused
    if name == "reference":
        return _reference
    if name == "compile":
        # A fresh cache per row: dynamo would otherwise hit its recompile limit across the shapes
        # and fall back to eager without saying so.
        torch._dynamo.reset()
        return torch.compile(_unfused, dynamic=False)
    raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")


def layer_step(fn, shape: LayerShape, direction: str, inputs: list[tuple], grads: list[torch.Tensor]):
    """A zero-argument callable that runs `direction` of `fn` on the next input set each call."""
    geometry = (shape.stride, shape.kernel // 2)
    if direction == "forward":
        sets = itertools.cycle(inputs)

        def run():
            with torch.no_grad():
                fn(*next(sets), *geometry)

    elif direction == "forward_backward":
        sets = itertools.cycle(zip(inputs, grads, strict=True))

        def run():
            (x, dw, pw), g = next(sets)
            torch.autograd.grad(fn(x, dw, pw, *geometry), (x, dw, pw), g)

    else:  # backward alone: one graph per input set, built once, replayed
        graphs = [(fn(x, dw, pw, *geometry), (x, dw, pw), g) for (x, dw, pw), g in zip(inputs, grads, strict=True)]
        sets = itertools.cycle(graphs)

        def run():
            y, leaves, g = next(sets)
            torch.autograd.grad(y, leaves, g, retain_graph=True)

    return run


def layer_inputs(
    shape: LayerShape,
    n: int,
    dtype: torch.dtype,
    memory_format: torch.memory_format,
    device: torch.device,
    grad_needed: bool,
    input_sets: int,
) -> tuple[list[tuple], list[torch.Tensor]]:
    """`input_sets` sets of (x, dw, pw), and as many output gradients, in `memory_format`."""
    inputs, grads = [], []
    ho = -(-shape.H // shape.stride)
    for _ in range(input_sets):
        x = torch.randn(n, shape.C, shape.H, shape.H, device=device, dtype=dtype)
        x = x.contiguous(memory_format=memory_format).requires_grad_(grad_needed)
        dw = torch.randn(shape.C, 1, shape.kernel, shape.kernel, device=device, dtype=dtype) / 3
        pw = torch.randn(shape.Cout, shape.C, 1, 1, device=device, dtype=dtype)
        inputs.append((x, dw.requires_grad_(grad_needed), pw.requires_grad_(grad_needed)))
        g = torch.randn(n, shape.Cout, ho, ho, device=device, dtype=dtype)
        grads.append(g.contiguous(memory_format=memory_format))
    return inputs, grads


def peak_mib(fn, device: torch.device) -> float | None:
    """GPU memory allocated at the peak of one call, above what was allocated before (None on CPU)."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20


def check_correct(shape: LayerShape, n: int, mode: str, device: torch.device, direction: str = "forward") -> dict:
    """Max error of xsep and of the unfused op vs fp64 on up to 4 images; status ok or failed.
    Rows that time the backward also check all four gradients (`grad_errors`)."""
    dtype, tf32 = math_mode(mode)
    n_check = max(1, min(n, 4))
    gen = torch.Generator(device="cpu").manual_seed(1)
    x = torch.randn(n_check, shape.C, shape.H, shape.H, generator=gen).to(device, dtype)
    dw = (torch.randn(shape.C, 1, shape.kernel, shape.kernel, generator=gen) / shape.kernel).to(device, dtype)
    pw = (torch.randn(shape.Cout, shape.C, 1, 1, generator=gen) / shape.C**0.5).to(device, dtype)
    b = (torch.randn(shape.Cout, generator=gen) / 10).to(device, dtype)
    pad = shape.kernel // 2
    backward = direction != "forward"

    def run(fn, tensors):
        leaves = [t.detach().requires_grad_(backward) for t in tensors]
        y = fn(*leaves, shape.stride, pad)
        if not backward:
            return y.detach(), []
        grad_out = torch.randn(y.shape, generator=torch.Generator(device="cpu").manual_seed(2)).to(device, y.dtype)
        y.backward(grad_out)
        return y.detach(), [t.grad for t in leaves]

    x_cl = x.contiguous(memory_format=torch.channels_last)
    with tf32_enabled(tf32):
        y, grads = run(separable_conv2d, (x_cl, dw, pw, b))
        unfused, unfused_grads = run(separable_conv2d_reference, (x, dw, pw, b))
        exact, exact_grads = run(separable_conv2d_reference, [t.double() for t in (x, dw, pw, b)])
        # Under the TF32 setting y was made with: it sets the error floor.
        checks = {"output": check_error(y, unfused, exact)}
        if backward:
            names = ("x", "dw_weight", "pw_weight", "bias")
            for name, g, u, e in zip(names, grads, unfused_grads, exact_grads, strict=True):
                checks[f"grad {name}"] = check_error(g, u, e)
    wrong = [name for name, c in checks.items() if not c.ok]
    row = {
        "max_error": checks["output"].error,
        "max_error_unfused": checks["output"].error_unfused,
        "status": "ok" if not wrong else f"failed: {', '.join(wrong)} differ(s) from the fp64 reference",
    }
    if backward:
        row["grad_errors"] = {
            name: {"error": c.error, "error_unfused": c.error_unfused, "bound": c.bound}
            for name, c in checks.items()
            if name != "output"
        }
    return row


def failure_text(error: Exception) -> str:
    """An exception as one short line for a result file."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:300]


def measure_row(
    shape: LayerShape,
    n: int,
    mode: str,
    direction: str,
    device: torch.device,
    machine: Machine,
    reps: int,
    input_sets: int,
    baselines: tuple[str, ...] = ("pytorch",),
    variants: dict[str, dict[str, str]] | None = None,
) -> dict:
    """One row: correctness, then medians of xsep and each baseline in both memory formats.
    `speedup` is against PyTorch's two convolutions; `speedup_vs` against every baseline.

    `variants` (name -> kernel knobs, xsep.bench.variants) are further xsep candidates, each checked
    against fp64 under its knobs and timed in channels_last (the layout the experimental kernels
    take) in the same interleaved run: `row["variants"]`. `row["kernels"]` holds the dispatch lines
    of each xsep candidate's calls (which kernels served them)."""
    if "pytorch" not in baselines:
        baselines = ("pytorch", *baselines)
    variants = variants or {}
    dtype, tf32 = math_mode(mode)
    row = {"shape": shape.name, "N": n, "C": shape.C, "H": shape.H, "W": shape.H, "Cout": shape.Cout}
    row |= {"kernel": shape.kernel, "stride": shape.stride, "count": shape.count}
    row |= {"mode": mode, "direction": direction}
    row |= check_correct(shape, n, mode, device, direction)
    if row["status"] != "ok":
        return row
    row["variants"] = {}
    for name, knobs in variants.items():
        if not affects(knobs, direction):
            continue
        try:
            with kernel_knobs(knobs):
                check = check_correct(shape, n, mode, device, direction)
        except RuntimeError as error:  # a kernel that fails to launch or faults: the variant fails
            check = {"status": f"failed: {failure_text(error)}", "max_error": None}
        row["variants"][name] = {"knobs": knobs, "status": check["status"], "max_error": check["max_error"]}

    grad_needed = direction != "forward"
    times, prepare = {}, []
    in_force = _kernel_knobs.snapshot()  # the run's own knobs, for the default xsep candidate
    with tf32_enabled(tf32):
        fns = []
        for fmt_name, fmt in FORMATS.items():
            inputs, grads = layer_inputs(shape, n, dtype, fmt, device, grad_needed, input_sets)
            candidates = [("xsep", _xsep, in_force), *((b, baseline_fn(b), None) for b in baselines)]
            if fmt_name == "channels_last":
                candidates += [
                    (f"xsep[{name}]", _xsep, in_force | variants[name])
                    for name, v in row["variants"].items()
                    if v["status"] == "ok"
                ]
            for impl, fn, knobs in candidates:
                times[f"{impl}_{fmt_name}"] = None
                fns.append(layer_step(fn, shape, direction, inputs, grads))
                prepare.append(None if knobs is None else functools.partial(_kernel_knobs.apply, knobs))
        row["kernels"] = {}
        for key, fn, before in zip(times, fns, prepare, strict=True):
            if before is not None:  # one untimed call, recording which kernels serve it
                with recorded_dispatches() as lines:
                    before()
                    fn()
                row["kernels"][key] = lines
        try:
            medians = median_ms(fns, device, warmup=3, reps=reps, prepare=prepare)
            peaks = []
            for fn, before in zip(fns, prepare, strict=True):
                if before is not None:
                    before()
                peaks.append(peak_mib(fn, device))
        finally:
            _kernel_knobs.apply(in_force)
    times = dict(zip(times, medians, strict=True))
    row["ms"] = times
    row["peak_mib"] = dict(zip(times, peaks, strict=True))
    xsep_best = min(times["xsep_nchw"], times["xsep_channels_last"])
    base_best = min(times["pytorch_nchw"], times["pytorch_channels_last"])
    row["speedup_vs"] = {b: min(times[f"{b}_nchw"], times[f"{b}_channels_last"]) / xsep_best for b in baselines}
    bytes_, flops = layer_cost(n, shape.C, shape.H, shape.Cout, shape.kernel, shape.stride, dtype.itemsize, direction)
    bound = bound_ms(bytes_, flops, machine, mode)
    for name, v in row["variants"].items():
        if v["status"] == "ok":
            ms = times[f"xsep[{name}]_channels_last"]
            v |= {"ms": ms, "speedup": base_best / ms, "vs_xsep": xsep_best / ms, "pct_of_bound": 100 * bound / ms}
    row |= {
        "xsep_ms": xsep_best,
        "baseline_ms": base_best,
        "speedup": base_best / xsep_best,
        "speedup_channels_last": base_best / times["xsep_channels_last"],
        "bound_ms": bound,
        "pct_of_bound": 100 * bound / xsep_best,
        "tflops": flops / (xsep_best * 1e-3) / 1e12,
        "gbs": bytes_ / (xsep_best * 1e-3) / 1e9,
    }
    return row
