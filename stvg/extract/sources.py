"""What extraction read for each entry (its *source*), so that a rerun re-extracts what changed.

Every entry written by ``stvg extract`` carries a ``source`` attribute: the JSON of what its
stored values were computed from, beyond the settings the manifest already pins (backbones,
sampling parameters, dtype: a store refuses a run with other settings).

* **video entry**: the video file as the annotation names it (``video_path``), the file's
  ``size`` and ``mtime_ns``, the ``segment``, the ``sampling_segment`` the static grid covers,
  ``fps`` (which decides the grid), ``frame_count``, ``width`` and ``height``.
* **query entry**: a hash of its whole Sample record (the entry stores that record, and training
  reads the tube and boxes from it, so a changed box makes it stale too), the source hash of
  the video entry it belongs to (a re-extracted video re-extracts its queries) and the shape
  ``[B, L]`` of the text batch it was encoded in: an entry's captions are encoded together,
  padded to the longest, and the padded length changes the states (~1e-6), so an edited caption
  that changes ``B`` or ``L`` re-encodes its neighbours too ("text batch"), as a clean run
  would encode them.

Why the video file's size and modification time rather than a hash of its bytes: a rerun that
has nothing to do must stay cheap, and hashing every video of VidSTG (hundreds of GB) on every
rerun would read all of it; one ``stat`` per video costs nothing. It is the rule ``make`` and
``rsync`` use: a rewritten, replaced or touched file re-extracts its entry; a copy that keeps
times (``cp -p``, ``rsync -a``, ``mv``) does not. A copy that resets them re-extracts (wasted
work, never stale features). A video file that is missing at rerun time keeps its complete entry
(features are often kept after the videos are deleted): only the other fields are compared.

Entries written by stvg versions before this record carry no ``source``: they are kept as they
are and the run warns once with their count (their staleness cannot be known; extract into a
new ``--out`` to redo them).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from stvg.data.sample import Sample
from stvg.evaluate.protocols import sampling_segment
from stvg.extract.plan import Entry

SOURCE_ATTR = "source"
_FILE = "file"


def digest(record: Any) -> str:
    """32 hex digits of the sha256 of ``record``'s canonical JSON (keys sorted)."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def video_source(entry: Entry) -> dict[str, Any]:
    """The source record of a video entry (see the module docstring); ``file`` is ``None``
    when the video cannot be stat-ed."""
    sample = entry.samples[0]
    try:
        stat = os.stat(entry.video_path)
        file: dict[str, int] | None = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    except OSError:
        file = None
    g0, g1 = sampling_segment(sample)
    return {
        "video_path": str(sample.video_path),
        _FILE: file,
        "segment": [int(entry.segment[0]), int(entry.segment[1])],
        "sampling_segment": [int(g0), int(g1)],
        "fps": float(entry.fps),
        "frame_count": int(sample.frame_count),
        "width": int(sample.width),
        "height": int(sample.height),
    }


def query_source(
    sample: Sample, video_hash: str | None, text_batch: list[int] | None = None
) -> dict[str, Any]:
    """The source record of a query entry: its Sample's hash, its video entry's source hash and
    the shape ``[B, L]`` of the text batch it was encoded in (an entry's captions are one batch
    padded to the longest, and the padded length changes the states by ~1e-6)."""
    return {"sample": digest(sample.to_json()), "video": video_hash, "text_batch": text_batch}


def stored_source(attrs: dict[str, Any]) -> dict[str, Any] | None:
    """The source record an entry was written with, or ``None`` (an older stvg wrote it)."""
    text = attrs.get(SOURCE_ATTR)
    if not isinstance(text, str):
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def video_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Names of what changed between two video source records (``video file`` for its size or
    time); a missing file (``new["file"] is None``) is not a change."""
    changed = []
    for name in sorted(set(old) | set(new)):
        if name == _FILE and new.get(_FILE) is None:
            continue
        if old.get(name) != new.get(name):
            changed.append("video file" if name == _FILE else name)
    return changed


def kept_video_source(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The record a kept (unchanged) video entry stands for: the stored one."""
    return old if new.get(_FILE) is None else new


def query_changes(
    old: dict[str, Any], new: dict[str, Any], stored_sample: Any, sample: Sample
) -> list[str]:
    """Names of what changed for a query: the Sample fields that differ from the stored record
    (``caption``, ``tube``, ``boxes``, ...) and ``video`` when its video entry changed."""
    changed = []
    if old.get("sample") != new["sample"]:
        try:
            before = json.loads(stored_sample) if isinstance(stored_sample, str) else {}
        except ValueError:
            before = {}
        after = sample.to_json()
        fields = [k for k in after if before.get(k) != after[k]] if isinstance(before, dict) else []
        changed.extend(fields or ["sample"])
    if old.get("video") != new["video"]:
        changed.append("video")
    if old.get("text_batch") != new["text_batch"]:
        changed.append("text batch")
    return changed


def source_json(record: dict[str, Any]) -> str:
    """The ``source`` attribute: canonical JSON of the record."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"))
