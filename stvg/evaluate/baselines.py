"""Trivial baselines, scored by the same scorer as every model, to say what a number is worth.

* ``center``: the whole segment as the span and, on every frame, the centered box covering the
  middle half of the frame in each direction: ``[W/4, H/4, 3W/4, 3H/4]``.
* ``mean``: the training set's mean span and mean box. The span is the mean of
  ``(tube - segment.start) / segment.length`` over training queries, applied to each segment
  (start rounded down, end rounded up, at least one frame); the box is the mean normalized
  ``[x1/W, y1/H, x2/W, y2/H]`` over every annotated training box, scaled to each video.

Both write a box on every native frame of the segment, so every protocol (``stcat`` needs every
GT frame) can score them.
"""

from __future__ import annotations

import math

import numpy as np

from stvg.data.sample import Annotations, Sample

Prediction = dict[str, object]


def _tube(sample: Sample, span: tuple[int, int], box_norm: tuple[float, ...]) -> Prediction:
    s0, s1 = sample.segment
    w, h = sample.width, sample.height
    box = [box_norm[0] * w, box_norm[1] * h, box_norm[2] * w, box_norm[3] * h]
    return {"tube": [int(span[0]), int(span[1])], "boxes": {str(f): box for f in range(s0, s1)}}


def center_baseline(test: Annotations) -> dict[str, Prediction]:
    """Whole segment, centered half-size box on every frame."""
    return {s.sample_id: _tube(s, s.segment, (0.25, 0.25, 0.75, 0.75)) for s in test.samples}


def mean_statistics(train: Annotations) -> tuple[tuple[float, float], tuple[float, ...]]:
    """Mean relative span ``(start, end)`` and mean normalized xyxy box over ``train``."""
    if not train.samples:
        raise ValueError("the training annotations hold no samples")
    rel = np.array(
        [
            (
                (s.tube[0] - s.segment[0]) / (s.segment[1] - s.segment[0]),
                (s.tube[1] - s.segment[0]) / (s.segment[1] - s.segment[0]),
            )
            for s in train.samples
        ]
    )
    boxes = [
        (b[0] / s.width, b[1] / s.height, b[2] / s.width, b[3] / s.height)
        for s in train.samples
        for b in s.boxes.values()
    ]
    mean_box = tuple(np.mean(boxes, axis=0).tolist()) if boxes else (0.25, 0.25, 0.75, 0.75)
    return (float(rel[:, 0].mean()), float(rel[:, 1].mean())), mean_box


def mean_baseline(test: Annotations, train: Annotations) -> dict[str, Prediction]:
    """The training set's mean span and mean box, on every test query."""
    (r0, r1), box = mean_statistics(train)
    out = {}
    for s in test.samples:
        s0, s1 = s.segment
        length = s1 - s0
        start = min(s1 - 1, s0 + math.floor(r0 * length))
        end = max(start + 1, min(s1, s0 + math.ceil(r1 * length)))
        out[s.sample_id] = _tube(s, (start, end), box)
    return out


BASELINES = ("center", "mean")
