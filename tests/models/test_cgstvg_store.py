"""CG-STVG on a real (tiny, synthetic) feature store: the collated batch is its input as is,
training steps lower the loss, and prediction passes give one span in stored frames."""

from pathlib import Path

import numpy as np
import pytest
import torch

from stvg.evaluate.predict import pass_indices
from stvg.features.dataset import FeatureDataset, collate
from stvg.models.cgstvg import CGSTVGConfig, build_cgstvg, stored_frame_span
from stvg.models.cgstvg_losses import cgstvg_losses, cgstvg_total_loss


@pytest.fixture
def features(tiny_train_features) -> Path:
    """4 synthetic videos of 2 s at 64x48 (train 2 videos / 4 queries). Read-only, shared."""
    return tiny_train_features


@pytest.mark.slow
def test_trains_and_predicts_from_the_store(features, one_thread):
    torch.manual_seed(0)
    data = FeatureDataset(features, "train", num_frames=4)
    items = [data[i] for i in range(len(data))]
    batch = collate(items)
    cfg = CGSTVGConfig.from_preset(
        "synthetic",
        d_model=32,
        n_heads=4,
        n_encoder_layers=1,
        dim_feedforward=32,
        image_channels=int(batch["image"].shape[2]),
        motion_channels=int(batch["motion"].shape[2]),
        text_channels=int(batch["text"].shape[2]),
    )
    model = build_cgstvg(cfg).train()  # oracle context: reads boxes / box_mask of the batch
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, foreach=True)
    losses = []
    for _ in range(30):
        loss = cgstvg_total_loss(cgstvg_losses(model(batch), batch))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses)) and losses[-1] < losses[0] / 2

    model.eval()
    stored = len(data.stored_frame_ids(0))
    passes = pass_indices(stored, data.num_frames)
    with torch.no_grad():
        out = model(collate(data.pass_items(0, passes)))
    start, end, score = stored_frame_span(
        passes, list(out["start_logits"]), list(out["end_logits"]), stored
    )
    assert 0 <= start < end <= stored and score <= 0.0
    assert out["pred_boxes"].shape == (len(passes), 4, 4)
