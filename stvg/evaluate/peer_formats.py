"""Predictions of other codebases, both ways: TubeDETR, STCAT and the official HC-STVG script.

Each format has a reader (its document -> :class:`~stvg.evaluate.predictions.Predictions`) and
a writer (the reverse); :func:`read_any` and :func:`write_any` pick them by name, and
:func:`detect_format` tells the format from a document's content. What each codebase writes
(read from their sources):

``tubedetr``: TubeDETR (``engine.py`` ``evaluate``, ``datasets/vidstg_eval.py``,
``datasets/hcstvg_eval.py``, ``models/postprocessors.py``). With ``--test`` the evaluator's
summary holds

* ``predictions``: ``{"<video_id>_<frame_id>": {"boxes": [[x1, y1, x2, y2]]}}``, one box on each
  frame the model saw (the 5 fps grid of the segment), in pixels of the original frame
  (``PostProcess`` scales by ``orig_size``). Frame ids are those of TubeDETR's annotation file:
  0-based native ids for VidSTG; HC-STVG's ``st_frame`` numbering for HC-STVG (which stvg's
  ``tubedetr-hcstvg`` loader keeps as well);
* ``video_predictions``: ``{"<video_id>": {"sted": [start, end], "qtype": ...}}``; ``sted`` holds
  frame ids as floats, end exclusive (``PostProcessSTVG`` adds 1 to the last frame, "the end
  frame is excluded in evaluation"); ``qtype`` is there for VidSTG only.

``main.py`` dumps that summary into ``log_stats.json`` under ``test_<dataset>_<dataset>``; the
reader takes that file or the bare ``{"predictions", "video_predictions"}`` object (what the
writer writes, ``sted`` as floats). Keys, frame ids, boxes and spans carry over unchanged
(``sted`` must hold whole numbers); of a frame's ``boxes`` only the first is kept, the one
TubeDETR's evaluator scores.

``stcat``: STCAT (``engine/evaluate.py``, ``models/post_processor.py``,
``datasets/evaluation/{vidstg,hcstvg}_eval.py``). With ``save_pred`` the evaluator
``torch.save``s ``test_results.pt``: ``predictions`` ``{item_id: {frame_id: [[x1, y1, x2, y2]]}}``
(boxes on every frame of the segment after ``linear_interp``, original pixels clamped at 0),
``video_predictions`` ``{item_id: {"sted": [start, end], "qtype"?}}`` (``[first frame, last
frame + 1]``: end exclusive), ``vid2names`` ``{item_id: video name}``, plus metrics. ``item_id``
is an int (the sentence's position in STCAT's preprocessing); frame ids are 0-based native ints
(HC-STVG: ``st_frame - 1`` on, as stvg's raw HC-STVG loader). The reader takes the ``.pt`` (loaded
with ``weights_only``: plain containers and numpy numbers) or the same object as JSON (keys as
strings). The writer writes a ``.pt`` when the output name ends in ``.pt`` (numeric ids as ints,
as STCAT keys them), else JSON. ``vid2names`` becomes ``extra["video_name"]`` and back; metrics
and ``vid2sents`` are not carried.

``hcstvg``: the official script (``eval_hcvg.py``, tzhhhh123/HC-STVG) reads ``{video name:
{"st_frame": s, "ed_frame": e, "bbox": {"<frame>": [x1, y1, x2, y2]}}}`` with the raw
annotation's 1-based frame ids and ``ed_frame`` inclusive, and counts every box of ``bbox``. In
stvg's 0-based ids (raw HC-STVG loader) the tube is ``[st_frame - 1, ed_frame)`` and box ``k`` sits
on frame ``k - 1``. The writer puts the boxes inside the tube in ``bbox`` (exactly those stvg's
``hcstvg`` protocol counts) and any other box in ``boxes_outside_span`` (which the script never
reads), so a round trip keeps them. Boxes in ``bbox`` outside ``[st_frame, ed_frame]`` are read
with a warning: the script counts them, stvg's protocol does not.

For all three, sample ids pass through unchanged (convert predictions for the annotation file
they were made on), and every other key of a per-video record (e.g. ``qtype``) is kept in
``Prediction.extra`` and written back into the record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from stvg.data.record import Record
from stvg.data.sample import Box, Span, parse_box
from stvg.errors import InputError
from stvg.evaluate.predictions import (
    FORMAT,
    Prediction,
    Predictions,
    as_predictions,
    make_provenance,
    parse_predictions,
    write_predictions,
)

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("stvg", "tubedetr", "stcat", "hcstvg")
OUTSIDE = "boxes_outside_span"  # hcstvg records: boxes the official script must not count

_HINT = (
    "Known formats: stvg (stvg-predictions/1), tubedetr ({predictions: {'<video>_<frame>': "
    "{boxes}}, video_predictions: {video: {sted}}}), stcat ({predictions: {item: {frame: "
    "[[box]]}}, video_predictions}) and hcstvg ({video: {st_frame, ed_frame, bbox}}); give --from"
)


def check_format(name: str, option: str = "--to") -> None:
    """Refuse an unknown format name (field ``option``)."""
    if name not in FORMATS:
        raise InputError(
            f"unknown predictions format {name!r}; choose one of {', '.join(FORMATS)}",
            field=option,
        )


# ---------------------------------------------------------------- small checked readers


def _whole(value: Any, *, file: Any, sample: str, field: str) -> int:
    """An int, or a float holding a whole number (TubeDETR writes frame ids as floats)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(
            f"expected a frame id, got {value!r:.60}", file=file, sample=sample, field=field
        )
    if isinstance(value, float) and not value.is_integer():
        raise InputError(
            f"expected a whole frame id, got {value!r}", file=file, sample=sample, field=field
        )
    return int(value)


