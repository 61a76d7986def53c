"""One layer's fused forward and backward, a few times, for Nsight Compute (run by the `profile`
stage of tools/gpu_run.sh):

    ncu --set full --nvtx --nvtx-include "profiled" -k regex:sepconv -o profile \\
        python3 tools/profile_case.py --shape 32,728,19,19,728,3,1 --dtype bfloat16

The first calls warm up; the last one runs inside the NVTX range "profiled", so Nsight Compute
profiles exactly one forward (the weight packing and the forward kernel) and one backward (every
kernel of it), of a channels_last input. The range is a start/end range, which covers every thread:
autograd runs the backward on a thread of its own, which a push/pop range (per thread, `profiled/`
in ncu's filter) misses.
"""

import argparse

import torch

from xsep.bench.shapes import parse_shape
from xsep.ops import separable_conv2d


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="32,728,19,19,728,3,1", help="N,C,H,W,Cout,k,stride")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--calls", type=int, default=4, help="forward+backward pairs")
    args = parser.parse_args()
    shape, n = parse_shape(args.shape)
    dtype = getattr(torch, args.dtype)
    x = torch.randn(n, shape.C, shape.H, shape.H, device="cuda", dtype=dtype)
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    dw = (torch.randn(shape.C, 1, shape.kernel, shape.kernel, device="cuda") / shape.kernel).to(dtype).requires_grad_()
    pw = (torch.randn(shape.Cout, shape.C, 1, 1, device="cuda") / shape.C**0.5).to(dtype).requires_grad_()
    for call in range(args.calls):
        last = call == args.calls - 1
        if last:
            torch.cuda.synchronize()
            profiled = torch.cuda.nvtx.range_start("profiled")
        y = separable_conv2d(x, dw, pw, None, shape.stride, shape.kernel // 2)
        y.backward(torch.ones_like(y))
        if last:
            torch.cuda.synchronize()
            torch.cuda.nvtx.range_end(profiled)
    torch.cuda.synchronize()
    print(f"profiled {args.calls} forward+backward calls of {shape.name} N={n} {args.dtype}")


if __name__ == "__main__":
    main()
