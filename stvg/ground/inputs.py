"""What to ground: ``(video, sentence)`` pairs from the command line's target and sentences.

The target is one of

* a video file, with one or more sentences on the command line;
* a folder: every video file in it (by extension, :data:`VIDEO_SUFFIXES`, sorted by name),
  each with every sentence given;
* a ``.csv`` file with a header holding ``video`` and ``sentence`` columns (and optionally
  ``sample_id``), one pair a row;
* a ``.json`` file: a list of ``{"video": ..., "sentence": ...}`` objects (``sample_id``
  optional), or an object whose ``pairs`` is such a list.

In a CSV or JSON file, relative video paths are relative to the file's folder, and sentences
may not also be given on the command line. Each pair gets a ``sample_id``: the file's, else
``<video file stem>_q<j>`` with ``j`` counting that video's sentences from 0.

Bad input (no sentence, an empty sentence, a missing video, a malformed file) is an
:class:`~stvg.errors.InputError` naming the file, the row and the field (exit code 2); a video
that exists but cannot be decoded is found later, when it is opened
(:class:`~stvg.errors.UndecodableVideo`, exit code 3).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stvg.errors import InputError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")


@dataclass(frozen=True)
class Pair:
    """One video and one sentence to ground in it, named ``sample_id`` in the predictions."""

    sample_id: str
    video: Path
    sentence: str


def _sentence(text: Any, *, file: Path | None, sample: str | int | None) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InputError(
            f"the sentence is empty (got {text!r:.40})",
            file=file,
            sample=sample,
            field="sentence",
            hint='Give the sentence describing the object to find, e.g. "the red square jumps"',
        )
    return " ".join(text.split())


def _video(path: Path, *, file: Path | None, sample: str | int | None) -> Path:
    if not path.exists():
        raise InputError("the video does not exist", file=path if file is None else file,
                         sample=sample, field="video")  # fmt: skip
    if path.is_dir():
        raise InputError("expected a video file, got a folder", file=path, sample=sample)
    return path


def _name(video: Path, counts: dict[Path, int]) -> str:
    j = counts.get(video, 0)
    counts[video] = j + 1
    return f"{video.stem}_q{j}"


def _rows(path: Path) -> list[dict[str, Any]]:
    """The records of a CSV or JSON pairs file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read the file: {error}", file=path) from None
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        missing = [c for c in ("video", "sentence") if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(
                f"the CSV header must name the columns video and sentence (missing: "
                f"{', '.join(missing)})",
                file=path,
                field=missing[0],
            )
        return list(reader)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"not valid JSON: {error}", file=path) from None
    if isinstance(data, dict) and isinstance(data.get("pairs"), list):
        data = data["pairs"]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise InputError(
            'expected a list of {"video": ..., "sentence": ...} objects (or {"pairs": [...]})',
            file=path,
        )
    return data


def _from_file(path: Path) -> list[Pair]:
    pairs: list[Pair] = []
    counts: dict[Path, int] = {}
    rows = _rows(path)
    if not rows:
        raise InputError("the file holds no video + sentence pair", file=path)
    for index, row in enumerate(rows):
        sid = row.get("sample_id") or None
        where = sid if sid is not None else index + 1 if path.suffix.lower() == ".csv" else index
        name = row.get("video")
        if not isinstance(name, str) or not name.strip():
            raise InputError("the video path is missing", file=path, sample=where, field="video")
        video = Path(name.strip())
        video = _video(video if video.is_absolute() else path.parent / video, file=None,
                       sample=where)  # fmt: skip
        sentence = _sentence(row.get("sentence"), file=path, sample=where)
        pairs.append(Pair(str(sid) if sid is not None else _name(video, counts), video, sentence))
    return _unique(pairs, path)


def _unique(pairs: list[Pair], file: Path) -> list[Pair]:
    ids = [p.sample_id for p in pairs]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise InputError(
            f"sample ids must be unique, these repeat: {', '.join(twice[:3])}",
            file=file,
            field="sample_id",
        )
    return pairs


def gather_pairs(target: str | Path, sentences: list[str]) -> list[Pair]:
    """The pairs to ground for the command line's ``target`` and ``sentences`` (module
    docstring); raises :class:`InputError` for bad input."""
    target = Path(target)
    if not target.exists():
        raise InputError("no such video, folder or pairs file", file=target)
    if target.is_file() and target.suffix.lower() in (".csv", ".json"):
        if sentences:
            raise InputError(
                "sentences come from the pairs file; give none on the command line",
                file=target,
                field="SENTENCE",
            )
        return _from_file(target)
    if not sentences:
        raise InputError(
            "no sentence to ground",
            file=target,
            field="SENTENCE",
            hint='Add one after the video, e.g. stvg ground --run RUN video.mp4 "the red square jumps"',
        )
    texts = [_sentence(s, file=None, sample=None) for s in sentences]
    if target.is_dir():
        videos = sorted(p for p in target.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        if not videos:
            raise InputError(
                f"the folder holds no video file ({', '.join(VIDEO_SUFFIXES)})", file=target
            )
    else:
        videos = [_video(target, file=None, sample=None)]
    counts: dict[Path, int] = {}
    return _unique([Pair(_name(v, counts), v, text) for v in videos for text in texts], target)