def _span(value: Any, *, file: Any, sample: str, field: str) -> Span:
    """``[start, end)`` with ``0 <= start <= end``."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise InputError(
            f"expected [start, end] frame ids, got {value!r:.60}",
            file=file,
            sample=sample,
            field=field,
        )
    start, end = (_whole(v, file=file, sample=sample, field=field) for v in value)
    if not 0 <= start <= end:
        raise InputError(
            f"the span [{start}, {end}) must satisfy 0 <= start <= end (end is exclusive)",
            file=file,
            sample=sample,
            field=field,
        )
    return start, end


def _frame(key: Any, *, file: Any, sample: str, field: str, first: int = 0) -> int:
    """A frame key (an int or a string of ASCII digits) that is at least ``first``."""
    frame: int | None = None
    if isinstance(key, int) and not isinstance(key, bool):
        frame = key
    elif isinstance(key, str) and key.isascii() and key.isdigit():
        frame = int(key)
    if frame is None or frame < first:
        raise InputError(
            f"frame key {key!r} is not an integer >= {first}", file=file, sample=sample, field=field
        )
    return frame


def _first_box(value: Any, *, file: Any, sample: str, field: str) -> Box:
    """The first box of a ``[[x1, y1, x2, y2], ...]`` list (the one the evaluators score)."""
    if not isinstance(value, (list, tuple)) or not value:
        raise InputError(
            f"expected a list of boxes [[x1, y1, x2, y2]], got {value!r:.60}",
            file=file,
            sample=sample,
            field=field,
        )
    return parse_box(value[0], file=file, sample=sample, field=field)


def _find_pair(data: Any) -> tuple[dict, dict] | None:
    """``(predictions, video_predictions)`` at the top level or one level down (log_stats.json)."""
    if not isinstance(data, dict):
        return None
    if "predictions" in data and "video_predictions" in data:
        return data["predictions"], data["video_predictions"]
    for value in data.values():
        if isinstance(value, dict) and "predictions" in value and "video_predictions" in value:
            return value["predictions"], value["video_predictions"]
    return None


def _video_records(videos: Any, *, file: Any) -> dict[str, Prediction]:
    """TubeDETR / STCAT ``video_predictions`` -> predictions with a tube, no boxes yet."""
    videos = Record(videos, file=file, prefix="video_predictions", what="an object of videos")
    by_id: dict[str, Prediction] = {}
    for video, value in videos.data.items():
        sid = str(video)
        record = Record(value, file=file, sample=sid, prefix="video_predictions")
        sted = record.get("sted", what="the predicted span: [start, end) frame ids")
        tube = _span(sted, **record.at("sted"))
        extra = {k: v for k, v in record.data.items() if k != "sted"}
        by_id[sid] = Prediction(tube=tube, boxes={}, extra=extra)
    return by_id


def _no_video(sid: str, where: str, *, file: Any) -> InputError:
    return InputError(
        f"boxes are given ({where}) but video_predictions has no 'sted' for this video",
        file=file,
        sample=sid,
        field="video_predictions.sted",
    )


# ---------------------------------------------------------------- TubeDETR


def from_tubedetr(data: Any, *, file: Any = None) -> Predictions:
    """TubeDETR's ``predictions`` + ``video_predictions`` (or its ``log_stats.json``)."""
    pair = _find_pair(data)
    if pair is None:
        raise InputError(
            "expected TubeDETR's 'predictions' and 'video_predictions'",
            file=file,
            field="predictions",
        )
    frames, videos = pair
    by_id = _video_records(videos, file=file)
    frames = Record(frames, file=file, prefix="predictions", what="an object of frames")
    for key, value in frames.data.items():
        video, _, frame_text = str(key).rpartition("_")
        if not video:
            raise InputError(
                f"frame key {key!r} is not '<video_id>_<frame_id>'",
                file=file,
                sample=str(key),
                field="predictions",
            )
        frame = _frame(frame_text, file=file, sample=video, field=f"predictions.{key}")
        if video not in by_id:
            raise _no_video(video, f"predictions.{key}", file=file)
        record = Record(value, file=file, sample=video, prefix=f"predictions.{key}")
        boxes = record.get("boxes", what="[[x1, y1, x2, y2]]")
        by_id[video].boxes[frame] = _first_box(boxes, **record.at("boxes"))
    return Predictions(by_id=by_id)


