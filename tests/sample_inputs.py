"""Shared inputs and tolerances for the op tests."""

from __future__ import annotations

import dataclasses

import torch

from xsep.reference import check_error, separable_conv2d_reference


@dataclasses.dataclass(frozen=True)
class Case:
    """One geometry of the op. `layout` is "nchw", "channels_last" or "strided" (a view)."""

    id: str
    N: int = 2
    C: int = 5
    H: int = 11
    W: int = 13
    Cout: int = 7
    kernel: tuple[int, int] = (3, 3)
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int] | str = 1
    dilation: int | tuple[int, int] = 1
    multiplier: int = 1

    @property
    def conv_args(self) -> dict:
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation}


# The grid: odd sizes, C not a multiple of 8, stride 2, dilation, every padding form, depth
# multiplier, batch 0, and sizes that span several CPU tiles (so both backward waves run).
CASES = [
    Case("k3_s1_p1"),
    Case("k3_s2_same_odd", H=11, W=9, stride=2, padding="same"),
    Case("k3_s2_same_even", H=12, W=10, stride=2, padding="same"),
    Case("k3_s3_same", H=10, W=11, stride=3, padding="same"),
    Case("k3_d2_same", dilation=2, padding="same"),
    Case("k5x3_s2x1_pad_tuple", kernel=(5, 3), stride=(2, 1), padding=(2, 0)),
    Case("k3_valid", padding="valid"),
    Case("k3_mult2", multiplier=2),
    Case("k3_mult3_s2_d2", C=3, multiplier=3, stride=2, dilation=2, padding=2),
    Case("k1", kernel=(1, 1), padding=0),
    Case("k7_p3", kernel=(7, 7), H=9, W=8, padding=3),
    Case("k2_same_even_kernel", kernel=(2, 2), padding="same"),
    Case("batch0", N=0),
    Case("C1", C=1, Cout=3),
    # Wide enough that the CPU kernels cut the rows into several L2-sized tiles (NHWC tiles span
    # images), so both backward waves and the cross-image tiles run.
    Case("multi_tile", N=3, C=128, H=23, W=64, Cout=16, multiplier=4),
    Case("multi_tile_s2_d2", N=2, C=96, H=41, W=70, Cout=10, stride=2, dilation=2, multiplier=6, padding="same"),
    # Small maps in a larger batch: NCHW tiles of several whole images (with two or more threads),
    # the last tile with fewer.
    Case("many_small_images", N=9, C=6, H=5, W=4, Cout=5),
    Case("many_images_s2_d2_mult", N=10, C=3, H=7, W=6, Cout=4, stride=2, dilation=2, multiplier=2, padding="same"),
    # Wide channels at multiplier 1 and maps wide enough for the CPU NHWC depthwise's blocks of 32
    # channels x 4 pixels beside its narrower blocks, its one-pixel edges and its leftover channels.
    Case("wide_channels", N=2, C=72, H=9, W=23, Cout=11),
    Case("wide_s2_d2", N=1, C=67, H=15, W=31, Cout=6, kernel=(3, 5), stride=2, dilation=(1, 2), padding="same"),
]
CASE_IDS = [c.id for c in CASES]
LAYOUTS = ["nchw", "channels_last", "strided"]


def make_inputs(
    case: Case,
    dtype: torch.dtype,
    layout: str = "nchw",
    bias: bool = True,
    device: str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(x, dw_weight, pw_weight, bias) for `case`, x in the requested layout."""
    mid = case.C * case.multiplier
    if layout == "strided":  # every other column of a wider tensor: not contiguous in any format
        x = torch.randn(case.N, case.C, case.H, 2 * case.W, dtype=dtype, device=device)[..., ::2]
    else:
        x = torch.randn(case.N, case.C, case.H, case.W, dtype=dtype, device=device)
        if layout == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
    dw = torch.randn(mid, 1, *case.kernel, dtype=dtype, device=device) / case.kernel[0]
    pw = torch.randn(case.Cout, mid, 1, 1, dtype=dtype, device=device) / mid**0.5
    b = torch.randn(case.Cout, dtype=dtype, device=device) if bias else None
    return x, dw, pw, b


def assert_close_to_reference(
    actual: torch.Tensor,
    unfused: torch.Tensor,
    exact: torch.Tensor,
    what: str = "output",
    magnitude: torch.Tensor | None = None,
) -> None:
    """actual, unfused: same dtype; exact: the fp64 reference (rule: xsep.reference.check_error,
    `magnitude` as there)."""
    assert actual.shape == exact.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(exact.shape)}"
    assert actual.dtype == unfused.dtype, f"{what}: dtype {actual.dtype} != {unfused.dtype}"
    c = check_error(actual, unfused, exact, magnitude)
    assert c.ok, f"{what}: max error {c.error:.3e} > bound {c.bound:.3e} (unfused op: {c.error_unfused:.3e})"


def reference_outputs_and_grads(inputs, conv_args, grad_out, dtype):
    """Runs the unfused reference on `inputs` cast to dtype; returns (y, [grads of each input])."""
    leaves = [t.detach().to(dtype).requires_grad_() if t is not None else None for t in inputs]
    y = separable_conv2d_reference(*leaves, **conv_args)
    y.backward(grad_out.to(dtype))
    return y.detach(), [t.grad if t is not None else None for t in leaves]


def inputs_past_2_pow_31(device: str = "cuda"):
    """(x, dw_weight, pw_weight) in bf16, 3x3, 64 -> 8 channels, with x of 2 x 64 x 4100 x 4100
    elements (> 2^31): the last image's last rows sit past 32-bit offsets."""
    n, c, h, w = 2, 64, 4100, 4100
    assert n * c * h * w > 2**31
    x = torch.randn(n, c, h, w, dtype=torch.bfloat16, device=device)
    dw = torch.randn(c, 1, 3, 3, dtype=torch.bfloat16, device=device) / 3
    pw = torch.randn(8, c, 1, 1, dtype=torch.bfloat16, device=device) / 8
    return x, dw, pw
