"""The pure parts of the GPU tools in tools/ (their GPU parts run on the device machine only)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from forward_phases import fit_line


def test_fit_line_recovers_intercept_and_slope():
    tiles = [1, 2, 3, 4, 5]
    assert fit_line(tiles, [7.5 + 2.25 * t for t in tiles]) == pytest.approx((7.5, 2.25))


def test_fit_line_is_least_squares():
    # Residuals of the least-squares line sum to zero and are orthogonal to x.
    xs, ys = [1, 2, 3, 4], [1.0, 3.5, 2.5, 6.0]
    a, b = fit_line(xs, ys)
    residuals = [y - (a + b * x) for x, y in zip(xs, ys, strict=True)]
    assert sum(residuals) == pytest.approx(0, abs=1e-12)
    assert sum(r * x for r, x in zip(residuals, xs, strict=True)) == pytest.approx(0, abs=1e-12)
