"""`xsep ablate`: the Xception paper's ablations, trained on the fused ops, one command.

    xsep ablate                                   # all three, on the default data (the digits), 4 epochs
    xsep ablate --experiments activation --data /path/to/imagefolder --image-size 299 --epochs 30

Experiments (every variant from the same seed, data order and schedule; only the model differs):
    activation  intermediate activation between the depthwise and pointwise convs: none, ReLU,
                ELU (the paper's Figure 10: no activation trains faster and ends better)
    residual    Xception with and without its residual connections (the paper: residuals help
                convergence a lot)
    segments    the spatial convs in segments of 1 (depthwise), 2 and 4 channels: along the
                paper's spectrum towards regular convolutions, at a nearly matched budget (the
                extra spatial weights add 1% and 3% to the parameters; counts in the summary)

Writes into --out: one plot per experiment (<experiment>.png: validation accuracy and loss per
epoch, every variant on one figure), ablation.csv (every epoch of every run), summary.md (final
and best figures per variant), and each run's own metrics under runs/.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from xsep.models import xception

EXPERIMENTS: dict[str, list[tuple[str, dict]]] = {
    "activation": [
        ("no activation", {}),
        ("ReLU", {"intermediate_activation": "relu"}),
        ("ELU", {"intermediate_activation": "elu"}),
    ],
    "residual": [("with residuals", {}), ("without residuals", {"residual": False})],
    "segments": [
        ("1 channel/segment (depthwise)", {}),
        ("2 channels/segment", {"segment_channels": 2}),
        ("4 channels/segment", {"segment_channels": 4}),
    ],
}
CLAIMS = {
    "activation": "no intermediate activation converges faster and ends more accurate than ReLU or ELU",
    "residual": "residual connections make convergence faster and the final accuracy higher",
    "segments": "the depthwise end of the spectrum is the best trade-off at a matched budget",
}
COLUMNS = ["experiment", "variant", "parameters", "epoch", "train_loss", "val_loss", "val_top1", "seconds"]


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(
        prog="xsep ablate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--experiments", default="activation,residual,segments", help="comma-separated")
    parser.add_argument("--out", default="xsep-ablate-out", help="folder for the plots, CSV and summary")
    parser.add_argument("--data", default="default", help="as for xsep train: default, synthetic, or an ImageFolder")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=71)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--amp", default="off", choices=("off", "bf16", "fp16"))
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--max-steps", type=int, default=0, help="stop each run after N steps (smoke tests)")
    parser.add_argument("--synthetic-size", type=int, default=512)
    args = parser.parse_args(argv)
    args.experiments = [e for e in args.experiments.split(",") if e]
    unknown = [e for e in args.experiments if e not in EXPERIMENTS]
    if unknown:
        parser.error(f"--experiments: unknown {unknown}; choose from {', '.join(EXPERIMENTS)}")
    return args


def run_variant(args, options: dict, run_dir: Path) -> list[dict]:
    from xsep.train.config import TrainConfig
    from xsep.train.trainer import train

    cfg = TrainConfig(
        data=args.data,
        epochs=args.epochs,
        batch_size=args.batch_size,
        image_size=args.image_size,
        seed=args.seed,
        amp=args.amp,
        device=args.device,
        max_steps=args.max_steps,
        synthetic_size=args.synthetic_size,
        out=str(run_dir),
        progress=False,
        **options,
    )
    history = train(cfg).history
    for checkpoint in run_dir.glob("*.pt"):  # ~90 MB each; the metrics and curves stay
        checkpoint.unlink()
    return history


def parameters(options: dict, num_classes: int) -> int:
    model = xception(num_classes, **options)
    return sum(p.numel() for p in model.parameters())


def plot_experiment(experiment: str, runs: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(10, 4))
    for name, history in runs.items():
        epochs = [r["epoch"] for r in history]
        ax_acc.plot(epochs, [100 * r["val_top1"] for r in history], "o-", label=name)
        ax_loss.plot(epochs, [r["val_loss"] for r in history], "o-", label=name)
    ax_acc.set(xlabel="epoch", ylabel="validation top-1 (%)", title=f"{experiment}: accuracy")
    ax_loss.set(xlabel="epoch", ylabel="validation loss", title=f"{experiment}: loss")
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summary(args, results: dict[str, dict[str, list[dict]]], params: dict[str, dict[str, int]]) -> str:
    lines = [
        "# xsep ablate",
        "",
        f"Data `{args.data}`, {args.image_size}x{args.image_size}, batch {args.batch_size}, {args.epochs} epochs, "
        f"seed {args.seed}, AMP {args.amp}; every variant from the same initial seed, data order and schedule.",
        "",
    ]
    for experiment, runs in results.items():
        lines += [f"## {experiment}", "", f"The paper: {CLAIMS[experiment]}.", ""]
        lines += ["| variant | parameters | val top-1 after epoch 1 | final val top-1 | best val top-1 | "
                  "final val loss | s/epoch |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        for name, history in runs.items():
            final, first = history[-1], history[0]
            best = max(r["val_top1"] for r in history)
            seconds = sum(r["seconds"] for r in history) / len(history)
            lines.append(
                f"| {name} | {params[experiment][name]:,} | {100 * first['val_top1']:.2f}% | "
                f"{100 * final['val_top1']:.2f}% | {100 * best:.2f}% | {final['val_loss']:.4f} | {seconds:.1f} |"
            )
        ranked = sorted(runs, key=lambda n: (runs[n][-1]["val_top1"], -runs[n][-1]["val_loss"]), reverse=True)
        lines += ["", f"Highest final validation accuracy: {ranked[0]}.", ""]
        lines += [f"![{experiment}]({experiment}.png)", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from xsep.train.data import load_data

    num_classes = load_data(args.data, args.image_size, args.synthetic_size).num_classes
    done: dict[str, list[dict]] = {}  # the baseline is shared between experiments: trained once
    results: dict[str, dict[str, list[dict]]] = {}
    params: dict[str, dict[str, int]] = {}
    rows = []
    for experiment in args.experiments:
        results[experiment], params[experiment] = {}, {}
        for name, options in EXPERIMENTS[experiment]:
            key = ",".join(f"{k}={v}" for k, v in sorted(options.items())) or "baseline"
            if key not in done:
                print(f"xsep ablate: {experiment}: training '{name}'", flush=True)
                done[key] = run_variant(args, options, out / "runs" / key.replace("=", "-").replace(",", "_"))
            history = done[key]
            results[experiment][name] = history
            params[experiment][name] = parameters(options, num_classes)
            for r in history:
                rows.append({"experiment": experiment, "variant": name, "parameters": params[experiment][name]} | r)
        plot_experiment(experiment, results[experiment], out / f"{experiment}.png")
    with open(out / "ablation.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    (out / "summary.md").write_text(summary(args, results, params) + "\n")
    print(f"xsep ablate: wrote {out / 'summary.md'}, ablation.csv and " + ", ".join(f"{e}.png" for e in results))
