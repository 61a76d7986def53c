"""What every result file records, so a figure can be checked against the code it claims."""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

from xsep import _kernel_knobs

REPO = Path(__file__).resolve().parents[2]  # the checkout, for an editable install


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def git_tree_hash(folder: Path) -> str:
    """The hash git gives `folder` as a tree (what `git rev-parse HEAD:csrc` prints for a clean
    checkout), computed from the files themselves: works where the copy has no .git."""

    def obj(kind: str, data: bytes) -> bytes:
        return hashlib.sha1(f"{kind} {len(data)}\0".encode() + data).digest()

    def tree(path: Path) -> bytes:
        entries = []
        for child in path.iterdir():
            if child.name == "__pycache__":
                continue
            if child.is_dir():
                entries.append((child.name + "/", b"40000 " + child.name.encode() + b"\0" + tree(child)))
            else:
                mode = b"100755" if os.access(child, os.X_OK) else b"100644"
                entries.append(
                    (child.name, mode + b" " + child.name.encode() + b"\0" + obj("blob", child.read_bytes()))
                )
        return obj("tree", b"".join(entry for _, entry in sorted(entries)))

    return tree(folder).hex()


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_metadata(device: torch.device) -> dict:
    """Device, versions, git commit and the tree hash of the csrc/ that was measured.

    csrc_tree is computed from the files (equal to `git rev-parse HEAD:csrc` when they are
    committed), so it is right also in a copy without .git; git_commit is the XSEP_GIT_COMMIT
    variable where the caller set it, else the checkout's HEAD.
    """
    meta = {
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
        # The variable wins: a copy's .git can lag behind the tree it was sent with.
        "git_commit": os.environ.get("XSEP_GIT_COMMIT") or _git("rev-parse", "HEAD"),
        "csrc_tree": git_tree_hash(REPO / "csrc") if (REPO / "csrc").is_dir() else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device_type": device.type,
        # The CUDA kernel choice's knobs in force for this run (csrc/kernels/kernel_knobs.h).
        "kernel_choice": _kernel_knobs.current(),
        # How a call was timed (xsep._timing.median_ms; files without this key waited after each).
        "timing": "back to back" if device.type == "cuda" else "wall clock per call",
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        meta |= {
            "device_name": props.name,
            "cuda": torch.version.cuda,
            "driver": _nvidia_smi("driver_version"),
            "cudnn": torch.backends.cudnn.version(),
        }
    else:
        meta |= {"device_name": _cpu_name(), "threads": torch.get_num_threads()}
    return meta


def _nvidia_smi(field: str) -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip().splitlines()[0]
