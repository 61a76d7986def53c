"""Representative calls of the CUDA op for compute-sanitizer (memcheck, racecheck): every dtype,
both memory formats, a strided view, partial tiles, 3x3 and a general kernel, forward and backward.

    compute-sanitizer --tool memcheck python tools/sanitizer_cases.py
"""

import torch

from xsep.ops import separable_conv2d


def main() -> None:
    torch.manual_seed(0)
    cases = [
        dict(N=2, C=37, H=13, W=11, Cout=131, k=3, M=2, stride=1, padding=1),
        dict(N=1, C=19, H=17, W=23, Cout=70, k=5, M=1, stride=2, padding="same"),
        dict(N=3, C=64, H=19, W=19, Cout=128, k=3, M=1, stride=1, padding=1),
    ]
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        for layout in ("nchw", "channels_last", "strided"):
            for c in cases:
                shape = (c["N"], c["C"], c["H"], 2 * c["W"] if layout == "strided" else c["W"])
                x = torch.randn(shape, device="cuda", dtype=dtype)
                x = x[..., ::2] if layout == "strided" else x
                if layout == "channels_last":
                    x = x.contiguous(memory_format=torch.channels_last)
                x.requires_grad_()
                dw = torch.randn(c["C"] * c["M"], 1, c["k"], c["k"], device="cuda", dtype=dtype, requires_grad=True)
                pw = torch.randn(c["Cout"], c["C"] * c["M"], 1, 1, device="cuda", dtype=dtype, requires_grad=True)
                b = torch.randn(c["Cout"], device="cuda", dtype=dtype, requires_grad=True)
                y = separable_conv2d(x, dw, pw, b, stride=c["stride"], padding=c["padding"])
                y.float().sum().backward()
    torch.cuda.synchronize()
    print("sanitizer cases: done")


if __name__ == "__main__":
    main()