def to_tubedetr(predictions: Predictions) -> dict[str, Any]:
    """TubeDETR's layout: boxes under ``"<sample_id>_<frame>"``, ``sted`` as floats."""
    frames: dict[str, Any] = {}
    videos: dict[str, Any] = {}
    for sid, p in predictions.by_id.items():
        extra = {k: v for k, v in p.extra.items() if k != "sted"}
        videos[sid] = {"sted": [float(p.tube[0]), float(p.tube[1])], **extra}
        for frame in sorted(p.boxes):
            frames[f"{sid}_{frame}"] = {"boxes": [[float(v) for v in p.boxes[frame]]]}
    out: dict[str, Any] = {"predictions": frames, "video_predictions": videos}
    if predictions.provenance is not None:
        out["provenance"] = predictions.provenance
    return out


# ---------------------------------------------------------------- STCAT


def from_stcat(data: Any, *, file: Any = None) -> Predictions:
    """STCAT's saved results (``test_results.pt`` or the same object as JSON)."""
    pair = _find_pair(data)
    if pair is None:
        raise InputError(
            "expected STCAT's 'predictions' and 'video_predictions'", file=file, field="predictions"
        )
    frames, videos = pair
    by_id = _video_records(videos, file=file)
    names = data.get("vid2names") if isinstance(data, dict) else None
    if isinstance(names, dict):
        for item, name in names.items():
            if str(item) in by_id:
                by_id[str(item)].extra["video_name"] = name
    frames = Record(frames, file=file, prefix="predictions", what="an object of videos")
    for item, value in frames.data.items():
        sid = str(item)
        if sid not in by_id:
            raise _no_video(sid, "predictions", file=file)
        boxes = Record(value, file=file, sample=sid, prefix="predictions", what="frame -> boxes")
        for key, box in boxes.data.items():
            frame = _frame(key, **boxes.at(key))
            by_id[sid].boxes[frame] = _first_box(box, **boxes.at(key))
    return Predictions(by_id=by_id)


def _number_key(sid: str) -> int | str:
    """STCAT's int ``item_id`` back from a sample id that spells one; other ids stay strings."""
    return int(sid) if sid.isdigit() and str(int(sid)) == sid else sid


def to_stcat(predictions: Predictions, *, int_keys: bool = False) -> dict[str, Any]:
    """STCAT's layout; ``int_keys`` as in its ``.pt`` (item and frame ids as ints)."""

    def item(sid: str) -> int | str:
        return _number_key(sid) if int_keys else sid

    frames: dict[Any, Any] = {}
    videos: dict[Any, Any] = {}
    names: dict[Any, Any] = {}
    for sid, p in predictions.by_id.items():
        extra = {k: v for k, v in p.extra.items() if k not in ("sted", "video_name")}
        videos[item(sid)] = {"sted": [int(p.tube[0]), int(p.tube[1])], **extra}
        frames[item(sid)] = {
            (f if int_keys else str(f)): [[float(v) for v in p.boxes[f]]] for f in sorted(p.boxes)
        }
        if "video_name" in p.extra:
            names[item(sid)] = p.extra["video_name"]
    out: dict[str, Any] = {"predictions": frames, "video_predictions": videos}
    if names:
        out["vid2names"] = names
    if predictions.provenance is not None:
        out["provenance"] = predictions.provenance
    return out


# ---------------------------------------------------------------- official HC-STVG script


