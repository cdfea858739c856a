"""Summary numbers of a set of annotations (what ``stvg data stats`` prints).

Lengths are in seconds, each span converted with its own sample's ``fps``:

* ``mean_video_seconds``: mean over distinct videos of the whole video, ``frame_count / fps``;
* ``mean_segment_seconds``: mean over queries of the segment, ``(end - start) / fps``. This is
  what the VidSTG paper calls the video duration (its videos are the trimmed segments);
* ``mean_tube_seconds``: mean over queries of the ground-truth tube, ``(end - start) / fps``.

With no samples the means are 0.0.
"""

from __future__ import annotations

from typing import Any

from stvg.data.sample import QTYPES, Annotations


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def annotation_stats(annotations: Annotations) -> dict[str, Any]:
    """Counts and mean lengths of ``annotations``, as a JSON-ready dict.

    Keys: ``dataset, split, format, videos, queries, by_qtype {declarative, interrogative}``
    (every known qtype, 0 when absent), ``mean_video_seconds, mean_segment_seconds,
    mean_tube_seconds`` (seconds; see the module docstring), ``has_boxes`` and ``boxes`` (the
    number of annotated boxes; 0 in sentence-only mode).
    """
    samples = annotations.samples
    by_qtype = {q: 0 for q in QTYPES}
    for s in samples:
        by_qtype[s.qtype] = by_qtype.get(s.qtype, 0) + 1
    videos: dict[str, float] = {}
    for s in samples:
        videos.setdefault(s.video_id, s.frame_count / s.fps)
    return {
        "dataset": annotations.dataset,
        "split": annotations.split,
        "format": annotations.source_format,
        "videos": len(videos),
        "queries": len(samples),
        "by_qtype": by_qtype,
        "mean_video_seconds": _mean(list(videos.values())),
        "mean_segment_seconds": _mean([(s.segment[1] - s.segment[0]) / s.fps for s in samples]),
        "mean_tube_seconds": _mean([(s.tube[1] - s.tube[0]) / s.fps for s in samples]),
        "has_boxes": annotations.has_boxes,
        "boxes": sum(len(s.boxes) for s in samples),
    }
