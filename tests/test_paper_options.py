"""The Xception paper's experiment options, against the unfused reference: the intermediate
activation (none / relu / elu, fused), the spatial conv in segments (every divisor of C), and
Xception without residual connections."""

import os
import subprocess
import sys

import pytest
import torch
from sample_inputs import CASES, assert_close_to_reference, make_inputs, reference_outputs_and_grads

from xsep.models import xception
from xsep.nn import SeparableConv2d, UnfusedSeparableConv2d
from xsep.ops import separable_conv2d
from xsep.reference import separable_conv2d_reference

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]
ACTIVATION_CASES = [c for c in CASES if c.id in ("k3_s1_p1", "k3_s2_same_odd", "k3_mult3_s2_d2", "multi_tile")]


def check_against_reference(inputs, args, dtype):
    leaves = [t.detach().requires_grad_() if t is not None else None for t in inputs]
    y = separable_conv2d(*leaves, **args)
    grad_out = torch.randn(y.shape, dtype=torch.float64, device=y.device)
    y.backward(grad_out.to(dtype))
    exact, exact_grads = reference_outputs_and_grads(inputs, args, grad_out, torch.float64)
    unfused, unfused_grads = reference_outputs_and_grads(inputs, args, grad_out, dtype)
    assert_close_to_reference(y.detach(), unfused, exact)
    for name, leaf, u, e in zip(
        ["x", "dw_weight", "pw_weight", "bias"], leaves, unfused_grads, exact_grads, strict=True
    ):
        if leaf is not None:
            assert_close_to_reference(leaf.grad, u, e, what=f"grad of {name}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("activation", ["relu", "elu"])
@pytest.mark.parametrize("case", ACTIVATION_CASES, ids=lambda c: c.id)
def test_intermediate_activation_matches_reference(case, activation, dtype, layout, device):
    if device == "cuda" and dtype == torch.float64:
        pytest.skip("float64 on CUDA is the ATen fallback")
    inputs = make_inputs(case, dtype, layout, device=device)
    check_against_reference(inputs, case.conv_args | {"intermediate_activation": activation}, dtype)


@pytest.mark.parametrize("activation", ["relu", "elu"])
def test_intermediate_activation_gradcheck(activation):
    case = CASES[0]
    small = type(case)(**dict(case.__dict__, N=1, H=6, W=5))
    inputs = [t.requires_grad_() for t in make_inputs(small, torch.float64)]
    args = small.conv_args | {"intermediate_activation": activation}
    assert torch.autograd.gradcheck(lambda *a: separable_conv2d(*a, **args), inputs)


@pytest.mark.parametrize("activation", ["relu", "elu"])
def test_intermediate_activation_opcheck(activation):
    x, dw, pw, b = (t.requires_grad_() for t in make_inputs(CASES[0], torch.float64))
    args = (x, dw, pw, b, [1, 1], [1, 1, 1, 1], [1, 1], activation)
    torch.library.opcheck(torch.ops.xsep.separable_conv2d.default, args)


def test_activation_still_saves_only_x_and_weights():
    x, dw, pw, b = (t.requires_grad_() for t in make_inputs(CASES[0], torch.float32))
    packed = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(t) or t, lambda t: t):
        y = separable_conv2d(x, dw, pw, b, padding=1, intermediate_activation="elu")
    assert sorted(t.data_ptr() for t in packed) == sorted(t.data_ptr() for t in (x, dw, pw))
    y.sum().backward()


def test_unknown_activation_is_refused():
    x, dw, pw, b = make_inputs(CASES[0], torch.float32)
    with pytest.raises(ValueError, match=r"intermediate_activation must be 'none', 'relu' or 'elu'; got 'gelu'"):
        separable_conv2d(x, dw, pw, b, padding=1, intermediate_activation="gelu")
    with pytest.raises(ValueError, match=r"intermediate_activation must be 'none', 'relu' or 'elu'; got 'gelu'"):
        torch.ops.xsep.separable_conv2d(x, dw, pw, b, [1, 1], [1, 1, 1, 1], [1, 1], "gelu")
    with pytest.raises(ValueError, match=r"intermediate_activation must be"):
        SeparableConv2d(5, 7, 3, intermediate_activation="tanh")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", ["nchw", "channels_last", "strided"])
