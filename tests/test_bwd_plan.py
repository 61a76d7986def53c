"""The fused CUDA backward's tiling, checked on the host: tests/cpp/bwd_plan_emulation.cpp follows
the input-gradient kernel's algorithm with the kernel's own index helpers (csrc/kernels/
sepconv_bwd_plan.h) and compares with a direct backward, on Xception's layers and random
geometries (kernel 1-7, stride 1-3, dilation 1-3, asymmetric padding, depth multiplier)."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("c++") is None, reason="needs a C++ compiler")
def test_backward_tiling_matches_direct_backward(tmp_path):
    exe = tmp_path / "bwd_plan_emulation"
    subprocess.run(
        [
            "c++",
            "-std=c++17",
            "-O2",
            "-Wall",
            "-Werror",
            f"-I{REPO / 'csrc' / 'kernels'}",
            str(REPO / "tests" / "cpp" / "bwd_plan_emulation.cpp"),
            "-o",
            str(exe),
        ],
        check=True,
    )
    result = subprocess.run([str(exe), "600"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "600 cases" in result.stdout and ", 0 failed" in result.stdout, result.stdout
