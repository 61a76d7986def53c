"""The layer benchmarks of `xsep bench` through pytest-benchmark, for comparisons across commits:

    pytest benchmarks/ --benchmark-only --benchmark-autosave          # GPU: Xception's shapes
    pytest benchmarks/ --benchmark-only --benchmark-compare           # against the last saved run
    XSEP_BENCH_DEVICE=cpu pytest benchmarks/ --benchmark-only         # the CPU shapes
    XSEP_BENCH_SMOKE=1 pytest benchmarks/ --benchmark-only            # one tiny CPU shape (CI)

Each case is (shape, N, mode, direction, implementation, memory format); cases of one shape share
a benchmark group, so the table puts xsep beside PyTorch's two convolutions. Before timing, a
case checks xsep's output against the fp64 reference (xsep.bench.run.check_correct) and fails
if it is wrong. On a GPU each timed call ends with a synchronize, so the wall clock covers the
kernels. `xsep bench` (CUDA events, interleaved, % of bound) stays the source of the committed
figures; this is for `--benchmark-compare` between commits.
"""

from __future__ import annotations

import os

import pytest
import torch

from xsep.bench.roofline import math_mode, tf32_enabled
from xsep.bench.run import FORMATS, _xsep, baseline_fn, check_correct, layer_inputs, layer_step
from xsep.bench.shapes import FOUNDATION_CPU, XCEPTION, LayerShape

SMOKE = os.environ.get("XSEP_BENCH_SMOKE") == "1"
DEVICE = torch.device(
    "cpu" if SMOKE else os.environ.get("XSEP_BENCH_DEVICE", "cuda" if torch.cuda.is_available() else "cpu")
)
if SMOKE:
    LAYERS, MODES, DIRECTIONS = [(LayerShape(8, 9, 16), 2)], ["fp32"], ["forward", "forward_backward"]
elif DEVICE.type == "cuda":
    LAYERS = [(s, n) for n in (32, 128) for s in XCEPTION]
    MODES, DIRECTIONS = ["bf16", "fp16", "fp32-tf32"], ["forward", "backward", "forward_backward"]
else:
    LAYERS, MODES, DIRECTIONS = FOUNDATION_CPU, ["fp32"], ["forward", "forward_backward"]
IMPLS = ["xsep", "pytorch"]


@pytest.mark.parametrize("memory_format", list(FORMATS))
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: f"{layer[0].name.replace(' ', '')}-N{layer[1]}")
def test_layer(benchmark, layer, mode, direction, impl, memory_format):
    shape, n = layer
    check = check_correct(shape, n, mode, DEVICE, direction)
    assert check["status"] == "ok", f"{check['status']} (error {check['max_error']:.3e})"
    dtype, tf32 = math_mode(mode)
    inputs, grads = layer_inputs(shape, n, dtype, FORMATS[memory_format], DEVICE, direction != "forward", 3)
    fn = _xsep if impl == "xsep" else baseline_fn(impl)
    step = layer_step(fn, shape, direction, inputs, grads)

    def timed():
        step()
        if DEVICE.type == "cuda":
            torch.cuda.synchronize(DEVICE)

    benchmark.group = f"{shape.name} N={n} {mode} {direction}"
    benchmark.extra_info |= {"device": str(DEVICE), "max_error": check["max_error"]}
    with tf32_enabled(tf32):
        benchmark.pedantic(timed, rounds=1 if SMOKE else 20, iterations=1, warmup_rounds=0 if SMOKE else 3)
