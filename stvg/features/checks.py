"""What a writer refuses before anything of an entry is written: wrong shapes, wrong dtypes,
inf/NaN and values beyond float16, attributes that would not read back the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from stvg.errors import InputError
from stvg.features.contract import Attrs

FP16_MAX = 65504.0


class NonFiniteFeatures(InputError):
    """A feature array holds inf/NaN or values beyond float16; nothing of the entry was written."""


def check_features(name: str, x: Any, ndim: int, entry: str, file: Path) -> np.ndarray:
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
        "overflows float16, docs/design.md section 6): use a shallower image layer or recalibrate BatchNorm",
    )


def check_ids(name: str, x: Any, shape_tail: tuple[int, ...], entry: str) -> np.ndarray:
    """Native frame ids (or spans of them) as int32 ``[n, *shape_tail]``, in ``[0, 2**31)``."""
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


def check_attrs(attrs: dict[str, Any] | None, reserved: tuple[str, ...], entry: str) -> Attrs:
    """Extra entry attributes: ``str``/``int``/``float``/``bool`` values, no reserved name."""
    out: Attrs = {}
    for name, value in (attrs or {}).items():
        if not isinstance(name, str) or not name or name in reserved:
            raise ValueError(
                f"entry {entry!r}: attribute name {name!r} is empty or reserved ({', '.join(reserved)})"
            )
        if isinstance(value, np.generic):
            value = value.item()
        if not isinstance(value, (str, int, float, bool)):
            raise ValueError(
                f"entry {entry!r}: attribute {name!r} must be a str, int, float or bool, got {value!r:.60}"
            )
        out[name] = value
    return out
