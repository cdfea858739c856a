"""``stvg baseline``: trivial predictions to compare models against."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from stvg.cli.app import app, command
from stvg.data.formats import FORMATS

Kind = Literal["center", "mean"]
Format = Literal[FORMATS]  # type: ignore[valid-type]


@app.command("baseline")
@command
def baseline_command(
    annotations: Path = typer.Option(
        ..., help="Annotations to predict for (any supported format)."
    ),
    out: Path = typer.Option(..., help="Where to write the predictions (stvg-predictions/1)."),
    kind: Kind = typer.Option(
        "center",
        help="center: the whole segment with a centered box; mean: the training set's mean "
        "span and box (needs --train).",
    ),
    train: Path = typer.Option(None, help="Training annotations (for --kind mean)."),
    format: Format | None = typer.Option(None, "--format", help="Force the annotation format."),
) -> None:
    """Write a trivial baseline's predictions (center or mean tube)."""
    from stvg.data.formats import load_annotations
    from stvg.errors import InputError
    from stvg.evaluate.baselines import center_baseline, mean_baseline
    from stvg.evaluate.predictions import make_provenance, write_predictions

    if kind == "mean" and train is None:
        raise InputError("--kind mean needs --train FILE (the training annotations)")
    test = load_annotations(annotations, format=format)
    if kind == "center":
        predictions = center_baseline(test)
    else:
        predictions = mean_baseline(test, load_annotations(train))
    provenance = make_provenance(
        baseline=kind,
        annotations=Path(annotations).name,
        split=test.split,
        frames="every native frame of the segment",
        boxes="the same box on every frame",
    )
    write_predictions(out, predictions, provenance)
    typer.echo(f"{kind} baseline: {len(predictions)} predictions -> {out}")
