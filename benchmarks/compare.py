"""Compare a new `xsep bench` result file with a committed one; flag regressions.

    python benchmarks/compare.py benchmarks/results/gpu-forward.json new/gpu-forward.json [--threshold 0.05]

Rows are matched by (shape, N, mode, direction), network rows by (suite, N, size, step, graph).
A row regresses when xsep's time grew by more than the threshold (default 5%) or its status
turned from ok to failed. Exit status 1 if any did. Times from different devices (or a file
measured on another csrc/) are compared, but said so first.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _key(row: dict) -> tuple:
    if "suite" in row:  # a network row
        return (row["suite"], row["N"], row["image_size"], row["direction"], "compiled" if row["compiled"] else "eager")
    return (row["shape"], row["N"], row["mode"], row["direction"])


def _all_rows(result: dict) -> list[dict]:
    return result["rows"] + result.get("network_rows", [])


def compare(old: dict, new: dict, threshold: float) -> list[str]:
    """The regressions of `new` against `old`, one line each."""
    old_rows = {_key(r): r for r in _all_rows(old)}
    regressions = []
    for row in _all_rows(new):
        before = old_rows.get(_key(row))
        if before is None or before["status"] != "ok":
            continue
        name = " ".join(str(k) for k in _key(row))
        if row["status"] != "ok":
            regressions.append(f"{name}: now {row['status']}")
        elif row["xsep_ms"] > before["xsep_ms"] * (1 + threshold):
            growth = 100 * (row["xsep_ms"] / before["xsep_ms"] - 1)
            regressions.append(f"{name}: {before['xsep_ms']:.3f} -> {row['xsep_ms']:.3f} ms (+{growth:.1f}%)")
    return regressions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--threshold", type=float, default=0.05)
    args = parser.parse_args(argv)
    old, new = json.loads(args.old.read_text()), json.loads(args.new.read_text())
    for field in ("device_name", "csrc_tree"):
        if old["metadata"].get(field) != new["metadata"].get(field):
            print(f"note: {field} differs: {old['metadata'].get(field)} vs {new['metadata'].get(field)}")
    regressions = compare(old, new, args.threshold)
    matched = len({_key(r) for r in _all_rows(old)} & {_key(r) for r in _all_rows(new)})
    print(f"{matched} rows matched; {len(regressions)} regression(s) beyond {100 * args.threshold:.0f}%")
    for line in regressions:
        print("  " + line)
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main())
