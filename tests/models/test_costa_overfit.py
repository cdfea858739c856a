"""CoSTA overfits 4 random samples: the loss falls far, boxes and spans approach the targets."""

import time

import pytest
import torch

from stvg.models.costa import CoSTAConfig, build_costa, predict_span
from stvg.train.losses_costa import compute_costa_losses, costa_total_loss


@pytest.mark.slow  # ~15-30 s on a shared 2-core CPU
def test_overfits_four_samples(one_thread):
    torch.manual_seed(0)
    n, ts, td = 4, 8, 4
    cfg = CoSTAConfig(
        d_model=32,
        n_heads=4,
        n_encoder_layers=1,
        n_temporal_layers=1,
        n_spatial_layers=2,
        dim_feedforward=64,
        dropout=0.0,
        image_channels=16,
        text_channels=24,
        motion_channels=20,
    )
    model = build_costa(cfg).train()
    spans = [(0, 3), (2, 6), (4, 8), (1, 5)]  # frames, half-open
    fit = torch.zeros(n, ts, dtype=torch.bool)
    for b, (s, e) in enumerate(spans):
        fit[b, s:e] = True
    boxes = torch.cat([torch.rand(n, ts, 2) * 0.5 + 0.25, torch.rand(n, ts, 2) * 0.3 + 0.1], -1)
    batch = {
        "image": torch.randn(n, ts, 16, 3, 4),
        "text": torch.randn(n, 6, 24),
        "text_mask": torch.ones(n, 6, dtype=torch.bool),
        "motion": torch.randn(n, td, 20, 2, 2),
        "frame_in_tube": fit,
    }
    targets = {"boxes": boxes, "box_mask": fit, "frame_in_tube": fit}
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    first = None
    start = time.perf_counter()
    for _ in range(120):
        loss = costa_total_loss(compute_costa_losses(model(batch), targets))
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    elapsed = time.perf_counter() - start

    model.eval()
    with torch.no_grad():
        out = model(batch)
        final = float(costa_total_loss(compute_costa_losses(out, targets)))
    assert final < 0.1 * first, (first, final, elapsed)
    l1 = (out["pred_boxes"][fit] - boxes[fit]).abs().mean()
    assert float(l1) < 0.03  # the random boxes start ~0.15 away per coordinate
    s, e, _ = predict_span(out)
    assert list(zip(s.tolist(), e.tolist(), strict=True)) == spans
