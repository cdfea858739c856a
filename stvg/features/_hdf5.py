"""The HDF5 backend of the feature store: one part = a directory of small HDF5 files.

An HDF5 file that is open for writing when its process is killed can be left unreadable (its
metadata is cached and flushed lazily), so no file is ever written in place once it counts.
Layout of ``<split>/part-K-of-N.h5/`` (a directory)::

    batch-000000.h5, batch-000001.h5, ...   consolidated entries, never modified once renamed
    pending/videos-<key>.h5                 one complete entry, renamed into place
    pending/.videos-<key>.h5.tmp            an entry being written (incomplete)
    .batch-000002.h5.tmp                    a batch being consolidated (ignored)

Inside every file: ``/videos/<key>/{arrays}`` and ``/queries/<key>/{arrays}``, with the entry's
attributes (``entry_id``, ..., ``complete``) on its group, ``complete`` written last.

The scheme, and why a ``kill -9`` at any moment is safe:

1. An entry is written alone to ``pending/.<kind>-<key>.h5.tmp``; after its arrays, the
   ``complete`` attribute is set, the file is closed, and it is renamed to
   ``pending/<kind>-<key>.h5``. The rename is atomic: the entry counts if and only if the final
   name exists. A kill before it leaves a ``.tmp`` file, counted as an incomplete entry.
2. Every ``batch_entries`` entries, and on ``close()``, the writer consolidates: it copies all
   pending entries into ``.batch-NNNNNN.h5.tmp``, renames it to ``batch-NNNNNN.h5``, then deletes
   the pending files. A kill before the rename leaves the pending files intact (the ``.tmp`` is
   ignored); a kill after it leaves duplicates, which are identical and read once (batch files
   win); the next writer deletes the leftovers.
3. Readers list the final names only, so they never open a file that is being written.

This keeps the file count near ``entries / batch_entries`` (queries are many and small) at the
cost of writing each entry twice. Feature maps (``chunk_rows`` given) are chunked by rows and
compressed with LZF and byte shuffle (float16) or gzip level 1 (int8: LZF alone leaves int8 codes
at 0.49-0.52 of the float16 bytes on ReLU-like maps, gzip at 0.35-0.40). h5py offers no blosc
without the ``hdf5plugin`` package, which stvg does not depend on.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from stvg.features._cache import Lru

log = logging.getLogger(__name__)

SUFFIX = ".h5"
KINDS = ("videos", "queries")
BATCH_ENTRIES = 256
_CACHE_SIZE = 1024
_BATCH = re.compile(r"^batch-(\d{6})\.h5$")
_PENDING = re.compile(r"^(videos|queries)-(.+)\.h5$")
_PENDING_TMP = re.compile(r"^\.(videos|queries)-(.+)\.h5\.tmp$")


def _attrs(group: h5py.Group) -> dict[str, Any]:
    out = {}
    for name, value in group.attrs.items():
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        elif isinstance(value, np.generic):
            value = value.item()
        out[name] = value
    return out


def _open(path: Path, mode: str) -> h5py.File:
    # HDF5's own file locking is left at its default (set HDF5_USE_FILE_LOCKING=FALSE on file
    # systems without locks): mixing locking modes for one file in one process is an error, and
    # users open these files with plain h5py next to a store.
    return h5py.File(path, mode)


class Hdf5Part:
    """One part of a split, for reading (``writable=False``) or for its single locked writer."""

    suffix = SUFFIX

    def __init__(
        self, path: str | Path, *, writable: bool = False, batch_entries: int = BATCH_ENTRIES
    ) -> None:
        self.path = Path(path)
        self.writable = writable
        self.batch_entries = batch_entries
        self._files: dict[str, h5py.File] = {}
        self._datasets = Lru(_CACHE_SIZE)  # (kind, key, name) -> open h5py.Dataset
        self._pid = os.getpid()
        # kind -> key -> (file name relative to the part, attributes)
        self._complete: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {}
        self._incomplete: dict[str, list[str]] = {}
        if writable:
            (self.path / "pending").mkdir(parents=True, exist_ok=True)
        self.scan()

    # listing ----------------------------------------------------------------------------------

    def _final_files(self) -> list[str]:
        """Batch files (in order), then pending entry files: the names that count."""
        batches = sorted(n for n in _listdir(self.path) if _BATCH.match(n))
        pending = sorted(n for n in _listdir(self.path / "pending") if _PENDING.match(n))
        return batches + [f"pending/{n}" for n in pending]

    def scan(self) -> None:
        """(Re)build the index of complete entries from the files that count."""
        self._close_files()
        self._complete = {kind: {} for kind in KINDS}
        self._incomplete = {kind: [] for kind in KINDS}
        self._pending: set[str] = set()
        for name in self._final_files():
            try:
                with _open(self.path / name, "r") as f:
                    for kind in KINDS:
                        for key, group in f.get(kind, {}).items():
                            attrs = _attrs(group)
                            if attrs.get("complete") is not True:
                                self._incomplete[kind].append(key)
                            elif key not in self._complete[kind]:
                                self._complete[kind][key] = (name, attrs)
                                if name.startswith("pending/"):
                                    self._pending.add(name)
            except FileNotFoundError:
                continue  # consolidated away while we listed; its entries are in a batch
            except OSError as error:
                log.warning("skipping unreadable HDF5 file %s: %s", self.path / name, error)
        for name in _listdir(self.path / "pending"):
            match = _PENDING_TMP.match(name)
            if match:
                self._incomplete[match.group(1)].append(match.group(2))

    def entries(self, kind: str) -> dict[str, dict[str, Any]]:
        """``{key: attributes}`` of the complete entries of ``kind`` (``videos`` or ``queries``)."""
        return {key: attrs for key, (_, attrs) in self._complete[kind].items()}

    def incomplete(self, kind: str) -> list[str]:
        """Keys of entries of ``kind`` being written when their writer stopped."""
        return self._incomplete[kind]

    def shapes(self, kind: str, key: str) -> dict[str, tuple[int, ...]]:
        """``{array name: shape}`` of one entry."""
        group = self._group(kind, key)
        return {name: tuple(ds.shape) for name, ds in sorted(group.items())}

    # reading ----------------------------------------------------------------------------------

    def _group(self, kind: str, key: str) -> h5py.Group:
        if self._pid != os.getpid():  # forked (e.g. a DataLoader worker): handles do not carry over
            self._files = {}
            self._datasets.clear()
            self._pid = os.getpid()
        name = self._complete[kind][key][0]
        f = self._files.get(name)
        if f is None:
            f = self._files[name] = _open(self.path / name, "r")
        return f[kind][key]

    def _dataset(self, kind: str, key: str, name: str) -> h5py.Dataset:
        handle = (kind, key, name)
        dataset = self._datasets.recall(handle) if self._pid == os.getpid() else None
        if dataset is None:
            dataset = self._datasets.keep(handle, self._group(kind, key)[name])
        return dataset

    def length(self, kind: str, key: str, name: str) -> int:
        """The length of the first axis of one stored array."""
        return int(self._dataset(kind, key, name).shape[0])

    def read(
        self, kind: str, key: str, name: str, rows: slice | np.ndarray | None = None
    ) -> np.ndarray:
        """One stored array, or a slice / sorted unique ``rows`` of its first axis."""
        dataset = self._dataset(kind, key, name)
        if rows is None:
            return np.asarray(dataset[()])
        if isinstance(rows, slice):
            return np.asarray(dataset[rows])
        return np.asarray(dataset[np.asarray(rows, dtype=np.int64)])

    # writing ----------------------------------------------------------------------------------

    def remove_incomplete(self) -> int:
        """Delete ``.tmp`` files and pending files already consolidated into a batch."""
        self._check_writable()
        removed = 0
        for name in _listdir(self.path / "pending"):
            path = self.path / "pending" / name
            if _PENDING_TMP.match(name):
                path.unlink(missing_ok=True)
                removed += 1
            elif _PENDING.match(name) and self._in_batch(f"pending/{name}"):
                path.unlink(missing_ok=True)
        for name in _listdir(self.path):
            if name.startswith(".batch-") and name.endswith(".tmp"):
                (self.path / name).unlink(missing_ok=True)
        self.scan()
        return removed

    def _in_batch(self, pending_name: str) -> bool:
        """True when every entry of a pending file is indexed from a batch file."""
        match = _PENDING.match(pending_name.split("/", 1)[1])
        if not match:
            return False
        where = self._complete[match.group(1)].get(match.group(2))
        return where is not None and where[0] != pending_name

    def write(
        self,
        kind: str,
        key: str,
        attrs: dict[str, Any],
        arrays: dict[str, np.ndarray],
        chunk_rows: dict[str, int | None],
        dims: dict[str, tuple[str, ...]],
    ) -> None:
        """Write one entry to its own pending file (see the module docstring), marker last."""
        self._check_writable()
        if key in self._complete[kind]:
            raise ValueError(f"{kind} entry {key!r} is already complete in {self.path}")
        tmp = self.path / "pending" / f".{kind}-{key}.h5.tmp"
        final = self.path / "pending" / f"{kind}-{key}.h5"
        with _open(tmp, "w") as f:
            group = f.create_group(kind).create_group(key)
            for name, data in arrays.items():
                rows = chunk_rows.get(name)
                options: dict[str, Any] = {}
                if rows is not None and data.dtype.itemsize > 1:
                    options = {
                        "chunks": (rows,) + data.shape[1:],
                        "compression": "lzf",
                        "shuffle": True,
                    }
                elif rows is not None:
                    options = {
                        "chunks": (rows,) + data.shape[1:],
                        "compression": "gzip",
                        "compression_opts": 1,
                    }
                dataset = group.create_dataset(name, data=data, **options)
                if name in dims:
                    dataset.attrs["dimension_names"] = list(dims[name])
            for name, value in attrs.items():
                group.attrs[name] = value
            group.attrs["complete"] = True
        os.replace(tmp, final)
        name = f"pending/{final.name}"
        self._complete[kind][key] = (name, {**attrs, "complete": True})
        self._pending.add(name)
        if len(self._pending) >= self.batch_entries:
            self.consolidate()

    def consolidate(self) -> None:
        """Copy all pending entries into a new batch file, rename it, then delete them."""
        self._check_writable()
        pending = sorted(self._pending)
        if not pending:
            return
        numbers = [int(m.group(1)) for n in _listdir(self.path) if (m := _BATCH.match(n))]
        batch = f"batch-{max(numbers, default=-1) + 1:06d}.h5"
        tmp = self.path / f".{batch}.tmp"
        with _open(tmp, "w") as dst:
            for name in pending:
                with _open(self.path / name, "r") as src:
                    for kind in KINDS:
                        for key in src.get(kind, {}):
                            src.copy(src[kind][key], dst.require_group(kind), name=key)
        os.replace(tmp, self.path / batch)
        for kind in KINDS:
            for key, (name, attrs) in self._complete[kind].items():
                if name in pending:
                    self._complete[kind][key] = (batch, attrs)
        self._close_files()
        for name in pending:
            (self.path / name).unlink(missing_ok=True)
        self._pending.clear()
        log.debug("consolidated %d entries into %s", len(pending), self.path / batch)

    def close(self) -> None:
        if self.writable:
            self.consolidate()
        self._close_files()

    def _close_files(self) -> None:
        if self._pid == os.getpid():
            for f in self._files.values():
                try:
                    f.close()
                except Exception:  # noqa: BLE001 - closing a handle that is already gone
                    pass
        self._files = {}
        self._datasets.clear()

    def _check_writable(self) -> None:
        if not self.writable:
            raise RuntimeError(f"part {self.path} is open for reading only")


def _listdir(path: Path) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []
