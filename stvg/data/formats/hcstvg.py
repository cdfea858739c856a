"""Raw HC-STVG annotations, v1 and v2 (tzhhhh123/HC-STVG).

The file is one object keyed by video file name (``"55_vfjywN5CN0Y.mp4"``), each value::

    {"bbox": [[x, y, w, h], ...],   # the target person, one box per frame from st_frame on
     "st_frame": 268,               # first boxed frame, 1-BASED (ffmpeg's img_00001.jpg = 1)
     "st_time": 8.91, "ed_time": 17.54,  # tube start / end in seconds
     "img_num": 600,                # frames in the video (fps * 20: every video lasts 20 s)
     "caption": "...",              # v1; v2 has "English" (and may have other languages)
     "width": 640, "height": 360}   # v1; v2 has "img_size": [height, width]

Conversion to stvg's conventions (docs/design.md section 3), done once here:

* frame ids become 0-based: box ``i`` sits on frame ``st_frame - 1 + i``; the tube is
  ``[st_frame - 1, st_frame - 1 + len(bbox))`` (half-open);
* boxes ``[x, y, w, h]`` become ``[x, y, x + w, y + h]`` pixels, no +1;
* ``fps = img_num / 20``, ``frame_count = img_num``, segment = the whole video ``[0, img_num)``;
  ``extra["sampling_segment"] = [0, img_num - 1]`` is the span the ``tubedetr`` protocol samples
  (TubeDETR samples HC-STVG over ``range(0, frame_count - 1)``);
* ``sample_id`` is the video file name key, ``video_id`` the name without extension, qtype
  ``declarative``; ``extra`` keeps ``st_time``, ``ed_time`` and ``st_frame`` (1-based, as given).

Shifting every id by one does not change any metric: the official HC-STVG script on the raw ids
and stvg's ``hcstvg`` protocol on these ids give the same numbers (predictions must use 0-based
ids, as everywhere in stvg).
"""

from __future__ import annotations

import logging
import os
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

SECONDS = 20  # every HC-STVG video lasts 20 s


def looks_like_hcstvg_raw(data: Any) -> bool:
    """True for a non-empty object of which some value has ``bbox`` and ``st_frame``.

    Any value, not only the first: a first record that lacks a key is then reported by the
    loader with its sample and field instead of "cannot tell the format".
    """
    if not isinstance(data, dict) or not data or "format" in data:
        return False
    return any(isinstance(v, dict) and "bbox" in v and "st_frame" in v for v in data.values())


def _index_videos(video_root: Path) -> dict[str, str]:
    """File name -> path under ``video_root`` (its top level and one level of sub-folders).

    HC-STVG v1 ships videos in sub-folders; v2 in ten packages: both are covered.
    """
    index: dict[str, str] = {}
    if not video_root.is_dir():
        return index
    for entry in sorted(os.scandir(video_root), key=lambda e: e.name):
        if entry.is_file():
            index.setdefault(entry.name, str(video_root / entry.name))
        elif entry.is_dir():
            for sub in sorted(os.scandir(entry.path), key=lambda e: e.name):
                if sub.is_file():
                    index.setdefault(sub.name, str(video_root / entry.name / sub.name))
    return index


def load_hcstvg_raw(
    data: Any, *, file: str | Path | None = None, video_root: str | Path | None = None
) -> Annotations:
    """Parse a loaded raw HC-STVG v1 or v2 file; see the module docstring for the conversion.

    ``video_root``, when given, is searched (top level and one sub-folder level) for each video
    file; ``video_path`` is then that path, else ``video_root/<name>``. Without it
    ``video_path`` is the key itself. Raises :class:`InputError` naming the file, the video key
    and the field.
    """
    if not isinstance(data, dict):
        raise InputError("expected an object keyed by video file name", file=file)
    videos = _index_videos(Path(video_root)) if video_root is not None else {}
    samples: list[Sample] = []
    versions: set[str] = set()
    for key, raw in data.items():
        rec = Record(raw, file=file, sample=key, what="an object with bbox, st_frame, img_num")
        img_num = rec.int("img_num", positive=True)
        st_frame = rec.int("st_frame")
        if st_frame < 1:
            raise rec.fail(
                f"st_frame is 1-based and must be at least 1, got {st_frame}", "st_frame"
            )
        if "img_size" in rec:
            size = rec.get("img_size")
            if not (
                isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)
            ):
                raise rec.fail(f"expected [height, width], got {size!r:.60}", "img_size")
            height, width = size
            versions.add("v2")
        else:
            width, height = rec.int("width"), rec.int("height")
            versions.add("v1")
        caption = rec.get("English", rec.get("caption", None))
        if not isinstance(caption, str):
            raise rec.fail("expected a sentence in 'caption' (v1) or 'English' (v2)", "caption")
        raw_boxes = rec.get("bbox", None)
        if not isinstance(raw_boxes, list) or not raw_boxes:
            raise rec.fail("expected a non-empty list of [x, y, w, h] boxes", "bbox")
        start = st_frame - 1
        end = start + len(raw_boxes)
        if end > img_num:
            raise rec.fail(
                f"{len(raw_boxes)} boxes from st_frame {st_frame} run past the last frame "
                f"(img_num {img_num})",
                "bbox",
            )
        boxes: dict[int, Box] = {
            start + i: parse_xywh(value, **rec.at(f"bbox.{i}")) for i, value in enumerate(raw_boxes)
        }
        extra: dict[str, Any] = {"st_frame": st_frame, "sampling_segment": [0, img_num - 1]}
        for name in ("st_time", "ed_time"):
            if name in rec:
                extra[name] = rec.data[name]
        if video_root is None:
            video_path = key
        else:
            video_path = videos.get(key, str(Path(video_root) / key))
        sample = Sample(
            sample_id=key,
            video_id=Path(key).stem,
            video_path=video_path,
            fps=img_num / SECONDS,
            frame_count=img_num,
            width=width,
            height=height,
            segment=(0, img_num),
            tube=(start, end),
            boxes=boxes,
            caption=caption,
            qtype="declarative",
            extra=extra,
        )
        sample.validate(file=file)
        samples.append(sample)
    check_unique_ids(samples, file=file)
    log.info("HC-STVG %s: %d queries", "/".join(sorted(versions)), len(samples))
    return Annotations(
        samples=samples,
        dataset=f"hcstvg-{versions.pop()}" if len(versions) == 1 else "hcstvg",
        split=split_from_name(file),
        source_format="hcstvg",
        has_boxes=True,
        path=None if file is None else str(file),
    )
