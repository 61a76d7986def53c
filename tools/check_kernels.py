"""Compile-check the CUDA kernels without a GPU (run by .ci/run on every submission).

Builds csrc/kernels as a standalone library with CMake (sm_80 and sm_90 by default; the Hopper wgmma
forward also for sm_90a, with CuTe's headers from the nvidia-cutlass wheel), then fails if
  - any kernel spills registers or uses a stack frame (ptxas -v report), or
  - a tensor-core kernel has no tensor-core MMA instruction (HMMA / HGMMA) in its SASS, or an
    FFMA kernel has no FFMA (cuobjdump -sass); reduction kernels are held to the first rule only;
    the wgmma kernels must show HGMMA in their sm_90a build (elsewhere they have no wgmma; the
    forward's weight-packing kernel moves data only), or
  - ptxas serialised a kernel's wgmma (C7515: ordinary instructions touch the accumulators while a
    batch is in flight) or injected a wait for all of them (C7517): either undoes the overlap the
    kernel was written for, and only its speed on a GPU would show it, or
  - CuTe's headers are missing (the wgmma kernels would go unchecked), or
  - a kernel source does not compile for sm_90a *without* them (-O0): a user who installs
    without the nvidia-cutlass wheel gets the kernels that do not need CuTe, not a failed build.
Prints one row per kernel and architecture. Then it compiles the CUDA glue (csrc/cuda/*.cpp) with
-fsyntax-only against the installed torch's headers, so the host side is checked too; a CPU build of
torch lacks one generated header (c10/cuda/impl/cuda_cmake_macros.h), which a stand-in provides.

    python tools/check_kernels.py [--build-dir build/kernels] [--archs "80-real;90-real"]

nvcc comes from CUDA_HOME (default /usr/local/cuda) or PATH; cuobjdump from PATH or the
nvidia-cuda-cuobjdump wheel.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class KernelReport:
    name: str  # demangled
    arch: str
    registers: int = -1
    stack_bytes: int = 0
    spill_bytes: int = 0
    mma: int = 0
    ffma: int = 0
    multicasts: int = 0  # bulk copies multicast into a cluster's CTAs (UBLKCP ... MULTICAST)
    peer_copies: int = 0  # bulk copies from shared memory into a peer CTA's (UBLKCP.S.S)
    problems: list[str] = field(default_factory=list)


def cuda_home() -> Path:
    return Path(os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda")


def find_tool(name: str) -> str:
    candidates = [str(cuda_home() / "bin" / name), shutil.which(name)]
    try:  # the pip wheels nvidia-cuda-cuobjdump / nvidia-cuda-nvdisasm
        import nvidia

        for root in nvidia.__path__:
            candidates += [str(p) for p in Path(root).glob(f"*/bin/{name}")]
    except ImportError:
        pass
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    raise SystemExit(f"check_kernels: {name} not found (install CUDA, or pip install nvidia-cuda-cuobjdump)")


def demangle(names: list[str]) -> dict[str, str]:
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True, check=True).stdout
    return dict(zip(names, out.splitlines(), strict=True))


def cutlass_include() -> Path:
    """CuTe's headers: the nvidia-cutlass wheel's, as setup.py finds them."""
    try:
        import cutlass_library
    except ImportError:
        raise SystemExit("check_kernels: CuTe headers not found (pip install nvidia-cutlass)") from None
    return Path(cutlass_library.__file__).parent / "source" / "include"


def build(build_dir: Path, archs: str) -> str:
    nvcc = find_tool("nvcc")
    configure = [
        "cmake",
        "-S",
        str(REPO),
        "-B",
        str(build_dir),
        f"-DCMAKE_CUDA_COMPILER={nvcc}",
        f"-DCMAKE_CUDA_ARCHITECTURES={archs}",
        f"-DXSEP_CUTLASS_INCLUDE={cutlass_include()}",
    ]
    if shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    subprocess.run(configure, check=True, capture_output=True, text=True)
    # A clean build so ptxas reports every kernel (an up-to-date build would print nothing).
    result = subprocess.run(
        ["cmake", "--build", str(build_dir), "--clean-first", "-j", str(os.cpu_count() or 2)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        print(result.stdout[-20000:], result.stderr[-20000:], sep="\n")
        raise SystemExit("check_kernels: the kernel library does not compile")
    return result.stdout + result.stderr


def parse_ptxas(log: str) -> dict[tuple[str, str], KernelReport]:
    reports: dict[tuple[str, str], KernelReport] = {}
    current: KernelReport | None = None
    for line in log.splitlines():
        m = re.search(r"Compiling entry function '(\w+)' for '(sm_\w+)'", line)
        if m:
            current = reports.setdefault((m.group(1), m.group(2)), KernelReport(m.group(1), m.group(2)))
            continue
        if current is None:
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            current.stack_bytes = int(m.group(1))
            current.spill_bytes = int(m.group(2)) + int(m.group(3))
        m = re.search(r"Used (\d+) registers", line)
        if m:
            current.registers = int(m.group(1))
    # Performance advisories about wgmma (they name the function, printed before its report; only
    # sm_90a code has wgmma).
    for code, name in re.findall(r"\((C7515|C7517)\).*?in (?:the )?function '(\w+)'", log):
        report = reports.setdefault((name, "sm_90a"), KernelReport(name, "sm_90a"))
        what = "serialises its wgmma" if code == "C7515" else "injected a wait for every wgmma in flight"
        report.problems.append(f"ptxas {code}: {what}")
    return reports


def count_sass(build_dir: Path, reports: dict[tuple[str, str], KernelReport]) -> None:
    cuobjdump = find_tool("cuobjdump")
    for arch in sorted({arch for _, arch in reports}):
        # sm_90a code lives in its own library (cuobjdump -arch sm_90 would show it too).
        library = build_dir / ("libxsep_kernels_sm90a.a" if arch == "sm_90a" else "libxsep_kernels.a")
        sass = subprocess.run(
            [cuobjdump, "-sass", "-arch", arch, str(library)], capture_output=True, text=True, check=True
        ).stdout
        for chunk in re.split(r"\n\s*Function : ", sass)[1:]:
            name = chunk.split(None, 1)[0]
            report = reports.get((name, arch))
            if report is None:
                continue
            report.mma = len(re.findall(r"\b(?:HMMA|HGMMA)\b", chunk))
            report.ffma = len(re.findall(r"\bFFMA\b", chunk))
            report.multicasts = len(re.findall(r"\bUBLKCP\.[A-Z0-9.]*MULTICAST\b", chunk))
            report.peer_copies = len(re.findall(r"\bUBLKCP\.S\.S\b", chunk))


def check_without_cute() -> bool:
    """Each csrc/kernels/*.cu compiles for sm_90a (both passes) without CuTe's headers; True if all do."""
    nvcc = find_tool("nvcc")
    sources = sorted((REPO / "csrc" / "kernels").glob("*.cu"))
    flags = ["-std=c++17", "-O0", "-arch=sm_90a", "-c", f"-I{REPO / 'csrc' / 'kernels'}", "-o", os.devnull]
    compile_one = partial(subprocess.run, capture_output=True, text=True)
    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        results = list(pool.map(compile_one, ([nvcc, *flags, str(source)] for source in sources)))
    failures = []
    for source, result in zip(sources, results, strict=True):
        if result.returncode != 0:
            failures.append(source.name)
            print(result.stderr[-3000:])
    verdict = "FAILED " + ", ".join(failures) if failures else "ok"
    print(f"{len(sources)} kernel sources without CuTe (sm_90a): {verdict}")
    return not failures


def check_glue(build_dir: Path) -> bool:
    """Syntax-check csrc/cuda/*.cpp against the installed torch; True if all compile."""
    import sysconfig

    import torch
    from torch.utils.cpp_extension import include_paths

    shim = build_dir / "shim"
    if not any((Path(p) / "c10/cuda/impl/cuda_cmake_macros.h").exists() for p in include_paths()):
        header = shim / "c10/cuda/impl/cuda_cmake_macros.h"
        header.parent.mkdir(parents=True, exist_ok=True)
        header.write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
    flags = ["-std=c++17", "-fsyntax-only", f"-I{shim}", f"-I{cuda_home() / 'include'}"]
    flags += [f"-I{p}" for p in include_paths()] + [f"-I{sysconfig.get_paths()['include']}"]
    ok = True
    for source in sorted((REPO / "csrc" / "cuda").glob("*.cpp")):
        result = subprocess.run(["c++", *flags, str(source)], capture_output=True, text=True)
        status = "ok" if result.returncode == 0 else "FAILED"
        print(f"glue {source.relative_to(REPO)} against torch {torch.__version__}: {status}")
        if result.returncode != 0:
            print(result.stderr[-5000:])
            ok = False
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-dir", type=Path, default=REPO / "build" / "kernels")
    parser.add_argument("--archs", default="80-real;90-real")
    parser.add_argument("--skip-glue", action="store_true", help="do not compile-check csrc/cuda/*.cpp")
    args = parser.parse_args()

    log = build(args.build_dir, args.archs)
    reports = parse_ptxas(log)
    if not reports:
        raise SystemExit("check_kernels: ptxas reported no kernels (was -Xptxas=-v dropped?)")
    count_sass(args.build_dir, reports)
    names = demangle([r.name for r in reports.values()])

    failed = False
    print(f"{'kernel':78s} {'arch':6s} {'regs':>4s} {'stack':>5s} {'spill':>5s} {'MMA':>5s} {'FFMA':>5s}")
    for key in sorted(reports, key=lambda k: (names[k[0]], k[1])):
        r = reports[key]
        pretty = names[r.name].replace("xsep::", "").replace("(Math)0", "mma").replace("(Math)1", "ffma")
        pretty = re.sub(r"\(SepConv(Bwd)?Params\)$", "", pretty).replace("BwdKernelTraits", "Bwd")
        if r.stack_bytes or r.spill_bytes:
            r.problems.append(f"stack {r.stack_bytes} B, spills {r.spill_bytes} B")
        # Kernels templated on the pointwise math must show it in their SASS; the others (the
        # backward's fixed-order reductions) only add, and are held to the spill/stack rule.
        tensor_core = "(xsep::Math)0" in names[r.name]
        ffma_math = "(xsep::Math)1" in names[r.name]
        # The sm_90a library holds only the wgmma kernels (their other builds have no wgmma) and the
        # Hopper forwards' weight-packing kernels, which only move data.
        packs = "pack_kernel" in r.name
        if r.arch == "sm_90a" and r.mma == 0 and not packs:
            r.problems.append("sm_90a (wgmma) kernel without HGMMA in its SASS")
        if tensor_core and r.mma == 0:
            r.problems.append("tensor-core kernel without HMMA/HGMMA in its SASS")
        if ffma_math and r.ffma == 0:
            r.problems.append("FFMA kernel without FFMA in its SASS")
        # The overlapped forward's pair builds exist to share work between a cluster's two CTAs: the
        # weights pairs (OverlapPair 1) read each weight chunk once for both, so their sm_90a SASS
        # must multicast it; the Z pairs (2) copy each half of Z into the peer's shared memory.
        pair = re.search(r"OverlapFwdTraits<[^>]*\(xsep::OverlapPair\)(\d)>", names[r.name])
        if r.arch == "sm_90a" and pair and pair.group(1) == "1" and r.multicasts == 0:
            r.problems.append("the overlapped forward's weights pairs without a multicast bulk copy in their SASS")
        if r.arch == "sm_90a" and pair and pair.group(1) == "2" and r.peer_copies == 0:
            r.problems.append("the overlapped forward's Z pairs without a shared-to-shared bulk copy in their SASS")
        failed |= bool(r.problems)
        flag = "  <-- " + "; ".join(r.problems) if r.problems else ""
        print(
            f"{pretty[:78]:78s} {r.arch:6s} {r.registers:4d} {r.stack_bytes:5d} {r.spill_bytes:5d} "
            f"{r.mma:5d} {r.ffma:5d}{flag}"
        )
    # at least: forward 2 x 2 16-bit + TF32, streamed 3, overlapped 3 x 4; backward 2 x 2
    if sum(arch == "sm_90a" and "pack_kernel" not in names[name] for name, arch in reports) < 12:
        print("the sm_90a builds of the wgmma kernels are missing")
        failed = True
    print(f"\n{len(reports)} kernel builds checked: {'FAILED' if failed else 'ok'}\n")
    failed |= not check_without_cute()
    if not args.skip_glue:
        failed |= not check_glue(args.build_dir)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
