"""The CUDA kernels run on the host: tests/cpp/cuda_host_emulation.h stands in for the GPU (one
std::thread per CUDA thread, __syncthreads a barrier, WMMA and cp.async with the hardware's
alignment rules, shared memory poisoned with NaN; cp.async copies land at their wait, so a read
before it sees stale data, and in a second ThreadSanitizer run when issued, so a copy into a buffer
still being read overwrites it; both runs must print the same; a wgmma operand must be fenced into
the async proxy by the threads that wrote it, and start on its swizzle pattern). Each program is built twice: with
ThreadSanitizer (a missing barrier is a reported data race: racecheck's job on the GPU) and with
AddressSanitizer + UBSan (a read or write outside a tensor, or an integer overflow in the index
math: memcheck's). Each runs kernels with the launch geometry the CUDA
launchers use and compares with a direct fp64 computation:

  fwd_kernels_emulation.cpp   the forward kernels (resident with 2 and 3 stages, a Cout split,
                              32, 64 and 128 pixels; tiled; halo), four math modes
  bwd_kernels_emulation.cpp   the backward kernels, first, staged and staged with the wgmma dZ GEMM
                              (the input-gradient ones also with 128 channels per CTA), every
                              gradient, with plan_backward
  wgmma_fwd_emulation.cpp     the Hopper wgmma forward (fp16, bf16, TF32), with a stand-in for the
                              warpgroup MMA that reads CuTe's descriptors as the PTX ISA defines them
                              (wgmma_emulation.h), its weight ring fed by bulk copies
  streamed_fwd_emulation.cpp  the warp-specialised Hopper forward (producer warps compute the
                              depthwise chunks into a ring, consumer warpgroups multiply them)
  overlap_fwd_emulation.cpp   the overlapped Hopper forward (producer warps compute a pixel tile's
                              whole Z into one of two buffers, a consumer warpgroup multiplies the
                              other)
  fast_divmod_check.cpp       the multiply-high division the kernels' pixel arithmetic uses

No GPU needed: kernels written in a session without one are checked here before a GPU runs them
(and the kernels that have passed on the H100 check the emulation)."""

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CUDA_INCLUDE = Path("/usr/local/cuda/include")

pytestmark = [
    pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++"),
    pytest.mark.skipif(not (CUDA_INCLUDE / "cuda_bf16.h").exists(), reason="needs the CUDA headers (/usr/local/cuda)"),
]


SANITIZERS = {"tsan": ["-fsanitize=thread"], "asan": ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]}


def compile_program(source: str, sanitizer: str, flags: tuple[str, ...], directory: Path) -> Path:
    exe = directory / f"{Path(source).stem}-{sanitizer}{'-cute' if flags else ''}"
    command = ["g++", "-std=c++20", "-O1", *SANITIZERS[sanitizer], "-Wall", "-Werror", "-pthread", *flags]
    # The kernels' #pragma unroll, and constants only those pragmas use, mean nothing to g++.
    command += ["-Wno-unknown-pragmas", "-Wno-unused-variable"]
    command += [f"-I{CUDA_INCLUDE}", f"-I{REPO / 'csrc' / 'kernels'}", str(REPO / "tests" / "cpp" / source), "-o"]
    result = subprocess.run([*command, str(exe)], capture_output=True, text=True)
    assert result.returncode == 0, f"{source} ({sanitizer}) did not build:\n{result.stderr[-6000:]}"
    return exe


class EmulationBuilds:
    """The emulation programs' builds, started together as collection ends (conftest.py): a build
    takes one core for a minute or two, so on CI's two cores they run beside the tests before this
    file's (mostly one core's work), then beside the sanitized runs, instead of waiting their turn."""

    def __init__(self, workers: int):
        self.directory = Path(tempfile.mkdtemp(prefix="xsep-emulation-"))
        self.pool = ThreadPoolExecutor(workers)
        self.builds: dict[tuple, Future] = {}

    def start(self, source: str, sanitizer: str, flags: tuple[str, ...]) -> Future:
        key = (source, sanitizer, flags)
        if key not in self.builds:
            self.builds[key] = self.pool.submit(compile_program, source, sanitizer, flags, self.directory)
        return self.builds[key]

    def executable(self, source: str, sanitizer: str, flags: tuple[str, ...]) -> Path:
        return self.start(source, sanitizer, flags).result()

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)
        shutil.rmtree(self.directory, ignore_errors=True)


