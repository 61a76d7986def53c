"""The Python side of `XSEP_LOG_DISPATCH=1` (csrc/common/dispatch_log.cpp is the C++ side): which
path served a call, printed once per path to stderr in the same format, and kept while recording
(xsep._kernel_knobs.recorded_dispatches turns both sides' recording on)."""

from __future__ import annotations

import os
import sys
import threading

_lock = threading.Lock()
_seen: set[str] = set()
_recording = False
_recorded: list[str] = []


def log_dispatch(op: str, variant: str) -> None:
    line = f"{op}: {variant}"
    printing = os.environ.get("XSEP_LOG_DISPATCH", "") not in ("", "0")
    if not printing and not _recording:
        return
    with _lock:
        if _recording and line not in _recorded:
            _recorded.append(line)
        if not printing or line in _seen:
            return
        _seen.add(line)
    print(f"xsep dispatch: {line}", file=sys.stderr, flush=True)


def record(on: bool) -> None:
    global _recording
    _recording = on


def take_recorded() -> list[str]:
    """The distinct lines kept since the last take, in the order first seen."""
    with _lock:
        lines = list(_recorded)
        _recorded.clear()
    return lines