def from_hcstvg(data: Any, *, file: Any = None) -> Predictions:
    """The official script's input: 1-based frames, ``ed_frame`` inclusive (-> 0-based, [s, e))."""
    videos = Record(data, file=file, what="an object of video name -> prediction")
    by_id: dict[str, Prediction] = {}
    counted_outside = 0
    for video, value in videos.data.items():
        sid = str(video)
        record = Record(value, file=file, sample=sid, what="{st_frame, ed_frame, bbox}")
        st = _whole(
            record.get("st_frame", what="the first frame, 1-based"), **record.at("st_frame")
        )
        ed = _whole(
            record.get("ed_frame", what="the last frame, inclusive"), **record.at("ed_frame")
        )
        record.sub("bbox", what="an object of frame -> box")  # required, even if empty
        if st < 1:
            raise InputError(
                f"st_frame {st} is below 1 (frames are 1-based)",
                file=file,
                sample=sid,
                field="st_frame",
            )
        if ed < st - 1:
            raise InputError(
                f"ed_frame {ed} is before st_frame {st} (ed_frame is the last frame, inclusive)",
                file=file,
                sample=sid,
                field="ed_frame",
            )
        boxes: dict[int, Box] = {}
        for name in (OUTSIDE, "bbox"):  # bbox last: it wins on a frame given twice
            if name not in record:
                continue
            raw = record.sub(name, what="an object of frame -> box")
            for key, box in raw.data.items():
                frame = _frame(key, **raw.at(key), first=1)
                if name == "bbox" and not st <= frame <= ed:
                    counted_outside += 1
                boxes[frame - 1] = parse_box(box, **raw.at(key))
        extra = {
            k: v
            for k, v in record.data.items()
            if k not in ("st_frame", "ed_frame", "bbox", OUTSIDE)
        }
        by_id[sid] = Prediction(tube=(st - 1, ed), boxes=boxes, extra=extra)
    if counted_outside:
        log.warning(
            "%s: %d boxes of 'bbox' lie outside their [st_frame, ed_frame]; the official script "
            "counts them, stvg's hcstvg protocol does not",
            file,
            counted_outside,
        )
    return Predictions(by_id=by_id)


def to_hcstvg(predictions: Predictions) -> dict[str, Any]:
    """The official script's input: in-tube boxes in ``bbox`` (1-based keys), the rest aside."""
    out: dict[str, Any] = {}
    for sid, p in predictions.by_id.items():
        start, end = p.tube
        inside = {
            str(f + 1): [float(v) for v in p.boxes[f]] for f in sorted(p.boxes) if start <= f < end
        }
        outside = {
            str(f + 1): [float(v) for v in p.boxes[f]]
            for f in sorted(p.boxes)
            if not start <= f < end
        }
        extra = {
            k: v for k, v in p.extra.items() if k not in ("st_frame", "ed_frame", "bbox", OUTSIDE)
        }
        record: dict[str, Any] = {**extra, "st_frame": start + 1, "ed_frame": end, "bbox": inside}
        if outside:
            record[OUTSIDE] = outside
        out[sid] = record
    return out


# ---------------------------------------------------------------- detection, files

_READERS: Mapping[str, Callable[..., Predictions]] = {
    "tubedetr": from_tubedetr,
    "stcat": from_stcat,
    "hcstvg": from_hcstvg,
}


def detect_format(data: Any, *, file: Any = None) -> str:
    """``stvg``, ``tubedetr``, ``stcat`` or ``hcstvg`` from a document's content.

    TubeDETR and STCAT both hold ``predictions`` and ``video_predictions``: TubeDETR's frame
    entries are ``{"boxes": ...}``, STCAT's video entries ``{frame: [[box]]}``. Raises
    :class:`InputError` when nothing matches.
    """
    if isinstance(data, dict):
        if data.get("format") == FORMAT:
            return "stvg"
        pair = _find_pair(data)
        if pair is not None:
            frames = pair[0]
            if isinstance(frames, dict):
                for value in frames.values():
                    if isinstance(value, dict):
                        return "tubedetr" if "boxes" in value else "stcat"
            return "tubedetr"
        if "format" not in data and any(
            isinstance(v, dict) and {"st_frame", "ed_frame", "bbox"} <= v.keys()
            for v in data.values()
        ):
            return "hcstvg"
    got = data.get("format") if isinstance(data, dict) else type(data).__name__
    raise InputError(
        f"cannot tell the predictions format (not a {FORMAT} document: format is {got!r}, and "
        "not a TubeDETR, STCAT or HC-STVG predictions file)",
        file=file,
        field="format",
        hint=_HINT,
    )


