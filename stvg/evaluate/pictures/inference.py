"""The attention maps of a trained run on one stored query (model inference for the pictures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from stvg.data.sample import Sample
from stvg.errors import InputError


def attention_from_model(model: Any, batch: dict[str, Any], device: Any = "cpu") -> np.ndarray:
    """The ``s2d_attention`` of the first query of a collated ``batch``: ``float32 [N, Ts, h, w]``."""
    import torch

    model.eval()
    moved = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    with torch.no_grad():
        out = model(moved)
    return out["s2d_attention"][0].float().cpu().numpy()


def sample_attention(
    run: str | Path, features: str | Path, split: str, sample_id: str, device: str = "cpu"
) -> tuple[Sample, np.ndarray, np.ndarray]:
    """Run the EMA weights of ``run`` on one stored query; ``(sample, attention, frame_ids)``.

    The query takes the run's ``num_frames`` stored frames, evenly spread (as in training);
    ``attention`` is ``[N, Ts, h, w]``, ``frame_ids`` ``[Ts]`` native ids.
    """
    from stvg.evaluate.predict import load_run
    from stvg.features.dataset import FeatureDataset, collate
    from stvg.features.store import open_store

    model, info = load_run(run, device)
    store = open_store(features)
    if split not in store.splits():
        raise InputError(
            f"the store has no split '{split}' (it has: {', '.join(store.splits()) or 'none'})",
            file=features,
            field="--split",
        )
    dataset = FeatureDataset(
        features, split, int(info["config"]["num_frames"]), sample_ids=[sample_id]
    )
    if not dataset.samples:
        raise InputError(
            f"the store's split '{split}' has no query with this id",
            file=features,
            sample=sample_id,
            field="--sample",
        )
    item = dataset.item(0)
    attention = attention_from_model(model, collate([item]), device)
    return dataset.samples[0], attention, item["frame_ids"].numpy()