_builds: EmulationBuilds | None = None


def start_emulation_builds(items: list[pytest.Item]) -> EmulationBuilds | None:
    """Starts the builds of the selected tests' programs, in the order the tests run (once; conftest.py
    calls it as collection ends). None where this file's tests skip (no g++ or no CUDA headers)."""
    global _builds
    if shutil.which("g++") is None or not (CUDA_INCLUDE / "cuda_bf16.h").exists():
        return None
    if _builds is None:
        _builds = EmulationBuilds(os.cpu_count() or 2)
        for item in items:
            program = PROGRAMS.get(getattr(item, "originalname", ""))
            if program is None or item.module.__name__ != __name__:
                continue
            sanitizer = item.callspec.params.get("sanitizer", "asan") if hasattr(item, "callspec") else "asan"
            try:
                _builds.start(program.source, sanitizer, program.flags())
            except pytest.skip.Exception:
                pass  # the test skips itself
    return _builds


def stop_emulation_builds() -> None:
    """Cancels the builds not yet started and removes the programs (conftest.py, as the session ends)."""
    global _builds
    if _builds is not None:
        _builds.close()
        _builds = None


@pytest.fixture(scope="session")
def emulation_builds(request):
    return start_emulation_builds(request.session.items)


def build_and_run(builds: EmulationBuilds, test: str, sanitizer: str, env: dict[str, str] | None = None) -> str:
    program = PROGRAMS[test]
    exe = builds.executable(program.source, sanitizer, program.flags())
    # cp.async copies land at the latest moment (at their wait: a read too early sees stale data),
    # and under ThreadSanitizer also at the earliest, in a second run beside the first (when issued:
    # a copy into a buffer still being read overwrites it, and races with the reader).
    modes = {"copies landing at their wait": dict(env or {})}
    if sanitizer == "tsan":
        modes["copies landing when issued"] = {**(env or {}), "XSEP_EMULATION_EAGER_COPIES": "1"}
    runs = {what: start_emulation(exe, extra_env) for what, extra_env in modes.items()}
    outputs = [finish_emulation(exe, what, process, modes[what]) for what, process in runs.items()]
    assert all(out == outputs[0] for out in outputs), "a result depends on when the copies land"
    return outputs[0]


