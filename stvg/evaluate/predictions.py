"""Read, check and write predictions in ``stvg-predictions/1`` (docs/design.md section 4).

A document maps each ``sample_id`` to one predicted tube::

    {"format": "stvg-predictions/1",
     "predictions": {"s0001": {"tube": [118, 255],
                               "boxes": {"118": [11.0, 19.0, 61.0, 88.0], ...}}}}

``tube`` is the predicted half-open span ``[start, end)`` of 0-based native frame ids
(``0 <= start <= end``; an empty span is allowed and overlaps nothing). ``boxes`` maps frame ids
(JSON keys, decimal strings) to ``[x1, y1, x2, y2]`` in pixels of the original frame; it may cover
frames outside the predicted span (the ``tubedetr`` protocol's m_sIoU uses boxes on ground-truth
frames whatever the span). Sample ids are the annotation's: ``str(video_id)`` for TubeDETR files,
the video file name key for raw HC-STVG.

A record may carry ``extra``: per-sample fields of another codebase's format that stvg keeps
through a conversion (e.g. TubeDETR's ``qtype``); scoring ignores it. A document may carry
``provenance`` (see :func:`make_provenance`): what wrote it (run folder name, split, stvg version,
which frames hold boxes and how they were interpolated, UTC date), or the file it was converted
from. Both are optional, so files written before they existed read as before.

Files of TubeDETR, STCAT and the official HC-STVG script are read and written by
:mod:`stvg.evaluate.peer_formats` (``stvg predictions convert``); :func:`read_predictions` reads
them too, converting on the fly, so ``stvg score`` scores them directly.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stvg.atomic import write_json_atomic
from stvg.data.sample import Box, Span, parse_box
from stvg.errors import InputError

FORMAT = "stvg-predictions/1"


@dataclass
class Prediction:
    """One predicted tube: a half-open span of frame ids and ``{frame: xyxy box}`` in pixels."""

    tube: Span
    boxes: dict[int, Box] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tube": [int(self.tube[0]), int(self.tube[1])],
            "boxes": {str(f): [float(v) for v in self.boxes[f]] for f in sorted(self.boxes)},
        }
        if self.extra:
            out["extra"] = dict(self.extra)
        return out


@dataclass
class Predictions:
    """Predictions keyed by ``sample_id``; ``path`` is the file they came from (for messages),
    ``provenance`` what wrote them (None for files written before stvg recorded it)."""

    by_id: dict[str, Prediction]
    path: str | None = None
    provenance: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": FORMAT}
        if self.provenance is not None:
            out["provenance"] = dict(self.provenance)
        out["predictions"] = {sid: p.to_json() for sid, p in self.by_id.items()}
        return out


def make_provenance(**fields: Any) -> dict[str, Any]:
    """A ``provenance`` record: ``fields`` (None values dropped), the stvg version and the date.

    Callers pass what they know, e.g. ``run`` (the run folder's name), ``split``, ``frames``
    (which frames hold a box), ``boxes`` (how they were interpolated), or ``converted_from`` and
    ``source`` for an imported file. ``date`` is UTC, ISO 8601 to the second.
    """
    from stvg import __version__

    out = {key: value for key, value in fields.items() if value is not None}
    out["stvg_version"] = __version__
    out["date"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_prediction(record: Any, *, file: Any = None, sample: str | None = None) -> Prediction:
    """One ``{"tube": [s, e], "boxes": {...}}`` record; raises :class:`InputError`."""
    if not isinstance(record, dict):
        raise InputError(
            f"a prediction must be an object with 'tube' and 'boxes', got {record!r:.60}",
            file=file,
            sample=sample,
        )
    if "tube" not in record:
        raise InputError(
            "the predicted tube is missing ([start, end) frame ids expected)",
            file=file,
            sample=sample,
            field="tube",
        )
    tube = record["tube"]
    if not isinstance(tube, (list, tuple)) or len(tube) != 2 or not all(_is_int(v) for v in tube):
        raise InputError(
            f"expected two integer frame ids [start, end), got {tube!r:.60}",
            file=file,
            sample=sample,
            field="tube",
        )
    if not 0 <= tube[0] <= tube[1]:
        raise InputError(
            f"the tube [{tube[0]}, {tube[1]}) must satisfy 0 <= start <= end (end is exclusive)",
            file=file,
            sample=sample,
            field="tube",
        )
    raw_boxes = record.get("boxes", {})
    if not isinstance(raw_boxes, dict):
        raise InputError(
            "expected an object of frame id -> [x1, y1, x2, y2]",
            file=file,
            sample=sample,
            field="boxes",
        )
    boxes: dict[int, Box] = {}
    for key, value in raw_boxes.items():
        try:
            frame = int(key)
        except (TypeError, ValueError):
            frame = -1
        if frame < 0:
            raise InputError(
                f"frame key {key!r} is not a non-negative integer",
                file=file,
                sample=sample,
                field="boxes",
            )
        boxes[frame] = parse_box(value, file=file, sample=sample, field=f"boxes.{key}")
    extra = record.get("extra", {})
    if not isinstance(extra, dict):
        raise InputError(
            f"expected an object of extra fields, got {extra!r:.60}",
            file=file,
            sample=sample,
            field="extra",
        )
    return Prediction(tube=(int(tube[0]), int(tube[1])), boxes=boxes, extra=dict(extra))


def parse_predictions(data: Any, *, file: str | Path | None = None) -> Predictions:
    """Check a parsed ``stvg-predictions/1`` document; raises :class:`InputError` naming
    the file, the sample id and the field of the first fault."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise InputError(
            f"not a {FORMAT} document (format is {got!r})",
            file=file,
            field="format",
            hint=f'Predictions are {{"format": "{FORMAT}", "predictions": {{sample_id: '
            '{"tube": [start, end], "boxes": {frame: [x1, y1, x2, y2]}}}}',
        )
    records = data.get("predictions")
    if not isinstance(records, dict):
        raise InputError(
            "expected an object of sample_id -> prediction", file=file, field="predictions"
        )
    provenance = data.get("provenance")
    if provenance is not None and not isinstance(provenance, dict):
        raise InputError(
            f"expected an object, got {provenance!r:.60}", file=file, field="provenance"
        )
    by_id = {
        str(sid): parse_prediction(record, file=file, sample=str(sid))
        for sid, record in records.items()
    }
    return Predictions(by_id=by_id, path=None if file is None else str(file), provenance=provenance)


