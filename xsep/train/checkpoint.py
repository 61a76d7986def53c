"""Checkpoints that a crash cannot tear: written to a temporary file, synced, renamed into place."""

from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path
from typing import Any

import torch

from xsep.train.config import TrainConfig

FORMAT = "xsep-train-checkpoint"
VERSION = 1


def rng_state() -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(_as_tuple(state["python"]))


def _as_tuple(value):
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """torch.save to <path>.tmp, fsync, then rename over `path`: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save({"format": FORMAT, "version": VERSION, **state}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def load_checkpoint(path: Path, config: dict[str, Any], must_match: tuple[str, ...]) -> dict[str, Any]:
    """Load and validate a checkpoint; a missing, corrupt or mismatched one raises a clear error."""
    if not path.is_file():
        raise FileNotFoundError(f"xsep train: --resume: no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, wrong file type, ...: all mean "not a usable checkpoint"
        raise ValueError(
            f"xsep train: --resume: {path} is not a readable checkpoint (corrupt or truncated?): {error}"
        ) from error
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"xsep train: --resume: {path} is not an xsep train checkpoint")
    if state.get("version") != VERSION:
        raise ValueError(
            f"xsep train: --resume: {path} has checkpoint version {state.get('version')}, expected {VERSION}"
        )
    saved = state["config"]
    # A setting the checkpoint predates had its default value then.
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    saved = {k: saved.get(k, defaults.get(k)) for k in must_match}
    diffs = [f"{k}: checkpoint {saved[k]!r}, now {config[k]!r}" for k in must_match if saved[k] != config[k]]
    if diffs:
        raise ValueError(
            "xsep train: --resume: the checkpoint was made with other settings, so it cannot continue "
            "exactly; " + "; ".join(diffs)
        )
    return state
