"""``stvg predictions convert``: predictions to and from TubeDETR, STCAT and the HC-STVG script."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from stvg.cli.app import HELP, app, command

PeerFormat = Literal["stvg", "tubedetr", "stcat", "hcstvg"]  # stvg.evaluate.peer_formats.FORMATS

predictions_app = typer.Typer(
    help="Predictions: convert between stvg and other codebases' formats.",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings=HELP,
)
app.add_typer(predictions_app, name="predictions")


@predictions_app.callback()
def _predictions() -> None:
    """Predictions: convert between stvg and other codebases' formats."""


@predictions_app.command(
    "convert", short_help="Convert predictions to or from TubeDETR, STCAT, HC-STVG."
)
@command
def convert_command(
    src: Path = typer.Argument(..., help="Predictions file to read (JSON, or STCAT's .pt)."),
    from_format: PeerFormat | None = typer.Option(
        None, "--from", help="The format of SRC; detected from content if omitted."
    ),
    to: PeerFormat = typer.Option(..., "--to", help="The format to write."),
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
