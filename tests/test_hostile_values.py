"""Hostile values: NaN and Inf propagate as in the unfused op (forward and every gradient),
16-bit overflow happens where the unfused op's does (the intermediate is rounded as the unfused op
stores it), denormals and very large or very small magnitudes stay within the dtype's error rule."""

import pytest
import torch
from sample_inputs import CASES, assert_close_to_reference, make_inputs

from xsep.bench.roofline import tf32_enabled
from xsep.ops import separable_conv2d
from xsep.reference import separable_conv2d_reference

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]
ARGS = {"stride": 1, "padding": 1}


def forward_and_grads(fn, inputs, grad_out):
    leaves = [t.detach().requires_grad_() for t in inputs]
    y = fn(*leaves, **ARGS)
    y.backward(grad_out)
    return [y.detach()] + [t.grad for t in leaves]


def assert_same_nonfinite(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    for kind in ("isnan", "isposinf", "isneginf"):
        same = torch.equal(getattr(got, kind)(), getattr(want, kind)())
        assert same, f"{what}: {kind} differs ({int(getattr(got, kind)().sum())} vs {int(getattr(want, kind)().sum())})"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("where", ["x", "dw_weight", "pw_weight", "grad_out"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
def test_nonfinite_propagates_like_reference_in_every_gradient(value, where, layout, dtype, device):
    if device == "cuda" and dtype == torch.float64:
        pytest.skip("float64 on CUDA is the ATen fallback")
    with tf32_enabled(False):  # the finite elements are compared at fp32's precision
        _check_nonfinite_propagates(value, where, layout, dtype, device)


def _check_nonfinite_propagates(value, where, layout, dtype, device):
    x, dw, pw, b = make_inputs(CASES[0], dtype, layout, device=device)
    grad_out = torch.randn(x.shape[0], pw.shape[0], x.shape[2], x.shape[3], dtype=dtype, device=device)
    target = {"x": x, "dw_weight": dw, "pw_weight": pw, "grad_out": grad_out}[where]
    target[torch.unravel_index(torch.tensor(target.numel() // 3), target.shape)] = value
    got = forward_and_grads(separable_conv2d, (x, dw, pw, b), grad_out)
    want = forward_and_grads(separable_conv2d_reference, (x, dw, pw, b), grad_out)
    for name, g, w in zip(["y", "grad x", "grad dw", "grad pw", "grad bias"], got, want, strict=True):
        if where == "dw_weight":
            # A non-finite depthwise weight meets the zero padding at the border: inf * 0 is NaN in
            # the reference (explicit padding), while in xsep a tap outside the image contributes
            # nothing, as in PyTorch's own fp32 convolutions (oneDNN, cuDNN). So: the elements the
            # reference keeps finite are finite here too, every element xsep makes non-finite is
            # non-finite in the reference, and so is every element the reference makes ±inf
            # (reached through real pixels only).
            assert not (w.isfinite() & ~g.isfinite()).any(), f"{name}: non-finite where the reference is finite"
            assert g[w.isinf()].isfinite().logical_not().all(), f"{name}: finite where the reference is ±inf"
        else:
            assert_same_nonfinite(g, w, name)
        finite = w.isfinite()
        if finite.any():
            scale = w[finite].abs().max().item()
            torch.testing.assert_close(g[finite], w[finite], rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_16bit_overflow_like_reference(layout, dtype, device):
    big = torch.finfo(dtype).max / 4
    x = torch.full((1, 2, 5, 5), big, dtype=dtype, device=device)
    x = x.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else x
    dw = torch.ones(2, 1, 3, 3, dtype=dtype, device=device)
    # The intermediate (9 taps of max/4) overflows, the output would not (x 1e-3): inf, like unfused.
    small_pw = torch.full((3, 2, 1, 1), 1e-3, dtype=dtype, device=device)
    got = separable_conv2d(x, dw, small_pw, None, **ARGS)
    want = separable_conv2d_reference(x, dw, small_pw, None, **ARGS)
    assert want.isinf().any()
    assert_same_nonfinite(got, want, "intermediate overflow")
    # Only the output overflows.
    x_mid = torch.full_like(x, big / 64)
    pw = torch.full((3, 2, 1, 1), 32.0, dtype=dtype, device=device)
    got = separable_conv2d(x_mid, dw, pw, None, **ARGS)
    want = separable_conv2d_reference(x_mid, dw, pw, None, **ARGS)
    assert want.isinf().any() and want.isfinite().any()
    assert_same_nonfinite(got, want, "output overflow")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("scale", [1e-30, 1e-6, 1e6, 1e30], ids=lambda s: f"{s:g}")
def test_extreme_magnitudes(scale, dtype, device):
    info = torch.finfo(dtype)
    if scale * 50 > info.max or scale < info.tiny * 1e3:
        pytest.skip(f"{scale:g} is outside {dtype}'s comfortable range")
    x, dw, pw, b = make_inputs(CASES[0], torch.float32, "channels_last", device=device)
    x = (x * scale).to(dtype)
    dw, pw, b = dw.to(dtype), pw.to(dtype), (b * scale).to(dtype)
    y = separable_conv2d(x, dw, pw, b, **ARGS)
    exact = separable_conv2d_reference(x.double(), dw.double(), pw.double(), b.double(), **ARGS)
    assert_close_to_reference(y, separable_conv2d_reference(x, dw, pw, b, **ARGS), exact)


@pytest.mark.parametrize("device", DEVICES)
def test_denormal_inputs(device):
    # float32 subnormals (below 1.2e-38) in x: results as small, and as accurate, as the unfused op's.
    x, dw, pw, _ = make_inputs(CASES[0], torch.float32, "nchw", bias=False, device=device)
    x = x * 1e-39
    assert (x != 0).any() and (x.abs() < torch.finfo(torch.float32).tiny).all()
    with tf32_enabled(False):  # exact fp32 (TF32 keeps 10 bits, fewer still for subnormals)
        y = separable_conv2d(x, dw, pw, None, **ARGS)
        unfused = separable_conv2d_reference(x, dw, pw, None, **ARGS)
    exact = separable_conv2d_reference(x.double(), dw.double(), pw.double(), None, **ARGS)
    assert y.abs().max() < 1e-36
    # Subnormal arithmetic has an absolute error of about the smallest subnormal: compare on that scale.
    assert (y.double() - exact).abs().max() <= 2 * (unfused.double() - exact).abs().max() + 1e-44


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32], ids=str)
def test_infinite_depthwise_weight_on_the_padding_contributes_nothing(dtype, device):
    # SECURITY.md: a tap that falls on the zero padding contributes nothing, even with an infinite
    # weight. Tap (0, 0) of channel 5 is +inf: the top row and left column of the output read it on
    # the padding, so they stay finite; the other pixels read it on real ones, so they are not.
    # channels_last 3x3 with 16-byte channels: on a GPU the tensor-core kernels, whose depthwise
    # phase reads zero-filled windows (and must not multiply that zero by the infinite weight).
    torch.manual_seed(0)
    x = torch.rand(2, 16, 11, 13, device=device).to(dtype).contiguous(memory_format=torch.channels_last)
    dw = torch.rand(16, 1, 3, 3, device=device).to(dtype)
    dw[5, 0, 0, 0] = float("inf")
    pw = torch.rand(24, 16, 1, 1, device=device).to(dtype)
    with tf32_enabled(True):
        y = separable_conv2d(x, dw, pw, None, stride=1, padding=1)
    border = torch.zeros(11, 13, dtype=torch.bool, device=device)
    border[0, :] = border[:, 0] = True
    assert y[:, :, border].isfinite().all(), "an infinite weight on the padding reached the output"
    assert y[:, :, ~border].isinf().all(), "an infinite weight on real pixels must reach the output"
