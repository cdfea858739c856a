"""The feature store's ``manifest.json``: what made the features, so runs never mix them.

A manifest records the store layout version, the dataset, the backbones (name, cut, weight id,
given by the caller as a plain dict, e.g. ``{"image": {"name": "resnet101", "layer": "layer4",
"weights": "random"}}``), the sampling parameters (static fps and cap, ``Td``, sizes, ...),
the storage dtype (``float16`` or ``int8``), the backend (``zarr`` or ``hdf5``) and the stvg
version. Every field except the stvg version must match for a run to add to an existing store
(:func:`check_compatible`). ``extract`` (optional: stores made before it was recorded lack it) is
the whole resolved extraction config (:class:`stvg.extract.config.ExtractConfig`), so that a
trained run can extract new videos exactly as its store was made (``stvg ground``,
``stvg extract --like``); it is informative only and not compared.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stvg import __version__
from stvg.atomic import write_json_atomic
from stvg.errors import InputError

log = logging.getLogger(__name__)

LAYOUT_VERSION = "stvg-features/1"
MANIFEST_NAME = "manifest.json"
DTYPES = ("float16", "int8")
BACKENDS = ("zarr", "hdf5")
_DTYPE_ALIASES = {"fp16": "float16", "float16": "float16", "half": "float16", "int8": "int8"}

# The fields compared by check_compatible, in the order differences are reported.
_COMPARED = ("layout", "dataset", "backend", "dtype", "backbones", "sampling")


@dataclass
class Manifest:
    """What a feature store holds and how it was made.

    ``backbones`` maps a role (``"image"``, ``"video"``, ``"text"``) to a JSON-able dict that
    must include the weight id (``"weights": "pretrained" | "random" | <path or hash>``);
    ``sampling`` holds the frame and clip sampling parameters. Both are compared key by key.
    ``dtype`` is the storage dtype of feature arrays (readers always return float32).
    """

    dataset: str
    backbones: dict[str, Any]
    sampling: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float16"
    backend: str = "zarr"
    layout: str = LAYOUT_VERSION
    stvg_version: str = __version__
    extract: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.dtype = _DTYPE_ALIASES.get(str(self.dtype).lower(), str(self.dtype))
        if self.dtype not in DTYPES:
            raise InputError(
                f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}", field="dtype"
            )
        if self.backend not in BACKENDS:
            raise InputError(
                f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}",
                field="backend",
            )

    def to_json(self) -> dict[str, Any]:
        out = {
            "layout": self.layout,
            "dataset": self.dataset,
            "backbones": self.backbones,
            "sampling": self.sampling,
            "dtype": self.dtype,
            "backend": self.backend,
            "stvg_version": self.stvg_version,
        }
        if self.extract is not None:
            out["extract"] = self.extract
        return out

    @classmethod
    def from_json(cls, data: Any, *, file: str | Path | None = None) -> Manifest:
        """Parse a loaded manifest, checking keys and types; raises :class:`InputError`."""
        if not isinstance(data, dict):
            raise InputError("a feature store manifest must be a JSON object", file=file)
        kinds = {
            "layout": (str, "a string"),
            "dataset": (str, "a string"),
            "backbones": (dict, "an object"),
            "sampling": (dict, "an object"),
            "dtype": (str, "a string"),
            "backend": (str, "a string"),
            "stvg_version": (str, "a string"),
        }
        for key, (kind, what) in kinds.items():
            if key not in data:
                raise InputError(f"the field is missing ({what} expected)", file=file, field=key)
            if not isinstance(data[key], kind):
                raise InputError(f"expected {what}, got {data[key]!r:.60}", file=file, field=key)
        extract = data.get("extract")
        if extract is not None and not isinstance(extract, dict):
            raise InputError(f"expected an object, got {extract!r:.60}", file=file, field="extract")
        try:
            return cls(**{key: data[key] for key in kinds}, extract=extract)
        except InputError as error:
            raise error.located(file=file) from None


def manifest_path(root: str | Path) -> Path:
    return Path(root) / MANIFEST_NAME


def read_manifest(root: str | Path) -> Manifest:
    """Read ``<root>/manifest.json``; raises :class:`InputError` if missing or malformed."""
    path = manifest_path(root)
    if not path.is_file():
        raise InputError(
            "not a stvg feature store (no manifest.json)",
            file=path,
            hint="Check the path, or create the store with `stvg extract --out ...`",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"cannot read the manifest: {error}", file=path) from None
    return Manifest.from_json(data, file=path)


def write_manifest(root: str | Path, manifest: Manifest) -> None:
    """Write ``<root>/manifest.json`` atomically (temporary file, fsync, rename)."""
    write_json_atomic(manifest_path(root), manifest.to_json(), indent=1)


def create_manifest(root: str | Path, manifest: Manifest) -> Manifest:
    """Write the manifest unless one exists; return the manifest now in the store.

    Safe when several processes create the same store at once: the file is linked into place
    with ``os.link``, which fails if another process got there first; the caller then checks the
    returned (existing) manifest with :func:`check_compatible`.
    """
    path = manifest_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    _write_json(tmp, manifest.to_json())
    try:
        os.link(tmp, path)
    except FileExistsError:
        return read_manifest(root)
    finally:
        tmp.unlink(missing_ok=True)
    return manifest


def _write_json(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def _differences(old: Any, new: Any, prefix: str) -> list[tuple[str, Any, Any]]:
    """``(dotted key, old, new)`` for every leaf that differs; ``...`` marks an absent key."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in list(old) + [k for k in new if k not in old]:
            sub = f"{prefix}.{key}" if prefix else str(key)
            out += _differences(old.get(key, ...), new.get(key, ...), sub)
        return out
    return [] if old == new else [(prefix, old, new)]


