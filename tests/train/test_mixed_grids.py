"""Batches of videos with different frame grids (4:3, 16:9 and portrait in one batch).

A hand-written store holds three videos whose static maps have different grids. The model's
outputs for a sample in a padded batch must equal its outputs alone; training, prediction and
scoring run end to end on it, and predictions do not depend on how passes are batched.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sample_factory import make_sample
from tiny_settings import TINY_TRAIN
from typer.testing import CliRunner

from stvg.cli import app
from stvg.data.sample import Sample
from stvg.evaluate.predict import predict_split
from stvg.features.dataset import FeatureDataset, collate
from stvg.features.manifest import Manifest
from stvg.features.store import create_store
from stvg.models import CSDVLConfig, build_model
from stvg.train import run as train
from stvg.train.config import resolve

# video -> (width, height) in pixels and its static grid (rows, columns) at stride 16
VIDEOS = {
    "land": ((64, 48), (3, 4)),  # 4:3
    "wide": ((96, 54), (4, 6)),  # 16:9
    "tall": ((54, 96), (6, 4)),  # portrait 9:16
}
SEGMENT = (0, 20)
SPANS = np.array([[0, 5], [5, 10], [10, 15], [15, 20]], dtype=np.int32)  # Td = 4
IMAGE_C, MOTION_C, TEXT_C = 8, 5, 12


def _sample(sid: str, video: str, tube: tuple[int, int], caption: str) -> Sample:
    (width, height), _ = VIDEOS[video]
    boxes = {}
    for f in range(*tube):  # a box drifting right
        x = 2.0 + f
        boxes[f] = [x, height * 0.2, x + width * 0.3, height * 0.7]
    return make_sample(
        sid,
        tube,
        boxes,
        video_id=video,
        video_path=f"videos/{video}.mp4",
        width=width,
        height=height,
        segment=SEGMENT,
        caption=caption,
    )


# split -> stored native frame ids per video, and the queries (id, video, tube, text length)
SPLITS = {
    "train": (np.arange(0, 20, 2), [(f"{v}_q{k}", v, (2 + 4 * k, 12 + 4 * k), 3 + k) for v in VIDEOS for k in range(2)]),
    "val": (np.arange(0, 20, 2), [(f"{v}_v", v, (4, 14), 4) for v in VIDEOS]),
    "test": (np.arange(0, 20, 2), [(f"{v}_t", v, (6, 16), 2 + i) for i, v in enumerate(VIDEOS)]),
}  # fmt: skip


@pytest.fixture(scope="module")
def store_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mixed-grids") / "features"
    rng = np.random.default_rng(0)
    store = create_store(root, Manifest(dataset="normalized", backbones={}))
    for split, (frame_ids, queries) in SPLITS.items():
        with store.writer(split, part=(0, 1)) as w:
            for video, (_, (h, w_)) in VIDEOS.items():
                image = rng.normal(size=(len(frame_ids), IMAGE_C, h, w_)).astype(np.float32)
                motion = rng.normal(size=(len(SPANS), MOTION_C, 2, 2)).astype(np.float32)
                w.write_video(f"{video}@0-20", frame_ids.astype(np.int32), image, SPANS, motion)
            for sid, video, tube, length in queries:
                text = rng.normal(size=(length, TEXT_C)).astype(np.float32)
                sample = _sample(sid, video, tube, f"query {sid}")
                w.write_query(sample, text, np.ones(length, bool), f"{video}@0-20")
    return root


def tiny(**overrides) -> CSDVLConfig:
    values = dict(
        d_model=32,
        n_heads=4,
        n_layers=2,
        n_encoder_layers=1,
        dim_feedforward=48,
        image_channels=IMAGE_C,
        text_channels=TEXT_C,
        motion_channels=MOTION_C,
        d_map=16,
        map_layers=2,
        map_kernel=3,
    )
    return CSDVLConfig(**{**values, **overrides})


DEMO = dict(  # every from-scratch option of the synthetic preset, and the text options
    dynamic_pool="attention",
    box_reference="attention",
    visual_pos_in_values=True,
    query_from_text=True,
    temporal_text_fusion=True,
)


def test_collate_pads_each_grid_at_the_bottom_right(store_root):
    data = FeatureDataset(store_root, "test", 4)
    items = [data.item(i) for i in range(3)]
    batch = collate(items)
    assert batch["image"].shape == (3, 4, IMAGE_C, 6, 6)
    for b in range(3):
        h, w = VIDEOS[data.samples[b].video_id][1]
        assert torch.equal(batch["image"][b, :, :, :h, :w], items[b]["image"])
        assert not batch["image"][b, :, :, h:].any() and not batch["image"][b, :, :, :, w:].any()
        want = torch.zeros(6, 6, dtype=torch.bool)
        want[:h, :w] = True
        assert torch.equal(batch["image_mask"][b], want)
    alone = collate(items[:1])
    assert alone["image_mask"].all() and alone["image"].shape[-2:] == items[0]["image"].shape[-2:]


@pytest.mark.parametrize(
    "overrides",
    [{}, DEMO, {"collab": "sum"}, {"collab": "s2d", "dynamic_spatial": False}],
    ids=["paper", "demo", "sum", "no-spatial"],
)
def test_outputs_in_a_padded_batch_equal_the_outputs_alone(store_root, one_thread, overrides):
    torch.manual_seed(0)
    model = build_model(tiny(**overrides)).eval()
    data = FeatureDataset(store_root, "test", 4)
    items = [data.item(i) for i in range(3)]
    with torch.no_grad():
        together = model(collate(items))
        alone = [model(collate([it])) for it in items]
    keys = {"pred_boxes", "score_map", "map_mask", "frame_logits", "clip_logits", "s2d_attention"}
    assert set(together) == keys
    assert len({it["image"].shape for it in items}) == 3  # three grids
    for b in range(3):
        h, w = VIDEOS[data.samples[b].video_id][1]
        for key in keys - {"s2d_attention", "map_mask"}:
            torch.testing.assert_close(together[key][b], alone[b][key][0], rtol=0, atol=1e-5)
        attn = together["s2d_attention"][b]  # [N, Ts, 6, 6]: the sample's cells, zeros around
        torch.testing.assert_close(
            attn[..., :h, :w], alone[b]["s2d_attention"][0], rtol=0, atol=1e-5
        )
        assert not attn[..., h:, :].any() and not attn[..., :, w:].any()
        assert torch.equal(together["map_mask"], alone[b]["map_mask"])


def test_train_predict_and_score_end_to_end(store_root, tmp_path, one_thread):
    run = tmp_path / "run"
    # one batch of all 6 training queries: every step mixes the three grids
    settings = [*TINY_TRAIN, "batch_size=6", "max_steps=3", "val_every=1", "model.dropout=0.0"]
    summary = train(store_root, run, resolve("synthetic", settings), progress=False)
    assert summary["steps"] == 3
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [x for x in lines if "loss" in x]
    assert len(steps) == 3 and all(np.isfinite(x["loss"]) and x["att"] > 0 for x in steps)
    assert [x["step"] for x in lines if "val" in x] == [1, 2, 3]

    # a query's tube does not depend on the passes batched with it (other videos' grids)
    one, annotations = predict_split(run, store_root, "test", batch_size=1, progress=False)
    mixed, _ = predict_split(run, store_root, "test", batch_size=8, progress=False)
    assert sorted(one) == sorted(mixed) == sorted(s.sample_id for s in annotations.samples)
    for sample in annotations.samples:
        a, b = one[sample.sample_id], mixed[sample.sample_id]
        assert a["tube"] == b["tube"]
        assert sorted(int(f) for f in a["boxes"]) == list(range(*SEGMENT))
        for f, box in a["boxes"].items():
            np.testing.assert_allclose(box, b["boxes"][f], rtol=0, atol=1e-3)
            x1, y1, x2, y2 = box  # in the pixels of the sample's own frame
            assert 0 <= x1 <= x2 <= sample.width and 0 <= y1 <= y2 <= sample.height

    runner = CliRunner()
    out = tmp_path / "preds.json"
    args = ["predict", "--run", str(run), "--features", str(store_root), "--out", str(out)]
    result = runner.invoke(app, [*args, "--frames-per-pass", "6"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(out.read_text())["predictions"]) == 3
    result = runner.invoke(
        app, ["score", "--run", str(run), "--features", str(store_root), "--split", "test"]
    )
    assert result.exit_code == 0, result.output
    assert "m_vIoU" in result.output
