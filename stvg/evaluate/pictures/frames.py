"""Frames for the pictures: from a video file (decoded by :mod:`stvg.data.video`) or a folder of
images whose file name ends in the 0-based frame id (``000012.jpg``, ``img_12.png``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stvg.data.sample import Sample
from stvg.errors import InputError


def _frame_files(folder: Path) -> dict[int, Path]:
    files: dict[int, Path] = {}
    for path in folder.iterdir():
        match = re.search(r"(\d+)$", path.stem)
        if match and path.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".webp"):
            files.setdefault(int(match.group(1)), path)
    return files


def read_strip_frames(source: str | Path, frame_ids: Sequence[int], sample: Sample) -> np.ndarray:
    """Frames ``uint8 [N, H, W, 3]`` RGB from a video file or a folder of numbered images.

    Raises :class:`InputError` naming the source, the sample and ``video_path`` when the source
    is missing or cannot be decoded.
    """
    from PIL import Image

    from stvg.data.video import VideoError, open_video

    source = Path(source)
    where = {"file": source, "sample": sample.sample_id, "field": "video_path"}
    if not source.exists():
        raise InputError("the video (or frame folder) does not exist", **where)
    if source.is_dir():
        files = _frame_files(source)
        missing = [f for f in frame_ids if f not in files]
        if missing:
            raise InputError(
                f"the frame folder has no image for frame(s) {missing[:5]} (file names must end "
                "in the 0-based frame id)",
                **where,
            )
        return np.stack([np.asarray(Image.open(files[f]).convert("RGB")) for f in frame_ids])
    try:
        with open_video(source) as video:
            return video.get(list(frame_ids))
    except VideoError as error:
        raise InputError(
            f"cannot read the video: {error.reason}: {error.message}", **where
        ) from None
