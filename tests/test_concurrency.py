"""The op from several Python threads at once, on several CUDA streams, and under
torch.use_deterministic_algorithms(True): results equal to serial runs, bit for bit."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from sample_inputs import CASES, make_inputs

from xsep.ops import separable_conv2d

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]
CASE = CASES[-2]  # multi_tile: several tiles, both backward waves


def forward_backward(inputs, grad_out):
    leaves = [t.detach().requires_grad_() for t in inputs]
    y = separable_conv2d(*leaves, **CASE.conv_args)
    y.backward(grad_out)
    return [y.detach()] + [t.grad for t in leaves]


def problems(device, count, dtype=torch.float32):
    out = []
    for i in range(count):
        torch.manual_seed(i)
        inputs = make_inputs(CASE, dtype, "channels_last" if i % 2 else "nchw", device=device)
        y = separable_conv2d(*inputs, **CASE.conv_args)
        out.append((inputs, torch.randn_like(y)))
    return out


@pytest.mark.parametrize("device", DEVICES)
def test_threads_match_serial(device):
    work = problems(device, 6)
    serial = [forward_backward(*w) for w in work]
    start = threading.Barrier(3)  # the first three calls start together

    def run(i):
        if i < 3:
            start.wait(timeout=60)
        return forward_backward(*work[i])

    with ThreadPoolExecutor(max_workers=3) as pool:
        threaded = list(pool.map(run, range(len(work))))
    for i, (a, b) in enumerate(zip(serial, threaded, strict=True)):
        for name, ta, tb in zip(["y", "grad x", "grad dw", "grad pw", "grad bias"], a, b, strict=True):
            assert torch.equal(ta, tb), f"problem {i}: {name} differs between serial and threaded runs"


@pytest.mark.cuda
def test_streams_match_serial():
    work = problems("cuda", 4, torch.bfloat16)
    serial = [forward_backward(*w) for w in work]
    torch.cuda.synchronize()
    streams = [torch.cuda.Stream() for _ in work]
    results = [None] * len(work)
    for i, (stream, w) in enumerate(zip(streams, work, strict=True)):
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            results[i] = forward_backward(*w)
    torch.cuda.synchronize()
    for i, (a, b) in enumerate(zip(serial, results, strict=True)):
        for ta, tb in zip(a, b, strict=True):
            assert torch.equal(ta, tb), f"problem {i} differs between the default stream and its own stream"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_deterministic_algorithms_mode(device, dtype):
    ((inputs, grad_out),) = problems(device, 1, dtype)
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        first = forward_backward(inputs, grad_out)
        again = forward_backward(inputs, grad_out)
    finally:
        torch.use_deterministic_algorithms(before)
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a, b)
