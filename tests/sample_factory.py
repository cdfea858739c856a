"""One ``Sample`` factory for the tests (importable from any test: pytest puts tests/ on the
path; also the ``make_sample`` fixture of tests/conftest.py). Each test passes the numbers it
asserts on; the defaults are a 100 x 100 px video ``v`` at 10 fps with segment [0, 10)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from stvg.data.sample import Sample


def make_sample(
    sample_id: str = "s",
    tube: tuple[int, int] = (0, 10),
    boxes: Mapping[int, Any] | None = None,
    *,
    box: Any = None,
    frames: Iterable[int] | None = None,
    **fields: Any,
) -> Sample:
    """A ``Sample`` with tube ``[start, end)`` in native frame ids.

    Boxes (xyxy pixels): ``boxes`` as given (frame -> box); else ``box`` on every frame of
    ``frames`` (default: every frame of the tube); else none. ``fields`` set any other
    ``Sample`` field; ``frame_count`` defaults to the segment's end, ``video_path`` to
    ``{video_id}.mp4``.
    """
    if boxes is None:
        boxes = (
            {} if box is None else {f: box for f in (range(*tube) if frames is None else frames)}
        )
    video_id = fields.pop("video_id", "v")
    segment = fields.pop("segment", (0, 10))
    values: dict[str, Any] = {
        "video_path": f"{video_id}.mp4",
        "fps": 10.0,
        "frame_count": segment[1],
        "width": 100,
        "height": 100,
        "caption": "a query",
        **fields,
    }
    return Sample(
        sample_id=sample_id, video_id=video_id, segment=segment, tube=tube, boxes=dict(boxes),
        **values,
    )  # fmt: skip
