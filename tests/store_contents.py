"""``store_arrays``: everything a feature store holds, for comparing two stores in tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stvg.features.store import open_store


def store_arrays(root: str | Path) -> dict[str, np.ndarray]:
    """Every complete entry's arrays, keyed ``"split/id/name"`` (float32 features as read).

    Query entries also give ``"split/sample_id/entry"`` (their video entry id). Two stores hold
    the same entries and values exactly when these dicts are equal: how shard, dask, resume and
    kill tests compare a store with an uninterrupted single-process one.
    """
    store = open_store(root)
    out: dict[str, np.ndarray] = {}
    try:
        for split in store.splits():
            for entry_id in store.entry_ids(split):
                for name, value in store.video(entry_id, split).items():
                    out[f"{split}/{entry_id}/{name}"] = value
            for sample in store.samples(split):
                query = store.query(sample.sample_id, split)
                out[f"{split}/{sample.sample_id}/text"] = query["text"]
                out[f"{split}/{sample.sample_id}/text_mask"] = query["text_mask"]
                out[f"{split}/{sample.sample_id}/entry"] = np.array(query["entry_id"])
    finally:
        store.close()
    return out
