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


def run_hotspots(tmp_path, text, *args):
    import subprocess

    path = tmp_path / "source.csv"
    path.write_text(text)
    tool = Path(__file__).resolve().parent.parent / "tools" / "ncu_hotspots.py"
    return subprocess.run([sys.executable, str(tool), str(path), *args], capture_output=True, text=True)


def test_ncu_hotspots_ranks_each_kernels_instructions_by_stall_samples(tmp_path):
    csv = (
        '"Kernel Name","sepconv_fwd_wgmma_kernel"\n'
        '"Address","Source","Warp Stall Sampling (All Samples)","Warp Stall Sampling (Not-issued Samples)"\n'
        '"0x10","LDG.E.128 R4, [R2.64]","120","100"\n'
        '"0x20","FFMA R1, R2, R3, R1","30","10"\n'
        '"0x30","SYNCS.PHASECHK.TRANS64.TRYWAIT P0, [UR10], R8","1,400","390"\n'
        '"Kernel Name","sepconv_bwd_pw_kernel"\n'
        '"Address","Source","Warp Stall Sampling (All Samples)","Warp Stall Sampling (Not-issued Samples)"\n'
        '"0x40","HMMA.16816.F32.BF16 R8, R4, R2, R8","50","5"\n'
    )
    result = run_hotspots(tmp_path, csv, "--top", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    fwd = lines.index(next(line for line in lines if line.startswith("sepconv_fwd_wgmma_kernel")))
    assert "3 SASS lines, 1550 stall samples" in lines[fwd]
    assert "TRYWAIT" in lines[fwd + 1] and "90.3%" in lines[fwd + 1]  # 1400 / 1550, thousands separator read
    assert "LDG" in lines[fwd + 2] and len([line for line in lines[fwd + 1 : fwd + 4] if "%" in line]) == 2
    assert any(line.startswith("sepconv_bwd_pw_kernel") for line in lines)


def test_ncu_hotspots_shows_an_unknown_layout_instead_of_guessing(tmp_path):
    result = run_hotspots(tmp_path, '"Address","Instruction","Cycles"\n"0x10","FFMA","3"\n')
    assert result.returncode == 1
    assert "no stall-sampling column" in result.stdout and '"Address"' not in result.stdout
    assert "Address,Instruction,Cycles" in result.stdout
