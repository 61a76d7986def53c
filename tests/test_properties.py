"""Property-based tests (hypothesis): the op against the unfused reference on random geometries —
kernel sizes 1-7, strides and dilations 1-3, every padding form (asymmetric 'same' included),
depth multipliers, bias on and off, the intermediate activations, NCHW / channels_last / strided
views / expanded (stride-0) inputs, and batch, channel and spatial sizes of 0 or 1 — forward and
every gradient.

Runs derandomized (the same examples every run, so CI is reproducible); `XSEP_HYPOTHESIS_EXAMPLES`
raises the count for a longer local search. The CUDA variant runs where there is a GPU.
"""

import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sample_inputs import assert_close_to_reference

from xsep._conv_args import resolve_padding
from xsep.ops import separable_conv2d
from xsep.reference import separable_conv2d_reference

EXAMPLES = int(os.environ.get("XSEP_HYPOTHESIS_EXAMPLES", "100"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def geometries(draw):
    kernel = (draw(st.integers(1, 7)), draw(st.integers(1, 7)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(
        st.one_of(
            st.sampled_from(["same", "valid"]),
            st.integers(0, 3),
            st.tuples(st.integers(0, 3), st.integers(0, 3)),
        )
    )
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    top, bottom, left, right = resolve_padding("test", padding, (h, w), kernel, stride, dilation)
    # The dilated kernel must fit the padded input (the op rejects it otherwise): grow the input.
    h = max(h, (kernel[0] - 1) * dilation[0] + 1 - top - bottom)
    w = max(w, (kernel[1] - 1) * dilation[1] + 1 - left - right)
    return {
        "N": draw(st.integers(0, 2)),
        "C": draw(st.integers(1, 4)),
        "M": draw(st.integers(1, 3)),
        "Cout": draw(st.integers(1, 4)),
        "H": h,
        "W": w,
        "kernel": kernel,
        "args": {"stride": stride, "padding": padding, "dilation": dilation},
        "layout": draw(st.sampled_from(["nchw", "channels_last", "strided", "expanded"])),
        "activation": draw(st.sampled_from(["none", "none", "relu", "elu"])),
        "bias": draw(st.booleans()),
    }


def make_case(g, dtype, device):
    """Leaves (what gradients go to) and the op's inputs built from them (views for some layouts)."""
    n, c, h, w = g["N"], g["C"], g["H"], g["W"]
    gen = torch.Generator().manual_seed(n * 1000 + c * 100 + h * 10 + w)

    def rand(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64).to(device, dtype)

    if g["layout"] == "expanded":  # one image repeated through a stride-0 batch dimension
        x_leaf = rand(1, c, h, w)
    elif g["layout"] == "strided":
        x_leaf = rand(n, c, h, 2 * w)
    else:
        x_leaf = rand(n, c, h, w)
        if g["layout"] == "channels_last":
            x_leaf = x_leaf.contiguous(memory_format=torch.channels_last)
    leaves = [
        x_leaf,
        rand(c * g["M"], 1, *g["kernel"]) / g["kernel"][0],
        rand(g["Cout"], c * g["M"], 1, 1) / (c * g["M"]) ** 0.5,
        rand(g["Cout"]) if g["bias"] else None,
    ]
    return leaves


def op_args(g):
    return g["args"] | {"intermediate_activation": g["activation"]}


def as_inputs(g, leaves):
    x = leaves[0]
    if g["layout"] == "expanded":
        x = x.expand(g["N"], -1, -1, -1)
    elif g["layout"] == "strided":
        x = x[..., ::2]
    return [x, *leaves[1:]]


def run(fn, g, leaves, absolute=False):
    """y and the gradients of every leaf for a fixed random grad_out (|grad_out| if absolute)."""
    leaves = [t.detach().requires_grad_() if t is not None else None for t in leaves]
    y = fn(*as_inputs(g, leaves), **op_args(g))
    grad_out = torch.randn(y.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    y.backward((grad_out.abs() if absolute else grad_out).to(y.device, y.dtype))
    return y.detach(), [t.grad if t is not None else None for t in leaves]


def check(g, dtype, device):
    leaves = make_case(g, dtype, device)
    in_fp64 = [t.double() if t is not None else None for t in leaves]
    y, grads = run(separable_conv2d, g, leaves)
    exact, exact_grads = run(separable_conv2d_reference, g, in_fp64)
    unfused, unfused_grads = run(separable_conv2d_reference, g, leaves)
    # The same sums over |terms|: the scale of the rounding error where terms cancel (tiny sizes
    # often leave one output element, where cancellation is common and a max over one sample is luck).
    mag, mag_grads = run(separable_conv2d_reference, g, [t.abs() if t is not None else None for t in in_fp64], True)
    assert_close_to_reference(y, unfused, exact, magnitude=mag)
    names = ["x", "dw_weight", "pw_weight", "bias"]
    for name, got, u, e, m in zip(names, grads, unfused_grads, exact_grads, mag_grads, strict=True):
        if got is None and e is None:
            continue
        assert got is not None, f"no gradient for {name}"
        assert_close_to_reference(got, u, e, what=f"grad of {name}", magnitude=m)


@SETTINGS
@given(geometries())
def test_float64_matches_reference(g):
    check(g, torch.float64, "cpu")


@SETTINGS
@given(geometries())
def test_float32_matches_reference(g):
    check(g, torch.float32, "cpu")


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
def test_cuda_matches_reference(dtype):
    @SETTINGS
    @given(geometries())
    def inner(g):
        check(g, dtype, "cuda")

    inner()
