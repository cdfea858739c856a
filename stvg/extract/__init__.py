"""Stage one: ``run`` extracts frozen backbone features of a dataset into a feature store.

See :mod:`stvg.extract.runner` for the loop, :mod:`stvg.extract.plan` for entries and shards,
:mod:`stvg.extract.config` for presets and :mod:`stvg.extract.backbones` for the encoders.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from stvg.data.sample import Annotations
from stvg.errors import InputError
from stvg.extract.config import ExtractConfig
from stvg.extract.plan import Entry, plan_entries

log = logging.getLogger(__name__)

# Where each dataset's annotation files are looked for under --data-root when --annotations is
# not given ({split} is replaced). VidSTG boxes are read from the VidOR annotation folder.
ANNOTATION_LAYOUT = {
    "synthetic": "{split}.json",
    "normalized": "{split}.json",
    "vidstg": "annotations/{split}_annotations.json",
    "hcstvg-v1": "annotations/{split}.json",
    "hcstvg-v2": "annotations/{split}.json",
}
VIDOR_BOXES = "vidor/annotation"
FORMAT_OF = {
    "synthetic": "normalized",
    "normalized": "normalized",
    "vidstg": "vidstg",
    "hcstvg-v1": "hcstvg",
    "hcstvg-v2": "hcstvg",
}


def load_splits(
    dataset: str,
    data_root: str | Path,
    splits: list[str],
    annotations: str | None = None,
    boxes_dir: str | Path | None = None,
) -> dict[str, Annotations]:
    """Read each split's annotations; ``annotations`` may hold ``{split}`` or name one file."""
    from stvg.data.formats import load_annotations

    root = Path(data_root)
    pattern = annotations or str(root / ANNOTATION_LAYOUT[dataset])
    if dataset == "vidstg" and boxes_dir is None and (root / VIDOR_BOXES).is_dir():
        boxes_dir = root / VIDOR_BOXES
    out = {}
    for split in splits:
        path = Path(pattern.replace("{split}", split))
        if not path.exists():
            if annotations is None or "{split}" in annotations:
                raise InputError(
                    f"no annotation file for split '{split}'",
                    file=path,
                    hint="Pass --annotations FILE (or a pattern with {split}) or --split",
                )
        kwargs: dict[str, Any] = {}
        if boxes_dir is not None:
            kwargs["boxes_dir"] = boxes_dir
        out[split] = load_annotations(path, format=FORMAT_OF[dataset], **kwargs)
    return out


def make_manifest(config: ExtractConfig, specs: dict[str, Any]) -> Any:
    """The store manifest: backbones (with weight ids), sampling, dtype, backend and the whole
    config (``extract``: what ``stvg ground`` and ``stvg extract --like`` redo)."""
    from stvg.features.manifest import Manifest

    return Manifest(
        dataset=config.dataset,
        backbones=specs,
        sampling=config.sampling(),
        dtype=config.dtype,
        backend=config.backend,
        extract=config.to_json(),
    )


def run(
    config: ExtractConfig,
    data_root: str | Path,
    out: str | Path,
    splits: list[str],
    annotations: str | None = None,
    boxes_dir: str | Path | None = None,
    shard: tuple[int, int] = (0, 1),
    scheduler: str | None = None,
    dask_workers: int | None = None,
    skip_failed: bool = False,
    progress: bool = True,
) -> Any:
    """Extract ``splits`` of a dataset into the store at ``out``; returns what was done.

    With ``scheduler`` (a dask.distributed address) or ``dask_workers`` (a LocalCluster of that
    many processes), each worker extracts shard ``k`` of ``N`` into its own parts; otherwise this
    process extracts ``shard``.
    """
    from stvg.extract.runner import build_encoders, extract_entries
    from stvg.features.store import create_store

    split_annotations = load_splits(config.dataset, data_root, splits, annotations, boxes_dir)
    entries = plan_entries(split_annotations, data_root)
    log.info("%d video entries, %d queries", len(entries), sum(len(e.samples) for e in entries))
    if scheduler is not None or dask_workers:
        from stvg.extract.distributed import run_dask

        return run_dask(config, entries, out, scheduler, dask_workers, skip_failed)
    encoders = build_encoders(config)
    store = create_store(out, make_manifest(config, encoders.specs()))
    return extract_entries(store, entries, config, encoders, shard, skip_failed, progress)


__all__ = ["ExtractConfig", "Entry", "run", "load_splits", "make_manifest"]
