"""The store's failure log ``<root>/failures.jsonl``: one JSON line per video not extracted."""

from __future__ import annotations

import datetime
import errno
import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FAILURES_NAME = "failures.jsonl"


def record_failure(root: Path, split: str, record: dict[str, Any]) -> None:
    """Append one failure (e.g. ``{"video_id", "video_path", "reason"}``) to failures.jsonl.

    Safe from several processes at once: the file is opened with ``O_APPEND`` and each record
    is one ``write`` of one line. ``split``, the time (UTC, ISO 8601) and the pid are added.
    """
    line = {"split": split, **record}
    line.setdefault("time", datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
    line.setdefault("pid", os.getpid())
    data = (json.dumps(line, sort_keys=False, default=str) + "\n").encode("utf-8")
    path = root / FAILURES_NAME
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
    finally:
        os.close(fd)
    if written != len(data):
        raise OSError(errno.EIO, f"short write to {path}")


def read_failures(root: Path) -> list[dict[str, Any]]:
    """All failure records, oldest first (a line torn by a kill is skipped with a warning)."""
    path = root / FAILURES_NAME
    if not path.is_file():
        return []
    out = []
    text = path.read_text(encoding="utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s line %d is not JSON (torn by a kill?); skipped", path, number)
            continue
        if isinstance(record, dict):
            out.append(record)
    return out
