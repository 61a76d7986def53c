"""What every result file records, so a figure can be checked against the code it claims."""

from __future__ import annotations

import platform
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_metadata(device: torch.device) -> dict:
    """Device, versions, git commit and the tree hash of csrc/ ("dirty" if csrc/ has local changes)."""
    csrc_dirty = bool(_git("status", "--porcelain", "--", "csrc"))
    meta = {
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
        "git_commit": _git("rev-parse", "HEAD"),
        "csrc_tree": "dirty" if csrc_dirty else _git("rev-parse", "HEAD:csrc"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device_type": device.type,
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