@pytest.mark.parametrize("segments", [1, 2, 3, 6])
def test_every_segment_count_matches_reference(segments, layout, device):
    # C = 6: every divisor; 6 segments is the depthwise (fused) case. Multiplier 2, stride 2, 'same'.
    n, c, mult = 2, 6, 2
    x = torch.randn(n, c, 9, 2 * 8 if layout == "strided" else 8, dtype=torch.float64, device=device)
    x = x[..., ::2] if layout == "strided" else x
    x = x.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else x
    dw = torch.randn(c * mult, c // segments, 3, 3, dtype=torch.float64, device=device) / 3
    pw = torch.randn(5, c * mult, 1, 1, dtype=torch.float64, device=device)
    b = torch.randn(5, dtype=torch.float64, device=device)
    for activation in ("none", "relu"):
        check_against_reference(
            (x, dw, pw, b), {"stride": 2, "padding": "same", "intermediate_activation": activation}, torch.float64
        )


def test_segments_path_is_logged_and_depthwise_is_fused():
    code = (
        "import torch, xsep.ops as o;"
        "x = torch.randn(1, 4, 6, 6);"
        "o.separable_conv2d(x, torch.randn(4, 2, 3, 3), torch.randn(3, 4, 1, 1), padding=1);"
        "o.separable_conv2d(x, torch.randn(4, 1, 3, 3), torch.randn(3, 4, 1, 1), padding=1)"
    )
    env = dict(os.environ, XSEP_LOG_DISPATCH="1")
    log = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stderr
    assert "xsep dispatch: separable_conv2d: 2 segments: PyTorch's convolutions (unfused)" in log
    # The depthwise call went to the fused kernel, which logs its own path.
    assert log.count("xsep dispatch:") == 2 and "xsep dispatch: separable_conv2d: forward cpu float32 nchw" in log


def test_bad_segments_are_refused():
    x = torch.randn(1, 6, 5, 5)
    with pytest.raises(
        ValueError, match=r"dw_weight must have shape \(C\*M, C/S, kh, kw\) for S segments dividing C=6"
    ):
        separable_conv2d(x, torch.randn(6, 4, 3, 3), torch.randn(2, 6, 1, 1))
    with pytest.raises(ValueError, match=r"segments must divide in_channels=6"):
        SeparableConv2d(6, 4, 3, segments=4)


@pytest.mark.parametrize("cls", [SeparableConv2d, UnfusedSeparableConv2d], ids=["fused", "unfused"])
def test_module_options(cls):
    torch.manual_seed(0)
    m = cls(6, 4, 3, padding=1, segments=3, intermediate_activation="elu")
    assert m.depthwise_weight.shape == (6, 2, 3, 3)
    assert "segments=3" in repr(m) and "intermediate_activation='elu'" in repr(m)
    # Initialised like nn.Conv2d(6, 6, 3, groups=3) + nn.Conv2d(6, 4, 1): same draws.
    torch.manual_seed(0)
    spatial, point = torch.nn.Conv2d(6, 6, 3, padding=1, groups=3, bias=False), torch.nn.Conv2d(6, 4, 1)
    assert torch.equal(m.depthwise_weight, spatial.weight) and torch.equal(m.pointwise_weight, point.weight)
    x = torch.randn(2, 6, 7, 7)
    torch.testing.assert_close(m(x), point(torch.nn.functional.elu(spatial(x))))
    scripted = torch.jit.script(m)
    torch.testing.assert_close(scripted(x), m(x))


def test_activation_exports_to_onnx(tmp_path):
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model = torch.nn.Sequential(SeparableConv2d(4, 5, 3, padding=1, intermediate_activation="elu")).eval()
    x = torch.randn(1, 4, 8, 8)
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=True)
    kinds = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert kinds == ["Conv", "Elu", "Conv"], kinds
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    torch.testing.assert_close(torch.from_numpy(got), model(x), rtol=1e-4, atol=1e-5)


def test_xception_variants():
    base = xception(num_classes=10)
    no_skip = xception(num_classes=10, residual=False)
    skips = sum(p.numel() for n, p in base.named_parameters() if ".skip" in n)
    assert skips > 0 and not any(".skip" in n for n, _ in no_skip.named_parameters())
    assert sum(p.numel() for p in no_skip.parameters()) == sum(p.numel() for p in base.parameters()) - skips
    elu = xception(num_classes=10, intermediate_activation="elu", segment_channels=4)
    convs = [m for m in elu.modules() if isinstance(m, SeparableConv2d)]
    assert len(convs) == 34
    assert all(m.intermediate_activation == "elu" and m.depthwise_weight.shape[1] == 4 for m in convs)
    x = torch.randn(2, 3, 71, 71)
    for model in (no_skip, elu):
        reference = xception(
            num_classes=10,
            residual=model is not no_skip,
            intermediate_activation="elu" if model is elu else "none",
            segment_channels=4 if model is elu else 1,
            backend="reference",
        )
        reference.load_state_dict(model.state_dict())
        torch.testing.assert_close(model.eval()(x), reference.eval()(x), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match=r"segment_channels must divide every layer's channels"):
        xception(segment_channels=3)


def test_reference_backend_without_residual_has_same_names():
    a, b = xception(residual=False), xception(residual=False, backend="reference")
    assert list(a.state_dict()) == list(b.state_dict())


def test_reference_grouped_matches_plain_grouped_conv():
    x, dw, pw = torch.randn(1, 4, 6, 6), torch.randn(4, 2, 3, 3), torch.randn(3, 4, 1, 1)
    want = torch.nn.functional.conv2d(torch.nn.functional.conv2d(x, dw, padding=1, groups=2), pw)
    torch.testing.assert_close(separable_conv2d_reference(x, dw, pw, None, 1, 1), want)
