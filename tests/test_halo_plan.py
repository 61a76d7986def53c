"""The experimental halo forward kernel's tiling, checked on the host: tests/cpp/halo_fwd_emulation.cpp
follows the kernel's algorithm with its own index helpers (csrc/kernels/sepconv_fwd_halo_plan.h) and
compares the depthwise intermediate with a direct convolution, on random geometries (kernel 1-7,
stride 1-3, dilation 1-3, asymmetric padding, channels not a multiple of the 32-channel chunk)."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("c++") is None, reason="needs a C++ compiler")
def test_halo_tiling_matches_direct_depthwise(tmp_path):
    exe = tmp_path / "halo_fwd_emulation"
    source = REPO / "tests" / "cpp" / "halo_fwd_emulation.cpp"
    include = f"-I{REPO / 'csrc' / 'kernels'}"
    subprocess.run(["c++", "-std=c++17", "-O2", "-Wall", "-Werror", include, str(source), "-o", str(exe)], check=True)
    result = subprocess.run([str(exe), "300"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "300 cases, 0 failed" in result.stdout, result.stdout
