"""``stvg data stats`` and ``stvg data convert``: inspect and normalize annotation files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import typer

from stvg.cli.app import command, data_app
from stvg.data.convert import convert
from stvg.data.formats import FORMATS, load_annotations
from stvg.data.stats import annotation_stats

Format = Literal[FORMATS]  # type: ignore[valid-type]
_FORMAT_HELP = "Force the annotation format; detected from content by default."
_BOXES_HELP = "VidOR box directory (raw VidSTG only); without it VidSTG is sentence-only."


def format_stats(stats: dict[str, Any]) -> str:
    """The stats dict as a small aligned table (what ``stvg data stats`` prints)."""
    rows = [
        ("dataset", f"{stats['dataset']} ({stats['format']}, split {stats['split']})"),
        ("videos", f"{stats['videos']:,}"),
        ("queries", f"{stats['queries']:,}"),
    ]
    rows += [(f"  {q}", f"{n:,}") for q, n in stats["by_qtype"].items()]
    rows += [
        ("mean video length", f"{stats['mean_video_seconds']:.2f} s"),
        ("mean segment length", f"{stats['mean_segment_seconds']:.2f} s"),
        ("mean tube length", f"{stats['mean_tube_seconds']:.2f} s"),
        ("boxes", f"{stats['boxes']:,}" if stats["has_boxes"] else "none (sentence-only)"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


@data_app.command("stats", short_help="Count videos and queries; mean lengths.")
@command
def stats_command(
    annotations: Path = typer.Option(..., "--annotations", help="Annotation file, any format."),
    format: Format | None = typer.Option(None, "--format", help=_FORMAT_HELP),
    boxes_dir: Path | None = typer.Option(None, "--boxes-dir", help=_BOXES_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Count videos and queries (per qtype) and give mean video, segment and tube lengths."""
    stats = annotation_stats(load_annotations(annotations, format, boxes_dir=boxes_dir))
    typer.echo(json.dumps(stats) if as_json else format_stats(stats))


@data_app.command("convert", short_help="Write annotations as stvg-annotations/1.")
@command
def convert_command(
    src: Path = typer.Argument(..., help="Annotation file to convert, any known format."),
    out: Path = typer.Option(..., "--out", help="Where to write stvg-annotations/1 JSON."),
    format: Format | None = typer.Option(None, "--format", help=_FORMAT_HELP),
    boxes_dir: Path | None = typer.Option(None, "--boxes-dir", help=_BOXES_HELP),
) -> None:
    """Write annotations in stvg's normalized format (stvg-annotations/1)."""
    result = convert(src, out, format=format, boxes_dir=boxes_dir)
    videos = len({s.video_id for s in result.samples})
    note = "" if result.has_boxes else " (sentence-only: no boxes)"
    typer.echo(f"wrote {len(result.samples)} samples on {videos} videos to {out}{note}")
