"""``stvg baseline``: trivial predictions to compare models against."""

from __future__ import annotations

from pathlib import Path

import typer

from stvg.cli.app import app, command


@app.command("baseline")
@command
def baseline_command(
    annotations: Path = typer.Option(
        ..., help="Annotations to predict for (any supported format)."
    ),
    out: Path = typer.Option(..., help="Where to write the predictions (stvg-predictions/1)."),
    kind: str = typer.Option("center", help="center (whole segment, centered box) or mean."),
    train: Path = typer.Option(None, help="Training annotations (for --kind mean)."),
    format: str = typer.Option(None, "--format", help="Force the annotation format."),
) -> None:
    """Write a trivial baseline's predictions: 'center' or the training set's 'mean' tube."""
    from stvg.data.formats import load_annotations
    from stvg.errors import InputError
    from stvg.evaluate.baselines import BASELINES, center_baseline, mean_baseline
    from stvg.evaluate.predictions import make_provenance, write_predictions

    if kind not in BASELINES:
        raise InputError(
            f"unknown baseline {kind!r}; known: {', '.join(BASELINES)}", field="--kind"
        )
    test = load_annotations(annotations, format=format)
    if kind == "center":
        predictions = center_baseline(test)
    else:
        if train is None:
            raise InputError(
                "--kind mean needs --train FILE (the training annotations)", field="--train"
            )
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
