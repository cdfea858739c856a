"""The ``Sample`` record and the normalized annotation format ``stvg-annotations/1``.

A ``Sample`` is one query (sentence) on one video, in stvg's conventions (docs/design.md section 3):

* ``segment`` and ``tube`` are half-open ``[start, end)`` spans of 0-based native frame ids;
  ``segment`` is the part of the video the query is about (VidSTG's ``used_segment``; the whole
  video for HC-STVG), ``tube`` the ground-truth span of the referred object inside it;
* ``boxes`` maps a frame id to ``(x1, y1, x2, y2)`` floats in pixels of the original frame;
  it holds one box per annotated frame of the tube (empty in sentence-only mode);
* ``fps`` is the native frame rate, ``frame_count`` the number of decoded frames,
  ``width`` / ``height`` the original frame size in pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stvg.atomic import write_json_atomic
from stvg.data.record import Record
from stvg.errors import InputError

FORMAT = "stvg-annotations/1"
QTYPES = ("declarative", "interrogative")

Box = tuple[float, float, float, float]
Span = tuple[int, int]


@dataclass
class Sample:
    """One query on one video; see the module docstring for units and conventions."""

    sample_id: str
    video_id: str
    video_path: str
    fps: float
    frame_count: int
    width: int
    height: int
    segment: Span
    tube: Span
    boxes: dict[int, Box]
    caption: str
    qtype: str = "declarative"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The record as written in ``stvg-annotations/1`` (frame keys as strings, sorted)."""
        return {
            "sample_id": self.sample_id,
            "video_id": self.video_id,
            "video_path": self.video_path,
            "fps": self.fps,
            "frame_count": self.frame_count,
            "width": self.width,
            "height": self.height,
            "segment": [int(self.segment[0]), int(self.segment[1])],
            "tube": [int(self.tube[0]), int(self.tube[1])],
            "boxes": {str(f): [float(v) for v in self.boxes[f]] for f in sorted(self.boxes)},
            "caption": self.caption,
            "qtype": self.qtype,
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, record: Any, *, file: str | Path | None = None, index: int = 0) -> Sample:
        """Parse one normalized record, checking types; raises :class:`InputError`."""
        sid = record.get("sample_id") if isinstance(record, dict) else None
        if sid is None or isinstance(sid, (dict, list)):
            sid = index  # no usable id: name the record by its position in the file
        rec = Record(record, file=file, sample=sid, what="a sample (a JSON object)")

        def span(key: str) -> Span:
            value = rec.list(key, what="[start, end] frame ids")
            if len(value) != 2 or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value
            ):
                raise rec.fail(f"expected two integer frame ids, got {value!r:.60}", key)
            return (int(value[0]), int(value[1]))

        raw_boxes = rec.sub("boxes", what="an object of frame id -> [x1, y1, x2, y2]")
        boxes: dict[int, Box] = {}
        for key, box in raw_boxes.data.items():
            try:
                frame = int(key)
            except (TypeError, ValueError):
                raise raw_boxes.fail(f"frame key {key!r} is not an integer") from None
            boxes[frame] = parse_box(box, **raw_boxes.at(key))
        extra = rec.get("extra", {})
        if not isinstance(extra, dict):
            raise rec.fail("expected an object", "extra")
        sample = cls(
            sample_id=rec.id("sample_id", what="a string"),
            video_id=rec.id("video_id", what="a string"),
            video_path=rec.str("video_path", what="a path string"),
            fps=rec.float("fps"),
            frame_count=rec.int("frame_count"),
            width=rec.int("width"),
            height=rec.int("height"),
            segment=span("segment"),
            tube=span("tube"),
            boxes=boxes,
            caption=rec.str("caption"),
            qtype=rec.str("qtype"),
            extra=extra,
        )
        sample.validate(file=file)
        return sample

    def validate(self, *, file: str | Path | None = None) -> None:
        """Check the record against the conventions; raises :class:`InputError` on the first fault.

        Checked: a positive finite fps; positive sizes; ``0 <= segment.start < segment.end <=
        frame_count``; the tube non-empty and inside the segment; every box finite with
        ``x1 <= x2`` and ``y1 <= y2`` on a frame inside the tube; a non-empty caption; a known qtype.
        """
        sid = self.sample_id

        def fail(message: str, fld: str) -> InputError:
            return InputError(message, file=file, sample=sid, field=fld)

        if not (math.isfinite(self.fps) and self.fps > 0):
            raise fail(f"fps must be a positive number, got {self.fps}", "fps")
        for name in ("frame_count", "width", "height"):
            if getattr(self, name) <= 0:
                raise fail(f"must be positive, got {getattr(self, name)}", name)
        s0, s1 = self.segment
        if not (0 <= s0 < s1 <= self.frame_count):
            raise fail(
                f"segment [{s0}, {s1}) must satisfy 0 <= start < end <= frame_count ({self.frame_count})",
                "segment",
            )
        t0, t1 = self.tube
        if not (s0 <= t0 < t1 <= s1):
            raise fail(
                f"tube [{t0}, {t1}) must be non-empty and inside the segment [{s0}, {s1})", "tube"
            )
        for frame, box in self.boxes.items():
            if not (t0 <= frame < t1):
                raise fail(
                    f"box on frame {frame} lies outside the tube [{t0}, {t1})", f"boxes.{frame}"
                )
            check_box(box, file=file, sample=sid, field=f"boxes.{frame}")
        if not self.caption.strip():
            raise fail("the caption is empty", "caption")
        if self.qtype not in QTYPES:
            raise fail(f"qtype must be one of {', '.join(QTYPES)}, got {self.qtype!r}", "qtype")


