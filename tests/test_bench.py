"""`xsep bench` smoke test on the CPU (nothing timed is asserted) and the csrc/ tree hash."""

import csv
import json
import shutil
import subprocess
import sys

import pytest

from xsep.bench.__main__ import main as bench_main
from xsep.bench.metadata import REPO, git_tree_hash

sys.path.insert(0, str(REPO / "benchmarks"))
from compare import compare
from compare import main as compare_main


def test_smoke_bench_writes_well_formed_files(tmp_path):
    args = ["--device", "cpu", "--shape", "2,8,9,9,16,3,1", "--directions", "forward,backward,forward_backward"]
    bench_main([*args, "--reps", "1", "--input-sets", "1", "--out", str(tmp_path), "--name", "smoke"])
    result = json.loads((tmp_path / "smoke.json").read_text())
    meta = result["metadata"]
    for key in ("device_name", "torch", "git_commit", "csrc_tree", "command", "bandwidth_gbs", "peak_tflops"):
        assert key in meta
    rows = result["rows"]
    assert [r["direction"] for r in rows] == ["forward", "backward", "forward_backward"]
    for row in rows:
        assert row["status"] == "ok"
        assert row["max_error"] <= 1e-4
        assert set(row["ms"]) == {"xsep_nchw", "xsep_channels_last", "pytorch_nchw", "pytorch_channels_last"}
        assert all(t > 0 for t in row["ms"].values())
        assert row["speedup"] == pytest.approx(row["baseline_ms"] / row["xsep_ms"])
    assert "| 8->16 @9 | 2 | fp32 | forward |" in (tmp_path / "smoke.md").read_text()
    with open(tmp_path / "smoke.csv") as f:
        assert [r["direction"] for r in csv.DictReader(f)] == ["forward", "backward", "forward_backward"]
    assert (tmp_path / "smoke.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The regression check flags a row that got slower, and only that one.
    slower = json.loads(json.dumps(result))
    slower["rows"][1]["xsep_ms"] *= 1.2
    (tmp_path / "slower.json").write_text(json.dumps(slower))
    assert compare_main([str(tmp_path / "smoke.json"), str(tmp_path / "smoke.json")]) == 0
    assert compare_main([str(tmp_path / "smoke.json"), str(tmp_path / "slower.json")]) == 1
    assert len(compare(result, slower, 0.05)) == 1


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs a git checkout")
def test_csrc_tree_hash_matches_git():
    status = subprocess.run(["git", "status", "--porcelain", "--", "csrc"], cwd=REPO, capture_output=True, text=True)
    if status.stdout.strip():
        pytest.skip("csrc/ has uncommitted changes")
    head = subprocess.run(["git", "rev-parse", "HEAD:csrc"], cwd=REPO, capture_output=True, text=True, check=True)
    assert git_tree_hash(REPO / "csrc") == head.stdout.strip()
