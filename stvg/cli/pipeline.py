"""``stvg pipeline``: the whole benchmark as resumable steps."""

from __future__ import annotations

from pathlib import Path

import typer

from stvg.cli.app import app, command


@app.command("pipeline")
@command
def pipeline_command(
    dataset: str = typer.Option(
        "synthetic", help="synthetic (embedded), vidstg, hcstvg-v1/v2, normalized."
    ),
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
    videos: int = typer.Option(None, help="Synthetic: number of videos (default 240)."),
    seed: int = typer.Option(None, help="Synthetic: generator seed (default 0)."),
    set_: list[str] = typer.Option([], "--set", help="Training setting key=value (repeat)."),
    split: str = typer.Option("test", help="Split to predict and score."),
    protocol: str = typer.Option("tubedetr", help="Scoring protocol."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    from_: str = typer.Option(
        None, "--from", help="Rerun from this step: synth, extract, train, predict, score."
    ),
    force: bool = typer.Option(False, help="Rerun every step."),
) -> None:
    """Chain synth, extract, train, predict and score; a rerun skips steps whose inputs are unchanged.

    Prints the scores per synthetic kind (or query type) next to two trivial baselines
    computed by the same scorer.
    """
    from stvg.pipelines.chain import PipelineConfig, format_report, run_pipeline

    synth = {k: v for k, v in {"videos": videos, "seed": seed}.items() if v is not None}
    cfg = PipelineConfig(
        dataset=dataset,
        out=out,
        data_root=data_root,
        annotations=annotations,
        boxes_dir=boxes_dir,
        synth=synth,
        train=list(set_),
        split=split,
        protocol=protocol,
        device=device,
    )
    results, report = run_pipeline(cfg, start=from_, force=force)
    for r in results:
        typer.echo(f"step {r.name:<8} {'ran' if r.ran else 'skipped (up to date)'}")
    typer.echo(format_report(report))
    typer.echo(f"metrics: {out / 'metrics.json'}; report: {out / 'report.json'}")
