"""The HDF5 backend of the feature store: a finished part is one HDF5 file.

An HDF5 file that is open for writing when its process is killed can be left unreadable (its
metadata is cached and flushed lazily), so no file is ever written in place once it counts. A
part is written in a private working folder and becomes one file when its writer closes::

    <split>/part-K-of-N.h5                  the finished part: one file (h5py.File opens it)
    <split>/part-K-of-N.h5.work/            the working form, while a writer runs or after a kill:
        pending/<kind>-<key>.h5             one complete entry, renamed into place
        pending/.<kind>-<key>.h5.tmp        an entry being written (incomplete)
        removed/<kind>-<key>                a removed (stale) entry: hides older copies (step 5)
        batch-000000.h5, ...                consolidated pending entries, never modified
        .batch-000001.h5.tmp                a batch being consolidated (ignored)
        .final.h5.tmp                       the single file being assembled (ignored)

Inside every file: ``/videos/<key>/<arrays>`` and ``/queries/<key>/<arrays>``, the entry's
attributes (``entry_id``, ..., ``complete``) on its group, ``complete`` written last. Every axis
is labelled with its dimension name, and ``frame_ids`` is a dimension scale attached to the
first axis of ``image`` (h5py: ``f["videos/<key>/image"].dims[0][0]``). The finished file's root
carries the part's attributes (``stvg_layout``, ``stvg_manifest``).

Feature maps are chunked by rows and compressed with the Blosc filter (HDF5 filter id 32001), as
zarr parts are: lz4 with byte shuffle (float16), lz4hc (int8, bool). h5py reads it after ``import
hdf5plugin``; C tools (h5dump, netCDF) with ``HDF5_PLUGIN_PATH`` set to ``hdf5plugin.PLUGIN_PATH``.
Deflate, which every reader has without a plugin, was measured: it packs int8 codes and float16
maps alike (0.54 of raw each on ReLU-like maps), so an int8 store would not be half a float16 one
(0.53), and it decodes slower than lz4.

The scheme, and why a ``kill -9`` at any moment loses at most the entry being written:

1. An entry is written alone to ``pending/.<kind>-<key>.h5.tmp``; after its arrays, the
   ``complete`` attribute is set, the file is closed and renamed to ``pending/<kind>-<key>.h5``.
   The entry counts if and only if the final name exists.
2. Every ``batch_entries`` entries the writer copies the pending entries into
   ``.batch-NNNNNN.h5.tmp``, renames it ``batch-NNNNNN.h5``, then deletes the pending files (this
   keeps the file count near ``entries / batch_entries`` during a long extraction).
3. On ``close()`` the writer copies the finished part (if any), the batches and the pending
   entries into ``.final.h5.tmp``, renames it to ``part-K-of-N.h5`` and deletes the working
   folder. A kill before a rename leaves the sources intact (the ``.tmp`` is ignored); a kill
   after it leaves duplicates, identical and read once (the earlier file wins: finished part,
   batches, pending). The next writer deletes ``.tmp`` files and working files whose every entry
   is in an earlier file.
4. Readers accept both forms and list the final names only (working folder first, then the
   finished file, so a writer finishing meanwhile hides nothing).

5. Replacing a stale entry (:meth:`Hdf5Part.remove`, then a new write): files that count are
   never modified, so removal writes a *tombstone* ``removed/<kind>-<key>`` (atomically) that
   hides the entry in the finished part and in the batches numbered up to the newest one at that
   moment (the number is the tombstone's content), then deletes a pending copy. This clears the
   entry's completion marker in one step; the new version, written after, is a pending file
   that no tombstone hides. Finishing leaves hidden entries out of the single file, renames it
   into place, deletes the tombstones, then the working folder (a kill between the rename and
   the tombstones' deletion hides the new copy in the file, but its working copy still counts).

Adding entries to a finished part (a rerun after new videos or failures) rewrites the whole file
once, at close; a rerun that adds nothing leaves it untouched. A part in the layout of earlier
stvg versions (a folder ``part-K-of-N.h5/`` holding what ``.work/`` holds now) is read as a
working folder, and its next writer moves it to ``.work/`` and finishes it into one file.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import numpy as np

from stvg.atomic import write_text_atomic
from stvg.features._cache import Lru
from stvg.features.contract import BATCH_ENTRIES, KINDS, Attrs, Kind, Rows, StoredArray

log = logging.getLogger(__name__)

SUFFIX = ".h5"
WORK = ".work"
REMOVED = "removed"
_CACHE_SIZE = 1024
# float16: lz4 + byte shuffle; int8 and bool: lz4hc, which packs int8 codes ~20% tighter than
# lz4 at the same decoding speed (see stvg.features._zarr).
_BLOSC = {
    True: hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE),
    False: hdf5plugin.Blosc(cname="lz4hc", clevel=5, shuffle=hdf5plugin.Blosc.NOSHUFFLE),
}
_BATCH = re.compile(r"^batch-(\d{6})\.h5$")
_PENDING = re.compile(r"^(videos|queries)-(.+)\.h5$")
_PENDING_TMP = re.compile(r"^\.(videos|queries)-(.+)\.h5\.tmp$")
_FINAL_TMP = ".final.h5.tmp"


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


def _attach_scales(group: h5py.Group) -> None:
    """Make each 1-D dataset labelled with its own name a dimension scale and attach it to the
    axes bearing that label. Run after every copy too: HDF5 does not carry the references of
    dimension scales into another file."""
    datasets = {name: d for name, d in group.items() if isinstance(d, h5py.Dataset)}
    for dataset in datasets.values():
        for stale in ("DIMENSION_LIST", "REFERENCE_LIST"):
            if stale in dataset.attrs:
                del dataset.attrs[stale]
    for name, scale in datasets.items():
        if scale.ndim != 1 or scale.dims[0].label != name:
            continue
        if not scale.is_scale:
            scale.make_scale(name)
        for other_name, other in datasets.items():
            for axis in range(other.ndim if other_name != name else 0):
                if other.dims[axis].label == name:
                    other.dims[axis].attach_scale(scale)


class Hdf5Part:
    """One part of a split, for reading (``writable=False``) or for its single locked writer."""

    suffix = SUFFIX

    def __init__(
        self, path: str | Path, *, writable: bool = False, batch_entries: int = BATCH_ENTRIES
    ) -> None:
        self.path = Path(path)
        self.work = self.path.with_name(self.path.name + WORK)
        if self.path.is_dir():  # the folder layout of earlier versions: a working folder
            if not writable:
                self.work = self.path
            elif not self.work.exists():
                os.rename(self.path, self.work)
        self.writable = writable
        self.batch_entries = batch_entries
        self._files: dict[Path, h5py.File] = {}
        self._datasets = Lru(_CACHE_SIZE)  # (kind, key, name) -> open h5py.Dataset
        self._pid = os.getpid()
        self._root_attrs: Attrs = {}
        # kind -> key -> (file, attributes), from the first file (by precedence) holding it
        self._complete: dict[str, dict[str, tuple[Path, dict[str, Any]]]] = {}
        self._incomplete: dict[str, list[str]] = {}
        self._contents: dict[Path, int] = {}  # file -> entries indexed from it
        if writable:
            (self.work / "pending").mkdir(parents=True, exist_ok=True)
        self.scan()

    @classmethod
    def exists(cls, path: Path) -> bool:
        """True when a part is at ``path``: the finished file or its working folder."""
        return path.exists() or path.with_name(path.name + WORK).is_dir()

    # listing ----------------------------------------------------------------------------------

    def _sources(self) -> list[Path]:
        """The files that count, by precedence: finished part, batches, pending entries."""
        pending = sorted(n for n in _listdir(self.work / "pending") if _PENDING.match(n))
        batches = sorted(n for n in _listdir(self.work) if _BATCH.match(n))
        final = [self.path] if self.path.is_file() else []  # (not a legacy folder)
        return (
            final + [self.work / n for n in batches] + [self.work / "pending" / n for n in pending]
        )

    def _removed(self) -> dict[tuple[str, str], int]:
        """``{(kind, key): newest batch number hidden}`` from the tombstones (step 5)."""
        out = {}
        for name in _listdir(self.work / REMOVED):
            match = _PENDING.match(name + ".h5")
            if name.startswith(".") or not match:
                continue
            try:
                newest = int((self.work / REMOVED / name).read_text().strip())
            except (OSError, ValueError):
                newest = 1 << 62  # unreadable: hide it everywhere but in pending files
            out[(match.group(1), match.group(2))] = newest
        return out

    def _hidden(self, removed: dict[tuple[str, str], int], path: Path, kind: str, key: str) -> bool:
        """True when a tombstone hides ``kind/key`` in ``path`` (the finished part or a batch
        numbered up to the tombstone's; never a pending file)."""
        newest = removed.get((kind, key))
        if newest is None or path.parent == self.work / "pending":
            return False
        batch = _BATCH.match(path.name) if path.parent == self.work else None
        return batch is None or int(batch.group(1)) <= newest

    def scan(self) -> None:
        """(Re)build the index of complete entries from the files that count."""
        self._close_files()
        self._complete = {kind: {} for kind in KINDS}
        self._incomplete = {kind: [] for kind in KINDS}
        self._contents = {}
        removed = self._removed()
        for path in self._sources():
            try:
                with _open(path, "r") as f:
                    self._contents[path] = 0
                    for kind in KINDS:
                        for key, group in f.get(kind, {}).items():
                            attrs = _attrs(group)
                            if attrs.get("complete") is not True:
                                self._incomplete[kind].append(key)
                            elif self._hidden(removed, path, kind, key):
                                continue
                            elif key not in self._complete[kind]:
                                self._complete[kind][key] = (path, attrs)
                                self._contents[path] += 1
            except FileNotFoundError:
                continue  # moved on by a writer while we listed; its entries are further up
            except OSError as error:
                log.warning("skipping unreadable HDF5 file %s: %s", path, error)
        for name in _listdir(self.work / "pending"):
            match = _PENDING_TMP.match(name)
            if match:
                self._incomplete[match.group(1)].append(match.group(2))

    def entries(self, kind: Kind) -> dict[str, Attrs]:
        """``{key: attributes}`` of the complete entries of ``kind`` (``videos`` or ``queries``)."""
        return {key: attrs for key, (_, attrs) in self._complete[kind].items()}

    def incomplete(self, kind: Kind) -> list[str]:
        """Keys of entries of ``kind`` being written when their writer stopped."""
        return self._incomplete[kind]

    def shapes(self, kind: Kind, key: str) -> dict[str, tuple[int, ...]]:
        """``{array name: shape}`` of one entry."""
        group = self._group(kind, key)
        return {name: tuple(ds.shape) for name, ds in sorted(group.items())}

    # reading ----------------------------------------------------------------------------------

    def _group(self, kind: Kind, key: str) -> h5py.Group:
        if self._pid != os.getpid():  # forked (e.g. a DataLoader worker): handles do not carry over
            self._files = {}
            self._datasets.clear()
            self._pid = os.getpid()
        path = self._complete[kind][key][0]
        f = self._files.get(path)
        if f is None:
            f = self._files[path] = _open(path, "r")
        return f[kind][key]

    def _dataset(self, kind: Kind, key: str, name: str) -> h5py.Dataset:
        handle = (kind, key, name)
        dataset = self._datasets.recall(handle) if self._pid == os.getpid() else None
        if dataset is None:
            dataset = self._datasets.keep(handle, self._group(kind, key)[name])
        return dataset

    def length(self, kind: Kind, key: str, name: str) -> int:
        """The length of the first axis of one stored array."""
        return int(self._dataset(kind, key, name).shape[0])

    def read(self, kind: Kind, key: str, name: str, rows: Rows = None) -> np.ndarray:
        """One stored array, or a slice / sorted unique ``rows`` of its first axis."""
        dataset = self._dataset(kind, key, name)
        if rows is None:
            return np.asarray(dataset[()])
        if isinstance(rows, slice):
            return np.asarray(dataset[rows])
        return np.asarray(dataset[np.asarray(rows, dtype=np.int64)])

    # writing ----------------------------------------------------------------------------------

    def set_attrs(self, attrs: Attrs) -> None:
        """The attributes of the finished file's root (written when the part is finished)."""
        self._check_writable()
        self._root_attrs = dict(attrs)

    def remove_incomplete(self) -> int:
        """Delete ``.tmp`` files, and working files whose every entry is in an earlier file."""
        self._check_writable()
        removed = 0
        for name in _listdir(self.work / "pending"):
            if _PENDING_TMP.match(name):
                (self.work / "pending" / name).unlink(missing_ok=True)
                removed += 1
        for folder in (self.work, self.work / REMOVED):
            for name in _listdir(folder):
                if name.startswith(".") and ".tmp" in name:
                    (folder / name).unlink(missing_ok=True)
        for path, count in self._contents.items():
            if count == 0 and path != self.path:
                path.unlink(missing_ok=True)
        self.scan()
        return removed

    def write(self, kind: Kind, key: str, attrs: Attrs, arrays: dict[str, StoredArray]) -> None:
        """Write one entry to its own pending file (see the module docstring), marker last."""
        self._check_writable()
        if key in self._complete[kind]:
            raise ValueError(f"{kind} entry {key!r} is already complete in {self.path}")
        tmp = self.work / "pending" / f".{kind}-{key}.h5.tmp"
        final = self.work / "pending" / f"{kind}-{key}.h5"
        with _open(tmp, "w") as f:
            group = f.create_group(kind).create_group(key)
            for name, stored in arrays.items():
                data, rows = stored.data, stored.chunk_rows
                options: dict[str, Any] = {}
                if rows is not None:
                    options = {
                        "chunks": (rows,) + data.shape[1:],
                        **_BLOSC[data.dtype.itemsize > 1],
                    }
                dataset = group.create_dataset(name, data=data, **options)
                for axis, dim in enumerate(stored.dims):
                    dataset.dims[axis].label = dim
                dataset.attrs.update(stored.attrs)
            _attach_scales(group)
            group.attrs.update(attrs)
            group.attrs["complete"] = True
        os.replace(tmp, final)
        self._complete[kind][key] = (final, {**attrs, "complete": True})
        self._contents[final] = 1
        if len(self._pending()) >= self.batch_entries:
            self.consolidate()

    def remove(self, kind: Kind, key: str) -> None:
        """Hide a complete entry with a tombstone, then delete its pending copy (step 5)."""
        self._check_writable()
        if key not in self._complete[kind]:
            raise KeyError(f"no complete {kind} entry {key!r} in {self.path}")
        numbers = [int(m.group(1)) for n in _listdir(self.work) if (m := _BATCH.match(n))]
        (self.work / REMOVED).mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.work / REMOVED / f"{kind}-{key}", f"{max(numbers, default=-1)}\n")
        path, _ = self._complete[kind].pop(key)
        self._contents[path] = self._contents.get(path, 1) - 1
        pending = self.work / "pending" / f"{kind}-{key}.h5"
        if pending.exists():
            self._close_files()
            pending.unlink()
            self._contents.pop(pending, None)

    def _pending(self) -> list[Path]:
        return sorted(p for p in self._contents if p.parent == self.work / "pending")

    def _copy_into(self, dst: h5py.File, sources: list[Path]) -> None:
        """Copy the entries indexed from ``sources`` into ``dst`` (raw chunks, no recompression)."""
        for path in sources:
            with _open(path, "r") as src:
                for kind in KINDS:
                    for key in src.get(kind, {}):
                        if self._complete[kind].get(key, (None,))[0] == path:
                            src.copy(src[kind][key], dst.require_group(kind), name=key)
                            _attach_scales(dst[kind][key])

    def _moved(self, sources: list[Path], target: Path) -> None:
        moved = 0
        for kind in KINDS:
            for key, (path, attrs) in self._complete[kind].items():
                if path in sources:
                    self._complete[kind][key] = (target, attrs)
                    moved += 1
        self._contents = {p: n for p, n in self._contents.items() if p not in sources}
        self._contents[target] = self._contents.get(target, 0) + moved

    def consolidate(self) -> None:
        """Copy all pending entries into a new batch file, rename it, then delete them."""
        self._check_writable()
        pending = self._pending()
        if not pending:
            return
        numbers = [int(m.group(1)) for n in _listdir(self.work) if (m := _BATCH.match(n))]
        batch = self.work / f"batch-{max(numbers, default=-1) + 1:06d}.h5"
        tmp = self.work / f".{batch.name}.tmp"
        with _open(tmp, "w") as dst:
            self._copy_into(dst, pending)
        os.replace(tmp, batch)
        self._close_files()
        self._moved(pending, batch)
        for path in pending:
            path.unlink(missing_ok=True)
        log.debug("consolidated %d entries into %s", len(pending), batch)

    def finish(self) -> None:
        """Assemble the finished part into one file, rename it into place, drop the work folder."""
        self._check_writable()
        sources = [p for p in self._contents if p != self.path]
        removed = bool(self._removed())
        if sources or removed or not self.path.is_file():
            tmp = self.work / _FINAL_TMP
            with _open(tmp, "w") as dst:
                dst.attrs.update(self._root_attrs)
                for kind in KINDS:
                    dst.require_group(kind)
                self._copy_into(dst, ([self.path] if self.path.is_file() else []) + sources)
            self._close_files()
            os.replace(tmp, self.path)
            # The tombstones go first: they would hide the new copies in the file just renamed.
            shutil.rmtree(self.work / REMOVED, ignore_errors=True)
            self._moved(sources, self.path)
        self._close_files()
        shutil.rmtree(self.work, ignore_errors=True)
        self.writable = False

    def close(self) -> None:
        if self.writable:
            self.finish()
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