def start_emulation(exe: Path, extra_env: dict[str, str]) -> subprocess.Popen:
    env = {"TSAN_OPTIONS": "halt_on_error=1", **extra_env}
    return subprocess.Popen([str(exe)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


EMULATION_TIMEOUT_S = 1500  # a kernel waiting on a barrier nobody arrives at hangs: fail instead


def finish_emulation(exe: Path, what: str, process: subprocess.Popen, extra_env: dict[str, str]) -> str:
    try:
        stdout, stderr = process.communicate(timeout=EMULATION_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        raise AssertionError(
            f"{exe.name} ({what}) did not finish in {EMULATION_TIMEOUT_S} s: a deadlock?\n{stdout[-3000:]}"
        ) from None
    if "unexpected memory mapping" in stderr and shutil.which("setarch"):
        # ThreadSanitizer's runtime cannot start under some kernels' address-space randomisation.
        env = {"TSAN_OPTIONS": "halt_on_error=1", **extra_env}
        result = subprocess.run(
            ["setarch", "-R", str(exe)], capture_output=True, text=True, env=env, timeout=EMULATION_TIMEOUT_S
        )
        process, stdout, stderr = result, result.stdout, result.stderr
    assert process.returncode == 0, what + "\n" + stdout[-6000:] + stderr[-6000:]
    for report in ("ThreadSanitizer", "AddressSanitizer", "runtime error"):
        assert report not in stderr, what + "\n" + stderr[-6000:]
    return stdout


def cute_flags() -> tuple[str, ...]:
    """CuTe (the nvidia-cutlass wheel's headers, as setup.py uses them) and the CUDA C++ library it needs."""
    cutlass_library = pytest.importorskip("cutlass_library", reason="needs CuTe's headers: pip install nvidia-cutlass")
    include = Path(cutlass_library.__file__).parent / "source" / "include"
    return ("-DXSEP_WITH_CUTE", f"-I{CUDA_INCLUDE / 'cccl'}", "-isystem", str(include))


def cute_flags_if_present() -> tuple[str, ...]:
    try:
        return cute_flags()
    except pytest.skip.Exception:
        return ()  # the backward program without CuTe: the first and staged kernels only


def no_flags() -> tuple[str, ...]:
    return ()


@dataclass(frozen=True)
class Program:
    source: str  # in tests/cpp
    flags: Callable[[], tuple[str, ...]]  # raises pytest's skip where the program cannot be built


# Each test's program.
PROGRAMS = {
    "test_forward_kernels_in_host_emulation": Program("fwd_kernels_emulation.cpp", no_flags),
    "test_backward_kernels_in_host_emulation": Program("bwd_kernels_emulation.cpp", cute_flags_if_present),
    "test_streamed_forward_in_host_emulation": Program("streamed_fwd_emulation.cpp", cute_flags),
    "test_overlap_forward_in_host_emulation": Program("overlap_fwd_emulation.cpp", cute_flags),
    "test_fast_divmod_agrees_with_division": Program("fast_divmod_check.cpp", no_flags),
    "test_wgmma_forward_in_host_emulation": Program("wgmma_fwd_emulation.cpp", cute_flags),
}


@pytest.mark.parametrize("sanitizer", sorted(SANITIZERS))
def test_forward_kernels_in_host_emulation(sanitizer, emulation_builds):
    out = build_and_run(emulation_builds, "test_forward_kernels_in_host_emulation", sanitizer)
    assert "ok     output-channel split plans" in out, out
    assert "152 runs, 0 failed" in out, out
    assert out.count("ok     halo") == 4 * 4, out  # the four cases with C % 8 == 0, four modes
    assert out.count("ok     resident-split") == out.count("ok     resident-3stage") == 5 * 4, out


@pytest.mark.parametrize("sanitizer", sorted(SANITIZERS))
def test_backward_kernels_in_host_emulation(sanitizer, emulation_builds):
    flags = cute_flags_if_present()
    # ThreadSanitizer (~20x slower, and twice: see build_and_run) takes four of the cases: both
    # CUDA-core paths of the input kernel (unit stride: xception_like; stride 2 and an activation:
    # s2_asymmetric_elu), multiplier 2 (mult2) and the resident kernel's slices (slices_264).
    # AddressSanitizer takes all eight (seven cases and slices_264).
    tsan = sanitizer == "tsan"
    env = {"XSEP_EMULATION_CASES": "mult2,s2_asymmetric_elu,xception_like,slices_264"} if tsan else {}
    out = build_and_run(emulation_builds, "test_backward_kernels_in_host_emulation", sanitizer, env)
    cases = 3 if tsan else 7  # besides slices_264, which runs only the newest kernels
    assert "ok     resident pw plans (" in out, out
    assert "ok     channels_last copies (9 layouts)" in out, out
    assert "ok     default choices (7 channel counts, 2 splits)" in out or "skip   default choices" in out, out
    total = (47 if tsan else 109) if flags else (24 if tsan else 56)
    assert f"{total} cases, 0 failed" in out, out
    assert out.count("ok     staged    ") == out.count("ok     first     ") == 3 * cases, out  # 3 modes
    assert out.count("ok     staged128 ") == 2 * cases, out  # bf16 and TF32
    assert out.count("ok     wgmma     ") == (2 * cases if flags else 0), out  # fp16 and bf16
    assert out.count("ok     wgmma128  ") == (cases if flags else 0), out  # fp16
    # XSEP_PHASE_CLOCKS=1 on the 128-channel input kernels: every CTA's stamps, in order
    assert out.count("pw splits)  phase clocks") == (3 * cases if flags else 2 * cases), out
    # the resident pw kernel: fp16 and bf16 in the cases with multiplier 1 (mult2: the staged
    # one), slices_264 among them; the 256-channel input kernel in all of them
    assert out.count("ok     resident  ") == (2 * cases if flags else 0), out
    assert out.count("ok     resident- ") == (2 if flags else 0), out
    assert out.count("ok     wgmma256  ") == (cases + 1 if flags else 0), out  # bf16
    # two CTAs per SM: fp16 and bf16 where Cout <= 128 and multiplier 1 (s2_asymmetric_elu, d2_relu,
    # long_splits, wide_136)
    assert out.count("ok     resident512 ") == ((2 if tsan else 8) if flags else 0), out


@pytest.mark.parametrize("sanitizer", sorted(SANITIZERS))
def test_streamed_forward_in_host_emulation(sanitizer, emulation_builds):
    out = build_and_run(emulation_builds, "test_streamed_forward_in_host_emulation", sanitizer)
    assert "42 runs, 0 failed" in out, out
    assert out.count(" fp16 ") == 7 and out.count(" bf16 ") == 21 and out.count(" tf32 ") == 14, out
    assert out.count("ok     streamed-192 ") == 14, out  # 192 output channels per CTA: bf16 and TF32
    assert "ctas 2/5 " in out and "ctas 1/3 " in out, out  # persistent CTAs taking several tiles
    for stages in (2, 3, 4, 5, 8):  # the smallest ring: every chunk waits for a slot to be freed
        assert f" stages {stages} " in out, out


@pytest.mark.parametrize("sanitizer", sorted(SANITIZERS))
def test_overlap_forward_in_host_emulation(sanitizer, emulation_builds):
    out = build_and_run(emulation_builds, "test_overlap_forward_in_host_emulation", sanitizer)
    assert "124 runs, 0 failed" in out, out
    assert out.count(" fp16 ") == 36 and out.count(" bf16 ") == 54 and out.count(" tf32 ") == 34, out
    assert out.count("  phase clocks ") == 46, out  # XSEP_PHASE_CLOCKS=1: each role's sums, every CTA's record
    assert out.count("ok     overlap-one-run ") == 9, out  # the build without two-window quads
    assert out.count("ok     overlap-one-buffer split 1 ") == 27, out  # one Z buffer (16-bit 1024+, TF32 728)
    # the output channels in 2 parts (three cases: both builds; the weights pairs; Z pairs in 2 x 2
    # halves) and 3 (one case), each recomputing Z
    assert out.count(" split 2 ") == 11 and out.count(" split 3 ") == 2, out
    assert out.count(" infinite_weight ") == 11, out  # its padding taps add nothing: the pack's finite word
    # the weights pairs (XSEP_FWD_PAIR=weights: clusters of two CTAs, each weight chunk multicast into
    # both): one pair taking every item, and an odd number of pixel tiles (a pair's last second tile
    # empty)
    assert out.count("ok     overlap-pair-weights") == 21, out
    assert "ctas 2/5 many_tiles " in out and "ctas 2/3 deep_tiles " in out and "ctas 2/1 deep " in out, out
    # the Z pairs (XSEP_FWD_PAIR=z: both CTAs on one pixel tile, each computing half its Z): the cases
    # with two output-channel tiles or more, and the uneven halves of z_parts
    assert out.count("ok     overlap-pair-z") == 14, out
    assert "split 2 stages  4 ctas 6/8 z_parts " in out, out
    # one CTA taking all 10 pixel tiles (each Z buffer used five times), and 3 Cout tiles a pixel tile
    assert "ctas 1/10 many_tiles " in out and "ctas 1/5 deep_tiles " in out, out
    for stages in (3, 4, 5, 16):  # the smallest ring to the largest
        assert f" stages {stages:2d} " in out, out


def test_fast_divmod_agrees_with_division(emulation_builds):
    # The kernels' multiply-high division (csrc/kernels/fast_divmod.h), under ASan + UBSan: every
    # divisor to 4096 at the edges of its dividends, then large divisors with random dividends.
    out = build_and_run(emulation_builds, "test_fast_divmod_agrees_with_division", "asan")
    assert out.rstrip().endswith("divisions checked, 0 wrong"), out
    assert int(out.split()[0]) > 10_000_000, out


@pytest.mark.parametrize("sanitizer", sorted(SANITIZERS))
def test_wgmma_forward_in_host_emulation(sanitizer, emulation_builds):
    out = build_and_run(emulation_builds, "test_wgmma_forward_in_host_emulation", sanitizer)
    assert "141 runs, 0 failed" in out, out
    # the Z stores' 32-bit offsets (sw64_k_major_offset) are CuTe's, byte for byte
    assert out.count("ok     Z store offsets against CuTe's (") == 3, out
    assert out.count("ok     wgmma-128 2 warpgroups split 2") == 10, out  # five cases, fp16 and bf16
    assert out.count("ok     wgmma-128 4 warpgroups") == 10, out  # two along the output channels
    assert out.count("ok     wgmma-128 2 warpgroups 1-CTA prefetch") == 12, out  # the one-CTA build (quartets)
    assert out.count("ok     wgmma-128 2 warpgroups 1-CTA split") == 7, out  # and without the prefetch
    assert out.count("ok     wgmma-64  1 warpgroups prefetch") == 10, out  # bf16 and TF32
    assert out.count("ok     wgmma-64  1 warpgroups split 1") == 17, out  # and TF32 (without prefetch)
    # the 64-pixel build for one CTA per SM (two Z chunks a depthwise pass): fp16, bf16 and TF32
    assert out.count("ok     wgmma-64  1 warpgroups 1-CTA split") == 19, out
    assert out.count(" tf32 ") == 37, out
    # an infinite depthwise weight: finite outputs where its tap reads the padding (the pack's finite
    # word), in channel pairs, quartets, the band path and TF32
    assert out.count(" infinite-weight split ") == 4, out
    assert out.count("ok     wgmma-128 2 warpgroups 1-CTA band 2 infinite") == 1, out
    # XSEP_FWD_DW=staged: the one-CTA builds' depthwise phase from bands of x, in two buffers and in
    # one (five cases, two of them refused by the kernel: stride 2, dilation 2; the row-break cases)
    assert out.count("ok     wgmma-128 2 warpgroups 1-CTA band 2 split") == 7, out
    assert out.count("ok     wgmma-64  1 warpgroups 1-CTA band 2 split") == 10, out
    assert out.count(" 1-CTA band 1 split ") == 12, out
    assert out.count("ok     wgmma-128 2 warpgroups 1-CTA band 2 clocks split 2") == 1, out
    # XSEP_PHASE_CLOCKS=1: each CTA's phase stamps, in order, and the output unchanged
    assert out.count("ok     wgmma-128 2 warpgroups clocks split 2") == 1, out
    assert out.count("ok     wgmma-64  1 warpgroups clocks split 1") == 1, out
    # a bias that is not aligned for a channel pair's single load (a view's)
    assert out.count("ok     wgmma-128 2 warpgroups odd-bias split 1") == 1, out
    assert out.count("ok     wgmma-64  1 warpgroups odd-bias split 1") == 1, out
    # quads an output row ends inside: one-row images (each break into the next image), two-pixel rows
    assert out.count(" one_row_images ") == 8 and out.count(" two_pixel_rows ") == 8, out
    # pixel origins by long division (the params' multiply-high divisors unset)
    assert out.count("ok     wgmma-128 2 warpgroups long-division split 2") == 1, out
    assert "ok     728 channels, 128 pixels, 5 slots" in out, out
    assert out.count("ok     band for ") == 3, out  # the band's budget on the 728 and 1024 layers
    for stages in [4, 5, 6, 7, 8, 11, 16]:  # ring depths, the least to the most
        assert f" stages {stages:2d} " in out, out
