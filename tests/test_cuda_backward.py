"""CUDA-only checks of the fused backward (the shared grid in test_op_vs_reference.py checks every
gradient on CUDA too): partial tiles and many tiles, bitwise determinism, output masks, a
34-layer stack of Xception's shapes in bf16, 64-bit offsets, the dispatch log."""

import os
import re
import subprocess
import sys

import pytest
import torch
from sample_inputs import (
    Case,
    assert_close_to_reference,
    inputs_past_2_pow_31,
    make_inputs,
    reference_outputs_and_grads,
)

from xsep.bench.models import SeparableStack
from xsep.bench.roofline import math_mode, tf32_enabled
from xsep.ops import separable_conv2d
from xsep.reference import check_error

pytestmark = pytest.mark.cuda

DTYPES = [torch.float16, torch.bfloat16, torch.float32]
# The backward grid in every math mode: float32 with TF32 (PyTorch's default) and exact (FFMA kernels).
MODES = ["fp16", "bf16", "fp32-tf32", "fp32"]
# Partial GEMM tiles (C*M not a multiple of 64, Cout not of 128, pixels not of 32), maps of many
# input tiles (more than 64 partial sums: the grad_dw reduction takes two passes), big kernels.
BACKWARD_CASES = [
    Case("partial_3x3_mult2", N=3, C=37, H=13, W=11, Cout=131, multiplier=2),
    Case("many_tiles_74", N=2, C=20, H=74, W=74, Cout=40),
    Case("s2_same_5x5", N=2, C=19, H=17, W=23, Cout=70, kernel=(5, 5), stride=2, padding="same"),
    Case("d2_k7x1", N=1, C=33, H=29, W=9, Cout=129, kernel=(7, 1), dilation=(2, 1), padding=(6, 0)),
    Case("mult3_s3", N=2, C=22, H=20, W=19, Cout=33, multiplier=3, stride=3, padding="same"),
    # 16-byte channel vectors in every dtype: NCHW and strided calls run the staged kernels on
    # channels_last copies (backward_wants_channels_last_copies), channels_last calls read x as it is.
    Case("aligned_3x3", N=2, C=24, H=15, W=13, Cout=40),
]


def grads_of(inputs, conv_args, grad_out, wanted=(True, True, True, True)):
    leaves = [t.detach().requires_grad_(w) if t is not None else None for t, w in zip(inputs, wanted, strict=True)]
    separable_conv2d(*leaves, **conv_args).backward(grad_out)
    return [t.grad if t is not None else None for t in leaves]


