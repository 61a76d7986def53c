"""The `xsep` command: train, demo, bench, ablate."""

from __future__ import annotations

import sys

_COMMANDS = {
    "train": ("xsep.train.__main__", "train Xception on the fused ops (default: the digits, on this machine)"),
    "demo": ("xsep.demo", "the fused op against PyTorch's two convs on one Xception layer"),
    "bench": ("xsep.bench.__main__", "benchmark the fused op against cuDNN / oneDNN, with result files"),
    "ablate": ("xsep.ablate", "the Xception paper's ablations (activation, residuals, segments), trained"),
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in _COMMANDS:
        print("usage: xsep <command> [options]\n\ncommands:")
        for name, (_, help_text) in _COMMANDS.items():
            print(f"  {name:8s} {help_text}")
        if argv and argv[0] not in ("-h", "--help"):
            raise SystemExit(f"xsep: unknown command {argv[0]!r}")
        return
    import importlib

    importlib.import_module(_COMMANDS[argv[0]][0]).main(argv[1:])


if __name__ == "__main__":
    main()
