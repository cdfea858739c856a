"""Raw VidSTG: sentence files ``{split}_annotations.json`` plus VidOR box files.

**Sentences.** The file is a list of relation instances, each with ``vid, fps, frame_count,
width, height, subject/objects [{tid, category}], used_segment {begin_fid, end_fid},
used_relation, temporal_gt {begin_fid, end_fid}, captions [...], questions [...]``; every
caption and question is ``{description, type, target_id}``. Each caption becomes a
``declarative`` :class:`~stvg.data.sample.Sample`, each question an ``interrogative`` one, both
with the tube of the entry's ``temporal_gt``. Samples come in TubeDETR's order (per entry, its
questions, then its captions), so a sample's position equals TubeDETR's ``video_id`` for the same
file; ``extra["tubedetr_video_id"]`` records it.

**Frame conventions.** VidSTG frame ids are 0-based native frame ids, kept as they are.

* ``temporal_gt.end_fid`` is **exclusive**: tube = ``[begin_fid, end_fid)``. TubeDETR's
  ``preproc_vidstg.py`` asserts ``end_fid - 1 <= last box frame`` of the target, its evaluator
  keeps frames with ``tube_start_frame <= f < tube_end_frame``, and the real test file has 768
  entries with ``end_fid == frame_count`` (one past the last frame).
* ``used_segment.end_fid`` is taken as **exclusive** too, as TubeDETR, STCAT and CG-STVG use it
  (their frame sampling runs over ``range(start_frame, end_frame)``), so the ``tubedetr``
  protocol samples the same frames as theirs: segment = ``[begin_fid, end_fid)``. The data does
  not quite agree: segments that reach the end of the video stop at ``frame_count - 1`` (never
  at ``frame_count``), and in the 768 entries above the tube ends one frame past the segment.
  For exactly that case (``temporal_gt.end_fid == used_segment.end_fid + 1 <= frame_count``) the
  segment is extended by that one frame so that the tube lies inside it,
  ``extra["segment_extended"]`` is True and ``extra["sampling_segment"]`` holds the raw
  ``[begin_fid, end_fid]``, the span the ``tubedetr`` protocol samples from (as for TubeDETR's
  preprocessed files). The ground-truth tube is never changed, so tIoU equals TubeDETR's. A tube
  that leaves its segment in any other way is refused. ``extra["used_segment"]`` keeps the raw
  ``[begin_fid, end_fid]`` on every sample.

**Sample ids** are ``f"{vid}-e{entry}-c{k}"`` for the k-th caption and ``f"{vid}-e{entry}-q{k}"``
for the k-th question (both 0-based) of the entry at 0-based position ``entry`` in the file:
unique by construction and stable for a given file. Ids built from content alone cannot be unique:
the real test file repeats the same (video, tube, target, sentence) in different entries 238 times.

**Boxes** come from VidOR annotation files, found as ``<boxes_dir>/**/<vid>.json`` (VidOR lays
them out as ``annotation/{training,validation}/<folder>/<vid>.json``); each holds ``video_id,
video_path ("<folder>/<vid>.mp4"), frame_count, fps, width, height, subject/objects`` and
``trajectories``: one list per frame of ``{tid, bbox {xmin, ymin, xmax, ymax}, generated,
tracker}``. A sample's boxes are the target ``tid``'s boxes on the frames of its tube, as
``[xmin, ymin, xmax, ymax]`` pixels (no +1, as TubeDETR, which stores ``xmax - xmin`` as width).
Following TubeDETR's preprocessing, the tube must lie within the span of the target's trajectory
(first box frame ``<= begin_fid`` and ``end_fid - 1 <=`` last box frame), otherwise the input is
refused; a frame inside the tube where the trajectory has a gap simply gets no box (TubeDETR's
preprocessing does not check gaps either), and ``extra["frames_without_box"]`` counts them.
Without ``boxes_dir`` the loader works in sentence-only mode: spans but no boxes,
``Annotations.has_boxes`` False, and a warning says so.

**Video paths** are ``<video_root>/<vid>.mp4`` when ``video_root`` is given; otherwise they
follow VidOR's layout relative to the dataset root, ``video/<folder>/<vid>.mp4``, the folder taken
from the box file's ``video_path`` (or its directory name); in sentence-only mode the folder is
unknown and the path is ``video/<vid>.mp4``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from stvg.data.formats.vidor import BoxNeed, fill_boxes
from stvg.data.record import Record
from stvg.data.sample import Annotations, Sample, check_unique_ids, split_from_name
from stvg.errors import InputError

log = logging.getLogger(__name__)

_KEYS = ("vid", "used_segment", "temporal_gt")


def looks_like_vidstg_raw(data: Any) -> bool:
    """True for a list of which some item has VidSTG's ``vid``/``used_segment``/``temporal_gt``
    (any item: a broken first record is then reported by the loader with its sample and field)."""
    return isinstance(data, list) and any(
        isinstance(x, dict) and all(k in x for k in _KEYS) for x in data
    )


def _entry(raw: Any, index: int, file: str | Path | None) -> Record:
    """One relation instance, named ``entry <index> (vid <vid>)`` (``entry <index>`` without a
    usable vid): VidSTG entries have no id of their own."""
    where = f"entry {index}"
    vid = raw.get("vid") if isinstance(raw, dict) else None
    if isinstance(vid, (str, int)) and not isinstance(vid, bool) and str(vid):
        where = f"entry {index} (vid {vid})"
    return Record(raw, file=file, sample=where, what="a VidSTG entry (a JSON object)")


def _span(entry: Record, key: str) -> tuple[int, int]:
    """``{begin_fid, end_fid}`` at ``key`` as ``(begin, end)``."""
    span = entry.sub(key, what="{begin_fid, end_fid}")
    return span.int("begin_fid"), span.int("end_fid")


def _parse_entry(
    entry: Record, index: int, next_id: int, video_root: str | Path | None
) -> tuple[list[Sample], list[int]]:
    """The samples of entry ``index`` (questions first, then captions) and their target tids."""
    vid = entry.id("vid", what="a video id string", nonempty=True)
    fps = entry.float("fps", what="a positive frame rate", positive=True)
    frame_count = entry.int("frame_count", positive=True)
    width = entry.int("width", positive=True)
    height = entry.int("height", positive=True)

    seg_begin, seg_end = _span(entry, "used_segment")
    tube_begin, tube_end = _span(entry, "temporal_gt")
    if not 0 <= seg_begin < seg_end <= frame_count:
        raise entry.fail(
            f"used segment [{seg_begin}, {seg_end}) must satisfy 0 <= begin < end <= frame_count "
            f"({frame_count})",
            "used_segment",
        )
    if tube_begin >= tube_end:
        raise entry.fail(f"the tube [{tube_begin}, {tube_end}) is empty", "temporal_gt")
    if tube_begin < seg_begin:
        raise entry.fail(
            f"the tube [{tube_begin}, {tube_end}) starts before its segment "
            f"[{seg_begin}, {seg_end})",
            "temporal_gt.begin_fid",
        )
    extended = False
    segment_end = seg_end
    if tube_end > seg_end:
        # VidSTG clips segments at the video's last frame id while the tube end is exclusive.
        if tube_end == seg_end + 1 and tube_end <= frame_count:
            segment_end, extended = tube_end, True
        else:
            raise entry.fail(
                f"the tube [{tube_begin}, {tube_end}) ends after its segment "
                f"[{seg_begin}, {seg_end}) (frame_count {frame_count})",
                "temporal_gt.end_fid",
            )

    categories: dict[int, str] = {}
    if entry.get("subject/objects", None) is not None:
        for obj in entry.subs("subject/objects", what="a list of {tid, category}"):
            categories[obj.int("tid")] = str(obj.get("category", ""))

    relation = entry.get("used_relation", None)
    video_path = (
        str(Path(video_root) / f"{vid}.mp4") if video_root is not None else f"video/{vid}.mp4"
    )
    samples: list[Sample] = []
    tids: list[int] = []
    for key, qtype, tag in (("questions", "interrogative", "q"), ("captions", "declarative", "c")):
        queries = entry.subs(key, what="a list of sentences", item="{description, type, target_id}")
        for k, query in enumerate(queries):
            text = query.str("description", what="a non-empty sentence", nonempty=True)
            tid = query.int("target_id")
            if categories and tid not in categories:
                raise query.fail(
                    f"target {tid} is not among the entry's subject/objects {sorted(categories)}",
                    "target_id",
                )
            extra: dict[str, Any] = {
                "entry": index,
                "tubedetr_video_id": next_id + len(samples),
                "target_id": tid,
                "target_type": query.get("type", None),
                "category": categories.get(tid),
                "used_segment": [seg_begin, seg_end],
            }
            if isinstance(relation, dict):
                extra["relation"] = [
                    relation.get("subject_tid"),
                    relation.get("predicate"),
                    relation.get("object_tid"),
                ]
            if extended:
                extra["segment_extended"] = True
                extra["sampling_segment"] = [seg_begin, seg_end]
            sample = Sample(
                sample_id=f"{vid}-e{index}-{tag}{k}",
                video_id=vid,
                video_path=video_path,
                fps=fps,
                frame_count=frame_count,
                width=width,
                height=height,
                segment=(seg_begin, segment_end),
                tube=(tube_begin, tube_end),
                boxes={},
                caption=text,
                qtype=qtype,
                extra=extra,
            )
            sample.validate(file=entry.file)
            samples.append(sample)
            tids.append(tid)
    return samples, tids


def load_vidstg_raw(
    data: Any,
    *,
    file: str | Path | None = None,
    boxes_dir: str | Path | None = None,
    video_root: str | Path | None = None,
) -> Annotations:
    """Parse a loaded VidSTG sentence file; boxes from ``boxes_dir`` (VidOR layout) if given.

    See the module docstring for the conventions, ids and paths. Raises :class:`InputError`
    naming the file, the entry or sample and the field at the first problem.
    """
    if not isinstance(data, list):
        raise InputError("expected a list of VidSTG relation instances", file=file)
    samples: list[Sample] = []
    needs: list[BoxNeed] = []
    extended = 0
    for index, record in enumerate(data):
        entry = _entry(record, index, file)
        new, tids = _parse_entry(entry, index, len(samples), video_root)
        extended += sum(1 for s in new if s.extra.get("segment_extended"))
        samples.extend(new)
        needs.extend(BoxNeed(s, t) for s, t in zip(new, tids, strict=True))
    check_unique_ids(samples, file=file)
    if extended:
        log.info(
            "%d queries have a tube ending one frame after used_segment.end_fid (at the video's "
            "end); their segment was extended by that frame",
            extended,
        )
    has_boxes = boxes_dir is not None
    if has_boxes:
        gaps = fill_boxes(needs, Path(boxes_dir), file, video_root)
        if gaps:
            log.warning(
                "%d queries have tube frames where the target's VidOR trajectory has no box; "
                "those frames have no box (extra.frames_without_box counts them)",
                gaps,
            )
    else:
        log.warning(
            "%s: no VidOR box directory given: sentence-only mode (tubes and spans but no boxes; "
            "spatial metrics cannot be computed). Pass --boxes-dir to load boxes.",
            file if file is not None else "VidSTG sentences",
        )
    videos = len({s.video_id for s in samples})
    log.info("VidSTG: %d queries on %d videos", len(samples), videos)
    return Annotations(
        samples=samples,
        dataset="vidstg",
        split=split_from_name(file),
        source_format="vidstg",
        has_boxes=has_boxes,
        path=None if file is None else str(file),
    )
