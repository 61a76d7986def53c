"""The SASS instructions where a kernel's warps stall most, from Nsight Compute's source page (run by
the `profile` stage of tools/gpu_run.sh):

    ncu --import profile.ncu-rep --page source --csv --print-source sass > source.csv
    python3 tools/ncu_hotspots.py source.csv --top 30

Nsight Compute samples each warp's program counter and why it is not issuing; summed per
instruction, the samples say which instructions the time goes to (a load's consumer waiting on it,
a barrier, the wgmma wait). The CSV's layout differs between Nsight Compute versions, so the
columns are found by name: an address or source column, and the stall-sampling one. If none is
found, the first lines are printed as they are, to adapt this reader.
"""

from __future__ import annotations

import argparse
import csv
import sys


def find_column(header: list[str], *needles: str) -> int | None:
    """Index of the first column whose name contains every needle (case-insensitive)."""
    for i, name in enumerate(header):
        if all(n.lower() in name.lower() for n in needles):
            return i
    return None


def number(text: str) -> float:
    try:
        return float(text.replace(",", "").replace("%", "") or 0)
    except ValueError:
        return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", help="ncu --page source --csv output")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    with open(args.csv, newline="") as f:
        rows = list(csv.reader(f))
    sections = []  # (title, header, data rows): a new header starts a kernel's section
    title, header, data = "", None, []

    def names_kernel(row: list[str]) -> bool:  # a kernel's name line, where the version prints one
        return len(row) == 1 or (0 < len(row) <= 3 and "kernel" in row[0].lower())

    for row in rows:
        samples = find_column(row, "stall", "sampl")
        if samples is not None and find_column(row, "source") is not None:
            if header is not None:
                sections.append((title, header, data))
            header, data = row, []
        elif header is not None and len(row) == len(header):
            data.append(row)
        elif names_kernel(row):
            if header is not None:
                sections.append((title, header, data))
            title, header, data = row[-1], None, []
    if header is not None:
        sections.append((title, header, data))
    if not sections:
        print("ncu_hotspots: no stall-sampling column found; the CSV begins:")
        for row in rows[:40]:
            print(",".join(row)[:200])
        sys.exit(1)
    for title, header, data in sections:
        samples = find_column(header, "stall", "sampl", "all")
        if samples is None:
            samples = find_column(header, "stall", "sampl")
        source = find_column(header, "source")
        address = find_column(header, "address")
        total = sum(number(r[samples]) for r in data) or 1.0
        print(f"\n{title or 'kernel'}: {len(data)} SASS lines, {total:.0f} stall samples ({header[samples]})")
        for r in sorted(data, key=lambda r: -number(r[samples]))[: args.top]:
            where = r[address] if address is not None else ""
            print(f"  {100 * number(r[samples]) / total:5.1f}%  {where:>8s}  {r[source].strip()[:110]}")


if __name__ == "__main__":
    main()
