"""Per-kernel GPU time of one layer's fused forward and backward (torch.profiler, no replay), to
see which kernel of a direction takes its time before profiling it in Nsight Compute:

    python3 tools/kernel_times.py --shape 32,128,147,147,128,3,1 --shape 32,728,19,19,728,3,1

Each shape runs `--calls` forward+backward pairs of a channels_last input after a warm-up; the
table gives each kernel's launches per call and mean time per launch (the leaves' gradient
accumulation shows as PyTorch's add kernels). The inputs are the benchmark's (layer_inputs).
"""

import argparse
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from xsep.bench.run import layer_inputs
from xsep.bench.shapes import parse_shape
from xsep.ops import separable_conv2d


def kernel_times(spec: str, dtype: torch.dtype, calls: int) -> None:
    shape, n = parse_shape(spec)
    inputs, grads = layer_inputs(shape, n, dtype, torch.channels_last, torch.device("cuda"), True, input_sets=1)
    (x, dw, pw), grad_y = inputs[0], grads[0]

    def step() -> None:
        separable_conv2d(x, dw, pw, None, shape.stride, shape.kernel // 2).backward(grad_y)

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            step()
        torch.cuda.synchronize()
    totals: dict[str, list[float]] = defaultdict(list)
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            totals[event.name].append(event.time_range.elapsed_us())
    print(f"\n{shape.name} N={n} {dtype}: {calls} forward+backward calls")
    print(f"  {'us/launch':>10} {'launches/call':>13} {'us/call':>9}  kernel")
    rows = sorted(totals.items(), key=lambda item: -sum(item[1]))
    for name, times in rows:
        per_call = sum(times) / calls
        print(f"  {sum(times) / len(times):10.1f} {len(times) / calls:13.1f} {per_call:9.1f}  {name[:150]}")
    print(f"  total {sum(sum(t) for t in totals.values()) / calls:.1f} us per call")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", action="append", help="N,C,H,W,Cout,k,stride (repeatable)")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--calls", type=int, default=5, help="forward+backward pairs profiled per shape")
    args = parser.parse_args()
    for spec in args.shape or ["32,728,19,19,728,3,1"]:
        kernel_times(spec, getattr(torch, args.dtype), args.calls)


if __name__ == "__main__":
    main()
