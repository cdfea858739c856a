"""Training curves (stvg.evaluate.curves, ``stvg plot``): the PNG, a cut last line, bad input."""

from __future__ import annotations

import json

from PIL import Image
from typer.testing import CliRunner

from stvg.cli import app
from stvg.evaluate.curves import plot_metrics, read_metrics


def _runner_invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


METRICS = [
    {"step": 1, "epoch": 0, "loss": 9.0, "l1": 1.0, "giou": 0.8, "tg": 0.7, "ta": 0.6, "lr": 1e-4},
    {"step": 2, "epoch": 0, "loss": 8.0, "l1": 0.9, "giou": 0.7, "tg": 0.6, "ta": 0.5, "lr": 1e-4},
    {"step": 2, "epoch": 0, "val": {"all": {"m_tIoU": 0.2, "m_vIoU": 0.1, "vIoU@0.3": 0.1,
                                            "vIoU@0.5": 0.0, "m_sIoU": 0.3, "count": 4}}},
    {"step": 3, "epoch": 1, "loss": 7.0, "l1": 0.8, "giou": 0.6, "tg": 0.5, "ta": 0.4, "lr": 5e-5},
]  # fmt: skip


def test_plot_metrics_with_a_cut_last_line(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    text = "".join(json.dumps(r) + "\n" for r in METRICS) + '{"step": 4, "epoch": 1, "lo'
    (run / "metrics.jsonl").write_text(text)
    train, val = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in train] == [1, 2, 3] and [r["step"] for r in val] == [2]
    out = plot_metrics(run)
    assert out == run / "metrics.png"
    assert Image.open(out).size == (1000, 700)  # 10 x 7 inches at 100 dpi
    result = _runner_invoke("plot", run, "--out", tmp_path / "curves.png")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(tmp_path / "curves.png")
    assert Image.open(tmp_path / "curves.png").size == (1000, 700)


def test_plot_bad_input_exits_2(tmp_path):
    result = _runner_invoke("plot", tmp_path / "missing-run")
    assert result.exit_code == 2 and "metrics.jsonl" in result.output
    run = tmp_path / "run"
    run.mkdir()
    lines = [json.dumps(METRICS[0]), "garbage", json.dumps(METRICS[1])]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    result = _runner_invoke("plot", run)
    assert result.exit_code == 2 and "line 2" in result.output
