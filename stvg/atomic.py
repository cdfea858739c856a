"""Files that appear whole or not at all: write a temporary file beside the target, then rename.

A reader (or a rerun after ``kill -9``) sees either the old file or the new one, never half of
one. The temporary name starts with a dot and carries the writer's pid, so two processes never
share one and a listing of the folder can ignore them.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def temporary_name(path: Path) -> Path:
    """The hidden, per-process temporary name used while ``path`` is written."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def atomic_path(path: str | Path, *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is synced and renamed onto ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write UTF-8 text to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | Path, data: Any, *, indent: int | None = None) -> None:
    """Write JSON (keys in the order given, a final newline) to ``path`` atomically."""
    write_text_atomic(path, json.dumps(data, indent=indent) + "\n")


def torch_save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` atomically (checkpoints, weights)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
