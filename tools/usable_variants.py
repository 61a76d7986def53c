"""The kernel variants a GPU run's comparison stage may time: those of `variants` (comma-separated,
as `xsep bench --variants` takes them) whose forced-kernel quick test did not fail in this call.

Why: a kernel that faults on the GPU (an illegal address) leaves the process's CUDA context unusable,
and a bench process checks every variant on its first row, so one faulting variant would turn every
row of the stage into a failure and lose its minutes. The quick-tests stage runs each kernel forced,
in processes of its own, first; tools/gpu_run.sh passes its log here before each comparison.
`autotuned` launches every candidate kernel of both directions, so it is left out where any
forced-kernel or autotune test failed. A log that is missing, or cut short, leaves out only what it
shows failing.

    python3 tools/usable_variants.py OUT/quick-tests.log resident,overlap,autotuned
    # prints e.g. "resident,autotuned"; each variant left out, and why, on stderr
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# The forced-kernel tests (tests/test_cuda.py, tests/test_cuda_backward.py) and, for each of their
# parameters, the bench variants (xsep/bench/variants.py) that launch the kernels it forces.
FORWARD_TEST = "test_every_forward_kernel_matches_reference"
BACKWARD_TEST = "test_staged_kernels_match_reference"
BACKWARD_VARIANTS = {
    "first": ["bwd-first"],
    "staged": ["bwd-staged"],
    "wgmma": ["bwd-wgmma", "all-wgmma"],
    # the Hopper default kernels at 64 channels and 1024-pixel splits
    "resident": ["bwd-resident", "bwd-64ch", "bwd-pw1024"],
    "staged-128ch": ["bwd-staged-128ch"],
    "wgmma-128ch": ["bwd-wgmma-128ch"],
    "resident-256ch": ["bwd-256ch"],
    "resident-pw512": ["bwd-pw512"],
}
# pytest's summary lines ("FAILED path::test[param] - ...", "ERROR ...") and its failure headers
# ("____ test[param] ____").
FAILURE = re.compile(r"^(?:(?:FAILED|ERROR) \S*::|_+ )(test_\w+)(?:\[([^\]]+)\])?")


def failed_tests(log: str) -> set[tuple[str, str]]:
    """(test, parameter or '') of each failed or erroring test the log names."""
    return {(m.group(1), m.group(2) or "") for line in log.splitlines() if (m := FAILURE.match(line.strip()))}


def usable(variants: list[str], failures: set[tuple[str, str]]) -> tuple[list[str], dict[str, str]]:
    """(the variants to time, {left out: why})."""
    broken: dict[str, str] = {}
    for test, param in sorted(failures):
        if test == FORWARD_TEST:
            for name in [param, "all-wgmma"] if param == "wgmma" else [param]:
                broken.setdefault(name, f"{test}[{param}] failed")
        elif test == BACKWARD_TEST:
            for name in BACKWARD_VARIANTS.get(param, []):
                broken.setdefault(name, f"{test}[{param}] failed")
    kernel_tests = (FORWARD_TEST, BACKWARD_TEST)
    forced = [t + (f"[{p}]" if p else "") for t, p in sorted(failures) if t in kernel_tests or "autotune" in t]
    if forced:
        broken["autotuned"] = f"it launches every kernel, and {', '.join(forced)} failed"
    kept = [v for v in variants if v not in broken]
    return kept, {v: broken[v] for v in variants if v in broken}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    log_path, variants = Path(argv[0]), [v for v in argv[1].split(",") if v]
    log = log_path.read_text(errors="replace") if log_path.is_file() else ""
    kept, dropped = usable(variants, failed_tests(log))
    for name, why in dropped.items():
        print(f"left out of the comparison: {name} ({why})", file=sys.stderr)
    print(",".join(kept))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
