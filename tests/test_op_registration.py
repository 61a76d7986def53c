"""The op as PyTorch sees it: schema and fake kernels (opcheck), gradcheck, torch.compile,
autocast, what autograd saves, determinism."""

import pytest
import torch
from sample_inputs import CASES, assert_close_to_reference, make_inputs, reference_outputs_and_grads

from xsep._conv_args import pair, resolve_padding
from xsep.ops import separable_conv2d
from xsep.reference import separable_conv2d_reference

OPCHECK_CASES = [c for c in CASES if c.id in ("k3_s2_same_odd", "k3_mult3_s2_d2", "batch0", "k5x3_s2x1_pad_tuple")]


def op_args(case, x, dw, pw, b):
    stride, dilation = pair("t", "stride", case.stride), pair("t", "dilation", case.dilation)
    pad = resolve_padding("t", case.padding, (case.H, case.W), case.kernel, stride, dilation)
    return (x, dw, pw, b, list(stride), list(pad), list(dilation))


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("case", OPCHECK_CASES, ids=lambda c: c.id)
def test_opcheck_forward(case, bias, layout):
    x, dw, pw, b = make_inputs(case, torch.float64, layout, bias)
    for t in (x, dw, pw, b):
        if t is not None:
            t.requires_grad_()
    torch.library.opcheck(torch.ops.xsep.separable_conv2d.default, op_args(case, x, dw, pw, b))


@pytest.mark.parametrize("mask", [[True] * 4, [True, False, False, False], [False, True, True, False]], ids=str)
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_opcheck_backward(layout, mask):
    case = OPCHECK_CASES[0]
    x, dw, pw, _ = make_inputs(case, torch.float32, layout)
    y = separable_conv2d(x, dw, pw, **case.conv_args)
    x_, dw_, pw_, _, stride, pad, dilation = op_args(case, x, dw, pw, None)
    torch.library.opcheck(
        torch.ops.xsep.separable_conv2d_backward.default,
        (torch.randn_like(y), x_, dw_, pw_, stride, pad, dilation, "none", mask),
    )


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("case", [c for c in CASES if c.id in ("k3_s2_same_odd", "k3_mult3_s2_d2")], ids=lambda c: c.id)
def test_gradcheck_fp64(case, layout):
    small = dict(case.__dict__, N=1, H=7, W=6)
    case = type(case)(**small)
    inputs = [t.requires_grad_() for t in make_inputs(case, torch.float64, layout)]
    assert torch.autograd.gradcheck(lambda *a: separable_conv2d(*a, **case.conv_args), inputs)


def test_backward_saves_only_x_and_weights():
    x, dw, pw, b = make_inputs(CASES[0], torch.float32)
    leaves = [t.requires_grad_() for t in (x, dw, pw, b)]
    packed = []

    def pack(t):
        packed.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = separable_conv2d(*leaves, padding=1)
    saved = sorted((t.data_ptr(), tuple(t.shape)) for t in packed)
    expected = sorted((t.data_ptr(), tuple(t.shape)) for t in (x, dw, pw))
    assert saved == expected, f"saved for backward: {[s for _, s in saved]}"
    y.sum().backward()  # and the graph still works


@pytest.mark.parametrize("threads", [1, 2])
def test_backward_is_bitwise_deterministic(threads):
    # Same inputs, same thread count -> the same bits: the CPU backward sums its tile partials
    # in a fixed order. (Across thread counts the BLAS may block the GEMMs differently.)
    case = next(c for c in CASES if c.id == "multi_tile")
    inputs = make_inputs(case, torch.float32, "channels_last")
    before = torch.get_num_threads()
    results = []
    try:
        torch.set_num_threads(threads)
        for _ in range(2):
            leaves = [t.detach().requires_grad_() for t in inputs]
            y = separable_conv2d(*leaves, **case.conv_args)
            y.backward(torch.ones_like(y))
            results.append([t.grad for t in leaves])
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_autocast_cpu(dtype):
    case = CASES[1]
    inputs = make_inputs(case, torch.float32, "channels_last")
    leaves = [t.detach().requires_grad_() for t in inputs]
    with torch.autocast("cpu", dtype=dtype):
        y = separable_conv2d(*leaves, **case.conv_args)
    assert y.dtype == dtype
    grad_out = torch.randn(y.shape, dtype=torch.float64)
    y.backward(grad_out.to(dtype))
    # Autocast rounds the inputs to `dtype`: compare with the reference on the rounded inputs.
    rounded = [t.detach().to(dtype) for t in inputs]
    exact, exact_grads = reference_outputs_and_grads(rounded, case.conv_args, grad_out, torch.float64)
    unfused, unfused_grads = reference_outputs_and_grads(rounded, case.conv_args, grad_out, dtype)
    assert_close_to_reference(y.detach(), unfused, exact)
    for leaf, u, e in zip(leaves, unfused_grads, exact_grads, strict=True):
        assert leaf.grad.dtype == torch.float32  # gradients flow back to the fp32 leaves
        assert_close_to_reference(leaf.grad.to(dtype), u, e, what="grad")


def test_torch_compile_fullgraph_forward_backward():
    case = CASES[1]
    inputs = make_inputs(case, torch.float32, "channels_last")

    def step(x, dw, pw, b):
        y = separable_conv2d(x, dw, pw, b, **case.conv_args)
        return (y * y).sum()

    compiled = torch.compile(step, fullgraph=True)
    eager_leaves = [t.detach().requires_grad_() for t in inputs]
    compiled_leaves = [t.detach().requires_grad_() for t in inputs]
    loss_eager = step(*eager_leaves)
    loss_eager.backward()
    loss_compiled = compiled(*compiled_leaves)
    loss_compiled.backward()
    torch.testing.assert_close(loss_compiled, loss_eager)
    for a, b in zip(compiled_leaves, eager_leaves, strict=True):
        torch.testing.assert_close(a.grad, b.grad)


def test_module_under_torch_compile_matches_reference():
    from xsep.nn import SeparableConv2d

    module = SeparableConv2d(5, 7, 3, stride=2, padding="same", depth_multiplier=2).double()
    x = torch.randn(2, 5, 9, 10, dtype=torch.float64)
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    want = separable_conv2d_reference(x, module.depthwise_weight, module.pointwise_weight, module.bias, 2, "same")
    torch.testing.assert_close(compiled(x), want)
