"""``stvg report``: a static HTML report comparing prediction files."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

import typer

from stvg.cli.app import app, command
from stvg.data.formats import FORMATS


class Protocol(StrEnum):  # an Enum: typer takes no list of Literal
    tubedetr = "tubedetr"
    hcstvg = "hcstvg"
    stcat = "stcat"


Missing = Literal["error", "zero"]
Format = Literal[FORMATS]  # type: ignore[valid-type]


@app.command("report", short_help="A static HTML report comparing prediction files.")
@command
def report_command(
    annotations: Path = typer.Option(
        ..., help="Annotation file in any known format (detected from content)."
    ),
    predictions: list[Path] = typer.Option(
        ...,
        "--predictions",
        help="Predictions file (stvg-predictions/1); repeat to compare runs side by side.",
    ),
    out: Path = typer.Option(..., "--out", help="Output folder: index.html and frames/."),
    protocol: list[Protocol] = typer.Option(
        [Protocol.tubedetr],
        "--protocol",
        help="tubedetr, hcstvg or stcat; repeat for one score table each (the sample list "
        "uses the first).",
    ),
    group_by: str = typer.Option(
        "qtype",
        "--group-by",
        help="Rows of the score tables: qtype or extra.KEY of the annotations (extra.kind).",
    ),
    label: list[str] = typer.Option(
        None,
        "--label",
        help="Name of each run, in the order of --predictions (default: from the file names).",
    ),
    frames: int = typer.Option(
        6, "--frames", min=0, help="Frames shown per sample (0: timelines only)."
    ),
    tile_width: int = typer.Option(240, min=16, help="Largest width of a frame image, px."),
    video_root: Path = typer.Option(
        None,
        help="Folder the annotation's video paths are relative to (default: the annotation "
        "file's folder). A path may also name a folder of frame images.",
    ),
    missing: Missing = typer.Option(
        "error", help="Samples without a prediction: error (list them) or zero (score them 0)."
    ),
    format: Format | None = typer.Option(
        None, "--format", help="Force the annotation format (detected from content by default)."
    ),
    boxes_dir: Path = typer.Option(None, help="Raw VidSTG only: the VidOR box annotation folder."),
) -> None:
    """Write a static HTML report that opens offline (no server).

    It holds the score table per group and protocol (the numbers of stvg score), a sortable
    list of samples with their vIoU, tIoU and sIoU per run, and per sample its frames with the
    GT (green) and predicted boxes and a timeline of the spans. A sample whose video is missing
    keeps its timeline. Prints the path of OUT/index.html.
    """
    from stvg.report import build_report

    path = build_report(
        annotations,
        predictions,
        out,
        protocols=[p.value for p in protocol],
        group_by=group_by,
        missing=missing,
        format=format,
        boxes_dir=boxes_dir,
        video_root=video_root,
        num_frames=frames,
        tile_width=tile_width,
        labels=label or None,
    )
    typer.echo(str(path))
