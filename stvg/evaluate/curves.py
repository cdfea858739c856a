"""Training curves of a run: ``RUN/metrics.jsonl`` -> one PNG (``stvg plot RUN``); and grouped
bars with error bars (:func:`plot_bars`, the seeds of ``stvg bench zoo``).

Four panels against the step: the weighted training loss, each loss term, the learning rate
(log scale) and the validation m_vIoU / m_tIoU / m_sIoU in percent (matplotlib, Agg canvas).
A cut last line (a run killed mid-write) is skipped; a bad line elsewhere is an error naming it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from stvg.errors import InputError

log = logging.getLogger(__name__)


TRAIN_TERMS = ("l1", "giou", "tg", "ta")
VAL_METRICS = ("m_vIoU", "m_tIoU", "m_sIoU")
PLOT_SIZE = (10.0, 7.0)  # inches
PLOT_DPI = 100  # -> 1000 x 700 pixels


def read_metrics(path: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(train_lines, val_lines)`` of a ``metrics.jsonl``.

    A last line that does not parse (cut while the trainer was writing) is skipped with a log
    message; a bad line elsewhere is an :class:`InputError` naming its line number.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no metrics.jsonl: not a training run (or nothing logged yet)", file=path)
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    train, val = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or "step" not in record:
                raise ValueError("not an object with a 'step'")
        except ValueError as error:
            if number == len(lines):
                log.info("%s: skipping the cut last line %d", path, number)
                break
            raise InputError(
                f"line {number} is not a metrics record ({error})", file=path
            ) from None
        (val if "val" in record else train).append(record)
    if not train and not val:
        raise InputError("the file holds no metrics records yet", file=path)
    return train, val


def plot_metrics(run_dir: str | Path, out_png: str | Path | None = None) -> Path:
    """Training curves of ``RUN/metrics.jsonl`` -> a ``1000 x 700`` PNG (default RUN/metrics.png).

    Four panels against the optimizer step: the total loss; each loss term (l1, giou, tg, ta,
    as logged); the learning rate (log scale); validation m_vIoU / m_tIoU / m_sIoU of the "all"
    group (in %).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    run_dir = Path(run_dir)
    train, val = read_metrics(run_dir / "metrics.jsonl")
    fig = Figure(figsize=PLOT_SIZE, dpi=PLOT_DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2)
    fig.suptitle(f"training run {run_dir.resolve().name}", fontsize=12)

    def series(records: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
        pts = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
        return [p[0] for p in pts], [p[1] for p in pts]

    ax = axes[0, 0]
    ax.plot(*series(train, "loss"), color="black", linewidth=1.0)
    ax.set_title("training loss (weighted sum)")
    ax = axes[0, 1]
    for term in TRAIN_TERMS:
        steps, values = series(train, term)
        if steps:
            ax.plot(steps, values, linewidth=1.0, label=term)
    ax.set_title("loss terms")
    if ax.lines:
        ax.legend(fontsize=8)
    ax = axes[1, 0]
    steps, values = series(train, "lr")
    ax.plot(steps, values, color="tab:purple", linewidth=1.0)
    if values and min(values) > 0:
        ax.set_yscale("log")
    ax.set_title("learning rate")
    ax = axes[1, 1]
    groups = [(r["step"], r["val"].get("all", {})) for r in val if isinstance(r.get("val"), dict)]
    for name in VAL_METRICS:
        pts = [(s, 100 * g[name]) for s, g in groups if isinstance(g.get(name), (int, float))]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3, label=name)
    ax.set_title("validation (all, %)")
    if ax.lines:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no validation yet", ha="center", va="center", transform=ax.transAxes)
    for ax in axes.flat:
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    out_png = Path(out_png) if out_png is not None else run_dir / "metrics.png"
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, format="png", dpi=PLOT_DPI)
    return out_png


def plot_bars(
    summary: dict[str, dict[str, dict[str, dict[str, Any]]]],
    out_png: str | Path,
    metrics: tuple[str, ...] = VAL_METRICS,
    title: str = "",
) -> Path:
    """Grouped bars with error bars -> a PNG of ``PLOT_DPI``: one panel per metric, one group
    of bars per group (e.g. synthetic kind, ``all`` last), one bar per arm of ``summary``
    (``{arm: {group: {metric: {"mean", "std"}}}}``, in %, as
    :func:`stvg.bench.seed_stats.summarize` returns it); the error bar is the std (none for a
    single seed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    arms = list(summary)
    groups: list[str] = []
    for arm in arms:
        groups += [g for g in summary[arm] if g not in groups]
    groups = [g for g in groups if g != "all"] + (["all"] if "all" in groups else [])
    fig = Figure(figsize=(PLOT_SIZE[0], 3.2 * len(metrics)), dpi=PLOT_DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    width = 0.8 / max(1, len(arms))
    for ax, metric in zip(axes, metrics, strict=True):
        for k, arm in enumerate(arms):
            stats = [summary[arm].get(g, {}).get(metric) or {} for g in groups]
            means = [s.get("mean") or 0.0 for s in stats]
            stds = [s.get("std") or 0.0 for s in stats]
            xs = [i - 0.4 + (k + 0.5) * width for i in range(len(groups))]
            ax.bar(xs, means, width, yerr=stds, capsize=3, label=arm)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(groups, fontsize=9)
        ax.set_ylabel(f"{metric} (%)")
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].legend(fontsize=8, ncol=min(4, len(arms)))
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, format="png", dpi=PLOT_DPI)
    return out_png
