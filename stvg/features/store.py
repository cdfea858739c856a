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
* a **query entry** ``sample_id``: ``text`` ``[L, D]`` (text states), ``text_mask`` bool ``[L]``
  (True = token), the :class:`~stvg.data.sample.Sample` record (JSON) and the ``entry_id`` of its
  video entry.

Feature arrays (``image``, ``motion``, ``text``) are stored as float16, or as int8 with a
float32 scale per channel (axis 1) named ``<array>_scale`` (:mod:`stvg.features.quantize`).
Every write refuses non-finite values and values beyond the float16 range (|x| > 65504), with
either dtype, before anything is written. Readers always return float32 (dequantized).

An entry counts only once its completion marker is written, last. Readers skip incomplete
entries; a writer deletes its part's incomplete entries when it opens, so a rerun after a
``kill -9`` rewrites them cleanly. A stale entry is replaced with ``replace=True`` (or removed with
``PartWriter.remove``): its marker is cleared first, so a kill loses at most that entry. Entries
written by ``stvg extract`` carry a ``source`` attribute (JSON: what they were computed from,
:mod:`stvg.extract.sources`), which is how a rerun finds the stale ones.

Reading a store without stvg (plain ``zarr``, ``xarray``, ``h5py``, ``dask``):

* zarr part ``<split>/part-K-of-N.zarr``: a zarr v3 group; entry ``<kind>/<key>`` is a group
  whose attributes hold ``entry_id`` (or ``sample_id``, ``sample`` as JSON, ``entry_id``),
  ``complete`` and any extra attributes (e.g. ``fps``). Each array has ``dimension_names``:
  ``frame_ids`` is the coordinate of ``image`` (``xarray.open_zarr(part, group="videos/<key>")``
  gives ``image`` indexed by native frame id); ``motion`` lists ``clip_spans`` in its
  ``coordinates`` attribute.
* HDF5 part ``<split>/part-K-of-N.h5``: one file (``h5py.File``) with the same groups
  ``/videos/<key>``, ``/queries/<key>``; axes are labelled and ``frame_ids`` is a dimension
  scale attached to ``image``'s first axis. Feature maps use the Blosc filter (lz4, as zarr
  parts do): ``import hdf5plugin`` before reading them with h5py. While its writer runs (or
  after it was killed) a part is a folder ``part-K-of-N.h5.work/`` (:mod:`stvg.features._hdf5`).
* Every feature array carries ``long_name``, ``units``, ``backbone``, ``layer``, ``stride`` (as
  the manifest has them); int8 ones name their ``scale_array`` and say how to ``dequantize``:
  ``float32(image) * image_scale`` along axis 1 (xarray: ``ds.image * ds.image_scale``).
  ``frame_ids``/``clip_spans`` carry ``units: frame`` and the video's ``fps`` when known; the
  part root carries the manifest (``stvg_manifest``, JSON).

Example::

    store = create_store("features/demo", Manifest(dataset="synthetic", backbones={...}))
    with store.writer("train", part=(0, 1)) as w:
        if not w.has_video("v1@0-100"):
            w.write_video("v1@0-100", frame_ids, image, clip_spans, motion, attrs={"fps": 25.0})
        w.write_query(sample, text, text_mask, entry_id="v1@0-100")
    store.video("v1@0-100", "train", frames=[0, 5])["image"]   # float32 [2, C, h, w]

Reading is not thread-safe (one store object per thread); it is fork-safe (DataLoader workers).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from stvg.data.sample import Sample
from stvg.errors import InputError
from stvg.features._hdf5 import Hdf5Part
from stvg.features._zarr import ZarrPart
from stvg.features.checks import FP16_MAX, NonFiniteFeatures
from stvg.features.contract import BATCH_ENTRIES, ID_ATTR, KINDS, Backend, Kind
from stvg.features.failures import FAILURES_NAME, read_failures, record_failure
from stvg.features.keys import (
    check_part,
    check_split,
    entry_key,
    is_split_name,
    part_of,
    part_stem,
    part_stems,
)
from stvg.features.locking import PartLocked
from stvg.features.manifest import (
    LAYOUT_VERSION,
    MANIFEST_NAME,
    Manifest,
    check_compatible,
    create_manifest,
    read_manifest,
)
from stvg.features.reading import (
    Location,
    RowPicks,
    SplitIndex,
    build_index,
    read_feature,
    read_rows,
)
from stvg.features.summary import summarize
from stvg.features.writer import PartWriter

