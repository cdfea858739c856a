"""The contract between the feature store and its storage backends (zarr, HDF5).

A **part** is what one writer writes: ``<split>/part-K-of-N<suffix>``. The store
(:mod:`stvg.features.store`) only ever talks to a part through :class:`Part`; a backend is a class
that satisfies :class:`Backend` (its constructor opens a part, its ``exists`` finds one). Both
backends run the same conformance suite (``tests/features/test_store_conformance.py``).

An entry is addressed by its ``kind`` (``"videos"`` or ``"queries"``) and a ``key`` (the escaped
id, :func:`stvg.features.keys.entry_key`). It holds named arrays (:class:`StoredArray`) and a dict
of attributes whose values are ``str``, ``int``, ``float`` or ``bool`` (so that they read back the
same from zarr's JSON and from HDF5 attributes). A backend adds ``complete: true`` to those
attributes last: an entry counts (is listed by :meth:`Part.entries`) only once that is written.

Dimension names follow the netCDF / xarray rule: a 1-D array whose one dimension bears its own
name (``frame_ids`` over ``frame_ids``) is the coordinate of every array of the entry that has
that dimension. zarr records the names as v3 ``dimension_names`` (xarray attaches the coordinate
by itself); HDF5 as dimension labels, with the coordinate made a dimension scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal, Protocol, runtime_checkable

import numpy as np

Kind = Literal["videos", "queries"]
KINDS: tuple[Kind, Kind] = ("videos", "queries")
ID_ATTR: dict[str, str] = {"videos": "entry_id", "queries": "sample_id"}
"""The attribute holding an entry's own id (keys are escaped; ids are read from attributes)."""

AttrValue = str | int | float | bool
Attrs = dict[str, AttrValue]
Rows = slice | np.ndarray | None
"""Which rows of a stored array's first axis to read: all, a slice, or sorted unique positions."""

BATCH_ENTRIES = 256
"""Default for ``batch_entries``: entries a writer may gather before consolidating them."""


@dataclass
class StoredArray:
    """One array of an entry as it goes to disk.

    ``data`` is already in its stored dtype; ``dims`` names its axes; ``chunk_rows`` (for feature
    maps) is how many rows of the first axis go into one compressed chunk (``None``: one plain
    chunk); ``attrs`` are the array's own attributes (units, backbone, how to dequantize, ...).
    """

    data: np.ndarray
    dims: tuple[str, ...]
    chunk_rows: int | None = None
    attrs: Attrs = field(default_factory=dict)


def coordinates(arrays: dict[str, StoredArray]) -> dict[str, list[tuple[str, int]]]:
    """``{coordinate: [(array, axis), ...]}``: which axes each coordinate array labels (the
    netCDF rule in the module docstring)."""
    out: dict[str, list[tuple[str, int]]] = {}
    for coord, array in arrays.items():
        if array.dims == (coord,):
            out[coord] = [
                (name, axis)
                for name, other in arrays.items()
                if name != coord
                for axis, dim in enumerate(other.dims)
                if dim == coord
            ]
    return out


@runtime_checkable
class Part(Protocol):
    """One part of a split: read by any process, written by its single locked writer.

    ``path`` is the part's public path (``<split>/part-K-of-N<suffix>``), whatever form it is in
    on disk. A reading part's listing is a snapshot taken when it opened.
    """

    path: Path

    def entries(self, kind: Kind) -> dict[str, Attrs]:
        """``{key: attributes}`` of the complete entries of ``kind``."""
        ...

    def incomplete(self, kind: Kind) -> list[str]:
        """Keys of entries of ``kind`` left without their completion marker (by a kill)."""
        ...

    def shapes(self, kind: Kind, key: str) -> dict[str, tuple[int, ...]]:
        """``{array name: shape}`` of one complete entry."""
        ...

    def length(self, kind: Kind, key: str, name: str) -> int:
        """The length of the first axis of one stored array."""
        ...

    def read(self, kind: Kind, key: str, name: str, rows: Rows = None) -> np.ndarray:
        """One stored array in its stored dtype, or ``rows`` of its first axis."""
        ...

    def write(self, kind: Kind, key: str, attrs: Attrs, arrays: dict[str, StoredArray]) -> None:
        """Write one entry: every array, then ``attrs`` plus ``complete: true``, last.

        A kill at any moment leaves the entry either complete or listed by :meth:`incomplete`.
        Raises ``ValueError`` if the entry is complete already.
        """
        ...

    def remove(self, kind: Kind, key: str) -> None:
        """Make a complete entry stop counting, then delete its data (a writer replacing a stale
        entry calls this before :meth:`write`).

        The completion marker is cleared first (one atomic step), so a kill at any moment leaves
        the entry either complete (old data, whole) or not listed by :meth:`entries`; never a
        mix of old and new arrays. Raises ``KeyError`` if no complete entry is under ``key``.
        """
        ...

    def set_attrs(self, attrs: Attrs) -> None:
        """The part's own attributes (what the store is, for readers without stvg)."""
        ...

    def remove_incomplete(self) -> int:
        """Delete what a killed writer left (incomplete entries, temporary files); a count."""
        ...

    def close(self) -> None:
        """Release files; a writer also finishes the part (HDF5: into its single file)."""
        ...


class Backend(Protocol):
    """A part class: ``Backend(path, writable=..., batch_entries=...)`` opens a :class:`Part`.

    ``batch_entries`` is how many entries a writer may gather before consolidating them into
    fewer files (a backend that writes each entry in place, as zarr does, ignores it).
    """

    suffix: ClassVar[str]

    def __call__(
        self, path: Path, *, writable: bool = False, batch_entries: int = BATCH_ENTRIES
    ) -> Part: ...

    def exists(self, path: Path) -> bool:
        """True when a part (finished or still being written) is at the public ``path``."""
        ...
