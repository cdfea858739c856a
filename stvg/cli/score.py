"""``stvg score``: stage three, the metric table of a predictions file."""

from __future__ import annotations

from pathlib import Path

import typer

from stvg.cli.app import app, command


@app.command("score")
@command
def score_command(
    annotations: Path = typer.Option(
        None, help="Annotation file in any known format (detected from content)."
    ),
    predictions: Path = typer.Option(
        None, help="Predictions file: stvg-predictions/1, or TubeDETR, STCAT, HC-STVG (detected)."
    ),
    run: Path = typer.Option(
        None, help="Instead of --predictions: predict with this training run, then score."
    ),
    features: Path = typer.Option(None, help="With --run: the feature store."),
    split: str = typer.Option(
        "test", help="With --run: the split (scored on its own annotations)."
    ),
    device: str = typer.Option("cpu", help="With --run: cpu or cuda."),
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
    group_by: str = typer.Option(
        "qtype",
        "--group-by",
        help="Rows: qtype (declarative / interrogative) or extra.KEY of the annotations "
        "(extra.kind: the synthetic benchmark's kinds).",
    ),
    json_out: Path = typer.Option(
        None, "--json", help="Also write {group: {metric: fraction}} to this JSON file."
    ),
) -> None:
    """Score predictions with a published protocol; print the table (values in %).

    Either a predictions file against annotations, or --run RUN --features DIR --split S: the
    run's tubes for that split, scored against the split's own annotations (stage three).

    Rows: one per query type present (or per value of --group-by extra.KEY), plus "all".
    Columns: m_tIoU, m_vIoU, vIoU@0.3, vIoU@0.5 (strict >), m_sIoU, count.
    The --json file holds the same numbers as fractions in [0, 1].
    """
    from stvg.atomic import write_json_atomic
    from stvg.errors import InputError
    from stvg.evaluate.score import check_group_by, format_table, score, score_files

    check_group_by(group_by)  # before a --run spends minutes predicting
    if run is not None:
        from stvg.evaluate.predict import predict_split

        if features is None:
            raise InputError(
                "--run needs --features DIR (the store to predict from)", field="--features"
            )
        preds, split_annotations = predict_split(run, features, split, device=device)
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
    typer.echo(format_table(results, protocol))