def _is_torch_file(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"  # zip (torch.save) or pickle


def _load_torch(path: Path) -> Any:
    """A ``torch.save``d object, loaded with ``weights_only`` (plus numpy numbers and arrays)."""
    import numpy as np
    import torch

    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    allowed: list[Any] = [
        scalar,
        (scalar, "numpy.core.multiarray.scalar"),  # as numpy 1 pickled them
        _reconstruct,
        (_reconstruct, "numpy.core.multiarray._reconstruct"),
        np.ndarray,
        np.dtype,
        *(type(np.dtype(t)) for t in (np.float64, np.float32, np.int64, np.int32, np.bool_)),
    ]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 (torch raises many types for a bad file)
        raise InputError(
            f"cannot load the torch file ({str(error).splitlines()[0][:200]})",
            file=path,
            hint="STCAT's test_results.pt is read with weights_only: plain containers, numbers "
            "and strings",
        ) from None


def load_document(path: str | Path) -> Any:
    """A predictions file's content: JSON, or a ``torch.save``d object (STCAT's ``.pt``)."""
    from stvg.data.formats import read_json_file  # one JSON reader with the same messages

    path = Path(path)
    if path.is_file() and _is_torch_file(path):
        return _load_torch(path)
    return read_json_file(path)


def read_any(path: str | Path, format: str | None = None) -> Predictions:
    """Read predictions in ``format`` (None: detected) as :class:`Predictions`.

    A peer format's predictions get ``provenance`` ``{"converted_from", "source", ...}`` (with the
    stvg provenance the file carried, if any, as ``original``); a ``stvg-predictions/1`` file
    keeps its own. Raises :class:`InputError` naming the file, sample and field.
    """
    return _read(path, format)[0]


def _read(path: str | Path, format: str | None) -> tuple[Predictions, str]:
    if format is not None:
        check_format(format, "--from")
    path = Path(path)
    data = load_document(path)
    name = format or detect_format(data, file=path)
    if name == "stvg":
        return parse_predictions(data, file=path), name
    predictions = _READERS[name](data, file=path)
    carried = data.get("provenance") if isinstance(data, dict) else None
    predictions.path = str(path)
    predictions.provenance = make_provenance(
        converted_from=name,
        source=path.name,
        original=carried if isinstance(carried, dict) else None,
    )
    log.info("read %d %s predictions from %s", len(predictions.by_id), name, path)
    return predictions, name


def write_any(path: str | Path, predictions: Predictions | Mapping[str, Any], format: str) -> None:
    """Write ``predictions`` in ``format`` atomically (``stcat``: a ``.pt`` if the name says so)."""
    from stvg.atomic import torch_save_atomic, write_json_atomic

    check_format(format, "--to")
    predictions = as_predictions(predictions)
    path = Path(path)
    if format == "stvg":
        write_predictions(path, predictions)
    elif format == "tubedetr":
        write_json_atomic(path, to_tubedetr(predictions))
    elif format == "hcstvg":
        write_json_atomic(path, to_hcstvg(predictions))
    elif path.suffix == ".pt":
        torch_save_atomic(to_stcat(predictions, int_keys=True), path)
    else:
        write_json_atomic(path, to_stcat(predictions))


def check_against(predictions: Predictions, annotations: Any) -> Predictions:
    """Refuse predicted ids the annotations lack; add each sample's ``qtype`` where missing.

    TubeDETR's and STCAT's VidSTG evaluators read ``qtype`` from each video's record; stvg's own
    predictions do not hold it. Returns new :class:`Predictions` (the input is left as it was).
    """
    samples = annotations.by_id()
    unknown = [sid for sid in predictions.by_id if sid not in samples]
    if unknown:
        raise InputError(
            f"{len(unknown)} predicted sample id(s) are not in the annotations "
            f"({annotations.path}): {', '.join(unknown[:10])}",
            file=predictions.path,
            sample=unknown[0],
            field="predictions",
            hint="Convert predictions with the annotation file they were made for",
        )
    by_id = {
        sid: Prediction(tube=p.tube, boxes=p.boxes, extra={"qtype": samples[sid].qtype, **p.extra})
        for sid, p in predictions.by_id.items()
    }
    return Predictions(by_id=by_id, path=predictions.path, provenance=predictions.provenance)


def convert(
    source: str | Path,
    out: str | Path,
    to: str,
    from_format: str | None = None,
    annotations: str | Path | None = None,
) -> tuple[Predictions, str]:
    """Read ``source`` (``from_format`` or detected), write it to ``out`` in ``to``.

    With ``annotations`` (any annotation format), the predictions are checked and completed by
    :func:`check_against` first. Returns the predictions written and the source's format name.
    """
    check_format(to, "--to")
    predictions, name = _read(source, from_format)
    if annotations is not None:
        from stvg.data.formats import load_annotations

        predictions = check_against(predictions, load_annotations(annotations))
    write_any(out, predictions, to)
    return predictions, name
