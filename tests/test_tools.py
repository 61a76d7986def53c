"""The pure parts of the GPU tools in tools/ (their GPU parts run on the device machine only)."""

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from forward_phases import fit_line
from phase_clocks import FORWARD, INPUT_GRADIENT, OVERLAP, SLOTS, describe, summarize
from phase_clocks import main as phase_clocks_main


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


def clock_record(sm, start_ns, ns, start, stamps, end, count=0):
    """A CTA's record as csrc/kernels/phase_clocks.h lays it out: the cycle counter at its start,
    at each stamp, at its end; `count` the kernel's (the forward's tiles)."""
    r = [0] * SLOTS
    r[0:6] = [sm, start_ns, start_ns + ns, start, end, count]
    r[6 : 6 + len(stamps)] = stamps
    return r


def test_phase_clocks_split_each_forward_cta_into_its_phases():
    # Three CTAs, the first two on SM 4 at once, the third on SM 9 after them; 2 GHz (2 cycles a ns).
    # Stamps: table, depthwise, then (K loop, stores) per tile.
    a = clock_record(4, 1000, 500, 0, [100, 700, 800, 850, 950, 1000], 1000, count=2)
    b = clock_record(4, 1200, 500, 50, [150, 750, 850, 900, 1000, 1050], 1050, count=2)
    c = clock_record(9, 1700, 500, 0, [200, 600, 800, 900, 950, 1000], 1000, count=2)
    s = summarize(FORWARD, a + b + c)
    assert (s["ctas"], s["sms"], s["most_ctas_per_sm"], s["count"]) == (3, 2, 2, 2)
    assert s["span_us"] == pytest.approx(1.2)  # 1000 .. 2200 ns
    # a: table 100, depthwise 600, K loops 100 + 100, stores 50 + 50, rest 0 cycles of 1000
    assert s["median_us"]["depthwise"] == pytest.approx(0.3)  # 600, 600, 400 cycles at 2 GHz
    assert s["median_us"]["total"] == pytest.approx(0.5) and s["median_us"]["ghz"] == pytest.approx(2)
    assert s["share"]["gemm"] == pytest.approx((200 + 200 + 250) / 3000)
    assert sum(s["share"].values()) == pytest.approx(1)


def test_phase_clocks_count_forward_tiles_past_the_stamped_ones_as_rest():
    # 20 tiles, the first 16 stamped: the time from the 16th tile's stores to the end is "rest".
    stamps = [10, 20] + [v for t in range(16) for v in (30 + 20 * t, 40 + 20 * t)]
    s = summarize(FORWARD, clock_record(0, 0, 1000, 0, stamps, 1000, count=20))
    assert s["count"] == 20
    assert s["share"]["rest"] == pytest.approx((1000 - 340) / 1000)
    assert s["share"]["gemm"] == pytest.approx(16 * 10 / 1000) and s["share"]["stores"] == pytest.approx(0.16)


def test_phase_clocks_split_the_input_gradient_kernel_in_its_order():
    r = clock_record(1, 0, 100, 1000, [1010, 1060, 1060, 1090, 1100], 1100)
    s = summarize(INPUT_GRADIENT, r)
    assert s["share"] == pytest.approx(
        {"tables": 0.1, "dz": 0.5, "activation": 0.0, "grad_x": 0.3, "grad_dw": 0.1, "rest": 0.0}
    )
    assert s["median_us"]["grad_x"] == pytest.approx(0.03)  # 30 cycles at 1 GHz


def test_phase_clocks_split_the_overlapped_forward_by_role():
    # Sums, not stamps: producers' depthwise 600 + buffer waits 100; the consumer's GEMM and stores
    # 500 + waits for Z 300, and 200 cycles outside its tiles; 3 pixel tiles; 1 GHz. Of the GEMM and
    # stores, 40 cycles waiting for the peer CTA's slot release (the pair build): not a phase of its
    # own, so the shares still sum to each role's time.
    s = summarize(OVERLAP, clock_record(2, 0, 1000, 5000, [600, 100, 500, 300, 40], 6000, count=3))
    assert s["count"] == 3
    assert s["share"] == pytest.approx(
        {"depthwise": 0.6, "buffer_wait": 0.1, "gemm_stores": 0.5, "z_wait": 0.3, "rest": 0.2}
    )
    assert s["median_us"]["z_wait"] == pytest.approx(0.3)
    assert s["median_us"]["peer_wait"] == pytest.approx(0.04)
    assert "waiting for the peer CTA's slot release 0.0" in describe("728", s)
    one_cta = summarize(OVERLAP, clock_record(2, 0, 1000, 5000, [600, 100, 500, 300, 0], 6000, count=3))
    assert "peer" not in describe("728", one_cta)


