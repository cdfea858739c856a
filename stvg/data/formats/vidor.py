"""VidOR box files for raw VidSTG sentences: find ``<boxes_dir>/**/<vid>.json``, read the target
trajectories, and give each sample the boxes of its tube (the conventions are in
:mod:`stvg.data.formats.vidstg`: ``[xmin, ymin, xmax, ymax]`` pixels, the tube within the span of
the target's trajectory, gaps counted in ``extra["frames_without_box"]``)."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from stvg.data.formats import read_json_file
from stvg.data.record import Record
from stvg.data.sample import Box, Sample, check_box
from stvg.errors import InputError
from stvg.progress import bar_disabled

log = logging.getLogger(__name__)


@dataclass
class BoxNeed:
    """A sample waiting for its boxes: the target tid and the tube to cover."""

    sample: Sample
    tid: int


def _index_box_files(boxes_dir: Path) -> dict[str, list[Path]]:
    """``vid -> [paths]`` of every ``*.json`` under ``boxes_dir`` (VidOR layout, any depth)."""
    if not boxes_dir.is_dir():
        raise InputError(
            "the VidOR box directory does not exist", file=boxes_dir, field="--boxes-dir"
        )
    index: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(boxes_dir.rglob("*.json")):
        index[path.stem].append(path)
    if not index:
        raise InputError(
            "no VidOR box files (*.json) under the box directory",
            file=boxes_dir,
            field="--boxes-dir",
        )
    return index


def _read_trajectories(
    path: Path, vid: str, tids: set[int]
) -> tuple[dict[int, dict[int, Box]], dict]:
    """Boxes ``{tid: {frame: xyxy}}`` of the wanted ``tids`` in one VidOR file, and its header."""
    header = Record(
        read_json_file(path), file=path, sample=vid, what="a VidOR annotation file (a JSON object)"
    )
    frames = header.get("trajectories", None)
    if not isinstance(frames, list):
        raise header.fail("expected a list with one list of boxes per frame", "trajectories")
    out: dict[int, dict[int, Box]] = {tid: {} for tid in tids}
    names = ("xmin", "ymin", "xmax", "ymax")
    for frame, boxes in enumerate(frames):
        if not isinstance(boxes, list):
            raise header.fail("expected a list of boxes", f"trajectories.{frame}")
        for j, raw in enumerate(boxes):
            item = Record(
                raw,
                file=path,
                sample=vid,
                prefix=f"trajectories.{frame}.{j}",
                what="{tid, bbox, ...}",
            )
            tid = item.int("tid")
            if tid not in out:
                continue
            bbox = item.sub("bbox", what="bbox {xmin, ymin, xmax, ymax}")
            x1, y1, x2, y2 = (bbox.float(n) for n in names)
            box = (x1, y1, x2, y2)
            check_box(box, **item.at(f"bbox (tid {tid})"))
            out[tid][frame] = box
    return out, header.data


def fill_boxes(
    needs: list[BoxNeed], boxes_dir: Path, file: str | Path | None, video_root: str | Path | None
) -> int:
    """Set ``boxes`` (and, without ``video_root``, ``video_path``) of every sample; return gaps."""
    index = _index_box_files(boxes_dir)
    by_video: dict[str, list[BoxNeed]] = defaultdict(list)
    for need in needs:
        by_video[need.sample.video_id].append(need)
    gaps = 0
    for vid, group in tqdm(
        by_video.items(),
        desc="VidOR boxes",
        unit="video",
        disable=bar_disabled(len(by_video) >= 20),
        leave=False,
    ):
        first = group[0].sample
        paths = index.get(vid, [])
        if len(paths) != 1:
            found = "none" if not paths else ", ".join(str(p) for p in paths)
            raise InputError(
                f"expected exactly one VidOR box file {vid}.json under {boxes_dir}, found {found}",
                file=file,
                sample=first.sample_id,
                field="vid",
            )
        path = paths[0]
        tracks, header = _read_trajectories(path, vid, {n.tid for n in group})
        for name in ("width", "height", "frame_count"):
            if name in header and header[name] != getattr(first, name):
                log.warning(
                    "%s: %s is %s but the sentence file says %s for video %s; keeping the latter",
                    path,
                    name,
                    header[name],
                    getattr(first, name),
                    vid,
                )
        if video_root is None:
            rel = header.get("video_path")
            folder_path = rel if isinstance(rel, str) and rel else f"{path.parent.name}/{vid}.mp4"
            video_path = "video/" + folder_path.replace("\\", "/")
        for need in group:
            sample = need.sample
            t0, t1 = sample.tube
            track = tracks[need.tid]
            if not track:
                raise InputError(
                    f"the target tid {need.tid} has no box in {path}",
                    file=file,
                    sample=sample.sample_id,
                    field="target_id",
                )
            lo, hi = min(track), max(track)
            if t0 < lo or t1 - 1 > hi:
                raise InputError(
                    f"the tube [{t0}, {t1}) is not covered by the trajectory of target tid "
                    f"{need.tid} (boxes on frames {lo}..{hi} in {path})",
                    file=file,
                    sample=sample.sample_id,
                    field="temporal_gt",
                )
            sample.boxes = {f: track[f] for f in range(t0, t1) if f in track}
            missing = (t1 - t0) - len(sample.boxes)
            if missing:
                sample.extra["frames_without_box"] = missing
                gaps += 1
            if video_root is None:
                sample.video_path = video_path
    return gaps
