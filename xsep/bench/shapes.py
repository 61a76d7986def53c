"""The layer shapes the benchmarks run: Xception's 34 separable convolutions (all 3x3, stride 1,
padding 1), and the foundation issue's two CPU shapes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LayerShape:
    """One separable conv: x (N, C, H, W) -> (N, Cout, H/stride, W/stride); `count` = how often
    the network has it."""

    C: int
    H: int
    Cout: int
    kernel: int = 3
    stride: int = 1
    count: int = 1

    @property
    def name(self) -> str:
        s = f"{self.C}->{self.Cout} @{self.H}"
        if self.kernel != 3 or self.stride != 1:
            s += f" k{self.kernel} s{self.stride}"
        return s


XCEPTION = [
    LayerShape(64, 147, 128),
    LayerShape(128, 147, 128),
    LayerShape(128, 74, 256),
    LayerShape(256, 74, 256),
    LayerShape(256, 37, 728),
    LayerShape(728, 37, 728),
    LayerShape(728, 19, 728, count=25),
    LayerShape(728, 19, 1024),
    LayerShape(1024, 10, 1536),
    LayerShape(1536, 10, 2048),
]
assert sum(s.count for s in XCEPTION) == 34

# The foundation issue's CPU comparison: (shape, batch).
FOUNDATION_CPU = [(LayerShape(728, 19, 728), 8), (LayerShape(64, 147, 128), 4)]


def parse_shape(text: str) -> tuple[LayerShape, int]:
    """`N,C,H,W,Cout,k,stride` (H == W) -> (shape, N)."""
    try:
        n, c, h, w, cout, k, stride = (int(v) for v in text.split(","))
    except ValueError as error:
        raise ValueError(f"--shape must be N,C,H,W,Cout,k,stride (7 integers); got {text!r}") from error
    if h != w:
        raise ValueError(f"--shape: only square inputs (H == W) are supported; got H={h}, W={w}")
    return LayerShape(c, h, cout, k, stride), n
