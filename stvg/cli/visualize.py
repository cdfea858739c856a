"""``stvg visualize`` (a tube on a strip of frames, the s2d attention) and ``stvg plot`` (curves)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from stvg.cli.app import app, command
from stvg.data.formats import FORMATS
from stvg.device import DEVICE_HELP

Format = Literal[FORMATS]  # type: ignore[valid-type]


@app.command("visualize", short_help="Draw one sample's boxes, spans and attention.")
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
    format: Format | None = typer.Option(
        None, "--format", help="Force the annotation format (detected from content by default)."
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
    device: str = typer.Option("auto", help="With --attention: " + DEVICE_HELP),
) -> None:
    """Draw one sample: its frames with the boxes and a timeline of the spans.

    The GT box is green and the predicted box yellow; the timeline shows both spans with their
    tIoU. Optionally a GIF and the attention maps (the paper's Figure 5). Writes
    OUT/<sample>.png (.gif, -attention.png) and prints the paths.
    """
    from stvg.evaluate.pictures import visualize_sample

    if attention is not None:
        from stvg.device import resolve_device

        device = resolve_device(device)

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
    """Plot a run's training curves against the step.

    Curves: the loss and its terms, the learning rate, validation m_vIoU / m_tIoU / m_sIoU. A
    last line cut by a running trainer is skipped.
    """
    from stvg.evaluate.curves import plot_metrics

    typer.echo(str(plot_metrics(run, out)))
