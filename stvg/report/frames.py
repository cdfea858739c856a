"""The frames of a sample as image files next to the report page.

The boxes are not burnt into the pixels: the page draws them over each frame as SVG rectangles
in the frame's original pixel coordinates (so several runs can be shown, hidden and compared on
the same frames). Frames are chosen and read by the tube-strip code
(:func:`~stvg.evaluate.pictures.strip_frame_ids`: spread over the segment, about half inside the
GT tube; :func:`~stvg.evaluate.pictures.read_strip_frames`: a video decoded by
:mod:`stvg.data.video`, or a folder of numbered images).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stvg.atomic import atomic_path
from stvg.data.sample import Sample
from stvg.evaluate.pictures import read_strip_frames, strip_frame_ids

FRAMES_DIR = "frames"
JPEG_QUALITY = 88


def frame_file(prefix: str, frame_id: int) -> str:
    """The path of one frame image relative to the report folder (always ``/``-separated)."""
    return f"{FRAMES_DIR}/{prefix}/f{frame_id:06d}.jpg"


def write_sample_frames(
    sample: Sample,
    video: str | Path,
    out_dir: str | Path,
    prefix: str,
    num_frames: int,
    max_width: int,
) -> tuple[list[int], list[str]]:
    """Write ``num_frames`` frames of ``sample`` under ``out_dir``; ``(frame_ids, files)``.

    Each frame is a JPEG at most ``max_width`` px wide (never enlarged; aspect kept), named by
    :func:`frame_file` and written atomically. ``files`` are relative to ``out_dir``. Raises
    :class:`~stvg.errors.InputError` for a video that cannot be read.
    """
    from PIL import Image

    ids = strip_frame_ids(sample.segment, sample.tube, num_frames)
    if not ids:
        return [], []
    frames: np.ndarray = read_strip_frames(video, ids, sample)
    out_dir = Path(out_dir)
    files = []
    for frame_id, frame in zip(ids, frames, strict=True):
        image = Image.fromarray(frame)
        if image.width > max_width:
            height = max(1, round(image.height * max_width / image.width))
            image = image.resize((max_width, height), Image.Resampling.BILINEAR)
        name = frame_file(prefix, frame_id)
        with atomic_path(out_dir / name, fsync=False) as tmp:
            image.save(tmp, format="JPEG", quality=JPEG_QUALITY)
        files.append(name)
    return ids, files
