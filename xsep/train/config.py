"""The options of `xsep train`, as a dataclass and as command-line flags."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass


@dataclass
class TrainConfig:
    data: str = "default"  # "default" (scikit-learn's digits), "synthetic", or an ImageFolder path
    epochs: int = 4
    batch_size: int = 32  # global: split evenly over the processes
    image_size: int = 71
    optimizer: str = "adamw"  # "adamw" | "sgd"
    lr: float = 2e-3
    momentum: float = 0.9  # SGD
    weight_decay: float = 0.05
    warmup_epochs: float = 0.5
    label_smoothing: float = 0.1
    drop_rate: float = 0.0
    amp: str = "off"  # "off" | "bf16" | "fp16"
    dtype: str = "float32"  # "float64" for exactness checks on the CPU
    channels_last: bool = True  # the faster layout for both xsep and oneDNN/cuDNN
    compile: bool = False
    backend: str = "xsep"  # "xsep" | "reference"
    intermediate_activation: str = "none"  # the paper's ablations: "none" | "relu" | "elu"
    residual: bool = True
    segment_channels: int = 1  # channels per segment of the spatial convs: 1 (depthwise), 2, 4, 8
    seed: int = 0
    out: str = "xsep-train-out"
    resume: str | None = None  # a checkpoint path, or "auto" for <out>/last.pt
    workers: int = 0
    ckpt_every: int = 0  # also checkpoint every N optimizer steps (0: only after each epoch)
    max_steps: int = 0  # stop after N optimizer steps in all (0: run every epoch)
    synthetic_size: int = 512  # images in --data synthetic
    progress: bool = True
    device: str = "auto"  # "auto" | "cpu" | "cuda"


# Options that change what is computed: a checkpoint resumes only under the same values.
RESUME_MUST_MATCH = (
    "data",
    "epochs",
    "batch_size",
    "image_size",
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "warmup_epochs",
    "label_smoothing",
    "drop_rate",
    "amp",
    "dtype",
    "seed",
    "synthetic_size",
    "intermediate_activation",
    "residual",
    "segment_channels",
)

_CHOICES = {
    "optimizer": ("adamw", "sgd"),
    "amp": ("off", "bf16", "fp16"),
    "dtype": ("float32", "float64"),
    "backend": ("xsep", "reference"),
    "device": ("auto", "cpu", "cuda"),
    "intermediate_activation": ("none", "relu", "elu"),
    "segment_channels": (1, 2, 4, 8),
}
_HELP = {
    "data": "'default' (scikit-learn's handwritten digits, shipped with it: no download), 'synthetic', "
    "or a folder with train/ and val/ subfolders of one folder per class (ImageFolder)",
    "batch_size": "global batch size, split evenly across processes",
    "resume": "continue from a checkpoint: a path, or with no value <out>/last.pt",
    "ckpt_every": "also save a checkpoint every N steps (0: after each epoch only)",
    "max_steps": "stop after N optimizer steps in all (0: no limit)",
    "warmup_epochs": "linear learning-rate warm-up, then cosine decay to 0",
    "dtype": "float64 trains in double precision (for exactness checks on the CPU)",
    "intermediate_activation": "activation between the depthwise and pointwise convs (the paper's Figure 10)",
    "residual": "the blocks' skip paths (--no-residual: the paper's residual ablation)",
    "segment_channels": "channels per segment of the spatial convs (1: depthwise; more: unfused grouped convs)",
}


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    parser = argparse.ArgumentParser(
        prog="xsep train",
        description="Train Xception on xsep's fused separable convolutions (one process, or torchrun for many).",
    )
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        default = field.default
        help_text = _HELP.get(field.name, "") + f" (default: {default})"
        if field.type == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        elif field.name == "resume":
            parser.add_argument(flag, nargs="?", const="auto", default=None, help=help_text)
        else:
            kind = {"int": int, "float": float}.get(field.type, str)
            parser.add_argument(flag, type=kind, default=default, choices=_CHOICES.get(field.name), help=help_text)
    cfg = TrainConfig(**vars(parser.parse_args(argv)))
    validate(cfg, parser.error)
    return cfg


def validate(cfg: TrainConfig, error=None) -> None:
    def fail(message: str) -> None:
        if error is not None:
            error(message)
        raise ValueError(f"xsep train: {message}")

    for name, choices in _CHOICES.items():
        if getattr(cfg, name) not in choices:
            fail(f"--{name.replace('_', '-')} must be one of {', '.join(choices)}; got {getattr(cfg, name)!r}")
    if cfg.epochs < 1 or cfg.batch_size < 1:
        fail(f"--epochs and --batch-size must be positive; got {cfg.epochs}, {cfg.batch_size}")
    if cfg.image_size < 71:
        fail(f"--image-size must be at least 71 (Xception's smallest input); got {cfg.image_size}")
    if cfg.lr <= 0 or cfg.weight_decay < 0 or cfg.warmup_epochs < 0 or not 0 <= cfg.label_smoothing < 1:
        fail("--lr must be positive, --weight-decay and --warmup-epochs non-negative, --label-smoothing in [0, 1)")
    if cfg.ckpt_every < 0 or cfg.max_steps < 0 or cfg.workers < 0:
        fail("--ckpt-every, --max-steps and --workers must be non-negative")
