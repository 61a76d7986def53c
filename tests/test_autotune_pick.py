"""The autotuner's choice among its candidates (csrc/cuda/autotune_pick.h), on the
host: tests/cpp/autotune_pick_check.cpp feeds it made-up launches and times. (Its CUDA side, the
timing on the GPU, is tests/test_cuda.py's.)"""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("c++") is None, reason="needs a C++ compiler")
def test_autotuner_times_each_distinct_launch_once_and_picks_the_fastest(tmp_path):
    exe = tmp_path / "autotune_pick_check"
    command = ["c++", "-std=c++17", "-O1", "-Wall", "-Werror", f"-I{REPO / 'csrc' / 'cuda'}"]
    subprocess.run([*command, str(REPO / "tests" / "cpp" / "autotune_pick_check.cpp"), "-o", str(exe)], check=True)
    result = subprocess.run([str(exe)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok    ") == 9 and result.stdout.rstrip().endswith("0 failed"), result.stdout
