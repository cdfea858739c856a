"""``stvg pipeline``: the whole benchmark as resumable steps."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from stvg.cli.app import app, command
from stvg.device import DEVICE_HELP
from stvg.extract.config import Dataset

Protocol = Literal["tubedetr", "hcstvg", "stcat"]
StepName = Literal["synth", "extract", "train", "predict", "score"]


@app.command("pipeline", short_help="Synth, extract, train, predict and score as resumable steps.")
@command
def pipeline_command(
    dataset: Dataset = typer.Option("synthetic", help="The data set (synthetic is embedded)."),
    out: Path = typer.Option(
        Path("runs/synthetic"), help="Pipeline folder (data, features, run, scores)."
    ),
    data_root: Path = typer.Option(
        None, help="Real datasets: the dataset folder (see `stvg extract`)."
    ),
    annotations: str = typer.Option(
        None, help="Real datasets: annotation file or {split} pattern."
    ),
    boxes_dir: Path = typer.Option(None, help="VidSTG: the VidOR box folder."),
    videos: int = typer.Option(None, min=3, help="Synthetic: number of videos (default 240)."),
    seed: int = typer.Option(None, min=0, help="Synthetic: generator seed (default 0)."),
    set_: list[str] = typer.Option(
        [],
        "--set",
        help="Override a setting (repeat): KEY=VALUE or train.KEY=VALUE for training "
        "(e.g. lr=5e-4, model.collab=none), extract.KEY=VALUE for extraction "
        "(e.g. extract.target_fps=2).",
    ),
    split: str = typer.Option("test", help="Split to predict and score."),
    protocol: Protocol = typer.Option("tubedetr", help="Scoring protocol."),
    device: str = typer.Option("auto", help="Training and prediction: " + DEVICE_HELP),
    from_: StepName | None = typer.Option(
        None, "--from", help="Rerun from this step (and every later one)."
    ),
    force: bool = typer.Option(False, "--force", help="Rerun every step."),
) -> None:
    """Chain synth, extract, train, predict and score; a rerun skips finished steps.

    A step is skipped when its inputs and settings are unchanged. Prints the scores per
    synthetic kind (or query type) next to two trivial baselines computed by the same scorer.
    """
    from stvg.config import apply_overrides
    from stvg.device import resolve_device
    from stvg.errors import InputError
    from stvg.extract.config import ExtractConfig
    from stvg.extract.config import resolve as resolve_extract
    from stvg.pipelines.chain import PipelineConfig, format_report, run_pipeline
    from stvg.train.config import resolve as resolve_train

    if data_root is not None and not data_root.is_dir():
        raise InputError(f"--data-root {data_root}: no such folder")
    extract_items = [i[len("extract.") :] for i in set_ if i.startswith("extract.")]
    train_items = [i.removeprefix("train.") for i in set_ if not i.startswith("extract.")]
    # Check every setting now, not after minutes of earlier steps.
    resolve_extract(dataset, extract_items, prefix="extract.")
    resolve_train(dataset if dataset != "normalized" else "vidstg", train_items)
    synth = {k: v for k, v in {"videos": videos, "seed": seed}.items() if v is not None}
    cfg = PipelineConfig(
        dataset=dataset,
        out=out,
        data_root=data_root,
        annotations=annotations,
        boxes_dir=boxes_dir,
        synth=synth,
        extract=apply_overrides(ExtractConfig, {}, extract_items, prefix="extract."),
        train=train_items,
        split=split,
        protocol=protocol,
        device=resolve_device(device),
    )
    results, report = run_pipeline(cfg, start=from_, force=force)
    for r in results:
        typer.echo(f"step {r.name:<8} {'ran' if r.ran else 'skipped (up to date)'}")
    typer.echo(format_report(report))
    typer.echo(f"metrics: {out / 'metrics.json'}; report: {out / 'report.json'}")
