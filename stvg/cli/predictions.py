"""``stvg predictions convert``: predictions to and from TubeDETR, STCAT and the HC-STVG script."""

from __future__ import annotations

from pathlib import Path

import typer

from stvg.cli.app import app, command

predictions_app = typer.Typer(
    help="Predictions: convert between stvg and other codebases' formats.", no_args_is_help=True
)
app.add_typer(predictions_app, name="predictions")


@predictions_app.callback()
def _predictions() -> None:
    """Predictions: convert between stvg and other codebases' formats."""


@predictions_app.command("convert")
@command
def convert_command(
    src: Path = typer.Argument(..., help="Predictions file to read (JSON, or STCAT's .pt)."),
    from_format: str = typer.Option(
        None, "--from", help="stvg, tubedetr, stcat or hcstvg; detected from content if omitted."
    ),
    to: str = typer.Option(..., "--to", help="stvg, tubedetr, stcat or hcstvg."),
    out: Path = typer.Option(..., "--out", help="File to write (stcat: .pt for a torch file)."),
    annotations: Path = typer.Option(
        None,
        help="Annotations the predictions are for: refuse unknown sample ids and add each "
        "sample's qtype (TubeDETR's and STCAT's VidSTG evaluators read it).",
    ),
) -> None:
    """Convert predictions between stvg-predictions/1 and TubeDETR, STCAT or HC-STVG files.

    tubedetr: TubeDETR's "predictions" (one box per "VIDEO_FRAME" key) and "video_predictions"
    ("sted", end exclusive), bare or inside its log_stats.json.

    stcat: STCAT's test_results.pt (or the same object as JSON): boxes per item and frame, "sted"
    end exclusive.

    hcstvg: the official HC-STVG script's input, keyed by video name: st_frame, ed_frame
    (inclusive) and a frame -> box "bbox", frames 1-based.

    Sample ids, frame ids and pixel boxes carry over unchanged, except hcstvg's 1-based frames
    (stvg's are 0-based). stvg score reads all four formats directly.
    """
    from stvg.evaluate.peer_formats import convert

    predictions, source = convert(src, out, to, from_format, annotations)
    typer.echo(f"{len(predictions.by_id)} predictions: {source} -> {to}, {out}")
