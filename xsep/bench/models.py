"""Network-level benchmarks: a whole Xception, and the stack of its 34 separable convolutions,
against the same network built from PyTorch's two convolutions.

    xception  inference and one training step (forward, cross-entropy, backward, SGD step) of
              xsep.models.xception(backend="xsep") vs backend="reference", AMP bf16 autocast,
              channels_last; eager and under torch.compile
    stack     the 34 separable convs alone (ReLU between, max-pooling where the map shrinks), as
              SeparableConv2d vs nn.Conv2d(groups=C) + nn.Conv2d(1x1) pairs: a training step's time
              and peak memory (the activation memory the fused op saves: Z is never stored)

Before timing, each row runs both networks with the same weights in float32 (TF32 off) and
checks xsep's output against the float64 network with the rule of the layer benchmarks
(xsep.reference.check_error); a row that fails is reported, not timed.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from xsep._timing import median_ms
from xsep.bench.roofline import tf32_enabled
from xsep.bench.run import peak_mib
from xsep.bench.shapes import XCEPTION
from xsep.models import xception
from xsep.nn import SeparableConv2d
from xsep.reference import check_error

SUITES = ("xception", "stack")
DIRECTIONS = ("inference", "train_step")


class SeparableStack(nn.Module):
    """Xception's 34 separable convs in order; `image_size` scales the map sizes (299 = the paper's)."""

    def __init__(self, fused: bool, image_size: int = 299) -> None:
        super().__init__()
        layers = [(s.C, s.Cout, s.H) for s in XCEPTION for _ in range(s.count)]
        self.sizes = [max(1, math.ceil(hw * image_size / 299)) for _, _, hw in layers]
        self.layers = nn.ModuleList()
        for cin, cout, _ in layers:
            depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
            pointwise = nn.Conv2d(cin, cout, 1, bias=False)
            # Variance-preserving through conv, conv, ReLU, so 34 layers neither vanish nor explode.
            nn.init.kaiming_normal_(depthwise.weight, nonlinearity="linear")
            nn.init.kaiming_normal_(pointwise.weight, nonlinearity="relu")
            pair = SeparableConv2d.from_convs(depthwise, pointwise) if fused else nn.Sequential(depthwise, pointwise)
            self.layers.append(pair)
        self.in_channels = layers[0][0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer, hw in zip(self.layers, self.sizes, strict=True):
            if x.shape[-1] != hw:
                x = F.adaptive_max_pool2d(x, hw)
            x = F.relu(layer(x))
        return x.mean((2, 3))

    def load_from(self, other: SeparableStack) -> None:
        """Copies the weights of `other` (fused or not) into this stack."""
        for mine, theirs in zip(self.layers, other.layers, strict=True):
            dw, pw = _weights(theirs)
            if isinstance(mine, SeparableConv2d):
                mine.depthwise_weight.data.copy_(dw)
                mine.pointwise_weight.data.copy_(pw)
            else:
                mine[0].weight.data.copy_(dw)
                mine[1].weight.data.copy_(pw)


def _weights(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(layer, SeparableConv2d):
        return layer.depthwise_weight, layer.pointwise_weight
    return layer[0].weight, layer[1].weight


def build_pair(suite: str, image_size: int, num_classes: int = 1000) -> tuple[nn.Module, nn.Module, tuple[int, ...]]:
    """(xsep network, baseline network with the same weights, input shape without the batch)."""
    torch.manual_seed(0)
    if suite == "xception":
        fused = xception(num_classes=num_classes, backend="xsep")
        baseline = xception(num_classes=num_classes, backend="reference")
        baseline.load_state_dict(fused.state_dict())
        return fused, baseline, (3, image_size, image_size)
    if suite == "stack":
        fused = SeparableStack(True, image_size)
        baseline = SeparableStack(False, image_size)
        baseline.load_from(fused)
        size = fused.sizes[0]
        return fused, baseline, (fused.in_channels, size, size)
    raise ValueError(f"unknown suite {suite!r}; choose from {', '.join(SUITES)}")


def check_network(suite: str, image_size: int, device: torch.device) -> dict:
    """xsep's network vs the float64 baseline network on 2 inputs, float32 with TF32 off."""
    fused, baseline, shape = build_pair(suite, image_size, num_classes=10)
    exact = copy.deepcopy(baseline).double()
    for net in (fused, baseline, exact):
        net.to(device).eval()
    x = torch.randn(2, *shape, device=device)
    with torch.no_grad(), tf32_enabled(False):
        got, unfused, want = fused(x), baseline(x), exact(x.double())
    c = check_error(got, unfused, want)
    status = "ok" if c.ok else "failed: output differs from the fp64 network"
    return {"max_error": c.error, "max_error_unfused": c.error_unfused, "status": status}


