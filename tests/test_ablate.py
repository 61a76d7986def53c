"""`xsep ablate` runs every experiment end to end (two steps a run, synthetic data) and writes its
plots, CSV and summary; the runs of one experiment differ in their model only."""

import csv

from xsep.ablate import EXPERIMENTS
from xsep.ablate import main as ablate_main


def test_ablate_smoke(tmp_path):
    args = [
        "--epochs",
        "1",
        "--max-steps",
        "2",
        "--data",
        "synthetic",
        "--synthetic-size",
        "80",
        "--out",
        str(tmp_path),
    ]
    ablate_main(args)
    for experiment in EXPERIMENTS:
        assert (tmp_path / f"{experiment}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(tmp_path / "ablation.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["experiment"], r["variant"]) for r in rows} == {(e, v) for e, vs in EXPERIMENTS.items() for v, _ in vs}
    params = {r["variant"]: int(r["parameters"]) for r in rows}
    assert params["without residuals"] < params["with residuals"] == params["no activation"] == params["ReLU"]
    assert params["1 channel/segment (depthwise)"] < params["2 channels/segment"] < params["4 channels/segment"]
    assert params["4 channels/segment"] < 1.05 * params["1 channel/segment (depthwise)"]  # a nearly matched budget
    text = (tmp_path / "summary.md").read_text()
    for experiment in EXPERIMENTS:
        assert f"## {experiment}" in text and f"![{experiment}]({experiment}.png)" in text
    assert not list(tmp_path.rglob("*.pt")), "checkpoints of the runs are deleted"
    # The shared baseline trained once: its runs folder is there once, the other variants beside it.
    assert len(list((tmp_path / "runs").iterdir())) == 6
