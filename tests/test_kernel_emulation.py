"""The CUDA kernels run on the host: tests/cpp/cuda_host_emulation.h stands in for the GPU (one
std::thread per CUDA thread, __syncthreads a barrier, WMMA and cp.async with the hardware's
alignment rules, copies landing at the wait), built with ThreadSanitizer so a missing barrier is
a reported data race. tests/cpp/staged_bwd_emulation.cpp runs the staged backward kernels with the
real launch plan and compares every gradient with a direct fp64 backward. No GPU needed: kernels
written in a session without one are checked here before a GPU ever runs them."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CUDA_INCLUDE = Path("/usr/local/cuda/include")


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
@pytest.mark.skipif(not (CUDA_INCLUDE / "cuda_bf16.h").exists(), reason="needs the CUDA headers (/usr/local/cuda)")
def test_staged_backward_kernels_in_host_emulation(tmp_path):
    exe = tmp_path / "staged_bwd_emulation"
    subprocess.run(
        [
            "g++",
            "-std=c++20",
            "-O1",
            "-fsanitize=thread",
            "-Wall",
            "-Werror",
            "-Wno-unknown-pragmas",  # the kernels' #pragma unroll
            f"-I{CUDA_INCLUDE}",
            f"-I{REPO / 'csrc' / 'kernels'}",
            str(REPO / "tests" / "cpp" / "staged_bwd_emulation.cpp"),
            "-o",
            str(exe),
            "-pthread",
        ],
        check=True,
    )
    result = subprocess.run([str(exe)], capture_output=True, text=True, env={"TSAN_OPTIONS": "halt_on_error=1"})
    assert result.returncode == 0, result.stdout + result.stderr[-6000:]
    assert "10 cases, 0 failed" in result.stdout, result.stdout
    assert "ThreadSanitizer" not in result.stderr, result.stderr[-6000:]
