"""`xsep train` / `python -m xsep.train` / `torchrun --nproc-per-node K -m xsep.train`."""

from __future__ import annotations

import sys

from xsep.train.config import parse_args
from xsep.train.trainer import train


def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(argv)
    try:
        result = train(cfg)
    except (ValueError, FileNotFoundError, ImportError) as error:
        raise SystemExit(str(error)) from None
    if result.interrupted_by is not None:
        print(f"xsep train: stopped by signal {result.interrupted_by}; continue with --resume", file=sys.stderr)
        sys.exit(128 + result.interrupted_by)
    if result.history:
        last = result.history[-1]
        print(f"xsep train: done. held-out top-1 {100 * last['val_top1']:.2f}%; files in {cfg.out}/", flush=True)


if __name__ == "__main__":
    main()