def test_phase_clocks_read_the_records_the_kernels_write():
    # The slots' and the stamps' order as csrc/kernels/phase_clocks.h declares them.
    import re

    import phase_clocks as pc

    header = (Path(__file__).resolve().parent.parent / "csrc" / "kernels" / "phase_clocks.h").read_text()

    def members(enum):
        body = re.search(rf"enum {enum} : int \{{(.*?)\}};", header, re.S).group(1)
        body = re.sub(r"//[^\n]*", "", body)  # the comments
        return re.findall(r"\b(k\w+)", body)

    expected = "kClockSm kClockStartNs kClockEndNs kClockStart kClockEnd kClockCount kClockStamps".split()
    assert members("PhaseClockSlot") == expected
    assert [pc.SM, pc.START_NS, pc.END_NS, pc.START, pc.END, pc.COUNT, pc.STAMPS] == list(range(7))
    assert f"kClockMaxStamps = {pc.MAX_STAMPS};" in header
    assert members("FwdClockStamp") == ["kFwdTableDone", "kFwdDepthwiseDone", "kFwdFirstTile"]
    assert pc.FWD_FIRST_TILE == 2
    bwd = members("BwdInputClockStamp")
    assert [n.removeprefix("kBwd").removesuffix("Done") for n in bwd] == [
        "Tables",
        "Dz",
        "Activation",
        "GradX",
        "GradDw",
    ]
    assert len(pc.PHASES[INPUT_GRADIENT]) == len(bwd) + 1  # and "rest"
    sums = members("OverlapClockSum")
    assert [n.removeprefix("kOverlap") for n in sums] == ["Depthwise", "BufferWait", "GemmStores", "ZWait", "PeerWait"]
    assert len(pc.PHASES[OVERLAP]) == len(sums)  # the phases and "rest"; the peer wait is inside one
    # The launchers' kernel names (csrc/kernels/*launch.cuh) are the ones the reader knows.
    kernels = Path(__file__).resolve().parent.parent / "csrc" / "kernels"
    assert f'"{FORWARD}"' in (kernels / "sepconv_fwd_wgmma_launch.cuh").read_text()
    assert f'"{OVERLAP}"' in (kernels / "sepconv_fwd_overlap_launch.cuh").read_text()
    assert f'"{INPUT_GRADIENT}"' in (kernels / "sepconv_bwd_launch.cuh").read_text()


def test_phase_clocks_refuse_records_they_cannot_read():
    with pytest.raises(ValueError, match="whole records"):
        summarize(FORWARD, [1, 2, 3])
    with pytest.raises(ValueError, match="this reader knows"):
        summarize(FORWARD, [0] * 48, slots=48)
    with pytest.raises(ValueError, match="no phases known for kernel 'halo'"):
        summarize("halo", [0] * SLOTS)


def test_phase_clocks_tool_runs_its_steps_where_no_kernel_is_instrumented(tmp_path, capsys):
    # On the CPU the same forward and backward steps run, under each variant's knobs and the clocks'
    # knob, and nothing is read: each layer says so, and the JSON holds no rows.
    out = tmp_path / "clocks.json"
    args = ["--device", "cpu", "--shape", "2,8,5,5,16", "--dtype", "float32,bfloat16", "--json", str(out)]
    phase_clocks_main([*args, "--variants", "default,wgmma-prefetch"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all("no instrumented kernel ran" in line for line in lines), lines
    assert "8->16 @5 N=2 bfloat16 [wgmma-prefetch]" in lines[-1]
    assert json.loads(out.read_text()) == {"device": "cpu", "torch": torch.__version__, "rows": []}
