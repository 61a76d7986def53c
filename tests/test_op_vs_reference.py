"""The fused op against the unfused fp64 reference: outputs and every gradient, over the grid."""

import pytest
import torch
from sample_inputs import (
    CASE_IDS,
    CASES,
    LAYOUTS,
    assert_close_to_reference,
    make_inputs,
    reference_outputs_and_grads,
)
from torch._prims_common import suggest_memory_format

from xsep.ops import separable_conv2d

DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def check_against_reference(case, dtype, layout, bias, device):
    inputs = make_inputs(case, dtype, layout, bias, device)
    leaves = [t.detach().requires_grad_() if t is not None else None for t in inputs]
    y = separable_conv2d(*leaves, **case.conv_args)
    grad_out = torch.randn(y.shape, dtype=torch.float64, device=device)
    y.backward(grad_out.to(dtype))

    exact, exact_grads = reference_outputs_and_grads(inputs, case.conv_args, grad_out, torch.float64)
    unfused, unfused_grads = reference_outputs_and_grads(inputs, case.conv_args, grad_out, dtype)
    assert y.dtype == dtype
    assert suggest_memory_format(y) == suggest_memory_format(inputs[0]), "output must keep x's memory format"
    assert_close_to_reference(y.detach(), unfused, exact)
    for name, leaf, u, e in zip(
        ["x", "dw_weight", "pw_weight", "bias"], leaves, unfused_grads, exact_grads, strict=True
    ):
        if leaf is None:
            continue
        assert leaf.grad is not None, f"no gradient for {name}"
        assert_close_to_reference(leaf.grad, u, e, what=f"grad of {name}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_forward_and_grads_match_reference(case, dtype, layout, bias, device):
    check_against_reference(case, dtype, layout, bias, device)


def test_noncontiguous_weights():
    x, dw, pw, b = make_inputs(CASES[0], torch.float64)
    pw_view = pw.squeeze().t().contiguous().t()[..., None, None]  # transposed storage
    dw_view = torch.randn(dw.shape[0], 1, 3, 6, dtype=torch.float64)[..., ::2]
    assert not pw_view.is_contiguous() and not dw_view.is_contiguous()
    got = separable_conv2d(x, dw_view, pw_view, b, padding=1)
    want = separable_conv2d(x, dw_view.contiguous(), pw_view.contiguous(), b, padding=1)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_only_some_inputs_require_grad():
    x, dw, pw, b = make_inputs(CASES[0], torch.float64)
    pw.requires_grad_()
    y = separable_conv2d(x, dw, pw, b, padding=1)
    y.sum().backward()
    ref_pw = pw.detach().requires_grad_()
    from xsep.reference import separable_conv2d_reference

    separable_conv2d_reference(x, dw, ref_pw, b, padding=1).sum().backward()
    torch.testing.assert_close(pw.grad, ref_pw.grad)
    assert x.grad is None and dw.grad is None


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_nonfinite_values_propagate_like_reference(value, layout):
    from xsep.reference import separable_conv2d_reference

    x, dw, pw, b = make_inputs(CASES[0], torch.float64, layout)
    x[0, 1, 4, 5] = value
    got = separable_conv2d(x, dw, pw, b, padding=1)
    want = separable_conv2d_reference(x, dw, pw, b, padding=1)
    assert torch.equal(got.isnan(), want.isnan())
    assert torch.equal(got.isposinf(), want.isposinf()) and torch.equal(got.isneginf(), want.isneginf())
    finite = want.isfinite()
    torch.testing.assert_close(got[finite], want[finite])


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_nchw_tiles_of_several_images_at_any_thread_count(threads, dtype):
    # The CPU kernels put several whole small images in one NCHW tile (one GEMM for them); how many
    # depends on the thread count, and the last tile may hold fewer.
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for case in CASES:
            if case.id.startswith("many_"):
                check_against_reference(case, dtype, "nchw", True, "cpu")
    finally:
        torch.set_num_threads(saved)
