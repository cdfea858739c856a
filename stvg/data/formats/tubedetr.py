"""TubeDETR's preprocessed annotation files (``preproc/preproc_vidstg.py``, ``preproc_hcstvg.py``,
``preproc_hcstvgv2.py`` in antoyang/TubeDETR).

Both loaders keep TubeDETR's frame ids **as given**, so that the ``tubedetr`` protocol on the
resulting samples reproduces TubeDETR's evaluators (``datasets/vidstg_eval.py``,
``datasets/hcstvg_eval.py``) number for number. Sample ids are ``str(video_id)``: TubeDETR's
``video_id`` is the query's position in the file, one per sentence.

**VidSTG** ``{split}.json`` = ``{"videos": [...], "trajectories": {...}}``. Each video record is
one query: ``original_video_id, video_id, frame_count, fps, width, height, start_frame,
end_frame`` (VidSTG's ``used_segment``), ``tube_start_frame, tube_end_frame`` (``temporal_gt``,
end exclusive), ``video_path, caption, type, target_id, qtype``. ``trajectories
[original_video_id][str(target_id)][str(frame)]["bbox"]`` is ``[x, y, w, h]`` (VidOR's ``xmin,
ymin, xmax - xmin, ymax - ymin``); boxes become ``[x, y, x + w, y + h]`` as the evaluator computes
them. Frame ids are 0-based native ids. segment = ``[start_frame, end_frame)``, tube =
``[tube_start_frame, tube_end_frame)``. Tube frames missing from the trajectory get no box.
VidSTG tubes that reach the end of the video end one frame after ``end_frame``
(``tube_end_frame == end_frame + 1 <= frame_count``); there the segment is extended by that frame
so the tube lies inside it, and ``extra["sampling_segment"] = [start_frame, end_frame]`` keeps the
span TubeDETR samples from. Any other tube outside its segment is refused.

**HC-STVG** ``{split}_proc.json`` / ``{split}v2_proc.json``: a list of ``{original_video_id,
frame_count, width, height, tube_start_frame, tube_end_frame, tube_start_time, tube_end_time,
video_path, caption, video_id, trajectory}``. ``tube_start_frame`` is HC-STVG's 1-based
``st_frame`` copied as is and ``tube_end_frame = st_frame + len(trajectory)``; TubeDETR uses these
numbers as frame ids, so the boxes sit on frames ``tube_start_frame + i`` (shifted one frame
later than the raw file's 0-based ids; this is TubeDETR's convention, kept for exactness).
``trajectory`` holds ``[x, y, w, h]`` boxes. fps = ``frame_count / 20`` (20 s videos); the
sample's segment is the whole video ``[0, frame_count)`` (extended to ``tube_end_frame`` when the
tube runs through the last 1-based frame, ``extra["frame_count_in_file"]`` then keeps the file's
count), and ``extra["sampling_segment"] = [0, frame_count - 1]``: TubeDETR samples HC-STVG over
``range(0, frame_count - 1)``. qtype is ``declarative``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from stvg.data.record import Record
from stvg.data.sample import (
    Annotations,
    Box,
    Sample,
    check_unique_ids,
    parse_xywh,
    split_from_name,
)
from stvg.errors import InputError

log = logging.getLogger(__name__)

_VIDSTG_FIELDS = (
    "original_video_id",
    "video_id",
    "frame_count",
    "fps",
    "width",
    "height",
    "start_frame",
    "end_frame",
    "tube_start_frame",
    "tube_end_frame",
    "caption",
    "target_id",
    "qtype",
)
_HCSTVG_FIELDS = (
    "original_video_id",
    "video_id",
    "frame_count",
    "width",
    "height",
    "tube_start_frame",
    "tube_end_frame",
    "caption",
    "trajectory",
)


def looks_like_tubedetr_vidstg(data: Any) -> bool:
    """True for ``{"videos": [...], "trajectories": {...}}`` (TubeDETR's VidSTG ``{split}.json``)."""
    return (
        isinstance(data, dict)
        and isinstance(data.get("videos"), list)
        and isinstance(data.get("trajectories"), dict)
    )


def looks_like_tubedetr_hcstvg(data: Any) -> bool:
    """True for a list of which some item has ``trajectory`` and ``tube_start_frame`` (any item:
    a broken first record is then reported by the loader with its sample and field)."""
    return isinstance(data, list) and any(
        isinstance(x, dict) and "trajectory" in x and "tube_start_frame" in x for x in data
    )


def _record(raw: Any, index: int, file: str | Path | None) -> Record:
    """One record, named by its ``video_id`` (or ``record <index>`` without a usable one)."""
    sample: str = f"record {index}"
    vid = raw.get("video_id") if isinstance(raw, dict) else None
    if isinstance(vid, (int, str)) and not isinstance(vid, bool):
        sample = str(vid)
    return Record(raw, file=file, sample=sample, what="a TubeDETR record (a JSON object)")


def load_tubedetr_vidstg(data: Any, *, file: str | Path | None = None) -> Annotations:
    """Parse TubeDETR's preprocessed VidSTG file (see the module docstring for the mapping).

    Raises :class:`InputError` naming the file, the sample (``video_id``) and the field.
    """
    if not looks_like_tubedetr_vidstg(data):
        raise InputError(
            'expected TubeDETR\'s VidSTG layout {"videos": [...], "trajectories": {...}}', file=file
        )
    trajectories = data["trajectories"]
    samples: list[Sample] = []
    extended = gaps = 0
    for index, raw in enumerate(data["videos"]):
        rec = _record(raw, index, file)
        values = {k: rec.get(k) for k in _VIDSTG_FIELDS}
        frame_count = rec.int("frame_count")
        start, end = rec.int("start_frame"), rec.int("end_frame")
        tube = (rec.int("tube_start_frame"), rec.int("tube_end_frame"))
        fps = rec.float("fps", positive=True)
        extra: dict[str, Any] = {
            "tubedetr_video_id": values["video_id"],
            "target_id": values["target_id"],
        }
        if "type" in rec:
            extra["target_type"] = rec.data["type"]
        segment_end = end
        if tube[1] == end + 1 <= frame_count:
            segment_end = end + 1
            extra["sampling_segment"] = [start, end]
            extended += 1

        original = str(values["original_video_id"])
        target = str(values["target_id"])
        by_target = trajectories.get(original)
        track = by_target.get(target) if isinstance(by_target, dict) else None
        if not isinstance(track, dict):
            raise rec.fail(
                f"trajectories[{original!r}][{target!r}] (the target's boxes) is missing",
                "target_id",
            )
        boxes: dict[int, Box] = {}
        for frame in range(tube[0], tube[1]):
            entry = track.get(str(frame))
            if entry is None:
                gaps += 1
                continue
            box = Record(
                entry,
                file=file,
                sample=rec.sample,
                prefix=f"trajectories.{original}.{target}.{frame}",
                what='{"bbox": [x, y, w, h], ...}',
            )
            boxes[frame] = parse_xywh(box.get("bbox", what="an [x, y, w, h] box"), **box.at("bbox"))

        sample = Sample(
            sample_id=str(values["video_id"]),
            video_id=original,
            video_path=str(rec.get("video_path", f"{original}.mp4")),
            fps=float(fps),
            frame_count=frame_count,
            width=rec.int("width"),
            height=rec.int("height"),
            segment=(start, segment_end),
            tube=tube,
            boxes=boxes,
            caption=rec.str("caption"),
            qtype=rec.str("qtype"),
            extra=extra,
        )
        sample.validate(file=file)
        samples.append(sample)
    check_unique_ids(samples, file=file)
    if extended:
        log.info(
            "%d queries have a tube ending one frame after end_frame (the video's end); their "
            "segment was extended by that frame (sampling still stops at end_frame)",
            extended,
        )
    if gaps:
        log.warning("%d tube frames have no box in the target's trajectory", gaps)
    return Annotations(
        samples=samples,
        dataset="vidstg",
        split=split_from_name(file),
        source_format="tubedetr-vidstg",
        has_boxes=True,
        path=None if file is None else str(file),
    )


def load_tubedetr_hcstvg(data: Any, *, file: str | Path | None = None) -> Annotations:
    """Parse TubeDETR's preprocessed HC-STVG (v1 or v2) file; see the module docstring.

    Raises :class:`InputError` naming the file, the sample (``video_id``) and the field.
    """
    if not isinstance(data, list):
        raise InputError("expected TubeDETR's HC-STVG layout: a list of records", file=file)
    samples: list[Sample] = []
    for index, raw in enumerate(data):
        rec = _record(raw, index, file)
        values = {k: rec.get(k) for k in _HCSTVG_FIELDS}
        frame_count = rec.int("frame_count")
        if frame_count < 2:
            raise rec.fail(f"expected at least 2 frames, got {frame_count}", "frame_count")
        t0, t1 = rec.int("tube_start_frame"), rec.int("tube_end_frame")
        trajectory = values["trajectory"]
        if not isinstance(trajectory, list) or not trajectory:
            raise rec.fail("expected a non-empty list of [x, y, w, h] boxes", "trajectory")
        if t1 - t0 != len(trajectory):
            raise rec.fail(
                f"tube [{t0}, {t1}) spans {t1 - t0} frames but the trajectory has "
                f"{len(trajectory)} boxes",
                "tube_end_frame",
            )
        boxes = {
            t0 + i: parse_xywh(box, **rec.at(f"trajectory.{i}")) for i, box in enumerate(trajectory)
        }
        extra: dict[str, Any] = {
            "tubedetr_video_id": values["video_id"],
            "sampling_segment": [0, frame_count - 1],
        }
        for key in ("tube_start_time", "tube_end_time"):
            if key in rec:
                extra[key] = rec.data[key]
        count = frame_count
        if t1 > frame_count:
            extra["frame_count_in_file"] = frame_count
            count = t1
        original = str(values["original_video_id"])
        sample = Sample(
            sample_id=str(values["video_id"]),
            video_id=original,
            video_path=str(rec.get("video_path", f"{original}.mp4")),
            fps=frame_count / 20,
            frame_count=count,
            width=rec.int("width"),
            height=rec.int("height"),
            segment=(0, count),
            tube=(t0, t1),
            boxes=boxes,
            caption=rec.str("caption"),
            qtype="declarative",
            extra=extra,
        )
        sample.validate(file=file)
        samples.append(sample)
    check_unique_ids(samples, file=file)
    return Annotations(
        samples=samples,
        dataset="hcstvg",
        split=split_from_name(file),
        source_format="tubedetr-hcstvg",
        has_boxes=True,
        path=None if file is None else str(file),
    )
