"""What stage one has to do: video entries (one per video segment) and how shards split them.

An *entry* is one ``(video, segment)`` pair with all queries on it: the static frames and clips
are extracted once per entry and every query's text once. VidSTG has several relation instances
per video, each with its own ``used_segment``; HC-STVG and the synthetic set have one per video.

Entries are sorted by ``(split, entry_id)`` and shard ``k`` of ``n`` takes every n-th, so any
number of independent writers (SLURM array tasks, dask workers) cover the list exactly once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from stvg.data.sample import Annotations, Sample
from stvg.errors import InputError


@dataclass
class Entry:
    """One video segment to extract, with the queries that refer to it."""

    entry_id: str
    split: str
    video_id: str
    video_path: Path
    fps: float
    segment: tuple[int, int]
    samples: list[Sample] = field(default_factory=list)


def entry_id_for(sample: Sample) -> str:
    """``"<video_id>@<start>-<end>"``: stable, and unique per video segment."""
    return f"{sample.video_id}@{sample.segment[0]}-{sample.segment[1]}"


def plan_entries(splits: dict[str, Annotations], data_root: str | Path) -> list[Entry]:
    """Group samples into entries; video paths are resolved against ``data_root``."""
    root = Path(data_root)
    entries: dict[tuple[str, str], Entry] = {}
    for split, split_annotations in splits.items():
        for sample in split_annotations.samples:
            key = (split, entry_id_for(sample))
            entry = entries.get(key)
            if entry is None:
                path = Path(sample.video_path)
                entry = Entry(
                    entry_id=key[1],
                    split=split,
                    video_id=sample.video_id,
                    video_path=path if path.is_absolute() else root / path,
                    fps=sample.fps,
                    segment=sample.segment,
                )
                entries[key] = entry
            entry.samples.append(sample)
    return [entries[k] for k in sorted(entries)]


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"K/N"`` (0-based K), or SLURM's array variables, or ``(0, 1)``.

    ``SLURM_ARRAY_TASK_ID`` is taken relative to ``SLURM_ARRAY_TASK_MIN`` (default 0), so both
    ``--array=0-7`` and ``--array=1-8`` give shards 0..7 of 8.
    """
    if text is None:
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        count = os.environ.get("SLURM_ARRAY_TASK_COUNT")
        if task is None or count is None:
            return (0, 1)
        text = f"{int(task) - int(os.environ.get('SLURM_ARRAY_TASK_MIN', '0'))}/{count}"
        source = "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT"
    else:
        source = "--shard"
    try:
        k_text, n_text = text.split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise InputError(f"expected K/N (e.g. 0/4), got {text!r}", field=source) from None
    if not (n >= 1 and 0 <= k < n):
        raise InputError(f"shard {k}/{n} is out of range: need 0 <= K < N", field=source)
    return (k, n)


def shard_entries(entries: list[Entry], shard: tuple[int, int]) -> list[Entry]:
    k, n = shard
    return entries[k::n]