def parse_box(value: Any, *, file: Any = None, sample: Any = None, field: str | None = None) -> Box:
    """``[x1, y1, x2, y2]`` from JSON, checked finite and ordered; raises :class:`InputError`."""
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise InputError(
            f"expected [x1, y1, x2, y2], got {value!r:.60}", file=file, sample=sample, field=field
        )
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise InputError(
            f"box coordinates must be numbers, got {value!r:.60}",
            file=file,
            sample=sample,
            field=field,
        )
    box = (float(value[0]), float(value[1]), float(value[2]), float(value[3]))
    check_box(box, file=file, sample=sample, field=field)
    return box


def parse_xywh(
    value: Any, *, file: Any = None, sample: Any = None, field: str | None = None
) -> Box:
    """An ``[x, y, w, h]`` box from JSON -> ``(x, y, x + w, y + h)``, checked finite and ordered;
    raises :class:`InputError`. (VidOR via TubeDETR and HC-STVG store boxes this way.)"""
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 4
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        raise InputError(
            f"expected an [x, y, w, h] box, got {value!r:.60}",
            file=file,
            sample=sample,
            field=field,
        )
    x, y, w, h = value
    box = (x, y, x + w, y + h)
    check_box(box, file=file, sample=sample, field=field)
    return box


def check_box(box: Box, *, file: Any = None, sample: Any = None, field: str | None = None) -> None:
    """Refuse non-finite boxes and boxes with ``x2 < x1`` or ``y2 < y1`` (zero area is allowed)."""
    if not all(math.isfinite(v) for v in box):
        raise InputError(
            f"box {list(box)} has a non-finite coordinate", file=file, sample=sample, field=field
        )
    if box[2] < box[0] or box[3] < box[1]:
        raise InputError(
            f"box {list(box)} has x2 < x1 or y2 < y1 (boxes are [x1, y1, x2, y2] in pixels)",
            file=file,
            sample=sample,
            field=field,
        )


@dataclass
class Annotations:
    """A set of samples read from one source.

    ``has_boxes`` is False in sentence-only mode (VidSTG sentences without VidOR boxes): spans are
    known but ``boxes`` are empty, and spatial metrics cannot be computed.
    """

    samples: list[Sample]
    dataset: str = "custom"
    split: str = "test"
    source_format: str = "normalized"
    has_boxes: bool = True
    path: str | None = None

    def by_id(self) -> dict[str, Sample]:
        return {s.sample_id: s for s in self.samples}

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "dataset": self.dataset,
            "split": self.split,
            "has_boxes": self.has_boxes,
            "samples": [s.to_json() for s in self.samples],
        }


def split_from_name(file: str | Path | None) -> str:
    """``train``, ``val`` or ``test`` when the file name starts with it (``valv2_proc.json``),
    else ``test``: the split of a raw annotation file that does not say."""
    name = Path(file).name.lower() if file is not None else ""
    for split in ("train", "val", "test"):
        if name.startswith(split):
            return split
    return "test"


def check_unique_ids(samples: Iterable[Sample], *, file: str | Path | None = None) -> None:
    """Refuse two samples with the same ``sample_id`` (the second would silently shadow the first)."""
    seen: set[str] = set()
    for sample in samples:
        if sample.sample_id in seen:
            raise InputError(
                "this sample_id occurs more than once",
                file=file,
                sample=sample.sample_id,
                field="sample_id",
            )
        seen.add(sample.sample_id)


def read_normalized(data: Any, *, file: str | Path | None = None) -> Annotations:
    """Parse a loaded ``stvg-annotations/1`` document."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"not a {FORMAT} document", file=file, field="format")
    records = data.get("samples")
    if not isinstance(records, list):
        raise InputError("expected a list of samples", file=file, field="samples")
    samples = [Sample.from_json(r, file=file, index=i) for i, r in enumerate(records)]
    check_unique_ids(samples, file=file)
    return Annotations(
        samples=samples,
        dataset=str(data.get("dataset", "custom")),
        split=str(data.get("split", "test")),
        source_format="normalized",
        has_boxes=bool(data.get("has_boxes", True)),
        path=None if file is None else str(file),
    )


def write_normalized(annotations: Annotations, path: str | Path) -> None:
    """Write ``stvg-annotations/1`` atomically; the same samples give the same bytes."""
    write_json_atomic(path, annotations.to_json(), indent=1)
