"""tools/usable_variants.py: which kernel variants a GPU run's comparisons keep after its quick tests
(a variant whose forced-kernel test failed would fault the whole comparison's process)."""

import subprocess
import sys
from pathlib import Path

import test_cuda
import test_cuda_backward

from xsep.bench.variants import NAMED

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
import usable_variants  # noqa: E402

# A quick-tests log as pytest -q -rfEs writes it under xdist: failure headers, then the summary.
LOG = """\
..F.....F.....s
=================================== FAILURES ===================================
_______________ test_every_forward_kernel_matches_reference[overlap-pair-z] _______________
[gw1] linux -- Python 3.12.3
E   AssertionError: vec_728 bf16 channels_last none: max error 3.1e+38
____________ test_staged_kernels_match_reference[resident-pw512] ____________
E   subprocess.TimeoutExpired: Command '['python3', '-c', ...]' timed out after 180 seconds
=========================== short test summary info ============================
SKIPPED [1] tests/test_cuda.py:60: needs two GPUs
FAILED tests/test_cuda.py::test_every_forward_kernel_matches_reference[overlap-pair-z] - AssertionError: vec_728
FAILED tests/test_cuda_backward.py::test_staged_kernels_match_reference[resident-pw512] - subprocess.TimeoutExpired
2 failed, 12 passed, 1 skipped in 100.00s (0:01:40)
"""


def test_failed_kernels_and_the_autotuner_are_left_out(tmp_path):
    log = tmp_path / "quick-tests.log"
    log.write_text(LOG)
    run = subprocess.run(
        [sys.executable, str(REPO / "tools" / "usable_variants.py"), str(log), "resident,overlap-pair-z,autotuned"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.strip() == "resident"
    assert "left out of the comparison: overlap-pair-z" in run.stderr and "autotuned (it launches" in run.stderr
    kept, dropped = usable_variants.usable(
        ["bwd-64ch", "bwd-pw512", "overlap", "wgmma", "XSEP_FWD_KERNEL=wgmma+XSEP_FWD_STAGES=8"],
        usable_variants.failed_tests(LOG),
    )
    assert kept == ["bwd-64ch", "overlap", "wgmma", "XSEP_FWD_KERNEL=wgmma+XSEP_FWD_STAGES=8"]
    assert list(dropped) == ["bwd-pw512"]


def test_a_clean_or_missing_log_keeps_every_variant(tmp_path):
    clean = tmp_path / "clean.log"
    clean.write_text("..........\n10 passed in 60.00s\n")
    for log in (clean, tmp_path / "missing.log"):
        assert usable_variants.main([str(log), "overlap,autotuned"]) == 0
        assert usable_variants.usable(["overlap", "autotuned"], usable_variants.failed_tests(""))[0] == [
            "overlap",
            "autotuned",
        ]
    # a failing autotune test (not parametrised) leaves the autotuner out, and only it
    failures = usable_variants.failed_tests(
        "FAILED tests/test_cuda.py::test_autotuner_stands_aside_for_a_forced_kernel_determinism_and_a_graph_capture"
    )
    assert usable_variants.usable(["overlap", "autotuned"], failures)[0] == ["overlap"]


def test_the_map_names_real_tests_and_variants():
    # a forced forward kernel of the quick tests and the bench variant of the same name are the same
    # knobs (the map is by name; streamed-2stage is the tests' alone), and every backward one the map
    # names is a parameter of the backward's forced-kernel test
    for name in set(test_cuda.FORWARD_VARIANTS) & set(NAMED):
        assert NAMED[name] == test_cuda.FORWARD_VARIANTS[name], name
    assert set(test_cuda.FORWARD_VARIANTS) - set(NAMED) == {"streamed-2stage"}
    (mark,) = [m for m in test_cuda_backward.test_staged_kernels_match_reference.pytestmark if m.name == "parametrize"]
    assert set(usable_variants.BACKWARD_VARIANTS) == set(mark.args[1])
    assert all(v in NAMED for names in usable_variants.BACKWARD_VARIANTS.values() for v in names)
