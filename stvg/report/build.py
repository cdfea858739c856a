"""``stvg report``: gather, render, write ``OUT/index.html`` (frames in ``OUT/frames/``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from stvg.atomic import write_text_atomic
from stvg.errors import InputError
from stvg.report.gather import gather_report
from stvg.report.html import render_report


def build_report(
    annotations: str | Path,
    predictions: Sequence[str | Path],
    out_dir: str | Path,
    *,
    protocols: Sequence[str] = ("tubedetr",),
    group_by: str = "qtype",
    missing: str = "error",
    format: str | None = None,
    boxes_dir: str | Path | None = None,
    video_root: str | Path | None = None,
    num_frames: int = 6,
    tile_width: int = 240,
    labels: Sequence[str] | None = None,
    progress: bool = True,
) -> Path:
    """Write a static HTML report comparing one or more prediction files; return its path.

    ``OUT/index.html`` opens offline (inline CSS and JS, frames as JPEG files under
    ``OUT/frames/``). Arguments as :func:`stvg.report.gather.gather_report`; the page is
    described in :mod:`stvg.report.html`. The page is written last and atomically, so an
    interrupted run leaves the previous page (or none).
    """
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise InputError(
            "the output must be a folder, and this is a file", file=out_dir, field="--out"
        )
    data = gather_report(
        annotations,
        predictions,
        out_dir,
        protocols=protocols,
        group_by=group_by,
        missing=missing,
        format=format,
        boxes_dir=boxes_dir,
        video_root=video_root,
        num_frames=num_frames,
        tile_width=tile_width,
        labels=labels,
        progress=progress,
    )
    out = Path(out_dir) / "index.html"
    write_text_atomic(out, render_report(data))
    return out
