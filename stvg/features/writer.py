"""The single writer of one part: checks an entry, encodes it, hands it to the backend.

A writer holds its part's lock (:mod:`stvg.features.locking`) from opening to :meth:`close`.
Opening deletes what a killed writer left; each ``write_*`` checks everything before writing
anything (:mod:`stvg.features.checks`), then the backend writes the arrays and the completion
marker last (:class:`stvg.features.contract.Part`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from stvg.data.sample import Sample
from stvg.features.checks import check_attrs, check_features, check_ids
from stvg.features.contract import BATCH_ENTRIES, ID_ATTR, Attrs, Backend, Kind, StoredArray
from stvg.features.describe import DIMS, array_attrs, part_attrs
from stvg.features.keys import entry_key
from stvg.features.locking import lock_part
from stvg.features.manifest import Manifest
from stvg.features.quantize import quantize_int8

log = logging.getLogger(__name__)

CHUNK_BYTES = 512 * 1024  # target size of an inner chunk of a feature map
MAX_CHUNK_ROWS = 8
_RESERVED = ("entry_id", "sample_id", "sample", "complete")

Elsewhere = Callable[[Path], dict[str, set[str]]]
"""Given this writer's part path: ``{"videos": ids, "queries": ids}`` complete in other parts."""


def chunk_rows(array: np.ndarray) -> int:
    """Rows (frames or clips) per inner chunk: about CHUNK_BYTES, between 1 and 8 (or all)."""
    row_bytes = max(1, array[:1].nbytes)
    return int(min(MAX_CHUNK_ROWS, len(array), max(1, CHUNK_BYTES // row_bytes)))


class PartWriter:
    """The single writer of one part ``<root>/<split>/part-K-of-N<suffix>``; a context manager.

    ``has_video`` / ``has_query`` say whether a complete entry exists in this part (live) or in
    any other part of the split (as of when this writer opened): a rerun skips those.

    Args:
        stem: ``<root>/<split>/part-K-of-N`` (the part's path without its suffix).
        backend: the part class (:class:`~stvg.features.contract.Backend`).
        manifest: the store's manifest (dtype; backbones and sampling for the attributes).
        elsewhere: called once the part is clean (see :data:`Elsewhere`).
        on_write: called after every entry written (a store drops its cached index).
        batch_entries: see :class:`~stvg.features.contract.Backend`.
    """

    def __init__(
        self,
        stem: Path,
        backend: Backend,
        manifest: Manifest,
        *,
        elsewhere: Elsewhere | None = None,
        on_write: Callable[[], None] | None = None,
        batch_entries: int = BATCH_ENTRIES,
    ) -> None:
        self.path = stem.with_name(stem.name + backend.suffix)
        self.manifest = manifest
        self.dtype = manifest.dtype
        self._on_write = on_write or (lambda: None)
        self._lock_fd = lock_part(stem.with_name(stem.name + ".lock"), self.path)
        try:
            self._part = backend(self.path, writable=True, batch_entries=batch_entries)
            removed = self._part.remove_incomplete()
            self._part.set_attrs(part_attrs(manifest.to_json()))
        except BaseException:
            os.close(self._lock_fd)
            raise
        if removed:
            log.info(
                "%s: removed %d incomplete entries left by an interrupted writer",
                self.path,
                removed,
            )
        self._others = elsewhere(self.path) if elsewhere else {"videos": set(), "queries": set()}
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

    def _has(self, kind: Kind, entry: str) -> bool:
        if entry in self._others[kind]:
            return True
        attrs = self._part.entries(kind).get(entry_key(entry))
        return attrs is not None and attrs.get(ID_ATTR[kind]) == entry

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

    def remove(self, kind: Kind, entry: str) -> bool:
        """Remove a complete entry of this part (``kind``: ``"videos"`` or ``"queries"``), its
        completion marker first (:meth:`~stvg.features.contract.Part.remove`); False when this
        part holds no complete entry ``entry``."""
        if self._closed:
            raise RuntimeError(f"the writer of {self.path} is closed")
        key = entry_key(entry)
        if key not in self._part.entries(kind):
            return False
        self._part.remove(kind, key)
        self._on_write()
        return True

    def _put(
        self,
        kind: Kind,
        entry: str,
        attrs: Attrs,
        arrays: dict[str, np.ndarray],
        replace: bool = False,
    ) -> None:
        if self._closed:
            raise RuntimeError(f"the writer of {self.path} is closed")
        key = entry_key(entry)
        existing = self._part.entries(kind).get(key)
        if existing is not None and replace:
            self._part.remove(kind, key)  # marker cleared first: a kill loses only this entry
        elif existing is not None:
            raise ValueError(
                f"{kind[:-1]} entry {entry!r} is already complete in {self.path} "
                f"(stored id {existing.get(ID_ATTR[kind])!r}); "
                "check has_video/has_query before writing"
            )
        m = self.manifest
        stored = {
            name: StoredArray(
                data=data,
                dims=DIMS[name],
                chunk_rows=chunk_rows(data) if name in ("image", "motion") else None,
                attrs=array_attrs(name, self.dtype, m.backbones, m.sampling, attrs),
            )
            for name, data in arrays.items()
        }
        self._part.write(kind, key, attrs, stored)
        self._on_write()

    def write_video(
        self,
        entry_id: str,
        frame_ids: ArrayLike,
        image: ArrayLike,
        clip_spans: ArrayLike,
        motion: ArrayLike,
        *,
        attrs: dict[str, Any] | None = None,
        replace: bool = False,
    ) -> None:
        """Write one video entry; its completion marker goes last.

        Args:
            entry_id: free string (e.g. ``"<video_id>@<seg0>-<seg1>"``).
            frame_ids: int ``[Ts]``, 0-based native frame ids of the static frames.
            image: float ``[Ts, C, h, w]`` image backbone maps.
            clip_spans: int ``[Td, 2]``, half-open native frame spans of the clips.
            motion: float ``[Td, C2, h2, w2]`` video backbone maps.
            attrs: more entry attributes (``str``/``int``/``float``/``bool``), e.g. ``{"fps":
                25.0}`` (the video's native rate: also written on ``frame_ids``/``clip_spans``).
            replace: replace a complete entry of this part (checked first, then removed with
                its marker cleared first, then written); without it that is a ``ValueError``.

        Raises ``ValueError`` on wrong shapes, dtypes or attributes and
        :class:`~stvg.features.checks.NonFiniteFeatures` on inf/NaN or values beyond float16,
        before anything is written.
        """
        extra = check_attrs(attrs, _RESERVED, entry_id)
        frame_ids = check_ids("frame_ids", frame_ids, (), entry_id)
        image = check_features("image", image, 4, entry_id, self.path)
        clip_spans = check_ids("clip_spans", clip_spans, (2,), entry_id)
        motion = check_features("motion", motion, 4, entry_id, self.path)
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
        self._put("videos", entry_id, {"entry_id": entry_id, **extra}, arrays, replace)

    def write_query(
        self,
        sample: Sample,
        text: ArrayLike,
        text_mask: ArrayLike,
        entry_id: str,
        *,
        attrs: dict[str, Any] | None = None,
        replace: bool = False,
    ) -> None:
        """Write one query entry: text states ``[L, D]``, mask ``[L]`` (True = token), the
        Sample, the ``entry_id`` of its video entry, and ``attrs`` and ``replace`` as in
        :meth:`write_video`.

        Raises ``ValueError`` on wrong shapes and
        :class:`~stvg.features.checks.NonFiniteFeatures` on bad values, before anything is
        written.
        """
        sid = sample.sample_id
        extra = check_attrs(attrs, _RESERVED, sid)
        text = check_features("text", text, 2, sid, self.path)
        mask = np.asarray(text_mask)
        if mask.shape != (text.shape[0],) or mask.dtype.kind not in "biu":
            raise ValueError(
                f"sample {sid!r}: text_mask must be bool [{text.shape[0]}], got {mask.dtype} {mask.shape}"
            )
        if not isinstance(entry_id, str) or not entry_id:
            raise ValueError(
                f"sample {sid!r}: entry_id must be a non-empty string, got {entry_id!r}"
            )
        attrs_: Attrs = {
            "sample_id": sid,
            "entry_id": entry_id,
            "sample": json.dumps(sample.to_json()),
            **extra,
        }
        arrays = {**self._encode("text", text), "text_mask": mask.astype(bool)}
        self._put("queries", sid, attrs_, arrays, replace)

    def close(self) -> None:
        """Finish the part (HDF5: into its single file) and release the lock."""
        if self._closed:
            return
        self._closed = True
        try:
            self._part.close()
        finally:
            os.close(self._lock_fd)
            self._on_write()
