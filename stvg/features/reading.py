"""The reading side of a split: which part holds each complete entry, and row reads.

A split's index maps each complete id to ``(part, key, attributes)``; when an entry is in two
parts, the first by ``(N, K)`` wins. Feature arrays come back as float32: float16 widened, int8
dequantized with its per-channel scales (:mod:`stvg.features.quantize`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from stvg.features.contract import ID_ATTR, KINDS, Attrs, Kind, Part
from stvg.features.quantize import dequantize_int8

# Read a covering slice when the asked rows fill at least 1/_DENSE of it (a training draw does);
# a row selection only for sparse picks.
_DENSE = 4

RowPicks = Sequence[int] | np.ndarray | None
"""Positions into an entry's first axis (any order, repeats allowed), or ``None`` for all."""


@dataclass
class Location:
    """Where one complete entry lives."""

    part: Part
    key: str
    attrs: Attrs


@dataclass
class SplitIndex:
    """The complete entries of a split: ``videos`` / ``queries`` map ids to locations."""

    videos: dict[str, Location] = field(default_factory=dict)
    queries: dict[str, Location] = field(default_factory=dict)
    incomplete: int = 0
    parts: list[Part] = field(default_factory=list)

    def table(self, kind: Kind) -> dict[str, Location]:
        return self.videos if kind == "videos" else self.queries

    def close(self) -> None:
        for part in self.parts:
            part.close()


def build_index(parts: list[Part]) -> SplitIndex:
    """Index ``parts`` (in precedence order) by entry and sample id."""
    index = SplitIndex(parts=list(parts))
    for part in parts:
        for kind in KINDS:
            table = index.table(kind)
            for key, attrs in part.entries(kind).items():
                table.setdefault(str(attrs[ID_ATTR[kind]]), Location(part, key, attrs))
            index.incomplete += len(part.incomplete(kind))
    return index


def _positions(rows: RowPicks) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Sorted unique rows to read, and how to put them back in the asked order."""
    if rows is None:
        return None, None
    asked = np.asarray(rows, dtype=np.int64).reshape(-1)
    unique, inverse = np.unique(asked, return_inverse=True)
    return unique, inverse


def read_rows(where: Location, kind: Kind, name: str, rows: RowPicks) -> np.ndarray:
    """Array ``name`` of an entry (stored dtype), or the asked rows of it in the asked order."""
    part, key = where.part, where.key
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


def read_feature(where: Location, kind: Kind, name: str, rows: RowPicks) -> np.ndarray:
    """A feature array as float32 (int8 codes times their per-channel scales)."""
    stored = read_rows(where, kind, name, rows)
    if stored.dtype == np.int8:
        scale = where.part.read(kind, where.key, f"{name}_scale")
        return dequantize_int8(stored, scale, axis=1)
    return stored.astype(np.float32)