@pytest.mark.parametrize("layout", ["nchw", "channels_last", "strided"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", BACKWARD_CASES, ids=lambda c: c.id)
def test_every_gradient_matches_reference(case, mode, layout):
    dtype, tf32 = math_mode(mode)
    inputs = make_inputs(case, dtype, layout, device="cuda")
    with tf32_enabled(tf32):
        y_shape = separable_conv2d(*inputs, **case.conv_args).shape
        grad_out = torch.randn(y_shape, dtype=torch.float64, device="cuda")
        grads = grads_of(inputs, case.conv_args, grad_out.to(dtype))
        _, exact = reference_outputs_and_grads(inputs, case.conv_args, grad_out, torch.float64)
        _, unfused = reference_outputs_and_grads(inputs, case.conv_args, grad_out, dtype)
        for name, g, u, e in zip(["x", "dw_weight", "pw_weight", "bias"], grads, unfused, exact, strict=True):
            assert g.isfinite().all(), f"grad of {name} has non-finite elements (an unwritten element?)"
            assert_close_to_reference(g, u, e, what=f"grad of {name}")


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_bitwise_deterministic(dtype, layout):
    # 728 -> 728 at 19x19: several pw splits and input tiles, so every cross-CTA sum is exercised.
    case = Case("xception_middle", N=4, C=728, H=19, W=19, Cout=728)
    inputs = make_inputs(case, dtype, layout, device="cuda")
    grad_out = torch.randn(4, 728, 19, 19, dtype=dtype, device="cuda")
    first = grads_of(inputs, case.conv_args, grad_out)
    for _ in range(2):
        again = grads_of(inputs, case.conv_args, grad_out)
        for a, b in zip(first, again, strict=True):
            assert torch.equal(a, b), "the backward is not bitwise reproducible"


@pytest.mark.parametrize(
    "wanted",
    [
        (True, False, False, False),
        (False, True, False, False),
        (False, False, True, False),
        (False, False, False, True),
        (False, True, True, True),
        (True, False, True, False),
    ],
    ids=lambda w: "".join("1" if v else "0" for v in w),
)
def test_output_mask(wanted):
    case = BACKWARD_CASES[0]
    inputs = make_inputs(case, torch.bfloat16, "channels_last", device="cuda")
    grad_out = torch.randn(3, 131, 13, 11, dtype=torch.float64, device="cuda")
    grads = grads_of(inputs, case.conv_args, grad_out.bfloat16(), wanted)
    _, exact = reference_outputs_and_grads(inputs, case.conv_args, grad_out, torch.float64)
    _, unfused = reference_outputs_and_grads(inputs, case.conv_args, grad_out, torch.bfloat16)
    for w, g, u, e in zip(wanted, grads, unfused, exact, strict=True):
        assert (g is not None) == w
        if w:
            assert_close_to_reference(g, u, e)


AUTOTUNE_CASES = [
    # (case, mode, layout, gradients wanted): a 728-wide Xception layer (every backward candidate
    # applies: 64, 128 and 256 input-gradient channels, both resident pw splits), a 128-channel NCHW
    # layer without grad_bias (the staged kernels on channels_last copies; the 512-pixel split applies
    # where Cout <= 128), and a small TF32 call without grad_dw (the 16-bit kernels' knobs do not apply:
    # most candidates are the default's launch)
    (Case("xception_728", N=2, C=728, H=19, W=19, Cout=728), "bf16", "channels_last", (True, True, True, True)),
    (Case("nchw_128", N=2, C=128, H=37, W=37, Cout=128), "fp16", "nchw", (True, True, True, False)),
    (Case("aligned_3x3", N=2, C=24, H=15, W=13, Cout=40), "fp32-tf32", "channels_last", (True, False, True, True)),
]


@pytest.mark.parametrize("case,mode,layout,wanted", AUTOTUNE_CASES, ids=lambda v: getattr(v, "id", None))
def test_autotuned_backward_matches_reference_and_keeps_its_choice(case, mode, layout, wanted):
    # XSEP_AUTOTUNE=1: the first backward of a shape times every backward that could serve it and
    # keeps the fastest (the dispatch line says so); the gradients are the op's, and a second backward
    # of the same shape reuses the choice (the same line: the record keeps distinct lines) and its bits.
    from xsep._kernel_knobs import kernel_knobs, recorded_dispatches

    dtype, tf32 = math_mode(mode)
    inputs = make_inputs(case, dtype, layout, device="cuda")
    with tf32_enabled(tf32):
        y_shape = separable_conv2d(*inputs, **case.conv_args).shape
        grad_out = torch.randn(y_shape, dtype=torch.float64, device="cuda")
        with kernel_knobs({"XSEP_AUTOTUNE": "1"}), recorded_dispatches() as lines:
            grads = grads_of(inputs, case.conv_args, grad_out.to(dtype), wanted)
            again = grads_of(inputs, case.conv_args, grad_out.to(dtype), wanted)
        _, exact = reference_outputs_and_grads(inputs, case.conv_args, grad_out, torch.float64)
        _, unfused = reference_outputs_and_grads(inputs, case.conv_args, grad_out, dtype)
    names = ["x", "dw_weight", "pw_weight", "bias"]
    for name, w, g, a, u, e in zip(names, wanted, grads, again, unfused, exact, strict=True):
        assert (g is not None) == w, f"grad of {name}"
        if w:
            assert_close_to_reference(g, u, e, what=f"grad of {name}")
            assert torch.equal(g, a), f"grad of {name}: the second backward's bits differ"
    backward = [line for line in lines if "separable_conv2d_backward:" in line]
    assert len(backward) == 1 and "autotuned: fastest of" in backward[0], lines


def test_xception_stack_gradients_bf16():
    # The 34 separable convs of Xception at their real sizes (batch 2), as fused modules and as
    # nn.Conv2d pairs (bf16 and fp64), same weights: every weight gradient within the dtype rule.
    torch.manual_seed(0)
    fused = SeparableStack(fused=True)
    unfused, exact = SeparableStack(fused=False), SeparableStack(fused=False)
    unfused.load_from(fused)
    exact.load_from(fused)
    x = torch.randn(2, 64, 147, 147, device="cuda").to(memory_format=torch.channels_last)
    for net, dtype in ((fused, torch.bfloat16), (unfused, torch.bfloat16), (exact, torch.float64)):
        net.to("cuda", dtype, memory_format=torch.channels_last)
        net(x.to(dtype)).float().square().mean().backward()
    for i, (f, u, e) in enumerate(zip(fused.layers, unfused.layers, exact.layers, strict=True)):
        for name, g, gu, ge in (
            ("depthwise", f.depthwise_weight.grad, u[0].weight.grad, e[0].weight.grad),
            ("pointwise", f.pointwise_weight.grad, u[1].weight.grad, e[1].weight.grad),
        ):
            c = check_error(g, gu, ge)
            assert c.ok, f"layer {i} {name}: error {c.error:.3e} > bound {c.bound:.3e} (unfused {c.error_unfused:.3e})"


def test_offsets_past_2_pow_31():
    x, dw, pw = inputs_past_2_pow_31()
    n, _, h, w = x.shape
    # grad_out is zero but for the last image's bottom-right 33x33 corner: every gradient then
    # equals the gradient of the op on a crop of x holding that corner and its halo.
    grad_out = torch.zeros(n, 8, h, w, dtype=torch.bfloat16, device="cuda")
    grad_out[-1, :, -33:, -33:] = torch.randn(8, 33, 33, dtype=torch.bfloat16, device="cuda")
    args = {"stride": 1, "padding": 1}
    grads = grads_of((x, dw, pw, None), args, grad_out)
    # Those outputs read x's last 34 rows and columns only, through real pixels or the image's own
    # bottom/right padding; the crop's top/left padding meets zero gradient only.
    crop = x[-1:, :, -34:, -34:]
    crop_grad = torch.zeros(1, 8, 34, 34, dtype=torch.float64, device="cuda")
    crop_grad[..., 1:, 1:] = grad_out[-1:, :, -33:, -33:].double()
    _, exact = reference_outputs_and_grads((crop, dw, pw, None), args, crop_grad, torch.float64)
    _, unfused = reference_outputs_and_grads((crop, dw, pw, None), args, crop_grad, torch.bfloat16)
    assert_close_to_reference(grads[0][-1:, :, -34:, -34:], unfused[0], exact[0], what="grad of x")
    assert not grads[0][0].any() and not grads[0][:, :, : h - 34].any() and not grads[0][..., : w - 34].any()
    for name, g, u, e in zip(["dw_weight", "pw_weight"], grads[1:3], unfused[1:3], exact[1:3], strict=True):
        assert_close_to_reference(g, u, e, what=f"grad of {name}")


def backward_log(code_x: str, multiplier: int = 1, channels: int = 8, out_channels: int = 16) -> str:
    """stderr of one forward + backward in a fresh process with XSEP_LOG_DISPATCH=1 and no kernel
    knob set (x: `channels` channels)."""
    code = (
        "import torch, xsep.ops as o;"
        f"x = ({code_x}).requires_grad_();"
        f"dw = torch.randn({channels} * {multiplier}, 1, 3, 3, dtype=x.dtype, device='cuda', requires_grad=True);"
        f"pw = torch.randn({out_channels}, {channels} * {multiplier}, 1, 1, dtype=x.dtype, device='cuda',"
        " requires_grad=True);"
        "o.separable_conv2d(x, dw, pw, padding=1).sum().backward();"
        "torch.cuda.synchronize()"
    )
    from xsep._kernel_knobs import KNOBS

    env = {name: value for name, value in os.environ.items() if name not in KNOBS}
    env["XSEP_LOG_DISPATCH"] = "1"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stderr


def test_default_kernels_follow_the_h200_measurements():
    # On Hopper builds with the wgmma kernels, the defaults that gpu-compare-forward.md and
    # gpu-compare-backward.md (H200, 3ac7082) chose: the resident forward for 16-bit layers of at
    # most 64 channels and 128 out; the input-gradient kernel with 128 channels per CTA from 128
    # depthwise channels; the resident pw-gradient kernel with 512-pixel splits, two CTAs per SM,
    # where Cout <= 128.
    def log(channels, out_channels):
        x = f"torch.randn(2, {channels}, 19, 19, dtype=torch.bfloat16, device='cuda')"
        x += ".to(memory_format=torch.channels_last)"
        lines = backward_log(x, channels=channels, out_channels=out_channels).splitlines()
        forward = next(line for line in lines if "separable_conv2d: forward" in line)
        backward = next(line for line in lines if "separable_conv2d_backward:" in line)
        return forward, backward

    narrow_fwd, narrow_bwd = log(64, 128)
    wide_fwd, wide_bwd = log(128, 256)
    if " wgmma " not in wide_fwd:
        major, minor = torch.cuda.get_device_capability()
        pytest.skip(f"no wgmma kernels in this build for sm_{major}{minor}: {wide_fwd}")
    assert " resident " in narrow_fwd, narrow_fwd
    assert "(input: 128 channels per CTA)" not in narrow_bwd, narrow_bwd
    assert "resident-pw (512 pixels, 2 CTAs/SM)" in narrow_bwd, narrow_bwd
    assert "(input: 128 channels per CTA)" in wide_bwd, wide_bwd
    assert " resident-pw" in wide_bwd and "512 pixels" not in wide_bwd, wide_bwd


def test_dispatch_log_names_the_fused_backward():
    x = "torch.randn(2, 8, 9, 9, dtype=torch.bfloat16, device='cuda').to(memory_format=torch.channels_last)"
    log = backward_log(x)
    assert "separable_conv2d_backward: backward bfloat16 mma channels_last 3x3" in log


def test_nchw_backward_runs_the_staged_kernels_on_channels_last_copies():
    log = backward_log("torch.randn(2, 8, 9, 9, dtype=torch.bfloat16, device='cuda')")
    line = next(line for line in log.splitlines() if "separable_conv2d_backward:" in line)
    assert "backward bfloat16 mma channels_last 3x3" in line, line
    assert re.search(r" (staged|wgmma)-input", line) and line.endswith(
        " on channels_last copies of x, grad_y and grad_x"
    ), line
    # 5 channels: no 16-byte vectors, so no copies; the first kernels read NCHW as it is.
    log = backward_log("torch.randn(2, 5, 9, 9, dtype=torch.bfloat16, device='cuda')", channels=5)
    assert "backward bfloat16 mma nchw 3x3" in log and "copies" not in log, log


def test_unplannable_multiplier_falls_back_visibly():
    log = backward_log("torch.randn(1, 8, 9, 9, dtype=torch.float16, device='cuda')", multiplier=65)
    assert "separable_conv2d_backward: backward fallback" in log


def test_float64_backward_falls_back_visibly():
    log = backward_log("torch.randn(1, 8, 9, 9, dtype=torch.float64, device='cuda')")
    assert "backward float64 fallback" in log


# The experimental staged kernels (XSEP_BWD_KERNEL=staged, read once per process): fp16, bf16 and
# fp32 on TF32, 3x3, channels_last, C*M and Cout multiples of a 16-byte vector (the pw-gradient one
# also multiplier 1). Partial Cout
# chunks (136, 40), a partial channel chunk (C=72: 64 + 8), multiplier 2, stride 2 'same',
# dilation 2, many tiles, several pw splits (xception_like); Cout 264 (the resident pw-gradient
# kernel's two slices of 256, the second mostly padding; several 64-pixel stages a split).
FORCED_STAGED_BACKWARD_CHECK = """
import sys, torch
sys.path.insert(0, {tests!r})
from sample_inputs import Case, make_inputs, assert_close_to_reference, reference_outputs_and_grads
from xsep.bench.roofline import math_mode
from xsep.ops import separable_conv2d
cases = [
    Case("aligned_partial", N=3, C=40, H=13, W=11, Cout=136),
    Case("many_tiles_mult2", N=2, C=20, H=40, W=38, Cout=48, multiplier=2),
    Case("s2_same", N=2, C=72, H=17, W=23, Cout=40, stride=2, padding="same"),
    Case("d2", N=1, C=24, H=20, W=21, Cout=32, dilation=2, padding=2),
    Case("xception_like", N=2, C=128, H=19, W=19, Cout=256),
    Case("slices_264", N=2, C=64, H=24, W=23, Cout=264),
]
names = ["x", "dw_weight", "pw_weight", "bias"]
for case in cases:
    for mode in ["bf16", "fp16", "fp32-tf32"]:
        dtype, tf32 = math_mode(mode)
        torch.backends.cudnn.allow_tf32 = tf32
        runs_of_case = [("none", "channels_last"), ("elu", "channels_last")] + [("none", l) for l in {more_layouts!r}]
        for act, layout in runs_of_case:
            inputs = make_inputs(case, dtype, layout, device="cuda")
            args = dict(case.conv_args, intermediate_activation=act)
            shape = separable_conv2d(*inputs, **args).shape
            grad_out = torch.randn(shape, dtype=torch.float64, device="cuda")
            if layout == "channels_last":
                grad_out = grad_out.to(memory_format=torch.channels_last)
            runs = []
            for _ in range(2):
                leaves = [t.detach().requires_grad_() for t in inputs]
                separable_conv2d(*leaves, **args).backward(grad_out.to(dtype))
                runs.append([t.grad for t in leaves])
            _, exact = reference_outputs_and_grads(inputs, args, grad_out, torch.float64)
            _, unfused = reference_outputs_and_grads(inputs, args, grad_out, dtype)
            for name, g, again, u, e in zip(names, runs[0], runs[1], unfused, exact):
                what = f"{{case.id}} {{mode}} {{act}} {{layout}} grad of {{name}}"
                assert torch.equal(g, again), what + ": not bitwise reproducible"
                assert g.isfinite().all(), what + ": non-finite elements (an unwritten element?)"
                assert_close_to_reference(g, u, e, what=what)
torch.cuda.synchronize()
print("checked")
"""


@pytest.mark.parametrize(
    "kernel",
    ["first", "staged", "wgmma", "resident", "staged-128ch", "wgmma-128ch", "resident-256ch", "resident-pw512"],
)
def test_staged_kernels_match_reference(kernel):
    # first: the kernels the staged ones replaced as the default (XSEP_BWD_KERNEL=first). wgmma: the
    # staged kernels with their GEMMs on wgmma (fp16 / bf16; sm_90a builds). resident: the wgmma
    # input-gradient kernel with the resident pw-gradient kernel (the Hopper default). -128ch: the
    # input-gradient kernel with 128 channels per CTA (XSEP_BWD_CHANNELS=128); -256ch: the wgmma one
    # with 256 (XSEP_BWD_CHANNELS=256; float32 takes the staged one at 128).
    tests = os.path.dirname(os.path.abspath(__file__))
    channels = "256" if kernel.endswith("-256ch") else "128" if kernel.endswith("-128ch") else "64"
    # -pw512: the resident pw-gradient kernel with splits of 512 pixels, two CTAs per SM
    # (XSEP_BWD_PW_PIXELS=512; the cases with Cout <= 128).
    pw_pixels = "512" if kernel.endswith("-pw512") else "1024"
    kernel = kernel.removesuffix("-128ch").removesuffix("-256ch").removesuffix("-pw512")
    wide = channels != "64"
    env = dict(
        os.environ,
        XSEP_BWD_KERNEL=kernel,
        XSEP_LOG_DISPATCH="1",
        XSEP_BWD_CHANNELS=channels,
        XSEP_BWD_PW_PIXELS=pw_pixels,
    )
    # The first kernels also in NCHW, which they read as it is (XSEP_BWD_KERNEL=first: no copies).
    more_layouts = ["nchw"] if kernel == "first" else []
    code = FORCED_STAGED_BACKWARD_CHECK.format(tests=tests, more_layouts=more_layouts)
    # A time limit: a kernel that hangs on the GPU fails this case instead of the whole GPU call.
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "checked" in result.stdout
    if kernel in ("wgmma", "resident"):
        if "wgmma-input" not in result.stderr:
            major, minor = torch.cuda.get_device_capability()
            pytest.skip(f"no wgmma kernels in this build for sm_{major}{minor} (needs sm_90a code and nvidia-cutlass)")
        # The backward's lines (the forward of fp32 on TF32 runs the wgmma forward by default).
        wgmma_lines = [line for line in result.stderr.splitlines() if "wgmma" in line and "backward" in line]
        pw = "wgmma-pw" if kernel == "wgmma" else "resident-pw"
        for dtype in ["backward bfloat16", "backward float16"]:
            assert any(dtype in line and f"wgmma-input {pw}" in line for line in wgmma_lines), (
                f"{dtype}: wgmma-input and {pw} did not both run"
            )
        assert not any("float32" in line for line in wgmma_lines), "the wgmma kernels are 16-bit only"
    elif kernel == "first":
        backward_lines = [line for line in result.stderr.splitlines() if "backward" in line]
        assert backward_lines and not any(
            "staged" in line or "wgmma" in line or "copies" in line for line in backward_lines
        ), "XSEP_BWD_KERNEL=first ran another kernel"
        assert any("nchw 3x3" in line for line in backward_lines), "the first kernels did not run on NCHW"
    else:
        assert "staged-input staged-pw" in result.stderr, "the dispatch log does not name both staged kernels"
    assert ("(input: 128 channels per CTA)" in result.stderr) == wide, "the dispatch log and XSEP_BWD_CHANNELS disagree"
    two_per_sm = "resident-pw (512 pixels, 2 CTAs/SM)"
    assert (two_per_sm in result.stderr) == (pw_pixels == "512" and "wgmma-input" in result.stderr), (
        "the dispatch log and XSEP_BWD_PW_PIXELS disagree"
    )
    if channels == "256":
        lines = result.stderr.splitlines()
        for dtype in ["backward bfloat16", "backward float16"]:
            assert any(dtype in line and "(input: 256 channels per CTA)" in line for line in lines), (
                f"{dtype}: the 256-channel input kernel did not run"
            )
