"""`xsep bench` smoke test on the CPU (nothing timed is asserted) and the csrc/ tree hash."""

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from xsep._kernel_knobs import kernel_knobs
from xsep.bench import run
from xsep.bench.__main__ import main as bench_main
from xsep.bench.metadata import REPO, git_tree_hash
from xsep.bench.shapes import parse_shape
from xsep.ops import separable_conv2d

sys.path.insert(0, str(REPO / "benchmarks"))
from compare import compare
from compare import main as compare_main


def test_smoke_bench_writes_well_formed_files(tmp_path):
    args = ["--device", "cpu", "--shape", "2,8,9,9,16,3,1", "--directions", "forward,backward,forward_backward"]
    # The knobs in force (from the environment, or set as here) are recorded as the run's kernel choice.
    with kernel_knobs({"XSEP_FWD_PIXELS": "64", "XSEP_BWD_KERNEL": ""}):
        bench_main([*args, "--reps", "1", "--input-sets", "1", "--out", str(tmp_path), "--name", "smoke"])
    result = json.loads((tmp_path / "smoke.json").read_text())
    meta = result["metadata"]
    for key in ("device_name", "torch", "git_commit", "csrc_tree", "command", "bandwidth_gbs", "peak_tflops", "timing"):
        assert key in meta
    assert meta["kernel_choice"].get("XSEP_FWD_PIXELS") == "64" and "XSEP_BWD_KERNEL" not in meta["kernel_choice"]
    assert "Kernel variants forced: `XSEP_FWD_PIXELS=64`" in (tmp_path / "smoke.md").read_text()
    rows = result["rows"]
    assert [r["direction"] for r in rows] == ["forward", "backward", "forward_backward"]
    for row in rows:
        assert row["status"] == "ok"
        assert row["max_error"] <= 1e-4
        impls = ("xsep", "pytorch", "reference")
        assert set(row["ms"]) == {f"{i}_{f}" for i in impls for f in ("nchw", "channels_last")}
        assert all(t > 0 for t in row["ms"].values())
        assert row["speedup"] == pytest.approx(row["baseline_ms"] / row["xsep_ms"])
        assert row["speedup_vs"]["pytorch"] == pytest.approx(row["speedup"])
        best_reference = min(row["ms"]["reference_nchw"], row["ms"]["reference_channels_last"])
        assert row["speedup_vs"]["reference"] == pytest.approx(best_reference / row["xsep_ms"])
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


def test_smoke_network_bench(tmp_path):
    # The 34-layer stack's training step, Xception's inference and training step, at 71x71.
    args = ["--device", "cpu", "--suite", "stack,xception", "--image-size", "71", "--batch", "1"]
    bench_main([*args, "--reps", "1", "--input-sets", "1", "--out", str(tmp_path), "--name", "nets"])
    result = json.loads((tmp_path / "nets.json").read_text())
    assert result["rows"] == []
    rows = result["network_rows"]
    steps = [(r["suite"], r["direction"], r["compiled"]) for r in rows]
    want = [("stack", "train_step", False), ("xception", "inference", False), ("xception", "train_step", False)]
    assert steps == want
    for row in rows:
        assert row["status"] == "ok" and row["max_error"] <= 2 * row["max_error_unfused"] + 1e-5
        assert row["xsep_ms"] > 0 and row["baseline_ms"] > 0
        assert row["xsep_images_per_s"] == pytest.approx(1 / (row["xsep_ms"] * 1e-3))
    assert "| stack | 1 | 71 | train_step | eager |" in (tmp_path / "nets.md").read_text()
    with open(tmp_path / "nets-networks.csv") as f:
        assert [r["suite"] for r in csv.DictReader(f)] == ["stack", "xception", "xception"]


def test_pytest_benchmark_smoke(tmp_path):
    # benchmarks/test_layers.py through pytest-benchmark on one tiny CPU shape: the cases run, pass
    # their correctness check and land in a well-formed JSON (no time is asserted).
    pytest.importorskip("pytest_benchmark")
    out = tmp_path / "pb.json"
    command = [sys.executable, "-m", "pytest", str(REPO / "benchmarks"), "--benchmark-only", "-q", "-p"]
    command += ["no:cacheprovider", f"--benchmark-json={out}"]
    env = dict(os.environ, XSEP_BENCH_SMOKE="1")
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    benchmarks = json.loads(out.read_text())["benchmarks"]
    names = {b["name"] for b in benchmarks}
    for impl in ("xsep", "pytorch"):
        assert f"test_layer[8->16@9-N2-fp32-forward-{impl}-channels_last]" in names
    assert len(benchmarks) == 8
    for b in benchmarks:
        assert b["group"].startswith("8->16 @9 N=2 fp32") and b["stats"]["rounds"] == 1 and b["stats"]["min"] > 0


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs a git checkout")
def test_csrc_tree_hash_matches_git():
    status = subprocess.run(["git", "status", "--porcelain", "--", "csrc"], cwd=REPO, capture_output=True, text=True)
    if status.stdout.strip():
        pytest.skip("csrc/ has uncommitted changes")
    head = subprocess.run(["git", "rev-parse", "HEAD:csrc"], cwd=REPO, capture_output=True, text=True, check=True)
    assert git_tree_hash(REPO / "csrc") == head.stdout.strip()


class _WrongGradX(torch.autograd.Function):
    """The fused op's forward, with grad_x doubled: a backward a benchmark row must refuse to time."""

    @staticmethod
    def forward(ctx, x, dw, pw, b, stride, padding):
        ctx.save_for_backward(x, dw, pw, b)
        ctx.conv = (stride, padding)
        return separable_conv2d(x, dw, pw, b, stride, padding)

    @staticmethod
    def backward(ctx, grad_y):
        leaves = [t.detach().requires_grad_() for t in ctx.saved_tensors]
        with torch.enable_grad():
            separable_conv2d(*leaves, *ctx.conv).backward(grad_y)
        grad_x, *rest = [t.grad for t in leaves]
        return (2 * grad_x, *rest, None, None)


def test_backward_rows_check_every_gradient(monkeypatch):
    shape, n = parse_shape("2,8,7,7,12,3,1")
    ok = run.check_correct(shape, n, "fp32", torch.device("cpu"), "backward")
    assert ok["status"] == "ok"
    assert set(ok["grad_errors"]) == {"grad x", "grad dw_weight", "grad pw_weight", "grad bias"}
    monkeypatch.setattr(run, "separable_conv2d", lambda x, dw, pw, b, s, p: _WrongGradX.apply(x, dw, pw, b, s, p))
    assert run.check_correct(shape, n, "fp32", torch.device("cpu"), "forward")["status"] == "ok"
    wrong = run.check_correct(shape, n, "fp32", torch.device("cpu"), "backward")
    assert wrong["status"].startswith("failed") and "grad x" in wrong["status"]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_timing_counts_the_gpus_work_not_the_hosts_launch():
    # Interleaved with 10+ ms of GPU work (3e7 cycles: 15 ms at 2 GHz), a call that spends 5 ms on
    # the host before it launches a tiny kernel while the GPU is still busy: timed back to back, its
    # events bracket only the tiny kernel (waiting after every call would count the 5 ms).
    import time

    from xsep._timing import median_ms

    device = torch.device("cuda")
    tiny = torch.zeros(16, device=device)

    def slow_host_call():
        time.sleep(0.005)
        tiny.add_(1)

    busy, slow = median_ms([lambda: torch.cuda._sleep(30_000_000), slow_host_call], device, warmup=1, reps=5)
    assert busy > 5 and slow < 1, (busy, slow)
