"""The pure parts of the GPU tools in tools/ (their GPU parts run on the device machine only)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from forward_clocks import SLOTS, summarize
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


def clock_record(sm, start_ns, ns, stamps, tiles):
    """A CTA's record as csrc/kernels/phase_clocks.h lays it out: stamps = the cycle counter at the
    start, after the table, after the depthwise phase, then (K loop, stores) per stamped tile, then
    the end."""
    r = [0] * SLOTS
    r[0:3] = [sm, start_ns, start_ns + ns]
    r[3], r[4], r[5] = stamps[0], stamps[1], stamps[2]
    r[6] = stamps[-1]
    r[7] = tiles
    for i, v in enumerate(stamps[3:-1]):
        r[8 + i] = v
    return r


def test_forward_clocks_splits_each_cta_into_its_phases():
    # Three CTAs, the first two on SM 4 at once, the third on SM 9 after them; 2 GHz (2 cycles a ns).
    a = clock_record(4, 1000, 500, [0, 100, 700, 800, 850, 950, 1000, 1000], tiles=2)
    b = clock_record(4, 1200, 500, [50, 150, 750, 850, 900, 1000, 1050, 1050], tiles=2)
    c = clock_record(9, 1700, 500, [0, 200, 600, 800, 900, 950, 1000, 1000], tiles=2)
    s = summarize(a + b + c)
    assert (s["ctas"], s["sms"], s["most_ctas_per_sm"]) == (3, 2, 2)
    assert s["span_us"] == pytest.approx(1.2)  # 1000 .. 2200 ns
    # a: table 100, depthwise 600, K loops 100 + 100, stores 50 + 50, rest 0 cycles of 1000
    assert s["median_us"]["depthwise"] == pytest.approx(0.3)  # 600, 600, 400 cycles at 2 GHz
    assert s["median_us"]["total"] == pytest.approx(0.5) and s["median_us"]["ghz"] == pytest.approx(2)
    assert s["share"]["gemm"] == pytest.approx((200 + 200 + 250) / 3000)
    assert sum(s["share"].values()) == pytest.approx(1)


def test_forward_clocks_counts_tiles_past_the_stamped_ones_as_rest():
    # 20 tiles, the first 16 stamped: the time from the 16th tile's stores to the end is "rest".
    stamps = [0, 10, 20] + [v for t in range(16) for v in (30 + 20 * t, 40 + 20 * t)] + [1000]
    s = summarize(clock_record(0, 0, 1000, stamps, tiles=20))
    assert s["tiles"] == 20
    assert s["share"]["rest"] == pytest.approx((1000 - 340) / 1000)
    assert s["share"]["gemm"] == pytest.approx(16 * 10 / 1000) and s["share"]["stores"] == pytest.approx(0.16)


def test_forward_clocks_reads_the_records_the_kernel_writes():
    # The slots' order and the stamped tiles as csrc/kernels/phase_clocks.h declares them.
    import re

    import forward_clocks as fc

    header = (Path(__file__).resolve().parent.parent / "csrc" / "kernels" / "phase_clocks.h").read_text()
    enum = re.search(r"enum PhaseClockSlot : int \{(.*?)\};", header, re.S).group(1)
    names = re.findall(r"^\s*(kClock\w+),", enum, re.M)
    python = ["SM", "START_NS", "END_NS", "START", "TABLE_DONE", "DEPTHWISE_DONE", "END", "TILES", "TILE_STAMPS"]
    expected = "Sm StartNs EndNs Start TableDone DepthwiseDone End Tiles TileStamps".split()
    assert [n.removeprefix("kClock") for n in names] == expected
    assert [getattr(fc, n) for n in python] == list(range(len(names)))
    assert f"kClockMaxTiles = {fc.MAX_TILES};" in header


def test_forward_clocks_refuses_records_it_cannot_read():
    with pytest.raises(ValueError, match="whole records"):
        summarize([1, 2, 3])
    with pytest.raises(ValueError, match="this reader knows"):
        summarize([0] * 48, slots=48)
