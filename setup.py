"""Builds xsep._C: CPU kernels always; CUDA kernels when torch has CUDA and nvcc is found.

Environment:
  XSEP_FORCE_CUDA=1   build the CUDA sources even if no GPU/nvcc was detected (cross-building)
  XSEP_SKIP_CUDA=1    never build the CUDA sources
  TORCH_CUDA_ARCH_LIST  the GPU architectures, as PyTorch's cpp_extension reads it; unset, the visible
                      GPUs' (Hopper as 9.0a, which the wgmma forward needs)
  XSEP_CUTLASS_INCLUDE  CuTe's headers (default: the nvidia-cutlass wheel's, if installed); without
                      them the wgmma forward is left out and the other kernels serve
  XSEP_DEBUG=1        -O0 -g
  XSEP_CPU_ARCH       the -march of the CPU kernels (default: native, the machine that builds;
                      set e.g. x86-64-v3 to build for other machines)
"""

import os
from glob import glob

import torch
from setuptools import setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "0") not in ("", "0", "false", "False")


def _build_cuda() -> bool:
    if _env_flag("XSEP_SKIP_CUDA"):
        return False
    if _env_flag("XSEP_FORCE_CUDA"):
        return True
    return torch.version.cuda is not None and CUDA_HOME is not None


def _cutlass_include() -> str | None:
    """CuTe's headers, for the Hopper wgmma forward (csrc/kernels/sepconv_fwd_wgmma_*)."""
    if os.environ.get("XSEP_CUTLASS_INCLUDE"):
        return os.environ["XSEP_CUTLASS_INCLUDE"]
    try:
        import cutlass_library
    except ImportError:
        return None
    include = os.path.join(os.path.dirname(cutlass_library.__file__), "source", "include")
    return include if os.path.isdir(os.path.join(include, "cute")) else None


def _default_arch_list() -> None:
    """Without TORCH_CUDA_ARCH_LIST: the visible GPUs' architectures, as PyTorch would pick them, but
    Hopper as 9.0a (wgmma exists only in arch-specific sm_90a code)."""
    if os.environ.get("TORCH_CUDA_ARCH_LIST") or not torch.cuda.is_available():
        return
    caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
    os.environ["TORCH_CUDA_ARCH_LIST"] = ";".join(f"{a}.{b}" + ("a" if (a, b) == (9, 0) else "") for a, b in caps)


def _extension():
    debug = _env_flag("XSEP_DEBUG")
    opt = ["-O0", "-g"] if debug else ["-O3"]
    sources = sorted(glob("csrc/*.cpp") + glob("csrc/common/*.cpp") + glob("csrc/cpu/*.cpp"))
    # at::parallel_for is OpenMP inside PyTorch's headers: without -fopenmp it runs on one
    # thread. The libgomp this links is the one torch has already loaded (same soname).
    # The depthwise loops are written to vectorise; without -march they get SSE2 only.
    march = os.environ.get("XSEP_CPU_ARCH", "native")
    cxx = [*opt, f"-march={march}", "-fopenmp", "-fdiagnostics-color=always"]
    link = ["-fopenmp"]
    if not _build_cuda():
        return CppExtension("xsep._C", sources, extra_compile_args={"cxx": cxx}, extra_link_args=link)
    sources += sorted(glob("csrc/cuda/*.cpp") + glob("csrc/kernels/*.cu"))
    nvcc = [*opt, "-lineinfo", "--expt-relaxed-constexpr", "-std=c++17"]
    cutlass = _cutlass_include()
    if cutlass is not None:
        nvcc += ["-DXSEP_WITH_CUTE", "-isystem", cutlass]
    _default_arch_list()
    return CUDAExtension(
        "xsep._C",
        sources,
        extra_compile_args={"cxx": [*cxx, "-DXSEP_WITH_CUDA"], "nvcc": nvcc},
        extra_link_args=link,
    )


setup(
    ext_modules=[_extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
