"""Writing H.264 mp4 files: the synthetic benchmark's videos and the test suite's.

One function, :func:`write_mp4`. The encoding is deterministic (one encoder thread, fixed
options), so the same frames give the same bytes, and the file appears whole or not at all
(written to a temporary name and renamed into place by :func:`stvg.atomic.atomic_path`).
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from itertools import chain
from pathlib import Path

import numpy as np

from stvg.atomic import atomic_path


def write_mp4(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float,
    *,
    crf: int = 12,
    preset: str = "medium",
    keyframe_interval: int | None = None,
    b_frames: int = 0,
    faststart: bool = False,
    fsync: bool = False,
) -> Path:
    """Encode RGB ``frames`` as an H.264 (libx264, yuv420p) mp4 at ``path``; returns ``path``.

    ``frames`` yields ``uint8 [H, W, 3]`` arrays of one size, ``W`` and ``H`` even (yuv420p); it
    may be a generator (frames are encoded as they come). Frame ``i`` gets ``pts = i`` on a time
    base of ``1 / fps`` (``fps`` as a fraction with denominator <= 1001, so 29.97 stays exact).
    ``crf`` is the constant rate factor (0 lossless .. 51; 12 is visually lossless),
    ``keyframe_interval`` the GOP length in frames (default: one keyframe per second,
    ``round(fps)``), ``b_frames`` the number of B-frames between references, ``faststart`` moves
    the index to the front of the file. ``fsync`` flushes the file to disk before the rename.
    Raises ``ValueError`` for no frames or a frame that is not ``uint8 [H, W, 3]``.
    """
    import av

    path = Path(path)
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise ValueError(f"{path}: no frames to write")
    if first.dtype != np.uint8 or first.ndim != 3 or first.shape[2] != 3:
        raise ValueError(
            f"{path}: expected uint8 [H, W, 3] frames, got {first.dtype} {first.shape}"
        )
    height, width = first.shape[:2]
    gop = keyframe_interval if keyframe_interval is not None else max(1, round(fps))
    options = {"movflags": "+faststart"} if faststart else {}
    with (
        atomic_path(path, fsync=fsync) as tmp,
        av.open(str(tmp), "w", format="mp4", options=options) as container,
    ):
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = {
            "crf": str(crf),
            "preset": preset,
            "g": str(gop),
            "bf": str(b_frames),
            "threads": "1",
        }
        for i, array in enumerate(chain([first], iterator)):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
