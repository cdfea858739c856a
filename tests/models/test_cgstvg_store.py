"""CG-STVG on a real (tiny, synthetic) feature store: the collated batch is its input as is,
training steps lower the loss, and prediction passes give one span in stored frames."""

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_settings import TINY_EXTRACT

from stvg.data.synth import synthesize
from stvg.evaluate.predict import pass_indices
from stvg.extract import run as extract
from stvg.extract.config import preset as extract_preset
from stvg.features.dataset import FeatureDataset, collate
from stvg.models.cgstvg import CGSTVGConfig, build_cgstvg, stored_frame_span
from stvg.models.cgstvg_losses import cgstvg_losses, cgstvg_total_loss


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> Path:
    """4 synthetic videos of 2 s at 64x48 (train 2 videos / 4 queries)."""
    root = tmp_path_factory.mktemp("cgstvg-store")
    synthesize(root / "data", videos=4, seconds=2.0, fps=10.0, size=(64, 48), progress=False)
    config = extract_preset("synthetic", **TINY_EXTRACT)
    extract(config, root / "data", root / "features", ["train"], progress=False)
    return root / "features"


@pytest.fixture
def one_thread():
    """Tiny matmuls are much faster single-threaded on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
