"""The kernel-choice knobs set from Python (xsep._kernel_knobs), the record of which kernels ran,
and `xsep bench --variants`, which uses both. On the CPU the knobs choose nothing (they steer the
CUDA launchers), but storing, restoring and recording are the same code."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import xsep.bench.__main__ as bench_module
from xsep._kernel_knobs import KNOBS, current, kernel_knobs, recorded_dispatches, snapshot
from xsep.bench import run
from xsep.bench.__main__ import main as bench_main
from xsep.bench.variants import NAMED, affects, parse_variant
from xsep.ops import separable_conv2d


def test_knobs_set_for_a_block_and_restored_after():
    before = snapshot()
    with kernel_knobs({"XSEP_FWD_KERNEL": "wgmma", "XSEP_FWD_PIXELS": "64"}):
        assert current()["XSEP_FWD_KERNEL"] == "wgmma" and current()["XSEP_FWD_PIXELS"] == "64"
        with kernel_knobs({"XSEP_FWD_PIXELS": "128"}):
            assert current()["XSEP_FWD_PIXELS"] == "128" and current()["XSEP_FWD_KERNEL"] == "wgmma"
        assert current()["XSEP_FWD_PIXELS"] == "64"
    assert snapshot() == before
    with pytest.raises(RuntimeError), kernel_knobs({"XSEP_BWD_KERNEL": "staged"}):
        raise RuntimeError("the block failed")
    assert snapshot() == before


def test_unknown_knobs_and_values_are_refused_by_name():
    with pytest.raises(ValueError, match="unknown kernel knob 'XSEP_FAST'"):
        with kernel_knobs({"XSEP_FAST": "1"}):
            pass
    with pytest.raises(ValueError, match=r"XSEP_FWD_STAGES='1': the values are 2, 3"):
        with kernel_knobs({"XSEP_FWD_STAGES": "1"}):
            pass


def test_knobs_start_from_the_environment():
    code = "from xsep._kernel_knobs import current; print(current())"
    env = {name: value for name, value in os.environ.items() if name not in KNOBS}
    env.update(XSEP_FWD_KERNEL="halo", XSEP_BWD_KERNEL="staged")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == str({"XSEP_FWD_KERNEL": "halo", "XSEP_BWD_KERNEL": "staged"})


def test_the_python_side_knows_every_knob_of_the_kernels():
    # The C++ side's names (kernel_knobs.h) against the values the Python side validates.
    header = (Path(__file__).resolve().parent.parent / "csrc" / "kernels" / "kernel_knobs.h").read_text()
    assert set(re.findall(r'return "(XSEP_[A-Z_]+)";', header)) == set(KNOBS)
    assert set(snapshot()) == set(KNOBS)  # and the built extension answers for each


def test_recorded_dispatches_name_the_paths_of_the_calls_in_the_block():
    x = torch.randn(2, 8, 9, 9, requires_grad=True)
    dw, pw = torch.randn(8, 1, 3, 3), torch.randn(4, 8, 1, 1)
    separable_conv2d(x, dw, pw, padding=1)  # outside the block: not recorded
    with recorded_dispatches() as lines:
        separable_conv2d(x, dw, pw, padding=1).sum().backward()
        separable_conv2d(x, dw, pw, padding=1)  # the same path again: one line
        separable_conv2d(x, torch.randn(8, 2, 3, 3), pw, padding=1)  # 4 segments: the unfused path (Python)
    # (The tile counts depend on the threads: the patterns leave them open.)
    patterns = [
        r"separable_conv2d: forward cpu float32 nchw \(\d+ tiles of .*\)",
        r"separable_conv2d_backward: backward cpu float32 nchw \(\d+ tiles of \d+ rows\)",
        r"separable_conv2d: 4 segments: PyTorch's convolutions \(unfused\)",
    ]
    assert len(lines) == len(patterns), lines
    assert all(re.fullmatch(p, line) for p, line in zip(patterns, lines, strict=True)), lines
    with recorded_dispatches() as again:
        pass
    assert again == []


def test_variant_specs():
    assert parse_variant("wgmma-64px") == ("wgmma-64px", NAMED["wgmma-64px"])
    spec = "XSEP_FWD_KERNEL=wgmma+XSEP_FWD_STAGES=6"
    assert parse_variant(spec) == (spec, {"XSEP_FWD_KERNEL": "wgmma", "XSEP_FWD_STAGES": "6"})
    with pytest.raises(ValueError, match="unknown variant 'fastest'"):
        parse_variant("fastest")
    with pytest.raises(ValueError, match="XSEP_FWD_PIXELS='96'"):
        parse_variant("XSEP_FWD_PIXELS=96")
    with pytest.raises(ValueError, match="XSEP_PHASE_CLOCKS is not a kernel variant"):
        parse_variant("XSEP_FWD_KERNEL=wgmma+XSEP_PHASE_CLOCKS=1")
    assert affects(NAMED["wgmma"], "forward") and not affects(NAMED["wgmma"], "backward")
    assert affects(NAMED["bwd-staged"], "backward") and not affects(NAMED["bwd-staged"], "forward")
    assert affects(NAMED["bwd-staged"], "forward_backward") and affects(NAMED["wgmma"], "forward_backward")
    assert affects(NAMED["autotuned"], "forward") and affects(NAMED["autotuned"], "backward")
    for knobs in NAMED.values():  # every named variant is valid
        assert parse_variant("+".join(f"{k}={v}" for k, v in knobs.items()))[1] == knobs


def test_bench_times_variants_beside_the_default(tmp_path):
    before = snapshot()
    args = ["--device", "cpu", "--shape", "2,8,9,9,16,3,1", "--directions", "forward,backward", "--reps", "1"]
    args += ["--input-sets", "1", "--out", str(tmp_path), "--name", "v", "--variants", "wgmma,bwd-staged,tiled"]
    bench_main(args)
    assert snapshot() == before  # the run's own knobs are back
    result = json.loads((tmp_path / "v.json").read_text())
    forward, backward = result["rows"]
    assert list(forward["variants"]) == ["wgmma", "tiled"] and list(backward["variants"]) == ["bwd-staged"]
    for row in (forward, backward):
        for name, v in row["variants"].items():
            assert v["status"] == "ok" and v["max_error"] <= 1e-4
            assert v["ms"] == row["ms"][f"xsep[{name}]_channels_last"] > 0
            assert v["speedup"] == pytest.approx(row["baseline_ms"] / v["ms"])
            assert row["kernels"][f"xsep[{name}]_channels_last"]  # the dispatch lines of its calls
        assert "xsep[wgmma]_nchw" not in row["ms"]  # variants: channels_last only
    [line] = forward["kernels"]["xsep_channels_last"]
    assert re.fullmatch(r"separable_conv2d: forward cpu float32 channels_last \(\d+ tiles of \d+ batch rows\)", line)
    assert result["metadata"]["variants"]["tiled"] == {"XSEP_FWD_KERNEL": "tiled"}
    assert "fp32 forward N=2 [wgmma]" in result["geomean_speedup"]
    md = (tmp_path / "v.md").read_text()
    assert "kernel variants (vs the baseline)" in md and "| wgmma " in md.replace("| wgmma (", "")


def test_bench_lists_what_the_autotuner_chose(tmp_path):
    # On the CPU nothing is tuned (the knob steers the CUDA kernels), but the rows of variant
    # `autotuned` still list the kernels that served them, as the GPU run's table of choices.
    args = ["--device", "cpu", "--shape", "2,8,9,9,16,3,1", "--directions", "forward,backward", "--reps", "1"]
    bench_main([*args, "--input-sets", "1", "--out", str(tmp_path), "--name", "a", "--variants", "autotuned"])
    md = (tmp_path / "a.md").read_text()
    table = md[md.index("Kernels the autotuner chose") :].splitlines()
    rows = [line for line in table if line.startswith("| 8->16 @9 ")]
    assert len(rows) == 2 and "| forward | forward cpu float32 channels_last" in rows[0], table
    assert "| backward |" in rows[1] and "backward cpu" in rows[1], table


def test_bench_refuses_an_unknown_variant(capsys):
    with pytest.raises(SystemExit):
        bench_main(["--device", "cpu", "--variants", "warp-speed"])
    assert "--variants: unknown variant 'warp-speed'" in capsys.readouterr().err


def test_a_variant_that_raises_is_a_failed_variant_and_the_run_goes_on(tmp_path, monkeypatch):
    # As a CUDA kernel that faults would: the variant's check raises under its knobs.
    real_check = run.check_correct

    def check(*args, **kwargs):
        if current().get("XSEP_FWD_KERNEL") == "halo":
            raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore text")
        return real_check(*args, **kwargs)

    monkeypatch.setattr(run, "check_correct", check)
    args = ["--device", "cpu", "--shape", "2,8,9,9,16,3,1", "--shape", "1,8,5,5,8,3,2", "--reps", "1"]
    args += ["--input-sets", "1", "--out", str(tmp_path), "--name", "f", "--variants", "halo,tiled"]
    with pytest.raises(SystemExit) as exit_info:
        bench_main(args)
    assert exit_info.value.code == 1  # a failed variant fails the run, after every row is measured
    rows = json.loads((tmp_path / "f.json").read_text())["rows"]
    assert len(rows) == 2
    for row in rows:
        assert row["status"] == "ok"
        halo, tiled = row["variants"]["halo"], row["variants"]["tiled"]
        assert halo["status"] == "failed: RuntimeError: CUDA error: an illegal memory access was encountered"
        assert "ms" not in halo and "xsep[halo]_channels_last" not in row["ms"]
        assert tiled["status"] == "ok" and tiled["ms"] > 0
    assert "halo FAILED" in (tmp_path / "f.md").read_text()


def test_a_row_that_raises_is_a_failed_row_and_the_run_goes_on(tmp_path, monkeypatch):
    real_measure = bench_module.measure_row

    def measure(shape, *args, **kwargs):
        if shape.C == 8 and shape.H == 5:
            raise RuntimeError("CUDA error: unspecified launch failure")
        return real_measure(shape, *args, **kwargs)

    monkeypatch.setattr(bench_module, "measure_row", measure)
    args = ["--device", "cpu", "--shape", "1,8,5,5,8,3,2", "--shape", "2,8,9,9,16,3,1", "--reps", "1"]
    with pytest.raises(SystemExit):
        bench_main([*args, "--input-sets", "1", "--out", str(tmp_path), "--name", "r"])
    failed, ok = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert failed["status"] == "failed: RuntimeError: CUDA error: unspecified launch failure"
    assert ok["status"] == "ok"


def test_autotuner_candidates_are_valid_knobs_and_the_forwards_are_bench_variants():
    # The autotuner's candidate knob sets (csrc/cuda/autotune.cpp, built only with CUDA), read from
    # its source: every value one its knob takes (xsep._kernel_knobs.KNOBS), and every forward set a
    # named bench variant, so `xsep bench --variants` can time by name each kernel the autotuner picks.
    repo = Path(__file__).resolve().parent.parent
    knobs_h = (repo / "csrc" / "kernels" / "kernel_knobs.h").read_text()
    env_name = dict(re.findall(r"case KernelKnob::(k\w+):\s*return \"(XSEP_\w+)\"", knobs_h))
    source = (repo / "csrc" / "cuda" / "autotune.cpp").read_text()

    def body_of(function):
        body = source[source.index(f"std::vector<KnobSet> {function}()") :]
        return body[: body.index("\n}\n")]

    forward = [
        {env_name[k]: v for k, v in re.findall(r"\{K::(k\w+), \"(\w*)\"\}", line)}
        for line in body_of("forward_sets").splitlines()
        if line.strip().startswith("{")
    ]
    assert forward[0] == {} and len(forward) >= 10, forward
    for knobs in forward[1:]:
        assert knobs in NAMED.values(), f"autotuner candidate {knobs}: no named variant in xsep/bench/variants.py"
    # The backward's sets are loops over lists of values, one list per knob.
    backward = body_of("backward_sets")
    for variable, knob in [
        ("channels", "XSEP_BWD_CHANNELS"),
        ("pixels", "XSEP_BWD_PW_PIXELS"),
        ("kernel", "XSEP_BWD_KERNEL"),
    ]:
        values = re.findall(r"\"(\w*)\"", re.search(rf"const char\* {variable} : \{{([^}}]*)\}}", backward)[1])
        assert values and set(values) - {""} <= set(KNOBS[knob]), (knob, values)
        assert knob in [env_name[k] for k in re.findall(rf"\{{K::(k\w+), {variable}\}}", backward)], knob