def _show(value: Any) -> str:
    return "(absent)" if value is ... else repr(value)


def check_compatible(existing: Manifest, new: Manifest, *, root: str | Path | None = None) -> None:
    """Refuse to add features made one way to a store made another way.

    Compares the layout version, dataset, backend, dtype, backbones and sampling, key by key, and
    raises :class:`InputError` listing every difference, e.g. ``backbones.image.weights: store
    has 'random', this run asks for 'pretrained'``. A different stvg version only logs a warning.
    """
    diffs: list[tuple[str, Any, Any]] = []
    old, cur = existing.to_json(), new.to_json()
    for key in _COMPARED:
        diffs += _differences(old[key], cur[key], key)
    if diffs:
        listed = "; ".join(
            f"{k}: store has {_show(a)}, this run asks for {_show(b)}" for k, a, b in diffs
        )
        raise InputError(
            f"the feature store was made with other settings ({listed})",
            file=None if root is None else manifest_path(root),
            field=diffs[0][0],
            hint="Write to another --out, or delete the store to start it over with these settings",
        )
    if existing.stvg_version != new.stvg_version:
        log.warning(
            "feature store written by stvg %s, this is stvg %s (same layout %s)",
            existing.stvg_version,
            new.stvg_version,
            existing.layout,
        )


# The manifest fields that decide what the stored features mean: a model trained on features
# made one way must not be fed features made another way (dtype only changes the rounding).
FEATURE_FIELDS = ("backbones", "sampling")


def features_record(manifest: Manifest) -> dict[str, Any]:
    """What a training run records about its features: backbones and sampling (plus, for
    the reader's information only, the dataset and layout, and the whole extraction config
    when the store recorded it)."""
    data = manifest.to_json()
    keys = ("layout", "dataset", *FEATURE_FIELDS, *(("extract",) if "extract" in data else ()))
    return {key: data[key] for key in keys}


def check_same_features(
    recorded: dict[str, Any] | None,
    manifest: Manifest,
    *,
    run: str | Path,
    store: str | Path,
    hint: str,
) -> None:
    """Refuse a store whose backbones or sampling differ from those a run was trained on.

    ``recorded`` is the run's :func:`features_record` (``None`` for a run made before runs
    recorded it: only a warning). Raises :class:`InputError` listing every difference, e.g.
    ``backbones.image.weights: the run was trained on 'random', the store has 'pretrained'``.
    """
    if recorded is None:
        log.warning(
            "the run %s does not record which features it was trained on; cannot check %s",
            run,
            store,
        )
        return
    current = features_record(manifest)
    diffs: list[tuple[str, Any, Any]] = []
    for key in FEATURE_FIELDS:
        diffs += _differences(recorded.get(key, ...), current[key], key)
    if diffs:
        listed = "; ".join(
            f"{k}: the run was trained on {_show(a)}, the store has {_show(b)}" for k, a, b in diffs
        )
        raise InputError(
            f"the feature store {store} holds other features than the run {run} was trained on "
            f"({listed})",
            file=manifest_path(store),
            field=diffs[0][0],
            hint=hint,
        )
