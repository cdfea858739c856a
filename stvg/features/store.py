"""The feature store: one contract over zarr and HDF5, written by extraction, read by training.

Layout (docs/design.md section 7)::

    <root>/manifest.json                    what made the features (stvg.features.manifest)
    <root>/failures.jsonl                   one JSON line per video that could not be extracted
    <root>/<split>/part-K-of-N.zarr         (or .h5) written by exactly one writer
    <root>/<split>/part-K-of-N.lock         that writer's lock (holds its pid; flock-ed)

``K`` is 0-based (``0 <= K < N``, as SLURM ``--array=0-(N-1)`` numbers tasks). A split is the
union of its parts; when an entry is in two parts, the first by ``(N, K)`` is read.

Entries (ids are free strings, escaped into safe zarr/HDF5 keys by :func:`entry_key`):

* a **video entry** ``entry_id`` (e.g. ``"<video_id>@<seg0>-<seg1>"``): ``frame_ids`` int32
  ``[Ts]`` (0-based native frame ids of the static frames), ``image`` ``[Ts, C, h, w]`` (image
  backbone maps), ``clip_spans`` int32 ``[Td, 2]`` (half-open native frame spans of the clips),
  ``motion`` ``[Td, C2, h2, w2]`` (video backbone maps);
* a **query entry** ``sample_id``: ``text`` ``[L, D]`` (text states), ``text_mask`` bool ``[L]``,
  the :class:`~stvg.data.sample.Sample` record (JSON) and the ``entry_id`` of its video entry.

Feature arrays (``image``, ``motion``, ``text``) are stored as float16, or as int8 with a
float32 scale per channel (axis 1) named ``<array>_scale`` (:mod:`stvg.features.quantize`).
Every write refuses non-finite values and values beyond the float16 range (|x| > 65504), with
either dtype, before anything is written. Readers always return float32 (dequantized).

An entry counts only once its completion marker is written, last. Readers skip incomplete
entries; a writer deletes its part's incomplete entries when it opens, so a rerun after a
``kill -9`` rewrites them cleanly. Both backends are described in their modules
(:mod:`stvg.features._zarr`, :mod:`stvg.features._hdf5`).

Example::

    store = create_store("features/demo", Manifest(dataset="synthetic", backbones={...}))
    with store.writer("train", part=(0, 1)) as w:
        if not w.has_video("v1@0-100"):
            w.write_video("v1@0-100", frame_ids, image, clip_spans, motion)
        w.write_query(sample, text, text_mask, entry_id="v1@0-100")
    store.video("v1@0-100", "train", frames=[0, 5])["image"]   # float32 [2, C, h, w]

Reading is not thread-safe (one store object per thread); it is fork-safe (DataLoader workers).
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from stvg.data.sample import Sample
from stvg.errors import InputError
from stvg.features._hdf5 import BATCH_ENTRIES, Hdf5Part
from stvg.features._zarr import ZarrPart
from stvg.features.manifest import (
    LAYOUT_VERSION,
    MANIFEST_NAME,
    Manifest,
    check_compatible,
    create_manifest,
    read_manifest,
)
from stvg.features.quantize import dequantize_int8, quantize_int8

log = logging.getLogger(__name__)

FP16_MAX = 65504.0
FAILURES_NAME = "failures.jsonl"
CHUNK_BYTES = 512 * 1024  # target size of an inner chunk of a feature map
MAX_CHUNK_ROWS = 8

_BACKENDS: dict[str, type[ZarrPart] | type[Hdf5Part]] = {"zarr": ZarrPart, "hdf5": Hdf5Part}
_PART = re.compile(r"^part-(\d+)-of-(\d+)(\.zarr|\.h5)$")
_SPLIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SAFE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-@")
_MAX_KEY = 160

# Names of the axes, per array, written as zarr dimension names (so that an entry group opens as
# an xarray Dataset) and as an HDF5 attribute.
_DIMS = {
    "frame_ids": ("frame",),
    "image": ("frame", "image_channel", "image_y", "image_x"),
    "image_scale": ("image_channel",),
    "clip_spans": ("clip", "bound"),
    "motion": ("clip", "motion_channel", "motion_y", "motion_x"),
    "motion_scale": ("motion_channel",),
    "text": ("token", "text_channel"),
    "text_scale": ("text_channel",),
    "text_mask": ("token",),
}


class NonFiniteFeatures(InputError):
    """A feature array holds inf/NaN or values beyond float16; nothing of the entry was written."""


class PartLocked(InputError):
    """Another live process is writing this part."""


def entry_key(entry_id: str) -> str:
    """A zarr/HDF5/file-name-safe key for an entry or sample id (injective).

    Letters, digits and ``._-@`` are kept; every other character becomes ``%XX`` per UTF-8 byte
    (so ``/`` is ``%2F``); a leading ``.`` becomes ``%2E`` and a leading ``__`` becomes ``%5F_``. Keys longer than 160 characters are
    cut to 120 and end with ``~`` plus 16 hex digits of the id's SHA-1. Readers take ids from the
    entry attributes, never from keys.
    """
    if not isinstance(entry_id, str) or not entry_id:
        raise ValueError(f"an entry id must be a non-empty string, got {entry_id!r}")
    parts = []
    for char in entry_id:
        if char in _SAFE_CHARS:
            parts.append(char)
        else:
            parts.extend(f"%{byte:02X}" for byte in char.encode("utf-8"))
    key = "".join(parts)
    if key.startswith("."):
        key = "%2E" + key[1:]
    if key.startswith("__"):  # reserved for zarr's own names
        key = "%5F" + key[1:]
    if len(key) > _MAX_KEY:
        key = key[:120] + "~" + hashlib.sha1(entry_id.encode("utf-8")).hexdigest()[:16]
    return key


def _chunk_rows(array: np.ndarray) -> int:
    """Rows (frames or clips) per inner chunk: about CHUNK_BYTES, between 1 and 8 (or all)."""
    row_bytes = max(1, array[:1].nbytes)
    return int(min(MAX_CHUNK_ROWS, len(array), max(1, CHUNK_BYTES // row_bytes)))


@dataclass
class _SplitIndex:
    """Where each complete entry of a split lives: id -> (part, key, attributes)."""

    videos: dict[str, tuple[Any, str, dict[str, Any]]] = field(default_factory=dict)
    queries: dict[str, tuple[Any, str, dict[str, Any]]] = field(default_factory=dict)
    incomplete: int = 0
    parts: list[Any] = field(default_factory=list)


class FeatureStore:
    """A feature store on disk: the reading side, and the factory of part writers.

    Open one with :func:`create_store` (to write) or :func:`open_store` (to read).
    """

    def __init__(self, root: str | Path, manifest: Manifest) -> None:
        self.root = Path(root)
        self.manifest = manifest
        self._backend = _BACKENDS[manifest.backend]
        self._indexes: dict[str, _SplitIndex] = {}

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.root)!r}, backend={self.manifest.backend!r}, dtype={self.manifest.dtype!r})"

    # writing ----------------------------------------------------------------------------------

    def writer(
        self, split: str, part: tuple[int, int] = (0, 1), *, batch_entries: int = BATCH_ENTRIES
    ) -> PartWriter:
        """Open part ``K`` of ``N`` (``part=(K, N)``, ``0 <= K < N``) of ``split`` for writing.

        Takes the part's lock (raises :class:`PartLocked` naming the holder's pid when another
        process has it) and deletes the part's incomplete entries. ``batch_entries`` (HDF5 only)
        is how many entries go into one consolidated file.
        """
        return PartWriter(self, split, part, batch_entries=batch_entries)

    def record_failure(self, split: str, record: dict[str, Any]) -> None:
        """Append one failure (e.g. ``{"video_id", "video_path", "reason"}``) to failures.jsonl.

        Safe from several processes at once: the file is opened with ``O_APPEND`` and each record
        is one ``write`` of one line. ``split``, the time (UTC, ISO 8601) and the pid are added.
        """
        line = {"split": split, **record}
        line.setdefault("time", datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
        line.setdefault("pid", os.getpid())
        data = (json.dumps(line, sort_keys=False, default=str) + "\n").encode("utf-8")
        fd = os.open(self.root / FAILURES_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, data)
        finally:
            os.close(fd)
        if written != len(data):
            raise OSError(errno.EIO, f"short write to {self.root / FAILURES_NAME}")

    def failures(self) -> list[dict[str, Any]]:
        """All failure records, oldest first (a line torn by a kill is skipped with a warning)."""
        path = self.root / FAILURES_NAME
        if not path.is_file():
            return []
        out = []
        for number, line in enumerate(
            path.read_text(encoding="utf-8", errors="replace").splitlines(), 1
        ):
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

    # reading ----------------------------------------------------------------------------------

    def splits(self) -> list[str]:
        """Names of the splits that have at least one part of this store's backend."""
        if not self.root.is_dir():
            return []
        return sorted(
            entry.name
            for entry in os.scandir(self.root)
            if entry.is_dir() and _SPLIT.match(entry.name) and self._part_paths(entry.name)
        )

    def _part_paths(self, split: str) -> list[Path]:
        folder = self.root / split
        if not folder.is_dir():
            return []
        found = []
        for entry in os.scandir(folder):
            match = _PART.match(entry.name)
            if match and entry.is_dir() and match.group(3) == self._backend.suffix:
                found.append(((int(match.group(2)), int(match.group(1))), Path(entry.path)))
        return [path for _, path in sorted(found)]

    def refresh(self) -> None:
        """Forget the cached indexes, so entries written since (by any process) become visible."""
        for split in list(self._indexes):
            self._forget(split)

    def _forget(self, split: str) -> None:
        index = self._indexes.pop(split, None)
        for part in index.parts if index else []:
            part.close()

    def _index(self, split: str) -> _SplitIndex:
        index = self._indexes.get(split)
        if index is None:
            index = _SplitIndex()
            for path in self._part_paths(split):
                part = self._backend(path)
                index.parts.append(part)
                for kind, table, id_name in (
                    ("videos", index.videos, "entry_id"),
                    ("queries", index.queries, "sample_id"),
                ):
                    for key, attrs in part.entries(kind).items():
                        table.setdefault(str(attrs[id_name]), (part, key, attrs))
                    index.incomplete += len(part.incomplete(kind))
            self._indexes[split] = index
        return index

    def has_video(self, entry_id: str, split: str) -> bool:
        """True when a complete video entry ``entry_id`` exists in ``split``."""
        return entry_id in self._index(split).videos

    def has_query(self, sample_id: str, split: str) -> bool:
        """True when a complete query entry ``sample_id`` exists in ``split``."""
        return sample_id in self._index(split).queries

    def samples(self, split: str) -> list[Sample]:
        """The Sample records of the complete queries of ``split`` (all parts), by sample_id."""
        index = self._index(split)
        out = []
        for sample_id in sorted(index.queries):
            part, _, attrs = index.queries[sample_id]
            out.append(Sample.from_json(json.loads(attrs["sample"]), file=part.path))
        return out

    def entry_of(self, sample_id: str, split: str) -> str:
        """The ``entry_id`` of a complete query's video entry (no array is read)."""
        index = self._index(split)
        self._locate("queries", index.queries, sample_id, split)
        return str(index.queries[sample_id][2]["entry_id"])

    def entry_ids(self, split: str) -> list[str]:
        """The ids of the complete video entries of ``split``, sorted."""
        return sorted(self._index(split).videos)

    def video(
        self,
        entry_id: str,
        split: str,
        *,
        frames: Any = None,
        clips: Any = None,
    ) -> dict[str, np.ndarray]:
        """One video entry, as float32 features.

        Args:
            entry_id: the id given to ``write_video``.
            split: the split it was written to.
            frames: optional positions (0-based, into the entry's ``Ts`` static frames, any order,
                repeats allowed) to read only those frames; ``None`` reads all.
            clips: the same for the ``Td`` clips.

        Returns:
            ``{"frame_ids": int32 [Ts'], "image": float32 [Ts', C, h, w],
            "clip_spans": int32 [Td', 2], "motion": float32 [Td', C2, h2, w2]}``.
        """

        def read() -> dict[str, np.ndarray]:
            part, key = self._locate("videos", self._index(split).videos, entry_id, split)
            return {
                "frame_ids": _read_rows(part, "videos", key, "frame_ids", frames).astype(np.int32),
                "image": _read_feature(part, "videos", key, "image", frames),
                "clip_spans": _read_rows(part, "videos", key, "clip_spans", clips).astype(np.int32),
                "motion": _read_feature(part, "videos", key, "motion", clips),
            }

        return self._retry(split, read)

    def frame_ids(self, entry_id: str, split: str) -> np.ndarray:
        """The native frame ids of an entry's static frames (int32 [Ts]), without the maps."""

        def read() -> np.ndarray:
            part, key = self._locate("videos", self._index(split).videos, entry_id, split)
            return _read_rows(part, "videos", key, "frame_ids", None).astype(np.int32)

        return self._retry(split, read)

    def _retry(self, split: str, read: Any) -> Any:
        """Run ``read``; if a file moved under it (an HDF5 writer consolidating meanwhile), re-index
        the split once and run it again."""
        try:
            return read()
        except OSError:
            self._forget(split)
            return read()

    def query(self, sample_id: str, split: str) -> dict[str, Any]:
        """One query entry: ``{"text": float32 [L, D], "text_mask": bool [L], "sample": Sample,
        "entry_id": str}``."""

        def read() -> dict[str, Any]:
            index = self._index(split)
            part, key = self._locate("queries", index.queries, sample_id, split)
            attrs = index.queries[sample_id][2]
            return {
                "text": _read_feature(part, "queries", key, "text", None),
                "text_mask": _read_rows(part, "queries", key, "text_mask", None).astype(bool),
                "sample": Sample.from_json(json.loads(attrs["sample"]), file=part.path),
                "entry_id": str(attrs["entry_id"]),
            }

        return self._retry(split, read)

    def _locate(self, kind: str, table: dict, entry: str, split: str) -> tuple[Any, str]:
        if entry not in table:
            what = "video entry" if kind == "videos" else "query"
            raise KeyError(
                f"no complete {what} {entry!r} in split {split!r} of the feature store {self.root}"
            )
        part, key, _ = table[entry]
        return part, key

    def info(self) -> dict[str, Any]:
        """A summary: counts, bytes, failures, shapes per array, and how the store was made.

        ``shapes`` maps each stored array to ``{"entries", "rows", "shape"}`` where ``rows`` is
        the sum of the first axis over entries and ``shape`` has ``None`` on axes that vary.
        """
        self.refresh()
        splits: dict[str, Any] = {}
        shapes: dict[str, list[tuple[int, ...]]] = {}
        for split in self.splits():
            index = self._index(split)
            splits[split] = {
                "videos": len(index.videos),
                "queries": len(index.queries),
                "incomplete": index.incomplete,
                "parts": [part.path.name for part in index.parts],
            }
            for kind, table in (("videos", index.videos), ("queries", index.queries)):
                for part, key, _ in table.values():
                    for name, shape in part.shapes(kind, key).items():
                        shapes.setdefault(name, []).append(shape)
        summary = {}
        for name, seen in sorted(shapes.items()):
            first = seen[0]
            same = [
                first[i] if all(len(s) == len(first) and s[i] == first[i] for s in seen) else None
                for i in range(len(first))
            ]
            summary[name] = {
                "entries": len(seen),
                "rows": int(sum(s[0] for s in seen if s)),
                "shape": same,
            }
        total = 0
        for folder, _, files in os.walk(self.root):
            total += sum(os.path.getsize(os.path.join(folder, f)) for f in files)
        m = self.manifest
        return {
            "root": str(self.root),
            "layout": m.layout,
            "dataset": m.dataset,
            "backend": m.backend,
            "dtype": m.dtype,
            "videos": sum(s["videos"] for s in splits.values()),
            "queries": sum(s["queries"] for s in splits.values()),
            "incomplete": sum(s["incomplete"] for s in splits.values()),
            "bytes": total,
            "failures": len(self.failures()),
            "splits": splits,
            "shapes": summary,
            "backbones": m.backbones,
            "sampling": m.sampling,
            "stvg_version": m.stvg_version,
        }

    def close(self) -> None:
        self.refresh()


