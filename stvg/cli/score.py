"""``stvg score``: stage three, the metric table of a predictions file.

Imports nothing heavy at module level: scoring a predictions file needs numpy only (torch is
imported for ``--run`` alone), so it works on the base install.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import typer

from stvg.cli.app import app, command
from stvg.data.formats import FORMATS
from stvg.device import DEVICE_HELP

Protocol = Literal["tubedetr", "hcstvg", "stcat"]
Missing = Literal["error", "zero"]
Format = Literal[FORMATS]  # type: ignore[valid-type]


@app.command("score", short_help="Stage three: the metric table of predictions.")
@command
def score_command(
    annotations: Path = typer.Option(
        None, help="Annotation file in any known format (detected from content)."
    ),
    predictions: Path = typer.Option(
        None, help="Predictions file: stvg-predictions/1, or TubeDETR, STCAT, HC-STVG (detected)."
    ),
    run: list[Path] = typer.Option(
        None,
        help="Instead of --predictions: predict with this training run, then score (repeat "
        "for an ensemble, as stvg predict).",
    ),
    features: Path = typer.Option(None, help="With --run: the feature store."),
    split: str = typer.Option(
        "test", help="With --run: the split (scored on its own annotations)."
    ),
    device: str = typer.Option("auto", help="With --run: " + DEVICE_HELP),
    protocol: Protocol = typer.Option(
        "tubedetr",
        help="tubedetr (TubeDETR/CSDVL tables), hcstvg (official HC-STVG script) or stcat "
        "(STCAT / CG-STVG).",
    ),
    format: Format | None = typer.Option(
        None, "--format", help="Force the annotation format (detected from content by default)."
    ),
    boxes_dir: Path = typer.Option(None, help="Raw VidSTG only: the VidOR box annotation folder."),
    missing: Missing = typer.Option(
        "error", help="Samples without a prediction: error (list them) or zero (score them 0)."
    ),
    group_by: str = typer.Option(
        "qtype",
        "--group-by",
        help="Rows: qtype (declarative / interrogative) or extra.KEY of the annotations "
        "(extra.kind: the synthetic benchmark's kinds).",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print {group: {metric: fraction}} as JSON instead of the table."
    ),
    json_out: Path = typer.Option(
        None, "--json-out", help="Also write {group: {metric: fraction}} to this JSON file."
    ),
) -> None:
    """Score predictions with a published protocol; print the table (values in %).

    Either a predictions file against annotations, or --run RUN --features DIR --split S: the
    run's tubes for that split, scored against the split's own annotations (stage three).

    Rows: one per query type present (or per value of --group-by extra.KEY), plus "all".
    Columns: m_tIoU, m_vIoU, vIoU@0.3, vIoU@0.5 (strict >), m_sIoU, count. The JSON form
    (--json, --json-out) holds the same numbers as fractions in [0, 1].
    """
    from stvg.atomic import write_json_atomic
    from stvg.errors import InputError
    from stvg.evaluate.score import check_group_by, format_table, score, score_files

    check_group_by(group_by)  # before a --run spends minutes predicting
    if run:
        from stvg.device import resolve_device
        from stvg.evaluate.predict import predict_split

        if features is None:
            raise InputError(
                "--run needs --features DIR (the store to predict from)", field="--features"
            )
        preds, split_annotations = predict_split(
            run, features, split, device=resolve_device(device)
        )
        results = score(split_annotations, preds, protocol, missing=missing, group_by=group_by)
    elif annotations is None or predictions is None:
        raise InputError(
            "give --annotations and --predictions, or --run with --features and --split",
            field="--predictions",
        )
    else:
        results, _ = score_files(
            annotations,
            predictions,
            protocol,
            format=format,
            boxes_dir=boxes_dir,
            missing=missing,
            group_by=group_by,
        )
    if json_out is not None:
        write_json_atomic(json_out, results, indent=2)
    typer.echo(json.dumps(results) if as_json else format_table(results, protocol))