__all__ = [
    "FAILURES_NAME",
    "FP16_MAX",
    "FeatureStore",
    "NonFiniteFeatures",
    "PartLocked",
    "PartWriter",
    "create_store",
    "entry_key",
    "open_store",
]

BACKENDS: dict[str, Backend] = {"zarr": ZarrPart, "hdf5": Hdf5Part}
T = TypeVar("T")


class FeatureStore:
    """A feature store on disk: the reading side, and the factory of part writers.

    Open one with :func:`create_store` (to write) or :func:`open_store` (to read).
    """

    def __init__(self, root: str | Path, manifest: Manifest) -> None:
        self.root = Path(root)
        self.manifest = manifest
        self.backend: Backend = BACKENDS[manifest.backend]
        self._indexes: dict[str, SplitIndex] = {}

    def __repr__(self) -> str:
        m = self.manifest
        return f"FeatureStore({str(self.root)!r}, backend={m.backend!r}, dtype={m.dtype!r})"

    # writing ----------------------------------------------------------------------------------

    def writer(
        self, split: str, part: tuple[int, int] = (0, 1), *, batch_entries: int = BATCH_ENTRIES
    ) -> PartWriter:
        """Open part ``K`` of ``N`` (``part=(K, N)``, ``0 <= K < N``) of ``split`` for writing.

        Takes the part's lock (raises :class:`PartLocked` naming the holder's pid when another
        process has it) and deletes the part's incomplete entries. ``batch_entries`` (HDF5) is
        how many entries a writer gathers before consolidating them into one file.
        """
        folder = self.root / check_split(split)
        folder.mkdir(parents=True, exist_ok=True)
        return PartWriter(
            folder / part_stem(check_part(part)),
            self.backend,
            self.manifest,
            elsewhere=lambda path: self._complete_elsewhere(split, path),
            on_write=lambda: self._forget(split),
            batch_entries=batch_entries,
        )

    def _complete_elsewhere(self, split: str, path: Path) -> dict[str, set[str]]:
        self._forget(split)
        index = self._index(split)
        return {
            kind: {i for i, where in index.table(kind).items() if where.part.path != path}
            for kind in KINDS
        }

    def record_failure(self, split: str, record: dict[str, Any]) -> None:
        """Append one failure record to ``failures.jsonl`` (:func:`~stvg.features.failures.record_failure`)."""
        record_failure(self.root, split, record)

    def failures(self) -> list[dict[str, Any]]:
        """All failure records, oldest first (a line torn by a kill is skipped with a warning)."""
        return read_failures(self.root)

    # reading ----------------------------------------------------------------------------------

    def splits(self) -> list[str]:
        """Names of the splits that have at least one part of this store's backend."""
        if not self.root.is_dir():
            return []
        return sorted(
            entry.name
            for entry in os.scandir(self.root)
            if entry.is_dir() and is_split_name(entry.name) and self._part_paths(entry.name)
        )

    def _part_paths(self, split: str) -> list[Path]:
        """The public paths of the split's parts of this backend, by ``(N, K)``."""
        folder = self.root / split
        paths = [folder / (part_stem(kn) + self.backend.suffix) for kn in part_stems(folder)]
        return [path for path in paths if self.backend.exists(path)]

    def refresh(self) -> None:
        """Forget the cached indexes, so entries written since (by any process) become visible."""
        for split in list(self._indexes):
            self._forget(split)

    def _forget(self, split: str) -> None:
        index = self._indexes.pop(split, None)
        if index is not None:
            index.close()

    def _index(self, split: str) -> SplitIndex:
        index = self._indexes.get(split)
        if index is None:
            parts = [self.backend(path) for path in self._part_paths(split)]
            index = self._indexes[split] = build_index(parts)
        return index

    def _locate(self, kind: Kind, entry: str, split: str) -> Location:
        where = self._index(split).table(kind).get(entry)
        if where is None:
            what = "video entry" if kind == "videos" else "query"
            raise KeyError(
                f"no complete {what} {entry!r} in split {split!r} of the feature store {self.root}"
            )
        return where

    def _retry(self, split: str, read: Callable[[], T]) -> T:
        """Run ``read``; if a file moved under it (an HDF5 writer consolidating or finishing
        meanwhile), re-index the split once and run it again."""
        try:
            return read()
        except OSError:
            self._forget(split)
            return read()

    def has_video(self, entry_id: str, split: str) -> bool:
        """True when a complete video entry ``entry_id`` exists in ``split``."""
        return entry_id in self._index(split).videos

    def has_query(self, sample_id: str, split: str) -> bool:
        """True when a complete query entry ``sample_id`` exists in ``split``."""
        return sample_id in self._index(split).queries

    def samples(self, split: str) -> list[Sample]:
        """The Sample records of the complete queries of ``split`` (all parts), by sample_id."""
        queries = self._index(split).queries
        return [
            Sample.from_json(json.loads(str(queries[i].attrs["sample"])), file=queries[i].part.path)
            for i in sorted(queries)
        ]

    def entry_of(self, sample_id: str, split: str) -> str:
        """The ``entry_id`` of a complete query's video entry (no array is read)."""
        return str(self._locate("queries", sample_id, split).attrs["entry_id"])

    def entry_ids(self, split: str) -> list[str]:
        """The ids of the complete video entries of ``split``, sorted."""
        return sorted(self._index(split).videos)

    def holders(self, kind: Kind, entry: str, split: str) -> list[tuple[int, int]]:
        """``(K, N)`` of every part of ``split`` holding a complete entry ``entry`` of ``kind``,
        the one read first (an entry is in two parts only when sharding layouts were mixed)."""
        key, index = entry_key(entry), self._index(split)
        out = []
        for part in index.parts:
            attrs = part.entries(kind).get(key)
            kn = part_of(part.path)
            if attrs is not None and attrs.get(ID_ATTR[kind]) == entry and kn is not None:
                out.append(kn)
        return out

    def attrs(self, kind: Kind, entry: str, split: str) -> dict[str, Any]:
        """The attributes stored with a complete entry (``kind``: ``"videos"`` or ``"queries"``):
        its id, ``complete`` and whatever the writer added (``attrs=`` of ``write_*``)."""
        return dict(self._locate(kind, entry, split).attrs)

    def video(
        self, entry_id: str, split: str, *, frames: RowPicks = None, clips: RowPicks = None
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
            where = self._locate("videos", entry_id, split)
            return {
                "frame_ids": read_rows(where, "videos", "frame_ids", frames).astype(np.int32),
                "image": read_feature(where, "videos", "image", frames),
                "clip_spans": read_rows(where, "videos", "clip_spans", clips).astype(np.int32),
                "motion": read_feature(where, "videos", "motion", clips),
            }

        return self._retry(split, read)

    def frame_ids(self, entry_id: str, split: str) -> np.ndarray:
        """The native frame ids of an entry's static frames (int32 [Ts]), without the maps."""

        def read() -> np.ndarray:
            where = self._locate("videos", entry_id, split)
            return read_rows(where, "videos", "frame_ids", None).astype(np.int32)

        return self._retry(split, read)

    def query(self, sample_id: str, split: str) -> dict[str, Any]:
        """One query entry: ``{"text": float32 [L, D], "text_mask": bool [L], "sample": Sample,
        "entry_id": str}``."""

        def read() -> dict[str, Any]:
            where = self._locate("queries", sample_id, split)
            return {
                "text": read_feature(where, "queries", "text", None),
                "text_mask": read_rows(where, "queries", "text_mask", None).astype(bool),
                "sample": Sample.from_json(
                    json.loads(str(where.attrs["sample"])), file=where.part.path
                ),
                "entry_id": str(where.attrs["entry_id"]),
            }

        return self._retry(split, read)

    def info(self) -> dict[str, Any]:
        """A summary: counts, bytes, failures, shapes per array, and how the store was made
        (:func:`~stvg.features.summary.summarize`)."""
        self.refresh()
        indexes = {split: self._index(split) for split in self.splits()}
        return summarize(self.root, self.manifest, indexes, len(self.failures()))

    def close(self) -> None:
        self.refresh()


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
