"""Typed access to one JSON object of an annotation file, for every annotation parser.

A :class:`Record` wraps one record (a sample, a VidSTG entry, a TubeDETR record, a nested object
of one of them) together with where it came from: the file, the sample (its id, or a name such
as ``"entry 3 (vid 1001)"`` when it has no usable id) and, for a nested object, the dotted path
of its field (``"used_segment"``, ``"trajectories.17.0"``). Every getter checks the value's type
and raises :class:`~stvg.errors.InputError` naming the file, the sample and the dotted field
(``"used_segment.begin_fid"``, ``"captions.0.target_id"``), so a user can open the file and fix
the entry. Booleans are never accepted as numbers (JSON ``true`` is not ``1`` here).

Messages: a missing field reads ``the field is missing (<what> expected)``, a wrong type
``expected <what>, got <value>`` (the value cut to 60 characters); ``what`` defaults to the type
("an integer", "a number", "a string", "a list", "an object") and callers may describe the
expected value more precisely ("[start, end] frame ids").
"""

from __future__ import annotations

import builtins
import math
from pathlib import Path
from typing import Any

from stvg.errors import InputError

_MISSING: Any = object()


class Record:
    """One JSON object and its location; see the module docstring.

    ``data`` must be a dict (else :class:`InputError` "expected ``what``" at ``prefix``);
    ``file`` is the path read, ``sample`` the id or name of the sample the object belongs to,
    ``prefix`` the dotted field of this object inside the sample ("" for the sample itself).
    """

    def __init__(
        self,
        data: Any,
        *,
        file: str | Path | None = None,
        sample: str | int | None = None,
        prefix: str = "",
        what: str = "an object",
    ) -> None:
        self.file = file
        self.sample = sample
        self.prefix = prefix
        if not isinstance(data, dict):
            raise self.fail(f"expected {what}, got {data!r:.60}")
        self.data: dict[str, Any] = data

    # ------------------------------------------------------------------ location
    def field(self, key: str | int | None = None) -> str | None:
        """The dotted field name of ``key`` in this object (of the object itself for None)."""
        if key is None:
            return self.prefix or None
        return f"{self.prefix}.{key}" if self.prefix else str(key)

    def at(self, key: str | int | None = None) -> dict[str, Any]:
        """``{file, sample, field}`` of ``key``, for helpers that take them as keywords
        (``parse_box(value, **record.at("boxes.3"))``)."""
        return {"file": self.file, "sample": self.sample, "field": self.field(key)}

    def fail(self, message: str, key: str | int | None = None) -> InputError:
        """An :class:`InputError` about ``key`` of this object (the object itself for None)."""
        return InputError(message, **self.at(key))

    # ------------------------------------------------------------------ values
    def __contains__(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, default: Any = _MISSING, *, what: str | None = None) -> Any:
        """The raw value of ``key``; ``default`` when it is missing, else an error."""
        if key in self.data:
            return self.data[key]
        if default is not _MISSING:
            return default
        hint = f" ({what} expected)" if what else ""
        raise self.fail(f"the field is missing{hint}", key)

    def typed(self, key: str, kinds: tuple[type, ...], what: str) -> Any:
        """The value of ``key`` if it is one of ``kinds`` (never a bool), else an error."""
        value = self.get(key, what=what)
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise self.fail(f"expected {what}, got {value!r:.60}", key)
        return value

    def int(self, key: str, *, what: str = "an integer", positive: bool = False) -> int:
        """An integer; with ``positive``, also ``> 0``."""
        value = self.typed(key, (builtins.int,), what)
        if positive and value <= 0:
            raise self.fail(f"must be positive, got {value}", key)
        return value

    def float(self, key: str, *, what: str = "a number", positive: bool = False) -> float:
        """A number (integer or float) as a float; with ``positive``, also finite and ``> 0``."""
        value = self.typed(key, (builtins.int, builtins.float), what)
        try:
            number = builtins.float(value)
        except OverflowError:
            raise self.fail(f"the number is too large, got {value!r:.60}", key) from None
        if positive and not (math.isfinite(number) and number > 0):
            raise self.fail(f"must be a positive finite number, got {value!r:.60}", key)
        return number

    def str(self, key: str, *, what: str = "a string", nonempty: bool = False) -> str:
        """A string; with ``nonempty``, also not blank."""
        value = self.typed(key, (builtins.str,), what)
        if nonempty and not value.strip():
            raise self.fail(f"expected {what}, got {value!r:.60}", key)
        return value

    def id(
        self, key: str, *, what: str = "a string or an integer id", nonempty: bool = False
    ) -> str:
        """An identifier written as a string or an integer, returned as a string."""
        value = builtins.str(self.typed(key, (builtins.str, builtins.int), what))
        if nonempty and not value:
            raise self.fail(f"expected {what}, got ''", key)
        return value

    def list(self, key: str, *, what: str = "a list", nonempty: bool = False) -> list[Any]:
        """A list; with ``nonempty``, also with at least one item."""
        value = self.typed(key, (builtins.list,), what)
        if nonempty and not value:
            raise self.fail(f"expected {what}, got []", key)
        return value

    # ------------------------------------------------------------------ nested objects
    def sub(self, key: str, *, what: str = "an object") -> Record:
        """The object at ``key`` as a :class:`Record` whose fields are named ``key.<name>``."""
        return Record(
            self.get(key, what=what),
            file=self.file,
            sample=self.sample,
            prefix=self.field(key) or "",
            what=what,
        )

    def subs(
        self, key: str, *, what: str = "a list of objects", item: str = "an object"
    ) -> builtins.list[Record]:
        """The objects of the list at ``key``, item ``i`` named ``key.i``."""
        return [
            Record(
                value,
                file=self.file,
                sample=self.sample,
                prefix=f"{self.field(key)}.{i}",
                what=item,
            )
            for i, value in enumerate(self.list(key, what=what))
        ]
