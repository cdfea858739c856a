"""Names on disk: entry keys escaped from free ids, split names, and part names."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from stvg.errors import InputError

_SAFE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-@")
_MAX_KEY = 160
_SPLIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_PART = re.compile(r"^part-(\d+)-of-(\d+)")


def entry_key(entry_id: str) -> str:
    """A zarr/HDF5/file-name-safe key for an entry or sample id (injective).

    Letters, digits and ``._-@`` are kept; every other character becomes ``%XX`` per UTF-8 byte
    (so ``/`` is ``%2F``); a leading ``.`` becomes ``%2E`` and a leading ``__`` becomes ``%5F_``.
    Keys longer than 160 characters are cut to 120 and end with ``~`` plus 16 hex digits of the
    id's SHA-1. Readers take ids from the entry attributes, never from keys.
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


def is_split_name(name: str) -> bool:
    """Letters, digits, ``_``, ``-`` and ``.``, not starting with ``.``."""
    return isinstance(name, str) and bool(_SPLIT.match(name))


def check_split(split: str) -> str:
    if not is_split_name(split):
        raise InputError(
            f"split name {split!r} must be letters, digits, '_', '-' or '.', not starting with '.'",
            field="split",
        )
    return split


def check_part(part: tuple[int, int]) -> tuple[int, int]:
    k, n = part
    if not (isinstance(k, int) and isinstance(n, int) and 0 <= k < n):
        raise InputError(f"part must be (K, N) with 0 <= K < N, got {part!r}", field="shard")
    return k, n


def part_stem(part: tuple[int, int]) -> str:
    """``part-K-of-N``: the name of a part without its backend's suffix."""
    return f"part-{part[0]}-of-{part[1]}"


def part_of(path: Path) -> tuple[int, int] | None:
    """``(K, N)`` of a part's path (``.../part-K-of-N<suffix>``), or ``None``."""
    match = _PART.match(path.name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def part_stems(folder: Path) -> list[tuple[int, int]]:
    """``(K, N)`` of every name in ``folder`` that starts like a part, sorted by ``(N, K)``."""
    found = set()
    for path in folder.iterdir() if folder.is_dir() else []:
        match = _PART.match(path.name)
        if match:
            found.add((int(match.group(1)), int(match.group(2))))
    return sorted(found, key=lambda kn: (kn[1], kn[0]))
