"""CUDA-only checks of the fused forward (the shared grid in test_op_vs_reference.py runs on CUDA
too): every output element written, exact fp32 without TF32, partial tiles, 64-bit offsets,
the dispatch log, the device guard."""

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

from xsep.ops import separable_conv2d
from xsep.reference import separable_conv2d_reference

pytestmark = pytest.mark.cuda

# Sizes that leave partial tiles everywhere: pixels not a multiple of the 64-pixel tile, Cout not
# a multiple of 128, C*M not a multiple of the 32-channel chunk.
PARTIAL = [
    Case("partial_3x3", N=3, C=37, H=13, W=11, Cout=131, multiplier=2),
    Case("partial_5x5_s2_same", N=2, C=19, H=17, W=23, Cout=70, kernel=(5, 5), stride=2, padding="same"),
    Case("partial_d2_k7x1", N=1, C=33, H=29, W=9, Cout=129, kernel=(7, 1), dilation=(2, 1), padding=(6, 0)),
]


def poisoned_forward(inputs, conv_args):
    """Runs the op into memory that held NaN, so an element the kernel forgets to write fails."""
    x = inputs[0]
    probe = separable_conv2d(*inputs, **conv_args)
    nbytes, shape, strides = probe.untyped_storage().nbytes(), probe.shape, probe.stride()
    del probe
    poison = torch.full((nbytes // x.element_size(),), float("nan"), dtype=x.dtype, device=x.device)
    poison_ptr = poison.data_ptr()
    del poison  # the caching allocator hands this block to the op's output next
    y = separable_conv2d(*inputs, **conv_args)
    assert y.data_ptr() == poison_ptr, "the output did not reuse the poisoned block"
    assert y.shape == shape and y.stride() == strides
    return y


@pytest.mark.parametrize("layout", ["nchw", "channels_last", "strided"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
@pytest.mark.parametrize("case", PARTIAL, ids=lambda c: c.id)
def test_forward_writes_every_element(case, dtype, layout):
    inputs = make_inputs(case, dtype, layout, device="cuda")
    y = poisoned_forward(inputs, case.conv_args)
    assert not y.isnan().any(), f"{int(y.isnan().sum())} output elements were never written"
    exact = separable_conv2d_reference(*[t.double() for t in inputs], **case.conv_args)
    unfused = separable_conv2d_reference(*inputs, **case.conv_args)
    assert_close_to_reference(y, unfused, exact)


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_fp32_is_exact_without_tf32(layout):
    case = PARTIAL[0]
    inputs = make_inputs(case, torch.float32, layout, device="cuda")
    before = torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = False
        y = separable_conv2d(*inputs, **case.conv_args)
        unfused = separable_conv2d_reference(*inputs, **case.conv_args)
    finally:
        torch.backends.cudnn.allow_tf32 = before
    exact = separable_conv2d_reference(*[t.double() for t in inputs], **case.conv_args)
    # FFMA in fp32: an error of the order of fp32 rounding, not TF32's 1e-3.
    assert (y.double() - exact).abs().max().item() <= 1e-5 * exact.abs().max().item()
    assert_close_to_reference(y, unfused, exact)


def test_offsets_past_2_pow_31():
    x, dw, pw = inputs_past_2_pow_31()
    y = separable_conv2d(x, dw, pw, None, 1, 1)
    # The bottom-right corner of the last image against the reference on a crop with its halo:
    # crop output [1:, 1:] is exactly y[-33:, -33:] (the crop's own padding is the image's border).
    crop = x[-1:, :, -34:, -34:]
    exact = separable_conv2d_reference(crop.double(), dw.double(), pw.double(), None, 1, 1)[..., 1:, 1:]
    unfused = separable_conv2d_reference(crop, dw, pw, None, 1, 1)[..., 1:, 1:]
    assert_close_to_reference(y[-1:, :, -33:, -33:], unfused, exact)


def dispatch_log(dtype: str, memory_format: str, channels: int = 8, out_channels: int = 16, tf32: bool = True) -> str:
    """stderr of one op call in a fresh process with XSEP_LOG_DISPATCH=1 (the log is set up once);
    tf32: torch.backends.cudnn.allow_tf32 there (float32 on TF32 tensor cores or exact)."""
    code = (
        f"import torch, xsep.ops as o; torch.backends.cudnn.allow_tf32 = {tf32};"
        f"x = torch.randn(2, {channels}, 9, 9, dtype=torch.{dtype}, device='cuda')"
        f".to(memory_format=torch.{memory_format});"
        f"o.separable_conv2d(x, torch.randn({channels}, 1, 3, 3, dtype=x.dtype, device='cuda'),"
        f" torch.randn({out_channels}, {channels}, 1, 1, dtype=x.dtype, device='cuda'), padding=1);"
        "torch.cuda.synchronize()"
    )
    env = dict(os.environ, XSEP_LOG_DISPATCH="1")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stderr


def test_float64_falls_back_visibly():
    assert "xsep dispatch: separable_conv2d: forward float64 fallback" in dispatch_log("float64", "contiguous_format")


def test_dispatch_log_names_the_fused_kernel():
    assert "separable_conv2d: forward bfloat16 mma channels_last 3x3" in dispatch_log("bfloat16", "channels_last")


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_runs_on_the_inputs_device():
    case = PARTIAL[0]
    inputs = make_inputs(case, torch.bfloat16, "channels_last", device="cuda:1")
    y = separable_conv2d(*inputs, **case.conv_args)
    assert y.device == torch.device("cuda:1")
    exact = separable_conv2d_reference(*[t.double() for t in inputs], **case.conv_args)
    assert_close_to_reference(y, separable_conv2d_reference(*inputs, **case.conv_args), exact)


def test_torch_compile_on_cuda():
    case = PARTIAL[1]
    inputs = make_inputs(case, torch.bfloat16, "channels_last", device="cuda")
    leaves = [t.detach().requires_grad_() for t in inputs]
    step = torch.compile(lambda *a: separable_conv2d(*a, **case.conv_args).float().square().sum(), fullgraph=True)
    step(*leaves).backward()
    grad_out = 2 * separable_conv2d(*inputs, **case.conv_args).double()
    _, ref_grads = reference_outputs_and_grads(inputs, case.conv_args, grad_out, torch.bfloat16)
    for leaf, ref in zip(leaves, ref_grads, strict=True):
        torch.testing.assert_close(leaf.grad.float(), ref.float(), rtol=5e-2, atol=5e-2 * ref.abs().max().item())


# Every forward kernel on the same cases: the choice (XSEP_FWD_KERNEL) is read once per process.
FORCED_KERNEL_CHECK = """
import sys, torch
sys.path.insert(0, {tests!r})
from sample_inputs import Case, make_inputs, assert_close_to_reference
from xsep.bench.roofline import math_mode, tf32_enabled
from xsep.ops import separable_conv2d
from xsep.reference import separable_conv2d_reference
cases = [
    Case("partial_3x3_mult2", N=3, C=37, H=13, W=11, Cout=131, multiplier=2),
    Case("s2_5x5_same", N=2, C=19, H=17, W=23, Cout=70, kernel=(5, 5), stride=2, padding="same"),
    Case("d2_k7x1", N=1, C=33, H=29, W=9, Cout=129, kernel=(7, 1), dilation=(2, 1), padding=(6, 0)),
    Case("wide_aligned", N=2, C=160, H=9, W=10, Cout=300),
    Case("aligned_s2_same", N=2, C=64, H=37, W=37, Cout=96, stride=2, padding="same"),
    Case("aligned_d2_5x5", N=1, C=24, H=20, W=21, Cout=40, kernel=(5, 5), dilation=2, padding=4),
    # channels_last 3x3 with channels in 16-byte vectors, as the wgmma kernel takes them: a
    # partial channel chunk (40 of 64) and pixel tile, Cout below one tile; a 728-wide Z (128
    # pixels per CTA); a 1024-wide one (64 pixels), Cout one tile plus 8; one pixel tile, so the
    # output channels are split across CTAs.
    Case("vec_partial", N=3, C=40, H=7, W=9, Cout=24),
    Case("vec_728", N=2, C=728, H=19, W=19, Cout=728),
    Case("vec_1024", N=1, C=1024, H=10, W=10, Cout=136),
    Case("vec_cout_split", N=1, C=64, H=5, W=5, Cout=1024),
]
for case in cases:
    for mode in ["bf16", "fp16", "fp32-tf32", "fp32"]:
        dtype, tf32 = math_mode(mode)
        for layout in ["nchw", "channels_last", "strided"]:
            for act in ["none", "elu"]:
                inputs = make_inputs(case, dtype, layout, device="cuda")
                args = dict(case.conv_args, intermediate_activation=act)
                with tf32_enabled(tf32):
                    y = separable_conv2d(*inputs, **args)
                    unfused = separable_conv2d_reference(*inputs, **args)
                    exact = separable_conv2d_reference(*[t.double() for t in inputs], **args)
                    assert_close_to_reference(y, unfused, exact, what=f"{{case.id}} {{mode}} {{layout}} {{act}}")
torch.cuda.synchronize()
print("checked")
"""


# halo: experimental, forced only here; it applies to the channels_last cases with C % 8 == 0.
# The resident kernel's measurement knobs: three weight chunks in flight (XSEP_FWD_STAGES=3), 64 or
# 128 pixels per CTA (XSEP_FWD_PIXELS; 16-bit channels_last 3x3 calls, 32 pixels elsewhere). The
# wgmma kernel's: 64 pixels (XSEP_FWD_PIXELS), the smallest weight ring (XSEP_FWD_STAGES=4), the
# next depthwise chunk's loads in flight (XSEP_FWD_PREFETCH=1; at 128 pixels the build for one CTA
# per SM with channel quartets), the build for two CTAs per SM where one fits (XSEP_FWD_CTAS=2). The
# streamed kernel's: its default ring and the smallest (2 slots: every chunk waits for a free one).
# The overlapped kernel's (16-bit, Z up to ~800 channels): its largest ring and the smallest (3), and
# its pair builds (clusters of two CTAs: each weight chunk multicast into both, or each computing half
# of a tile's Z).
FORWARD_VARIANTS = {
    "resident": dict(XSEP_FWD_KERNEL="resident"),
    "resident-3stage": dict(XSEP_FWD_KERNEL="resident", XSEP_FWD_STAGES="3"),
    "resident-64px": dict(XSEP_FWD_KERNEL="resident", XSEP_FWD_PIXELS="64"),
    "resident-128px": dict(XSEP_FWD_KERNEL="resident", XSEP_FWD_PIXELS="128"),
    "tiled": dict(XSEP_FWD_KERNEL="tiled"),
    "halo": dict(XSEP_FWD_KERNEL="halo"),
    "wgmma": dict(XSEP_FWD_KERNEL="wgmma"),
    "wgmma-64px": dict(XSEP_FWD_KERNEL="wgmma", XSEP_FWD_PIXELS="64"),
    "wgmma-4stage": dict(XSEP_FWD_KERNEL="wgmma", XSEP_FWD_STAGES="4"),
    "wgmma-4wg": dict(XSEP_FWD_KERNEL="wgmma", XSEP_FWD_WARPGROUPS="4"),
    "wgmma-prefetch": dict(XSEP_FWD_KERNEL="wgmma", XSEP_FWD_PREFETCH="1"),
    "wgmma-2cta": dict(XSEP_FWD_KERNEL="wgmma", XSEP_FWD_CTAS="2"),
    "wgmma-staged": dict(XSEP_FWD_KERNEL="wgmma", XSEP_FWD_DW="staged"),
    "streamed": dict(XSEP_FWD_KERNEL="streamed"),
    "streamed-2stage": dict(XSEP_FWD_KERNEL="streamed", XSEP_FWD_STAGES="2"),
    "overlap": dict(XSEP_FWD_KERNEL="overlap"),
    "overlap-3stage": dict(XSEP_FWD_KERNEL="overlap", XSEP_FWD_STAGES="3"),
    "overlap-pair-weights": dict(XSEP_FWD_KERNEL="overlap", XSEP_FWD_PAIR="weights"),
    "overlap-pair-z": dict(XSEP_FWD_KERNEL="overlap", XSEP_FWD_PAIR="z"),
}


@pytest.mark.parametrize("variant", sorted(FORWARD_VARIANTS))
def test_every_forward_kernel_matches_reference(variant):
    tests = os.path.dirname(os.path.abspath(__file__))
    kernel = FORWARD_VARIANTS[variant]["XSEP_FWD_KERNEL"]
    env = dict(os.environ, XSEP_LOG_DISPATCH="1", **FORWARD_VARIANTS[variant])
    result = subprocess.run(
        [sys.executable, "-c", FORCED_KERNEL_CHECK.format(tests=tests)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "checked" in result.stdout
    if kernel in ("wgmma", "streamed", "overlap") and f" {kernel}" not in result.stderr:
        # Hopper only, and only in builds for sm_90a with CuTe's headers (setup.py).
        major, minor = torch.cuda.get_device_capability()
        pytest.skip(f"no wgmma kernels in this build for sm_{major}{minor} (needs sm_90a code and nvidia-cutlass)")
    assert f" {kernel}" in result.stderr, "the dispatch log does not name the forced kernel"
    if variant == "wgmma":
        for shape in [
            r"wgmma \(128 pixels, \d+ stages, cout split 1\)",
            r"wgmma \(64 pixels",
            r"wgmma \(128 pixels, \d+ stages, cout split 8\)",
            r"wgmma \(128 pixels, (?:9|1[0-6]) stages",  # the small layers: more slots than the 728 layers
            r"wgmma \(128 pixels, 5 stages",  # vec_728: the most slots that fit beside a 728-wide Z
            # vec_728, where one CTA fits: the build for one (quartets, two-window quads)
            r"wgmma \(128 pixels, 5 stages, cout split \d+, one CTA per SM, 4-channel items\)",
            r"float32 tf32-mma channels_last 3x3 wgmma \(64 pixels",
            # 64 pixels where one CTA fits (vec_1024 in 16 bits, vec_728 in TF32; TF32 vec_1024 is streamed): two Z
            # chunks a depthwise pass
            r"bfloat16 mma channels_last 3x3 wgmma \(64 pixels, \d+ stages, cout split \d+, one CTA per SM, "
            r"4-channel items, 64 channels a depthwise pass\)",
            r"float32 tf32-mma channels_last 3x3 wgmma \(64 pixels, \d+ stages, cout split \d+, one CTA per SM, "
            r"4-channel items, 32 channels a depthwise pass\)",
        ]:
            assert re.search(shape, result.stderr), f"no call ran the wgmma kernel as {shape!r}"
    if variant == "wgmma-64px":
        assert "wgmma (64 pixels" in result.stderr and "wgmma (128 pixels" not in result.stderr, "64 pixels asked"
    if variant == "wgmma-prefetch":  # the one-CTA build where Z leaves room for one CTA (vec_728), else the default
        one_cta = r"wgmma \(128 pixels, \d+ stages, cout split \d+, one CTA per SM, 4-channel items, prefetch\)"
        assert re.search(one_cta, result.stderr), "vec_728: the one-CTA build"
        assert re.search(r"wgmma \(128 pixels, \d+ stages, cout split \d+\)", result.stderr), "small Cmid: two per SM"
        assert re.search(r"bfloat16 mma channels_last 3x3 wgmma \(64 pixels, .*, prefetch\)", result.stderr), "vec_1024"
        assert re.search(r"float32 tf32-mma channels_last 3x3 wgmma \(64 pixels, .*, prefetch\)", result.stderr)
    if variant == "wgmma-2cta":  # the builds for two CTAs per SM everywhere, vec_728 and vec_1024 included
        assert re.search(r"wgmma \(128 pixels, 5 stages, cout split \d+\)", result.stderr), "vec_728: two asked"
        assert "one CTA per SM" not in result.stderr, "XSEP_FWD_CTAS=2 asked for the two-CTA build"
    if variant == "wgmma-staged":  # the one-CTA builds' depthwise phase from bands of x (stride 1, dilation 1)
        # vec_728 in 16 bits: two band buffers beside the five-slot ring's first chunk; in TF32 (64
        # pixels, a 184 KB Z) one; vec_1024 (64 pixels, 16-bit) two.
        for shape in [
            r"bfloat16 mma channels_last 3x3 wgmma \(128 pixels, 5 stages, cout split \d+, one CTA per SM, "
            r"4-channel items, x staged in 2 band buffers\)",
            r"float32 tf32-mma channels_last 3x3 wgmma \(64 pixels, \d+ stages, cout split \d+, one CTA per SM, "
            r"4-channel items, 32 channels a depthwise pass, x staged in 1 band buffer\)",
            r"bfloat16 mma channels_last 3x3 wgmma \(64 pixels, \d+ stages, cout split \d+, one CTA per SM, "
            r"4-channel items, 64 channels a depthwise pass, x staged in 2 band buffers\)",
        ]:
            assert re.search(shape, result.stderr), f"no call ran the wgmma kernel as {shape!r}"
        # the builds for two or more CTAs per SM (the shallow layers) have no band path: their lines
        # would read "cout split N, x staged"
        assert re.search(r"wgmma \(128 pixels, \d+ stages, cout split \d+\)", result.stderr), "the two-CTA build ran"
        assert not re.search(r"cout split \d+, x staged", result.stderr), "a build without the band path"
    if variant == "wgmma-4wg":  # the 128-pixel calls (16-bit) on four warpgroups; TF32 keeps 64 pixels
        assert re.search(r"wgmma \(128 pixels, \d+ stages, cout split \d+, 4 warpgroups\)", result.stderr)
        assert not re.search(r"wgmma \(128 pixels, \d+ stages, cout split \d+\)", result.stderr), "4 asked"
    if kernel == "streamed":  # every 16-bit and TF32 channels_last 3x3 call with 16-byte channels
        stages = "2" if variant == "streamed-2stage" else "6"
        assert re.search(rf"bfloat16 mma channels_last 3x3 streamed \(128 pixels, {stages} stages", result.stderr)
        assert re.search(r"float32 tf32-mma channels_last 3x3 streamed \(128 pixels", result.stderr)
        # Cout 728 and 1024 in tiles of 192 (4 and 6 instead of 6 and 8), the others of 128.
        assert "192-channel tiles" in result.stderr and "128-channel tiles" in result.stderr
    if kernel == "overlap":  # 16-bit and TF32 channels_last 3x3 calls with 16-byte channels
        # vec_728: two 728-wide 16-bit Z buffers, or one in TF32, leave room for 5 ring slots (unless 3
        # are asked); its 12 pixel tiles leave SMs for a cout split; vec_1024: one 16-bit Z buffer, its 2
        # pixel tiles a split in 2 (in TF32 no buffer fits: the default, streamed, serves it). The
        # weights pairs: the same counts (6 pairs of pixel tiles at vec_728 on 66 pairs of SMs: a split
        # in 6; the shared state in the dynamic shared memory still leaves 5 slots), every line saying
        # so. The Z pairs: a split in 3 at vec_728 (each of its 6 output-channel tiles a pair's half)
        # and none at vec_1024 (2 tiles: one pair); calls of one output-channel tile (vec_partial's
        # 24) take the one-CTA build.
        stages = "3" if variant == "overlap-3stage" else "5"
        pairs = {
            "overlap-pair-weights": ", CTA pairs sharing each weight chunk",
            "overlap-pair-z": ", CTA pairs sharing each tile's Z",
        }.get(variant, "")
        split_728, split_1024 = ("3", "1") if variant == "overlap-pair-z" else ("6", "2")
        for dtype, mma, buffers, lanes in [
            ("bfloat16", "mma", "two Z buffers", 4),
            ("float16", "mma", "two Z buffers", 4),
            ("float32", "tf32-mma", "one Z buffer", 2),
        ]:
            line = rf"{dtype} {mma} channels_last 3x3 overlap \(64 pixels, {stages} stages, {buffers}, "
            line += rf"cout split {split_728}, {lanes}-channel items{pairs}\)"
            assert re.search(line, result.stderr), f"vec_728 {dtype}"
        one = r"bfloat16 mma channels_last 3x3 overlap \(64 pixels, \d+ stages, one Z buffer, "
        assert re.search(one + rf"cout split {split_1024}, 4-channel items{pairs}\)", result.stderr), "vec_1024"
        lines = re.findall(r"overlap \(64 pixels[^)]*\)", result.stderr)
        if variant == "overlap-pair-z":
            assert any(line.endswith("items)") for line in lines), "one output-channel tile: the one-CTA build"
        else:
            assert all(line.endswith(f"items{pairs})") for line in lines), "every call on the build asked for"
        assert re.search(r"float32 tf32-mma channels_last 3x3 streamed", result.stderr), "TF32 vec_1024: the default"
        if variant == "overlap":
            assert re.search(r"overlap \(64 pixels, 16 stages", result.stderr), "vec_partial: the largest ring"
            two = r"float32 tf32-mma channels_last 3x3 overlap \(64 pixels, \d+ stages, two Z"
            assert re.search(two, result.stderr), "TF32 below ~400 channels: two Z buffers"
        assert not re.search(r"float32 ffma channels_last 3x3 overlap", result.stderr), "exact fp32: never"
    if variant == "wgmma-4stage":
        stage_counts = set(re.findall(r"wgmma \(\d+ pixels, (\d+) stages", result.stderr))
        assert stage_counts == {"4"}, f"4 stages asked, the log says {stage_counts}"
    if variant == "resident-3stage":
        assert "(32 pixels, 3 stages" in result.stderr, "the dispatch log does not name the stage count"
    pixels = re.search(r"(\d+)px$", variant)
    if pixels:
        assert f"({pixels.group(1)} pixels" in result.stderr, "the dispatch log does not name the pixels per CTA"


def test_phase_clocks_leave_the_results_alone_and_stamp_every_cta():
    # XSEP_PHASE_CLOCKS=1 (tools/phase_clocks.py): the wgmma forward's and the staged input-gradient
    # kernel's CTAs stamp their phases; the output and the gradients are bitwise the same, and every
    # CTA of each grid has a record.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
    from phase_clocks import FORWARD, INPUT_GRADIENT, summarize

    from xsep._extension import _C
    from xsep._kernel_knobs import kernel_knobs, recorded_dispatches

    case = Case("clocks", N=2, C=256, H=19, W=19, Cout=392)  # 722 pixels: 6 tiles of 128; 4 of 128 channels
    inputs = [t.requires_grad_() for t in make_inputs(case, torch.bfloat16, "channels_last", device="cuda")]

    def step():
        y = separable_conv2d(*inputs, **case.conv_args)
        return [y.detach(), *torch.autograd.grad(y, inputs, torch.ones_like(y))]

    plain = step()
    _C.take_phase_clocks()
    with kernel_knobs({"XSEP_PHASE_CLOCKS": "1"}), recorded_dispatches() as lines:
        clocked = step()
    launches = {kernel: (flat, slots) for kernel, slots, flat in _C.take_phase_clocks()}
    assert all(torch.equal(a, b) for a, b in zip(plain, clocked, strict=True))
    forward = next(line for line in lines if " forward " in line)
    if " wgmma " not in forward:
        assert FORWARD not in launches, "forward clocks from a launch that is not the wgmma forward's"
        pytest.skip(f"no wgmma forward in this build for this GPU: {lines}")
    parts = int(re.search(r"cout split (\d+)", forward).group(1))
    summary = summarize(FORWARD, *launches[FORWARD])
    assert summary["ctas"] == 6 * parts, (summary, forward)
    assert 1 <= summary["count"] <= -(-4 // parts), (summary, forward)  # a part's share of the 4 tiles
    for phase in ("table", "depthwise", "gemm", "stores"):
        assert summary["share"][phase] > 0, summary
    assert 0.3 < summary["median_us"]["ghz"] < 3.5  # cycles over global-timer nanoseconds: a GPU's clock
    # The backward's input kernel: staged on Hopper builds for 3x3 channels_last bf16 (its dispatch line).
    assert INPUT_GRADIENT in launches, lines
    backward = summarize(INPUT_GRADIENT, *launches[INPUT_GRADIENT])
    for phase in ("tables", "dz", "grad_x", "grad_dw"):
        assert backward["share"][phase] > 0, backward
    assert _C.take_phase_clocks() == []  # taken


@pytest.mark.parametrize("pair", ["", "weights", "z"], ids=["one-cta", "weights-pairs", "z-pairs"])
def test_overlapped_forward_clocks_sum_each_roles_phases(pair):
    # XSEP_PHASE_CLOCKS=1 with XSEP_FWD_KERNEL=overlap: each CTA's record sums its producers' and its
    # consumer's phases over its work items; the output is bitwise the same as without the clocks.
    # The pair builds (XSEP_FWD_PAIR): a pair's two CTAs each count the pair's items.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
    from phase_clocks import COUNT, OVERLAP, summarize

    from xsep._extension import _C
    from xsep._kernel_knobs import kernel_knobs, recorded_dispatches

    case = Case("clocks", N=2, C=256, H=19, W=19, Cout=392)  # 722 pixels: 12 tiles of 64, split over Cout
    inputs = make_inputs(case, torch.bfloat16, "channels_last", device="cuda")
    with kernel_knobs({"XSEP_FWD_KERNEL": "overlap", "XSEP_FWD_PAIR": pair}):
        plain = separable_conv2d(*inputs, **case.conv_args)
        _C.take_phase_clocks()
        with kernel_knobs({"XSEP_PHASE_CLOCKS": "1"}), recorded_dispatches() as lines:
            clocked = separable_conv2d(*inputs, **case.conv_args)
    launches = {kernel: (flat, slots) for kernel, slots, flat in _C.take_phase_clocks()}
    assert torch.equal(plain, clocked)
    if not any(" overlap " in line for line in lines):
        assert OVERLAP not in launches, "overlap clocks from a launch that is not the overlapped forward's"
        pytest.skip(f"no overlapped forward in this build for this GPU: {lines}")
    forward = next(line for line in lines if " overlap " in line)
    assert ("CTA pairs" in forward) == bool(pair), forward
    cluster = 2 if pair else 1
    # (pixel tile, or pair of them for the weights pairs, and output-channel part)
    items = (6 if pair == "weights" else 12) * int(re.search(r"cout split (\d+)", forward).group(1))
    summary = summarize(OVERLAP, *launches[OVERLAP])
    flat, slots = launches[OVERLAP]
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    assert summary["ctas"] == min(items, sms // cluster) * cluster, summary
    # every item counted once by each CTA that took it
    assert sum(flat[c * slots + COUNT] for c in range(summary["ctas"])) == items * cluster
    assert summary["share"]["depthwise"] > 0 and summary["share"]["gemm_stores"] > 0, summary
    for role in (("depthwise", "buffer_wait"), ("gemm_stores", "z_wait")):
        assert sum(summary["share"][p] for p in role) <= 1, summary  # within the CTAs' time


@pytest.mark.parametrize("tf32", [False, True], ids=["exact", "tf32"])
def test_intermediate_too_wide_for_shared_memory(tf32, monkeypatch):
    # 2000 fp32 channels x 32 pixels do not fit in one CTA's shared memory. Exact fp32 takes the
    # tiled kernel; TF32 on Hopper builds with the wgmma kernels takes the streamed kernel (Z in
    # chunks), elsewhere the tiled kernel.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", tf32)
    case = Case("wide_fp32", N=1, C=2000, H=5, W=6, Cout=40)
    inputs = make_inputs(case, torch.float32, "channels_last", device="cuda")
    y = separable_conv2d(*inputs, **case.conv_args)
    exact = separable_conv2d_reference(*[t.double() for t in inputs], **case.conv_args)
    assert_close_to_reference(y, separable_conv2d_reference(*inputs, **case.conv_args), exact)
    log = dispatch_log("float32", "channels_last", channels=2000, out_channels=40, tf32=tf32)
    # (128 channels: at 64 or fewer and 128 out the 16-bit forward takes the resident kernel anyway)
    hopper_kernels = " wgmma " in dispatch_log("bfloat16", "channels_last", channels=128, out_channels=256)
    expected = "streamed" if tf32 and hopper_kernels else "tiled"
    assert f"3x3 {expected}" in log, log


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_cuda_graph_capture_replays_like_eager(layout):
    # CUDA graphs (by hand, or torch.compile's mode="reduce-overhead") capture the op's forward and
    # backward: nothing in their launches may be illegal while a stream captures (a synchronising
    # call, a host read of device memory), and the replay computes what eager mode does, bit for bit
    # (the fused kernels are deterministic).
    case = Case("graph", N=2, C=64, H=19, W=19, Cout=136)
    inputs = make_inputs(case, torch.bfloat16, layout, device="cuda")
    grad_out = torch.randn(2, 136, 19, 19, dtype=torch.bfloat16, device="cuda")
    if layout == "channels_last":
        grad_out = grad_out.contiguous(memory_format=torch.channels_last)

    def step(leaves):
        y = separable_conv2d(*leaves, **case.conv_args)
        y.backward(grad_out)
        return y

    eager_leaves = [t.detach().requires_grad_() for t in inputs]
    eager_y = step(eager_leaves)

    leaves = [t.detach().requires_grad_() for t in inputs]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the capture, as PyTorch's CUDA-graph docs ask
        for _ in range(2):
            step(leaves)
            for t in leaves:
                t.grad = None
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        graph_y = step(leaves)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(graph_y, eager_y)
    for leaf, eager_leaf in zip(leaves, eager_leaves, strict=True):
        assert torch.equal(leaf.grad, eager_leaf.grad)


AUTOTUNE_CASES = [
    # (case, mode, layout): a 728-wide Xception layer (every Hopper forward applies), a partial
    # shape in NCHW (the CUDA-core kernels), and a 1024-wide TF32 layer (the streamed kernel's)
    (Case("xception_728", N=2, C=728, H=19, W=19, Cout=728), "bf16", "channels_last"),
    (Case("partial_3x3_mult2", N=3, C=37, H=13, W=11, Cout=131, multiplier=2), "fp16", "nchw"),
    (Case("tf32_1024", N=1, C=1024, H=10, W=10, Cout=136), "fp32-tf32", "channels_last"),
]


@pytest.mark.parametrize("case,mode,layout", AUTOTUNE_CASES, ids=lambda v: getattr(v, "id", v))
def test_autotuned_forward_matches_reference_and_keeps_its_choice(case, mode, layout):
    # XSEP_AUTOTUNE=1: the first call of a shape times every forward that could serve it and keeps
    # the fastest (the dispatch line says so); the result is the op's, and a second call of the same
    # shape reuses the choice (the same line: the kernel and the times measured once) and its bits.
    from xsep._kernel_knobs import kernel_knobs, recorded_dispatches
    from xsep.bench.roofline import math_mode, tf32_enabled

    dtype, tf32 = math_mode(mode)
    inputs = make_inputs(case, dtype, layout, device="cuda")
    with tf32_enabled(tf32), kernel_knobs({"XSEP_AUTOTUNE": "1"}), recorded_dispatches() as lines:
        y = separable_conv2d(*inputs, **case.conv_args)
        again = separable_conv2d(*inputs, **case.conv_args)
        unfused = separable_conv2d_reference(*inputs, **case.conv_args)
    exact = separable_conv2d_reference(*[t.double() for t in inputs], **case.conv_args)
    assert_close_to_reference(y, unfused, exact)
    assert torch.equal(y, again)
    # (the record keeps distinct lines: a second call that timed again, or chose another kernel,
    # would add a line of its own)
    forward = [line for line in lines if "separable_conv2d: forward" in line]
    assert len(forward) == 1 and "autotuned: fastest of" in forward[0], lines


def test_autotuner_stands_aside_for_a_forced_kernel_determinism_and_a_graph_capture():
    from xsep._kernel_knobs import kernel_knobs, recorded_dispatches

    case = Case("autotune_aside", N=2, C=64, H=17, W=17, Cout=136)
    inputs = make_inputs(case, torch.bfloat16, "channels_last", device="cuda")
    # a knob that picks a kernel: a measurement of that kernel, not of the autotuner's choice
    with kernel_knobs({"XSEP_AUTOTUNE": "1", "XSEP_FWD_KERNEL": "resident"}), recorded_dispatches() as lines:
        forced = separable_conv2d(*inputs, **case.conv_args)
    assert "autotuned" not in lines[0] and " resident " in lines[0], lines
    # deterministic algorithms asked for: the default, whatever another process's timing would pick
    was = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with kernel_knobs({"XSEP_AUTOTUNE": "1"}), recorded_dispatches() as lines:
            deterministic = separable_conv2d(*inputs, **case.conv_args)
    finally:
        torch.use_deterministic_algorithms(was[0], warn_only=was[1])
    assert lines and all("autotuned" not in line for line in lines), lines
    # a stream capturing a CUDA graph cannot time (it may not synchronise): the default serves a shape
    # not yet tuned, and the replay equals eager mode (the default warmed up outside the capture, as
    # PyTorch's CUDA-graph docs ask, with the autotuner off, so the shape stays untuned)
    eager = separable_conv2d(*inputs, **case.conv_args)
    with kernel_knobs({"XSEP_AUTOTUNE": "1"}), recorded_dispatches() as lines:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=side):
            captured = separable_conv2d(*inputs, **case.conv_args)
        graph.replay()
        torch.cuda.synchronize()
    assert lines and all("autotuned" not in line for line in lines), lines
    assert torch.equal(captured, eager)
    exact = separable_conv2d_reference(*[t.double() for t in inputs], **case.conv_args)
    unfused = separable_conv2d_reference(*inputs, **case.conv_args)
    assert_close_to_reference(forced, unfused, exact)
    assert_close_to_reference(captured, unfused, exact)
    assert torch.equal(deterministic, eager)
