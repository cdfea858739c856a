"""``stvg predict``: a trained run's tubes for one split of a feature store."""

from __future__ import annotations

from pathlib import Path

import typer

from stvg.cli.app import app, command
from stvg.device import DEVICE_HELP


@app.command("predict")
@command
def predict_command(
    run: list[Path] = typer.Option(
        ...,
        help="Training run folder (uses its EMA weights); repeat for an ensemble: each pass's "
        "boxes and temporal probabilities are averaged over the runs.",
    ),
    features: Path = typer.Option(..., help="Feature store with the split to predict."),
    split: str = typer.Option("test", help="Split of the store."),
    out: Path = typer.Option(..., help="Predictions file to write (stvg-predictions/1)."),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    batch_size: int = typer.Option(8, min=1, help="Prediction passes per forward."),
    frames_per_pass: int = typer.Option(None, min=1, help="Frames per pass (default: the run's)."),
) -> None:
    """Predict tubes for one split: best 2D-map span, boxes in pixels.

    Every stored frame is seen (several passes of the run's frame count); boxes are
    interpolated to every native frame of the segment, so every protocol can score them.
    Several --run: their ensemble (one model kind; each pass's outputs averaged over the runs).
    """
    from stvg.device import resolve_device
    from stvg.evaluate.predict import predict_split, prediction_provenance
    from stvg.evaluate.predictions import write_predictions

    predictions, _ = predict_split(
        run,
        features,
        split,
        device=resolve_device(device),
        batch_size=batch_size,
        frames_per_pass=frames_per_pass,
    )
    write_predictions(out, predictions, prediction_provenance(run, split))
    typer.echo(f"{len(predictions)} predictions -> {out}")
