"""The Python side of `XSEP_LOG_DISPATCH=1` (csrc/common/dispatch_log.cpp is the C++ side): which
path served a call, printed once per path to stderr in the same format."""

from __future__ import annotations

import os
import sys
import threading

_lock = threading.Lock()
_seen: set[str] = set()


def log_dispatch(op: str, variant: str) -> None:
    if os.environ.get("XSEP_LOG_DISPATCH", "") in ("", "0"):
        return
    line = f"{op}: {variant}"
    with _lock:
        if line in _seen:
            return
        _seen.add(line)
    print(f"xsep dispatch: {line}", file=sys.stderr, flush=True)
