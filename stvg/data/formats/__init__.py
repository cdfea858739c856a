"""Annotation sources -> :class:`~stvg.data.sample.Annotations`, with the format read from content.

:func:`load_annotations` is the one entry point: it reads a JSON file (refusing missing files,
non-UTF-8 bytes and malformed JSON with a message that names the file, and for JSON the line and
column), finds the format from what the document holds (never from the file name) unless one is
forced, and hands the parsed document to that format's loader. Every loader converts its source's
conventions into stvg's (docs/design.md section 3) once and documents how.

Formats (:data:`FORMATS`), tried in this order by :func:`detect_format`:

``normalized``
    ``stvg-annotations/1``: an object whose ``format`` is that string.
``tubedetr-vidstg``
    TubeDETR's preprocessed VidSTG ``{split}.json``: ``{"videos": [...], "trajectories": {...}}``.
``tubedetr-hcstvg``
    TubeDETR's preprocessed HC-STVG ``{split}_proc.json`` / ``{split}v2_proc.json``: a list of
    records with a ``trajectory``.
``vidstg``
    Raw VidSTG sentences ``{split}_annotations.json`` (a list of relation instances with ``vid``,
    ``used_segment``, ``temporal_gt``, ``captions``, ``questions``), plus an optional VidOR box
    directory (``boxes_dir``); see :mod:`stvg.data.formats.vidstg`.
``hcstvg``
    Raw HC-STVG v1/v2: an object keyed by video file name, each value with ``bbox`` and
    ``st_frame``.

The TubeDETR and HC-STVG loaders live in their own modules and are imported only when needed.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stvg.data.sample import FORMAT, Annotations, read_normalized
from stvg.errors import InputError

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("normalized", "tubedetr-vidstg", "tubedetr-hcstvg", "vidstg", "hcstvg")

# format name -> (module, detector function, loader function); modules are imported lazily.
_LOADERS: dict[str, tuple[str, str, str]] = {
    "tubedetr-vidstg": (
        "stvg.data.formats.tubedetr",
        "looks_like_tubedetr_vidstg",
        "load_tubedetr_vidstg",
    ),
    "tubedetr-hcstvg": (
        "stvg.data.formats.tubedetr",
        "looks_like_tubedetr_hcstvg",
        "load_tubedetr_hcstvg",
    ),
    "vidstg": ("stvg.data.formats.vidstg", "looks_like_vidstg_raw", "load_vidstg_raw"),
    "hcstvg": ("stvg.data.formats.hcstvg", "looks_like_hcstvg_raw", "load_hcstvg_raw"),
}


def read_json_file(path: str | Path) -> Any:
    """Parse a UTF-8 JSON file (a leading BOM is accepted); raises :class:`InputError`.

    The error names the file and says what is wrong: missing, a directory, unreadable, not
    UTF-8 (with the byte offset), not JSON (with line and column) or an object with a key
    written twice (``json.loads`` would keep the last one only: a silent drop).
    """
    path = Path(path)
    if not path.exists():
        raise InputError("the file does not exist", file=path)
    if path.is_dir():
        raise InputError("expected a JSON file, got a directory", file=path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read the file ({error.strerror})", file=path) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(
            f"the file is not UTF-8 text (byte 0x{raw[error.start]:02x} at offset {error.start})",
            file=path,
        ) from None
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as error:
        raise InputError(
            f"malformed JSON at line {error.lineno}, column {error.colno}: {error.msg}",
            file=path,
        ) from None
    except _DuplicateKey as error:
        raise InputError(
            f"the key {error.key!r} occurs more than once in one JSON object (a JSON reader keeps "
            "only the last, so the others would be dropped silently)",
            file=path,
            field=error.key,
        ) from None


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads`` hook: an object as a dict, refusing a key written twice."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


def _module(name: str) -> Any | None:
    """The loader module for format ``name``, or None while it is not part of the package."""
    module_name = _LOADERS[name][0]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name:
            return None
        raise


def _detector(name: str) -> Callable[[Any], bool] | None:
    module = _module(name)
    return None if module is None else getattr(module, _LOADERS[name][1], None)


def available_formats() -> tuple[str, ...]:
    """The names of :data:`FORMATS` whose loader module is present in this installation."""
    return tuple(n for n in FORMATS if n == "normalized" or _module(n) is not None)


def describe(data: Any) -> str:
    """A short description of a parsed JSON document's top level, for error messages."""

    def keys(obj: dict) -> str:
        shown = sorted(str(k) for k in obj)[:8]
        more = ", ..." if len(obj) > 8 else ""
        return "{" + ", ".join(shown) + more + "}"

    if isinstance(data, dict):
        if isinstance(data.get("format"), str):
            return f"an object with format {data['format']!r} and keys {keys(data)}"
        return f"an object with keys {keys(data)}" if data else "an empty object"
    if isinstance(data, list):
        if not data:
            return "an empty list"
        first = data[0]
        what = (
            f"an object with keys {keys(first)}"
            if isinstance(first, dict)
            else type(first).__name__
        )
        return f"a list of {len(data)} items, the first being {what}"
    return f"a JSON {type(data).__name__}"