# Read a covering slice when the asked rows fill at least 1/_DENSE of it (a training draw does);
# a row selection only for sparse picks.
_DENSE = 4


def _positions(rows: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Sorted unique rows to read, and how to put them back in the asked order."""
    if rows is None:
        return None, None
    asked = np.asarray(rows, dtype=np.int64).reshape(-1)
    unique, inverse = np.unique(asked, return_inverse=True)
    return unique, inverse


def _read_rows(part: Any, kind: str, key: str, name: str, rows: Any) -> np.ndarray:
    unique, inverse = _positions(rows)
    if unique is None:
        return part.read(kind, key, name)
    n = part.length(kind, key, name)
    if unique.size and (unique[0] < 0 or unique[-1] >= n):
        raise IndexError(
            f"{name} of {key!r}: positions must lie in [0, {n}), got {unique[0]}..{unique[-1]}"
        )
    if unique.size and unique[-1] - unique[0] + 1 <= _DENSE * unique.size:
        # One slice over the rows, then numpy: a row selection costs zarr ~2.5 ms a row
        # (20.9 ms for 8 rows of 30 against 4.1 ms for all 30, BENCHMARKS.md).
        first = int(unique[0])
        block = part.read(kind, key, name, slice(first, int(unique[-1]) + 1))
        return block[(unique - first)[inverse]]
    return part.read(kind, key, name, unique)[inverse]


def _read_feature(part: Any, kind: str, key: str, name: str, rows: Any) -> np.ndarray:
    stored = _read_rows(part, kind, key, name, rows)
    if stored.dtype == np.int8:
        return dequantize_int8(stored, part.read(kind, key, f"{name}_scale"), axis=1)
    return stored.astype(np.float32)


def _check_features(name: str, x: Any, ndim: int, entry: str, file: Path) -> np.ndarray:
    """A float feature array of ``ndim`` axes, none empty, finite and within float16."""
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise ValueError(f"entry {entry!r}: {name} must be a float array, got dtype {x.dtype}")
    if x.ndim != ndim or 0 in x.shape:
        raise ValueError(
            f"entry {entry!r}: {name} must have {ndim} non-empty axes, got shape {x.shape}"
        )
    peak = float(np.max(np.abs(x)))
    if np.isfinite(peak) and peak <= FP16_MAX:
        return x
    finite = np.isfinite(x)
    n_bad = int(x.size - np.count_nonzero(finite))
    n_big = int(np.count_nonzero(np.abs(np.where(finite, x, 0)) > FP16_MAX))
    first = np.unravel_index(
        int(np.argmin(finite & (np.abs(np.where(finite, x, 0)) <= FP16_MAX))), x.shape
    )
    raise NonFiniteFeatures(
        f"{name} {list(x.shape)} holds {n_bad} non-finite values (inf/NaN) and {n_big} values beyond "
        f"the float16 range (|x| > {FP16_MAX:g}); the first at index {tuple(int(i) for i in first)}. "
        "Nothing of this entry was written",
        file=file,
        sample=entry,
        field=name,
        hint="Such values usually come from random weights at a deep cut (random ResNet101 C5 "
        "overflows float16, docs/design.md section 6): use a shallower image layer or recalibrate "
        "BatchNorm",
    )


def _check_ids(name: str, x: Any, shape_tail: tuple[int, ...], entry: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "iu" or x.ndim != 1 + len(shape_tail) or x.shape[1:] != shape_tail:
        raise ValueError(
            f"entry {entry!r}: {name} must be an integer array [n{''.join(f', {d}' for d in shape_tail)}], got {x.dtype} {x.shape}"
        )
    if x.size and (x.min() < 0 or x.max() > np.iinfo(np.int32).max):
        raise ValueError(
            f"entry {entry!r}: {name} must hold frame ids in [0, 2**31), got {x.min()}..{x.max()}"
        )
    return x.astype(np.int32)


class PartWriter:
    """The single writer of one part ``<root>/<split>/part-K-of-N.<ext>``; a context manager.

    ``has_video`` / ``has_query`` say whether a complete entry exists in this part (live) or in
    any other part of the split (as of when this writer opened): a rerun skips those.
    """

    def __init__(
        self,
        store: FeatureStore,
        split: str,
        part: tuple[int, int],
        *,
        batch_entries: int = BATCH_ENTRIES,
    ) -> None:
        if not isinstance(split, str) or not _SPLIT.match(split):
            raise InputError(
                f"split name {split!r} must be letters, digits, '_', '-' or '.', not starting with '.'",
                field="split",
            )
        k, n = part
        if not (isinstance(k, int) and isinstance(n, int) and 0 <= k < n):
            raise InputError(f"part must be (K, N) with 0 <= K < N, got {part!r}", field="shard")
        self.store = store
        self.split = split
        self.part = (k, n)
        self.dtype = store.manifest.dtype
        folder = store.root / split
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"part-{k}-of-{n}{store._backend.suffix}"
        self._lock_fd = _lock(folder / f"part-{k}-of-{n}.lock", self.path)
        try:
            options = {"batch_entries": batch_entries} if store._backend is Hdf5Part else {}
            self._part = store._backend(self.path, writable=True, **options)
            removed = self._part.remove_incomplete()
        except BaseException:
            os.close(self._lock_fd)
            raise
        if removed:
            log.info(
                "%s: removed %d incomplete entries left by an interrupted writer",
                self.path,
                removed,
            )
        store.refresh()
        index = store._index(split)
        self._others = {
            "videos": {i for i, (p, _, _) in index.videos.items() if p.path != self.path},
            "queries": {i for i, (p, _, _) in index.queries.items() if p.path != self.path},
        }
        self._closed = False

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _has(self, kind: str, entry: str) -> bool:
        if entry in self._others[kind]:
            return True
        attrs = self._part.entries(kind).get(entry_key(entry))
        id_name = "entry_id" if kind == "videos" else "sample_id"
        return attrs is not None and attrs.get(id_name) == entry

    def has_video(self, entry_id: str) -> bool:
        """True when a complete video entry ``entry_id`` exists (see the class docstring)."""
        return self._has("videos", entry_id)

    def has_query(self, sample_id: str) -> bool:
        """True when a complete query entry ``sample_id`` exists (see the class docstring)."""
        return self._has("queries", sample_id)

    def _encode(self, name: str, x: np.ndarray) -> dict[str, np.ndarray]:
        if self.dtype == "int8":
            q, scale = quantize_int8(x, axis=1)
            return {name: q, f"{name}_scale": scale}
        return {name: x.astype(np.float16)}

    def _put(
        self, kind: str, entry: str, attrs: dict[str, Any], arrays: dict[str, np.ndarray]
    ) -> None:
        if self._closed:
            raise RuntimeError(f"the writer of {self.path} is closed")
        key = entry_key(entry)
        existing = self._part.entries(kind).get(key)
        if existing is not None:
            raise ValueError(
                f"{kind[:-1]} entry {entry!r} is already complete in {self.path} "
                f"(stored id {existing.get('entry_id' if kind == 'videos' else 'sample_id')!r}); "
                "check has_video/has_query before writing"
            )
        rows = {
            name: (_chunk_rows(a) if name in ("image", "motion") else None)
            for name, a in arrays.items()
        }
        self._part.write(kind, key, attrs, arrays, rows, {n: _DIMS[n] for n in arrays})
        self.store._forget(self.split)

    def write_video(
        self, entry_id: str, frame_ids: Any, image: Any, clip_spans: Any, motion: Any
    ) -> None:
        """Write one video entry (shapes in the module docstring); its marker goes last.

        Raises ``ValueError`` on wrong shapes or dtypes and :class:`NonFiniteFeatures` on
        inf/NaN or values beyond float16, before anything is written.
        """
        frame_ids = _check_ids("frame_ids", frame_ids, (), entry_id)
        image = _check_features("image", image, 4, entry_id, self.path)
        clip_spans = _check_ids("clip_spans", clip_spans, (2,), entry_id)
        motion = _check_features("motion", motion, 4, entry_id, self.path)
        if len(frame_ids) != image.shape[0]:
            raise ValueError(
                f"entry {entry_id!r}: {len(frame_ids)} frame_ids for {image.shape[0]} image maps"
            )
        if len(clip_spans) != motion.shape[0]:
            raise ValueError(
                f"entry {entry_id!r}: {len(clip_spans)} clip_spans for {motion.shape[0]} motion maps"
            )
        if np.any(clip_spans[:, 1] <= clip_spans[:, 0]):
            raise ValueError(
                f"entry {entry_id!r}: clip_spans must be half-open [start, end) with start < end"
            )
        arrays = {
            "frame_ids": frame_ids,
            **self._encode("image", image),
            "clip_spans": clip_spans,
            **self._encode("motion", motion),
        }
        self._put("videos", entry_id, {"entry_id": entry_id}, arrays)

    def write_query(self, sample: Sample, text: Any, text_mask: Any, entry_id: str) -> None:
        """Write one query entry: text states ``[L, D]``, mask ``[L]``, the Sample, its entry_id.

        Raises ``ValueError`` on wrong shapes and :class:`NonFiniteFeatures` on bad values,
        before anything is written.
        """
        sid = sample.sample_id
        text = _check_features("text", text, 2, sid, self.path)
        mask = np.asarray(text_mask)
        if mask.shape != (text.shape[0],) or mask.dtype.kind not in "biu":
            raise ValueError(
                f"sample {sid!r}: text_mask must be bool [{text.shape[0]}], got {mask.dtype} {mask.shape}"
            )
        if not isinstance(entry_id, str) or not entry_id:
            raise ValueError(
                f"sample {sid!r}: entry_id must be a non-empty string, got {entry_id!r}"
            )
        attrs = {"sample_id": sid, "entry_id": entry_id, "sample": json.dumps(sample.to_json())}
        self._put(
            "queries", sid, attrs, {**self._encode("text", text), "text_mask": mask.astype(bool)}
        )

    def close(self) -> None:
        """Finish the part (HDF5: consolidate pending entries) and release the lock."""
        if self._closed:
            return
        self._closed = True
        try:
            self._part.close()
        finally:
            os.close(self._lock_fd)
            self.store.refresh()


def _lock(path: Path, part: Path) -> int:
    """Take an exclusive ``flock`` on ``path`` and write our pid into it; return the fd.

    The lock dies with the process (also on ``kill -9``), so a stale lock file never blocks a
    rerun. ``flock`` works on local file systems and NFSv4; Lustre needs the ``flock`` mount option.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode("utf-8", errors="replace").strip() or "unknown"
        os.close(fd)
        raise PartLocked(
            f"another writer is writing this part (lock held by pid/host {holder})",
            file=part,
            hint="Wait for it to finish, or give this run another shard (--shard K/N)",
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
    return fd


def open_store(root: str | Path) -> FeatureStore:
    """Open an existing store for reading (and for writing with the same settings).

    Raises :class:`InputError` when ``root`` holds no manifest or one of another layout version.
    """
    manifest = read_manifest(root)
    if manifest.layout != LAYOUT_VERSION:
        raise InputError(
            f"the store has layout {manifest.layout!r}; this stvg reads {LAYOUT_VERSION!r}",
            file=Path(root) / MANIFEST_NAME,
            field="layout",
            hint=f"Read it with the stvg version that wrote it ({manifest.stvg_version}), or extract again to another --out",
        )
    return FeatureStore(root, manifest)


def create_store(root: str | Path, manifest: Manifest) -> FeatureStore:
    """Create a store at ``root``, or open the existing one after checking it matches ``manifest``.

    Raises :class:`InputError` when the existing store was made with other settings (see
    :func:`~stvg.features.manifest.check_compatible`) or when ``root`` is a non-empty directory
    that is not a store. Safe when several processes create the same store at once.
    """
    root = Path(root)
    if root.is_dir() and not (root / MANIFEST_NAME).exists():
        others = [n for n in os.listdir(root) if not n.startswith(f".{MANIFEST_NAME}.tmp")]
        if others:
            raise InputError(
                f"the directory exists and is not a feature store (it holds {', '.join(sorted(others)[:3])}...)",
                file=root,
                hint="Choose another --out, or empty the directory",
            )
    root.mkdir(parents=True, exist_ok=True)
    existing = create_manifest(root, manifest)
    check_compatible(existing, manifest, root=root)
    return FeatureStore(root, existing)


def store_arrays(root: str | Path) -> dict[str, np.ndarray]:
    """Every complete entry's arrays, keyed ``"split/id/name"`` (float32 features as read).

    Query entries also give ``"split/sample_id/entry"`` (their video entry id). Two stores hold
    the same entries and values exactly when these dicts are equal: how shard, dask, resume and
    kill tests compare a store with an uninterrupted single-process one.
    """
    store = open_store(root)
    out: dict[str, np.ndarray] = {}
    try:
        for split in store.splits():
            for entry_id in store.entry_ids(split):
                for name, value in store.video(entry_id, split).items():
                    out[f"{split}/{entry_id}/{name}"] = value
            for sample in store.samples(split):
                query = store.query(sample.sample_id, split)
                out[f"{split}/{sample.sample_id}/text"] = query["text"]
                out[f"{split}/{sample.sample_id}/text_mask"] = query["text_mask"]
                out[f"{split}/{sample.sample_id}/entry"] = np.array(query["entry_id"])
    finally:
        store.close()
    return out