def _step_fn(net: nn.Module, direction: str, batches: list[tuple[torch.Tensor, torch.Tensor]], device, compiled: bool):
    """A zero-argument callable running one inference or training step on the next batch."""
    net.to(device, memory_format=torch.channels_last)
    amp = torch.autocast(device.type, dtype=torch.bfloat16)
    forward = torch.compile(net) if compiled else net
    turn = iter(range(10**12))
    if direction == "inference":
        net.eval()

        def run():
            x, _ = batches[next(turn) % len(batches)]
            with torch.no_grad(), amp:
                forward(x)

        return run
    net.train()
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-4)

    def run():
        x, target = batches[next(turn) % len(batches)]
        with amp:
            loss = F.cross_entropy(forward(x).float(), target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return run


def measure_network(
    suite: str,
    n: int,
    image_size: int,
    direction: str,
    compiled: bool,
    device: torch.device,
    reps: int,
    input_sets: int,
) -> dict:
    row = {"suite": suite, "N": n, "image_size": image_size, "direction": direction, "compiled": compiled}
    row |= {"precision": "amp-bf16", "memory_format": "channels_last"}
    row |= check_network(suite, image_size, device)
    if row["status"] != "ok":
        return row
    fused, baseline, shape = build_pair(suite, image_size)
    classes = 1000 if suite == "xception" else fused.layers[-1].pointwise_weight.shape[0]
    batches = [
        (
            torch.randn(n, *shape, device=device).contiguous(memory_format=torch.channels_last),
            torch.randint(0, classes, (n,), device=device),
        )
        for _ in range(input_sets)
    ]
    fns = [_step_fn(net, direction, batches, device, compiled) for net in (fused, baseline)]
    xsep_ms, base_ms = median_ms(fns, device, warmup=3 if compiled else 2, reps=reps)
    xsep_peak, base_peak = (peak_mib(fn, device) for fn in fns)
    row |= {
        "xsep_ms": xsep_ms,
        "baseline_ms": base_ms,
        "speedup": base_ms / xsep_ms,
        "xsep_images_per_s": n / (xsep_ms * 1e-3),
        "baseline_images_per_s": n / (base_ms * 1e-3),
        "xsep_peak_mib": xsep_peak,
        "baseline_peak_mib": base_peak,
        "memory_ratio": xsep_peak / base_peak if xsep_peak and base_peak else None,
    }
    return row


def markdown_table(rows: list[dict]) -> str:
    head = (
        "| network | N | size | step | graph | xsep ms | baseline ms | speed-up | xsep img/s | "
        "peak MiB xsep / baseline | max err |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        graph = "compiled" if r["compiled"] else "eager"
        start = f"| {r['suite']} | {r['N']} | {r['image_size']} | {r['direction']} | {graph} |"
        if r["status"] != "ok":
            lines.append(f"{start} {r['status']} ||||||")
            continue
        peak = (
            f"{r['xsep_peak_mib']:.0f} / {r['baseline_peak_mib']:.0f} ({r['memory_ratio']:.2f}x)"
            if r["memory_ratio"] is not None
            else "n/a (CPU)"
        )
        lines.append(
            f"{start} {r['xsep_ms']:.1f} | {r['baseline_ms']:.1f} | {r['speedup']:.2f}x | "
            f"{r['xsep_images_per_s']:.1f} | {peak} | {r['max_error']:.1e} |"
        )
    return head + "\n".join(lines) + "\n"
