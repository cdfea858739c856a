"""``stvg visualize`` (a tube on a strip of frames, the s2d attention) and ``stvg plot`` (curves)."""

from __future__ import annotations

from pathlib import Path

import typer

from stvg.cli.app import app, command


@app.command("visualize")
@command
def visualize_command(
    annotations: Path = typer.Option(
        ..., help="Annotation file in any known format (detected from content)."
    ),
    sample: str = typer.Option(..., "--sample", help="The sample_id to draw."),
    out: Path = typer.Option(..., "--out", help="Output folder (created if needed)."),
    predictions: Path = typer.Option(
        None, help="Predictions file (stvg-predictions/1); without it only the GT is drawn."
    ),
    frames: int = typer.Option(8, "--frames", min=1, help="Frames on the strip."),
    gif: bool = typer.Option(False, "--gif", help="Also write an animated GIF of the segment."),
    video_root: Path = typer.Option(
        None,
        help="Folder the annotation's video paths are relative to (default: the annotation "
        "file's folder). A path may also name a folder of frame images.",
    ),
    format: str = typer.Option(
        None, "--format", help="Force the annotation format (vidstg, hcstvg, tubedetr-vidstg, ...)."
    ),
    boxes_dir: Path = typer.Option(None, help="Raw VidSTG only: the VidOR box annotation folder."),
    attention: Path = typer.Option(
        None, "--attention", help="Training run: also draw its static-to-dynamic attention maps."
    ),
    features: Path = typer.Option(None, help="With --attention: the feature store."),
    split: str = typer.Option("test", help="With --attention: the store split holding the sample."),
    layer: int = typer.Option(
        None, help="With --attention: one layer (0-based) instead of the mean over layers."
    ),
    device: str = typer.Option("cpu", help="With --attention: cpu or cuda."),
) -> None:
    """Draw one sample: frames with the GT box (green) and the predicted box (yellow), and a
    timeline of both spans with their tIoU; optionally a GIF and the attention maps (paper's
    Figure 5). Writes OUT/<sample>.png (.gif, -attention.png) and prints the paths."""
    from stvg.evaluate.pictures import visualize_sample

    paths = visualize_sample(
        annotations,
        sample,
        out,
        predictions=predictions,
        num_frames=frames,
        gif=gif,
        video_root=video_root,
        format=format,
        boxes_dir=boxes_dir,
        attention_run=attention,
        features=features,
        split=split,
        layer=layer,
        device=device,
    )
    typer.echo("\n".join(str(p) for p in paths))


@app.command("plot")
@command
def plot_command(
    run: Path = typer.Argument(..., help="Training run folder (holds metrics.jsonl)."),
    out: Path = typer.Option(None, "--out", help="PNG to write (default RUN/metrics.png)."),
) -> None:
    """Plot a run's training curves (loss and its terms, learning rate, validation m_vIoU /
    m_tIoU / m_sIoU) against the step; a last line cut by a running trainer is skipped."""
    from stvg.evaluate.curves import plot_metrics

    typer.echo(str(plot_metrics(run, out)))