def read_predictions(path: str | Path, format: str | None = None) -> Predictions:
    """Read and check a predictions file; missing files and malformed JSON are :class:`InputError`.

    ``stvg-predictions/1`` is read as is; a TubeDETR, STCAT or official HC-STVG file (``format``
    ``tubedetr``, ``stcat``, ``hcstvg``, or None to tell from the content) is converted on the
    way in, see :mod:`stvg.evaluate.peer_formats`.
    """
    from stvg.evaluate.peer_formats import read_any

    return read_any(path, format)


def as_predictions(
    predictions: Predictions | Mapping[str, Prediction | Mapping[str, Any]],
) -> Predictions:
    """:class:`Predictions` from itself or from ``{sample_id: Prediction or JSON-style record}``.

    JSON-style records (``{"tube": [s, e], "boxes": {frame: [x1, y1, x2, y2]}}``, frame keys as
    int or str) are checked like a file's; raises :class:`InputError`.
    """
    if isinstance(predictions, Predictions):
        return predictions
    by_id = {
        str(sid): p if isinstance(p, Prediction) else parse_prediction(p, sample=str(sid))
        for sid, p in predictions.items()
    }
    return Predictions(by_id=by_id)


def write_predictions(
    path: str | Path,
    predictions: Predictions | Mapping[str, Prediction | Mapping[str, Any]],
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Write ``stvg-predictions/1`` atomically (frame keys sorted); records are checked first.

    ``provenance`` (see :func:`make_provenance`) replaces the predictions' own, if given.
    """
    predictions = as_predictions(predictions)
    if provenance is not None:
        predictions = Predictions(
            by_id=predictions.by_id, path=predictions.path, provenance=dict(provenance)
        )
    write_json_atomic(path, predictions.to_json())
