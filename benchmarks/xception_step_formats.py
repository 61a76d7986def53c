"""One Xception training step (forward, loss, backward; fp32) in each memory format, xsep's fused
op against PyTorch's two convolutions (backend="reference"), timed alternately on one device:

    python benchmarks/xception_step_formats.py --image-size 71 --batch 32 --steps 5

Prints the median and the fastest step of each (backend, format) and xsep's ratio to the reference
in each format. The same weights and batch for all four.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from xsep.models import xception

FORMATS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=71)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per (backend, format), after one warm-up")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    nets = {backend: xception(num_classes=10, backend=backend).to(device) for backend in ("xsep", "reference")}
    nets["reference"].load_state_dict(nets["xsep"].state_dict())
    images = torch.randn(args.batch, 3, args.image_size, args.image_size, device=device)
    labels = torch.randint(0, 10, (args.batch,), device=device)

    def step(net: torch.nn.Module, x: torch.Tensor) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), labels).backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    runs = [(backend, fmt) for fmt in FORMATS for backend in nets]
    samples: dict[tuple[str, str], list[float]] = {run: [] for run in runs}
    for repeat in range(args.steps + 1):
        for backend, fmt in runs:
            net = nets[backend].to(memory_format=FORMATS[fmt])
            seconds = step(net, images.contiguous(memory_format=FORMATS[fmt]))
            if repeat > 0:  # the first round warms up
                samples[(backend, fmt)].append(seconds)
    medians = {run: statistics.median(s) for run, s in samples.items()}
    for (backend, fmt), s in samples.items():
        print(f"{backend:9s} {fmt:13s} median {medians[(backend, fmt)]:.3f} s  fastest {min(s):.3f} s")
    for fmt in FORMATS:
        print(f"{fmt}: xsep / reference = {medians[('xsep', fmt)] / medians[('reference', fmt)]:.2f}")


if __name__ == "__main__":
    main()