def detect_format(data: Any) -> str:
    """The name of the format a parsed JSON document is in, from its content alone.

    Raises :class:`InputError` (without a file; :func:`load_annotations` adds it) when no known
    format matches; the message lists the known formats and what the document looks like.
    """
    if isinstance(data, dict) and "format" in data:
        if data["format"] == FORMAT:
            return "normalized"
        raise InputError(
            f"unknown annotation format {data['format']!r}; the known formats are "
            f"{', '.join(FORMATS)} (normalized files say format {FORMAT!r})",
            field="format",
        )
    for name in FORMATS[1:]:
        looks_like = _detector(name)
        if looks_like is not None and looks_like(data):
            return name
    missing = [n for n in FORMATS if n not in available_formats()]
    note = f" (not available in this installation: {', '.join(missing)})" if missing else ""
    raise InputError(
        f"cannot tell the annotation format: the file holds {describe(data)}, which matches none "
        f"of the known formats {', '.join(FORMATS)}{note}",
        hint="Pass --format to force one if you know it",
    )


def load_annotations(
    path: str | Path,
    format: str | None = None,
    *,
    boxes_dir: str | Path | None = None,
) -> Annotations:
    """Read annotations from ``path`` in any known format, as stvg :class:`Annotations`.

    ``format`` (one of :data:`FORMATS`) forces a loader; by default it is detected from content.
    ``boxes_dir`` is the VidOR annotation directory for raw VidSTG sentences (``vidstg``); it is
    refused for other formats. Raises :class:`InputError` for anything it cannot use.
    """
    path = Path(path)
    if format is not None and format not in FORMATS:
        raise InputError(
            f"unknown format {format!r}; the known formats are {', '.join(FORMATS)}",
            file=path,
            field="--format",
        )
    data = read_json_file(path)
    try:
        name = format or detect_format(data)
    except InputError as error:
        raise error.located(file=path) from None
    if boxes_dir is not None and name != "vidstg":
        raise InputError(
            f"a box directory only goes with raw VidSTG sentences (format vidstg); this file is "
            f"{name}",
            file=path,
            field="--boxes-dir",
        )
    log.debug("reading %s as %s annotations", path, name)
    if name == "normalized":
        annotations = read_normalized(data, file=path)
    else:
        module = _module(name)
        if module is None:
            raise InputError(
                f"the {name} loader ({_LOADERS[name][0]}) is not available in this installation",
                file=path,
            )
        loader = getattr(module, _LOADERS[name][2])
        if name == "vidstg":
            annotations = loader(data, file=path, boxes_dir=boxes_dir)
        else:
            annotations = loader(data, file=path)
    if annotations.path is None:
        annotations.path = str(path)
    return annotations


__all__ = [
    "FORMATS",
    "available_formats",
    "describe",
    "detect_format",
    "load_annotations",
    "read_json_file",
]
