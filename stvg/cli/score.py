"""``stvg score``: stage three, the metric table of a predictions file."""

from __future__ import annotations

from pathlib import Path

import typer

from stvg.cli.app import app, command


@app.command("score")
@command
def score_command(
    annotations: Path = typer.Option(
        ..., help="Annotation file in any known format (detected from content)."
    ),
    predictions: Path = typer.Option(..., help="Predictions file (stvg-predictions/1)."),
    protocol: str = typer.Option(
        "tubedetr",
        help="tubedetr (TubeDETR/CSDVL tables), hcstvg (official HC-STVG script) or stcat.",
    ),
    format: str = typer.Option(
        None, "--format", help="Force the annotation format (vidstg, hcstvg, tubedetr-vidstg, ...)."
    ),
    boxes_dir: Path = typer.Option(None, help="Raw VidSTG only: the VidOR box annotation folder."),
    missing: str = typer.Option(
        "error", help="Samples without a prediction: error (list them) or zero (score them 0)."
    ),
    json_out: Path = typer.Option(
        None, "--json", help="Also write {group: {metric: fraction}} to this JSON file."
    ),
) -> None:
    """Score predictions with a published protocol; print the table (values in %).

    Rows: one per query type present, plus "all".
    Columns: m_tIoU, m_vIoU, vIoU@0.3, vIoU@0.5 (strict >), m_sIoU, count.
    The --json file holds the same numbers as fractions in [0, 1].
    """
    from stvg.data.sample import write_json_atomic
    from stvg.evaluate.score import format_table, score_files

    results, _ = score_files(
        annotations, predictions, protocol, format=format, boxes_dir=boxes_dir, missing=missing
    )
    if json_out is not None:
        write_json_atomic(json_out, results, indent=2)
    typer.echo(format_table(results, protocol))
