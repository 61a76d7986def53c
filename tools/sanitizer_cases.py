"""Representative calls of the CUDA op for compute-sanitizer (memcheck, racecheck, initcheck): every
dtype, both memory formats, a strided view, partial tiles, 3x3 and general kernels, stride,
dilation, depth multiplier, intermediate activations, forward and backward with every gradient
and with partial output masks, exact fp32 (TF32 off), a map of many tiles (two-pass reduction).
Every gradient is read after the call (summed), so initcheck also catches an element a kernel
forgot to write.

    compute-sanitizer --tool memcheck python tools/sanitizer_cases.py
    PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool initcheck python tools/sanitizer_cases.py
"""

import torch

from xsep.ops import separable_conv2d

CASES = [
    dict(N=2, C=37, H=13, W=11, Cout=131, k=3, M=2, stride=1, padding=1, dilation=1),
    dict(N=1, C=19, H=17, W=23, Cout=70, k=5, M=1, stride=2, padding="same", dilation=1),
    dict(N=3, C=64, H=19, W=19, Cout=128, k=3, M=1, stride=1, padding=1, dilation=1),
    dict(N=2, C=10, H=21, W=18, Cout=9, k=3, M=3, stride=1, padding="same", dilation=2, act="elu"),
    dict(N=2, C=33, H=15, W=15, Cout=70, k=3, M=1, stride=1, padding=1, dilation=1, act="relu"),
    dict(N=4, C=8, H=74, W=74, Cout=16, k=3, M=1, stride=1, padding=1, dilation=1),  # > 64 grad_dw partials
    # Wide intermediates (the wgmma forward's 128- and 64-pixel CTAs, split output channels).
    dict(N=1, C=728, H=10, W=10, Cout=728, k=3, M=1, stride=1, padding=1, dilation=1),
    dict(N=1, C=1024, H=6, W=6, Cout=136, k=3, M=1, stride=1, padding=1, dilation=1),
]
MASKS = [(True, True, True, True), (True, False, False, False), (False, True, True, False), (False, False, False, True)]


def run(c: dict, dtype: torch.dtype, layout: str, mask: tuple[bool, ...]) -> None:
    shape = (c["N"], c["C"], c["H"], 2 * c["W"] if layout == "strided" else c["W"])
    x = torch.randn(shape, device="cuda", dtype=dtype)
    x = x[..., ::2] if layout == "strided" else x
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    dw = torch.randn(c["C"] * c["M"], 1, c["k"], c["k"], device="cuda", dtype=dtype)
    pw = torch.randn(c["Cout"], c["C"] * c["M"], 1, 1, device="cuda", dtype=dtype)
    b = torch.randn(c["Cout"], device="cuda", dtype=dtype)
    leaves = [t.requires_grad_(m) for t, m in zip((x, dw, pw, b), mask, strict=True)]
    y = separable_conv2d(
        *leaves,
        stride=c["stride"],
        padding=c["padding"],
        dilation=c["dilation"],
        intermediate_activation=c.get("act", "none"),
    )
    # A random grad_y in y's layout (as a next layer's backward gives), so the kernels that need a
    # channels_last grad_y (the staged input-gradient kernel) run too.
    y.backward(torch.randn_like(y))
    for t in leaves:
        if t.grad is not None:
            t.grad.float().sum().item()


def main() -> None:
    torch.manual_seed(0)
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        for layout in ("nchw", "channels_last", "strided"):
            for c in CASES:
                run(c, dtype, layout, MASKS[0])
    for mask in MASKS[1:]:
        run(CASES[0], torch.bfloat16, "channels_last", mask)
    torch.backends.cudnn.allow_tf32 = False  # exact fp32: the FFMA kernels
    for layout in ("nchw", "channels_last"):
        for c in CASES[:2]:
            run(c, torch.float32, layout, MASKS[0])
    torch.cuda.synchronize()
    print("sanitizer cases: done")


if __name__ == "__main__":
    main()
