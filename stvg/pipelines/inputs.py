"""The state of a step's input files, for its fingerprint (:mod:`stvg.pipelines.steps`).

Annotation files are hashed by content (sha256 of their bytes): an edited caption, box or span
changes the fingerprint, a rewrite with the same bytes does not. Every other file under the data
root (videos, VidOR box files, ...) enters by its relative path, size and modification time in
nanoseconds, the rule extraction uses for its entries (:mod:`stvg.extract.sources`): reading
every video's bytes on each rerun would cost as much as decoding them. Folders given in
``exclude`` (the pipeline's own outputs, when they sit under the data root) are left out.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (32 hex digits), read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:32]


def annotation_files(
    dataset: str, data_root: Path, splits: list[str], annotations: str | None
) -> list[Path]:
    """The annotation files extraction reads for ``splits`` (as ``stvg.extract.load_splits``
    finds them), existing or not."""
    from stvg.extract import ANNOTATION_LAYOUT

    pattern = annotations or str(Path(data_root) / ANNOTATION_LAYOUT[dataset])
    return sorted({Path(pattern.replace("{split}", split)) for split in splits})


def files_state(
    data_root: Path, annotations: list[Path], exclude: list[Path] | None = None
) -> dict[str, Any]:
    """``{"annotations": {path: sha256 or None}, "files": digest, "count": n}``: the contents
    of the annotation files (``None``: missing) and one digest over the relative path, size and
    ``mtime_ns`` of every other file under ``data_root``."""
    skip = {p.resolve() for p in annotations}
    excluded = [p.resolve() for p in exclude or []]
    listing = hashlib.sha256()
    count = 0
    root = Path(data_root)
    for folder, dirs, names in os.walk(root):
        here = Path(folder).resolve()
        dirs[:] = sorted(d for d in dirs if (here / d) not in excluded)
        for name in sorted(names):
            path = here / name
            if path in skip:
                continue
            try:
                stat = path.stat()
            except OSError:
                continue
            rel = os.path.relpath(path, root.resolve())
            listing.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
            count += 1

    def name(path: Path) -> str:  # relative to the data root when under it (the root may move)
        try:
            return str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            return str(path)

    return {
        "annotations": {name(p): file_digest(p) if p.is_file() else None for p in annotations},
        "files": listing.hexdigest()[:32],
        "count": count,
    }
