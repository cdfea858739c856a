"""The extraction settings of a trained run: how ``stvg ground`` (and ``stvg extract --like``)
makes features of new videos exactly as the run's store was made.

A run trained by this stvg records them in ``RUN/config.json`` under ``features``: ``extract``
(the store's whole :class:`~stvg.extract.config.ExtractConfig`) and ``train_segment_seconds``
(the median length of its training segments: long videos are read in windows of it). A run
made before they were recorded is completed, in this order, from:

1. the store it was trained on: ``--features STORE``, else ``RUN/../features`` (the layout of
   ``stvg pipeline``), accepted only when its backbones and sampling are the ones the run
   records; its manifest gives ``extract`` (or, for an older store, the rebuilt config below)
   and its training split the segment length;
2. the run's own record of its backbones and sampling (every run has it), rebuilt into an
   :class:`ExtractConfig` by :func:`rebuild_extract` (the segment length then has no source:
   a clear error says to pass ``--features``).

Whatever the source, :func:`stvg.ground.run` checks the encoders it builds against the run's
recorded backbones and sampling before it extracts anything.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stvg.errors import InputError
from stvg.extract.config import DATASETS, ExtractConfig

log = logging.getLogger(__name__)

STORE_BESIDE_RUN = "../features"
"""Where ``stvg pipeline`` puts the store a run was trained on, relative to the run folder."""


@dataclass(frozen=True)
class RunSettings:
    """``extract``: the config to extract with; ``segment_seconds``: the training segment
    length; ``source``: where they came from (for the log and ``--json``)."""

    extract: ExtractConfig
    segment_seconds: float
    source: str


def read_run_config(run: str | Path) -> dict[str, Any]:
    """``RUN/config.json``; raises :class:`InputError` when the folder is not a training run."""
    path = Path(run) / "config.json"
    if not path.is_file():
        raise InputError(
            "not a training run (no config.json)",
            file=run,
            hint="Pass the folder `stvg train --out` wrote",
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"cannot read the run's config: {error}", file=path) from None


def _weights_choice(backbones: dict[str, Any]) -> str:
    """``random`` or ``pretrained`` from the recorded weight ids (the text encoder always has
    weights); a local file or an MDETR checkpoint cannot be found again from its id."""
    from stvg.extract.backbones.image import WEIGHT_FREE

    ids = {str(spec.get("weights", "")) for spec in backbones.values() if isinstance(spec, dict)}
    ids.discard(WEIGHT_FREE)
    if all(i.startswith("random:") for i in ids):
        return "random"
    if not any(i.startswith(("file:", "mdetr:")) for i in ids):
        return "pretrained"
    raise InputError(
        f"the run's features were made with local weights ({', '.join(sorted(ids))}), which "
        "cannot be found again from their ids",
        field="features.backbones",
        hint="Pass --features STORE, the store the run was trained on, or train the run again "
        "with this stvg (it records the extraction settings)",
    )


def rebuild_extract(
    dataset: str, backbones: dict[str, Any], sampling: dict[str, Any]
) -> ExtractConfig:
    """The :class:`ExtractConfig` that gives these backbones and sampling (a manifest's or a
    run's record, from before the whole config was recorded). Raises :class:`InputError` when
    the record lacks a field."""
    try:
        image, video, text = backbones["image"], backbones["video"], backbones["text"]
        values = {
            "dataset": dataset,
            "image_backbone": image["name"],
            "image_layer": image["layer"],
            "video_backbone": video["name"],
            "clip_size": video["size"],
            "text_layers": text["layers"],
            "amp": image.get("autocast") is not None,
            **{k: sampling[k] for k in ("target_fps", "max_frames", "n_short", "td")},
            "max_text_len": sampling["max_text_len"],
        }
    except (KeyError, TypeError) as error:
        raise InputError(
            f"the recorded backbones and sampling lack {error}",
            field="features",
            hint="Pass --features STORE, the store the run was trained on",
        ) from None
    values["weights"] = _weights_choice(backbones)
    if dataset not in DATASETS:  # e.g. a store of converted annotations
        values["dataset"] = "normalized"
    return ExtractConfig(**values)


def _from_record(record: dict[str, Any]) -> ExtractConfig:
    """The recorded whole config, or one rebuilt from the backbones and sampling."""
    if isinstance(record.get("extract"), dict):
        return ExtractConfig(**record["extract"])
    return rebuild_extract(
        str(record.get("dataset", "normalized")), record["backbones"], record["sampling"]
    )


def _store_settings(store_root: Path, record: dict[str, Any], run: Path, split: str) -> RunSettings:
    """Settings from the store a run was trained on (checked to hold the run's features)."""
    import statistics

    from stvg.features.manifest import check_same_features, features_record
    from stvg.features.store import open_store

    store = open_store(store_root)
    check_same_features(
        record,
        store.manifest,
        run=run,
        store=store_root,
        hint="Pass the store the run was trained on",
    )
    samples = store.samples(split) if split in store.splits() else []
    if not samples:
        raise InputError(f"the store has no complete queries in split '{split}'", file=store_root)
    seconds = statistics.median((s.segment[1] - s.segment[0]) / s.fps for s in samples)
    extract = _from_record(features_record(store.manifest))
    return RunSettings(extract, float(seconds), f"the store {store_root}")


def run_settings(
    run: str | Path, features: str | Path | None = None, *, need_segment: bool = True
) -> RunSettings:
    """The extraction settings and training segment length of ``run`` (module docstring).

    ``features``: the store the run was trained on, for a run made before runs recorded them.
    Raises :class:`InputError` saying what to pass when they cannot be found. Without
    ``need_segment`` (``stvg extract --like``) a run with no recorded segment length is no
    error: ``segment_seconds`` is then ``nan``.
    """
    run = Path(run)
    config = read_run_config(run)
    record = config.get("features")
    if not isinstance(record, dict) or "backbones" not in record:
        raise InputError(
            "the run does not record the features it was trained on (made by an older stvg)",
            file=run / "config.json",
            field="features",
            hint="Train the run again with this stvg",
        )
    seconds = record.get("train_segment_seconds")
    if isinstance(record.get("extract"), dict) and isinstance(seconds, (int, float)):
        return RunSettings(_from_record(record), float(seconds), "the run")
    split = str(config.get("train_split", "train"))
    if features is not None:
        return _store_settings(Path(features), record, run, split)
    beside = (run / STORE_BESIDE_RUN).resolve()
    if (beside / "manifest.json").is_file():
        try:
            return _store_settings(beside, record, run, split)
        except InputError as error:
            log.info("the store beside the run does not fit it: %s", error)
    if not need_segment:
        return RunSettings(_from_record(record), float("nan"), "the run's backbones and sampling")
    raise InputError(
        "the run was trained before stvg recorded its training segment length",
        file=run / "config.json",
        field="features.train_segment_seconds",
        hint="Pass --features STORE, the feature store the run was trained on",
    )


def config_like(
    run: str | Path,
    dataset: str | None = None,
    items: list[str] | None = None,
    **knobs: Any,
) -> ExtractConfig:
    """``stvg extract --like RUN``: the run's extraction settings, with ``dataset`` (the
    annotation layout to read; default the run's), then ``knobs`` (settings that change no
    feature's meaning: device, batch size, packing, storage; ``None`` ignored), then ``items``
    (``--set key=value``)."""
    from stvg.extract.config import resolve

    base = run_settings(run, need_segment=False).extract.to_json()
    name = dataset or base.pop("dataset")
    base.pop("dataset", None)
    return resolve(name, items, **{**base, **{k: v for k, v in knobs.items() if v is not None}})
