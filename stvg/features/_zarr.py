"""The zarr v3 backend of the feature store: one part = one zarr group directory.

Layout of ``<split>/part-K-of-N.zarr`` (a plain zarr v3 group, readable with ``zarr.open``)::

    zarr.json                         attributes: stvg_layout, stvg_manifest (JSON)
    videos/<key>/zarr.json            attributes: entry_id, ..., complete (written last)
    videos/<key>/image, motion, ...   arrays (feature maps: one shard, inner chunks of rows),
                                      with dimension_names and attributes (units, backbone, ...)
    queries/<key>/...                 the same for query entries

An entry group opens as an xarray Dataset (``xarray.open_zarr(part, group="videos/<key>")``):
``frame_ids`` is named after its own dimension, so it becomes the index of ``image``.

Why a kill cannot corrupt it: zarr's ``LocalStore`` writes every key (metadata or shard) to a
temporary ``*.partial`` file and renames it into place, so each file is either old or new, never
torn. An entry's arrays are written first; the ``complete: true`` attribute goes into the entry
group's ``zarr.json`` last (one atomic rename). A kill leaves at most one entry without the
marker; readers skip it and the next writer of the part deletes it before writing.

Feature maps (``chunk_rows`` given) use the sharding codec, one shard per array with inner
chunks of ``chunk_rows`` frames, compressed with blosc lz4 and byte shuffle (float16) or blosc
lz4hc (int8 and bool: the same lz4 format, as fast to decode, but it packs int8 codes about 20%
tighter than lz4, which is what makes int8 stores at most half the bytes of float16 ones: lz4
alone gives 0.48-0.52 on ReLU-like maps). Small arrays are one plain chunk.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from stvg.features._cache import Lru
from stvg.features.contract import BATCH_ENTRIES, KINDS, Attrs, Kind, Rows, StoredArray

log = logging.getLogger(__name__)

SUFFIX = ".zarr"
_CACHE_SIZE = 256
_SMALL_BYTES = 16 * 1024


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class ZarrPart:
    """One part of a split, for reading (``writable=False``) or for its single locked writer."""

    suffix = SUFFIX

    def __init__(
        self, path: str | Path, *, writable: bool = False, batch_entries: int = BATCH_ENTRIES
    ) -> None:
        # batch_entries: nothing to consolidate, every entry is written in place.
        self.path = Path(path)
        self.writable = writable
        self._arrays = Lru(_CACHE_SIZE)  # (kind, key, name) -> open zarr array
        self._small = Lru(_CACHE_SIZE)  # (kind, key, name) -> whole small array
        self._complete: dict[str, dict[str, dict[str, Any]]] = {}
        self._incomplete: dict[str, list[str]] = {}
        if writable:
            root = zarr.open_group(str(self.path), mode="a")
            for kind in KINDS:
                root.require_group(kind)
        self.scan()

    @classmethod
    def exists(cls, path: Path) -> bool:
        """True when a part is at ``path`` (a folder)."""
        return path.is_dir()

    # listing ----------------------------------------------------------------------------------

    def scan(self) -> None:
        """(Re)read which entries are complete: the ``complete`` attribute of each entry group."""
        for kind in KINDS:
            done: dict[str, dict[str, Any]] = {}
            partial: list[str] = []
            folder = self.path / kind
            names = (
                sorted(e.name for e in os.scandir(folder) if e.is_dir()) if folder.is_dir() else []
            )
            for key in names:
                meta = _read_json(folder / key / "zarr.json")
                attrs = (meta or {}).get("attributes", {})
                if isinstance(attrs, dict) and attrs.get("complete") is True:
                    done[key] = attrs
                else:
                    partial.append(key)
            self._complete[kind] = done
            self._incomplete[kind] = partial

    def entries(self, kind: Kind) -> dict[str, Attrs]:
        """``{key: attributes}`` of the complete entries of ``kind`` (``videos`` or ``queries``)."""
        return self._complete[kind]

    def incomplete(self, kind: Kind) -> list[str]:
        """Keys of entries of ``kind`` whose completion marker is missing."""
        return self._incomplete[kind]

    def shapes(self, kind: Kind, key: str) -> dict[str, tuple[int, ...]]:
        """``{array name: shape}`` of one entry, from the arrays' metadata."""
        out = {}
        folder = self.path / kind / key
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            meta = _read_json(Path(entry.path) / "zarr.json") if entry.is_dir() else None
            if meta and meta.get("node_type") == "array":
                out[entry.name] = tuple(int(n) for n in meta["shape"])
        return out

    # reading ----------------------------------------------------------------------------------

    def _array(self, kind: Kind, key: str, name: str) -> Any:
        handle = (kind, key, name)
        array = self._arrays.recall(handle)
        if array is None:
            array = self._arrays.keep(
                handle, zarr.open_array(str(self.path / kind / key / name), mode="r")
            )
        return array

    def length(self, kind: Kind, key: str, name: str) -> int:
        """The length of the first axis of one stored array."""
        return int(self._array(kind, key, name).shape[0])

    def read(self, kind: Kind, key: str, name: str, rows: Rows = None) -> np.ndarray:
        """One stored array, or a slice / sorted unique ``rows`` of its first axis.

        Whole small arrays (frame ids, spans, scales) are cached: each zarr read costs about a
        millisecond of overhead, more than the data.
        """
        if rows is None:
            handle = (kind, key, name)
            cached = self._small.recall(handle)
            if cached is None:
                cached = np.asarray(self._array(kind, key, name)[...])
                if cached.nbytes <= _SMALL_BYTES:
                    self._small.keep(handle, cached)
            return cached
        array = self._array(kind, key, name)
        if isinstance(rows, slice):
            return np.asarray(array[rows])
        return np.asarray(array.oindex[(rows,)])

    # writing ----------------------------------------------------------------------------------

    def remove_incomplete(self) -> int:
        """Delete entries without the completion marker and stray ``*.partial`` files."""
        self._check_writable()
        removed = 0
        for kind in KINDS:
            for key in self._incomplete[kind]:
                shutil.rmtree(self.path / kind / key, ignore_errors=True)
                removed += 1
            self._incomplete[kind] = []
        for folder in [self.path] + [self.path / kind for kind in KINDS]:
            for stray in folder.glob("*.partial"):
                stray.unlink(missing_ok=True)
        return removed

    def set_attrs(self, attrs: Attrs) -> None:
        """The part group's own attributes (one atomic rewrite of its ``zarr.json``)."""
        self._check_writable()
        zarr.open_group(str(self.path), mode="a").attrs.update(attrs)

    def write(self, kind: Kind, key: str, attrs: Attrs, arrays: dict[str, StoredArray]) -> None:
        """Write one entry: arrays first, then ``attrs`` plus ``complete: true`` (the marker).

        An incomplete entry under ``key`` is deleted first; a complete one is an error (the
        caller checks ``entries`` before writing).
        """
        self._check_writable()
        if key in self._complete[kind]:
            raise ValueError(f"{kind} entry {key!r} is already complete in {self.path}")
        folder = self.path / kind / key
        if folder.exists():
            shutil.rmtree(folder)
        self._forget(kind, key)
        group = zarr.open_group(str(folder), mode="w")
        for name, stored in arrays.items():
            data, rows = stored.data, stored.chunk_rows
            shape = data.shape
            if data.dtype.itemsize > 1:
                codec = BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")
            else:
                codec = BloscCodec(cname="lz4hc", clevel=5, shuffle="noshuffle")
            if rows is None:
                chunks, shards = shape, None
            else:
                chunks = (rows,) + shape[1:]
                shards = (math.ceil(shape[0] / rows) * rows,) + shape[1:]
            array = group.create_array(
                name,
                shape=shape,
                dtype=data.dtype,
                chunks=chunks,
                shards=shards,
                compressors=codec,
                dimension_names=stored.dims,
                attributes=stored.attrs,
                fill_value=0,
            )
            array[...] = data
        marked = {**attrs, "complete": True}
        group.attrs.update(marked)
        self._complete[kind][key] = marked

    def remove(self, kind: Kind, key: str) -> None:
        """Clear the entry's ``complete`` attribute (one atomic rewrite of its ``zarr.json``),
        then delete its folder: a kill in between leaves an incomplete entry, which the next
        writer deletes."""
        self._check_writable()
        if key not in self._complete[kind]:
            raise KeyError(f"no complete {kind} entry {key!r} in {self.path}")
        folder = self.path / kind / key
        zarr.open_group(str(folder), mode="r+").attrs.update({"complete": False})
        del self._complete[kind][key]
        self._forget(kind, key)
        shutil.rmtree(folder, ignore_errors=True)

    def _forget(self, kind: Kind, key: str) -> None:
        for cache in (self._arrays, self._small):
            for handle in [h for h in cache if h[:2] == (kind, key)]:
                del cache[handle]

    def close(self) -> None:
        self._arrays.clear()
        self._small.clear()

    def _check_writable(self) -> None:
        if not self.writable:
            raise RuntimeError(f"part {self.path} is open for reading only")
