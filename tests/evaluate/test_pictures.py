"""Pictures: strip layout and box pixels by hand, timeline spans, GIF frames, attention overlay,
training curves from a hand-written metrics.jsonl, and the CLI's error paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sample_factory import make_sample
from typer.testing import CliRunner

from stvg.cli import app
from stvg.data.mp4 import write_mp4
from stvg.data.sample import Sample
from stvg.evaluate.pictures import (
    attention_from_model,
    attention_strip,
    sample_attention,
    select_attention,
    strip_frame_ids,
    tube_gif,
    tube_strip,
)
from stvg.evaluate.predictions import Prediction

GREEN = (0, 255, 0)
YELLOW = (255, 255, 0)
W0, H0, GREY = 64, 48, 100  # the synthetic video: 10 frames of plain grey at 10 fps
GT_BOX = (10.0, 8.0, 30.0, 28.0)  # on frames 3..6 (tube [3, 7))
PRED_BOX = (36.0, 20.0, 56.0, 40.0)  # on frames 1 and 4..8 (span [4, 9))

# Layout constants as the module docstring states them.
PAD, GAP, TITLE_H, LABEL_H, TIMELINE_H = 8, 4, 62, 20, 64
TRACK_LABEL_W, GT_ROW_Y, PRED_ROW_Y, ROW_H, COLORBAR_H = 44, 6, 22, 10, 34


def _sample(video_path: str = "videos/v1.mp4") -> Sample:
    return make_sample(
        "q1",
        (3, 7),
        box=GT_BOX,
        video_id="v1",
        video_path=video_path,
        width=W0,
        height=H0,
        caption="the grey nothing stands still",
    )


def _prediction() -> Prediction:
    return Prediction(tube=(4, 9), boxes={f: PRED_BOX for f in (1, 4, 5, 6, 7, 8)})


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A folder with videos/v1.mp4 (plain grey), annotations.json and predictions.json."""
    root = tmp_path_factory.mktemp("pictures")
    (root / "videos").mkdir()
    write_mp4(root / "videos" / "v1.mp4", [np.full((H0, W0, 3), GREY, np.uint8)] * 10, fps=10)
    doc = {"format": "stvg-annotations/1", "dataset": "custom", "split": "test"}
    doc["samples"] = [_sample().to_json()]
    (root / "annotations.json").write_text(json.dumps(doc))
    preds = {"format": "stvg-predictions/1", "predictions": {"q1": _prediction().to_json()}}
    (root / "predictions.json").write_text(json.dumps(preds))
    return root


def _count(region: np.ndarray, color: tuple[int, int, int]) -> int:
    return int(np.all(region == np.array(color, np.uint8), axis=-1).sum())


def test_strip_frame_ids_by_hand():
    # L = 10, T = 4, n = 4: k_in = min(4, max(2, round(1.6))) = 2 -> tube [3..6] picks idx 1, 3
    # -> 4, 6; outside [0, 1, 2, 7, 8, 9] picks idx floor(0.5 * 6 / 2) = 1, floor(1.5 * 3) = 4
    assert strip_frame_ids((0, 10), (3, 7), 4) == [1, 4, 6, 8]
    # a segment shorter than n: every frame once
    assert strip_frame_ids((0, 3), (1, 2), 8) == [0, 1, 2]
    # a one-frame tube is always shown
    assert 50 in strip_frame_ids((0, 100), (50, 51), 4)


def test_tube_strip_pixels_where_the_annotation_says(data_dir, tmp_path):
    out = tmp_path / "strip.png"
    paths = tube_strip(
        _sample(), _prediction(), data_dir / "videos/v1.mp4", out, num_frames=4, tile_width=128
    )
    assert paths == [out]
    img = np.asarray(Image.open(out).convert("RGB"))
    # tw = 128 (scale 2), th = round(48 * 128 / 64) = 96; 4 tiles (frames 1, 4, 6, 8)
    width, height = 2 * PAD + 4 * 128 + 3 * GAP, PAD + TITLE_H + 96 + LABEL_H + TIMELINE_H + PAD
    assert img.shape == (height, width, 3) == (258, 540, 3)
    top = PAD + TITLE_H

    def tile(k: int) -> np.ndarray:
        left = PAD + k * (128 + GAP)
        return img[top : top + 96, left : left + 128]

    # frame 4 (tile 1): GT [10, 8, 30, 28] -> columns 20..59, rows 16..55, 2 px thick
    t = tile(1)
    for y, x in [(16, 40), (17, 40), (55, 40), (54, 40), (36, 20), (36, 21), (36, 59), (36, 58)]:
        assert tuple(t[y, x]) == GREEN, (y, x)
    assert tuple(t[36, 40]) != GREEN  # well inside the box: the frame
    assert abs(int(t[36, 40, 0]) - GREY) <= 6
    assert tuple(t[36, 22]) != GREEN and tuple(t[18, 40]) != GREEN  # the line is 2 px only
    assert tuple(t[36, 19]) == (0, 0, 0)  # halo just outside
    assert _count(t, GREEN) == 40 * 40 - 36 * 36  # the whole ring and nothing else
    # predicted [36, 20, 56, 40] -> columns 72..111, rows 40..79
    for y, x in [(40, 90), (41, 90), (79, 90), (60, 72), (60, 73), (60, 111), (60, 110)]:
        assert tuple(t[y, x]) == YELLOW, (y, x)
    assert _count(t, YELLOW) == 40 * 40 - 36 * 36
    # frame 1 (tile 0): outside both spans (its predicted box is outside the span: not drawn)
    assert _count(tile(0), GREEN) == 0 and _count(tile(0), YELLOW) == 0
    # frame 6: both; frame 8: only the prediction
    assert _count(tile(2), GREEN) == 304 and _count(tile(2), YELLOW) == 304
    assert _count(tile(3), GREEN) == 0 and _count(tile(3), YELLOW) == 304

    # timeline: x(f) = X0 + f * BW / 10 with X0 = 52, BW = 540 - 8 - 52 = 480 -> 52 + 48 f
    tl = top + 96 + LABEL_H
    gt_y, pred_y = tl + GT_ROW_Y + ROW_H // 2, tl + PRED_ROW_Y + ROW_H // 2
    gt_a, gt_b = 52 + 48 * 3, 52 + 48 * 7  # GT [3, 7) -> columns 196..387
    assert tuple(img[gt_y, gt_a]) == GREEN and tuple(img[gt_y, gt_b - 1]) == GREEN
    assert tuple(img[gt_y, gt_a - 1]) != GREEN and tuple(img[gt_y, gt_b]) != GREEN
    assert _count(img[gt_y : gt_y + 1], GREEN) == gt_b - gt_a
    pr_a, pr_b = 52 + 48 * 4, 52 + 48 * 9  # predicted [4, 9) -> columns 244..483
    assert tuple(img[pred_y, pr_a]) == YELLOW and tuple(img[pred_y, pr_b - 1]) == YELLOW
    assert tuple(img[pred_y, pr_a - 1]) != YELLOW and tuple(img[pred_y, pr_b]) != YELLOW
    assert _count(img[pred_y : pred_y + 1], YELLOW) == pr_b - pr_a
    assert _count(img[tl + GT_ROW_Y : tl + GT_ROW_Y + ROW_H], GREEN) == (gt_b - gt_a) * ROW_H


def test_strip_is_deterministic_and_reads_frame_folders(data_dir, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for f in range(10):
        Image.fromarray(np.full((H0, W0, 3), GREY, np.uint8)).save(frames / f"img_{f:05d}.png")
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    tube_strip(_sample(), _prediction(), frames, a, num_frames=4, tile_width=128)
    tube_strip(_sample(), _prediction(), frames, b, num_frames=4, tile_width=128)
    assert a.read_bytes() == b.read_bytes()
    img = np.asarray(Image.open(a).convert("RGB"))
    assert img.shape == (258, 540, 3)
    # lossless frames: inside the GT box of frame 4 the pixel is exactly the grey
    assert tuple(img[PAD + TITLE_H + 36, PAD + 132 + 40]) == (GREY, GREY, GREY)
    (frames / "img_00004.png").unlink()
    with pytest.raises(Exception, match=r"frame\(s\) \[4\]"):
        tube_strip(_sample(), None, frames, a, num_frames=4)


def test_gif_frame_count_and_pace(data_dir, tmp_path):
    paths = tube_strip(
        _sample(),
        _prediction(),
        data_dir / "videos/v1.mp4",
        tmp_path / "s.png",
        gif=tmp_path / "s.gif",
    )
    assert paths == [tmp_path / "s.png", tmp_path / "s.gif"]
    with Image.open(tmp_path / "s.gif") as gif:
        assert gif.n_frames == 10  # every frame of the 10-frame segment (step 1)
    out = tube_gif(_sample(), _prediction(), data_dir / "videos/v1.mp4", tmp_path / "t.gif", step=3)
    with Image.open(out) as gif:
        assert gif.n_frames == 4  # frames 0, 3, 6, 9
        assert gif.info["duration"] == 300  # 3 frames at 10 fps
        # 200 px tile: th = round(48 * 200 / 64) = 150, plus the label and timeline bands
        assert gif.size == (200, 150 + LABEL_H + 12)


def _attention() -> np.ndarray:
    """[N=2, Ts=3, h=3, w=4]: layer mean puts its mass at cell (1, 2) of frame 1."""
    att = np.zeros((2, 3, 3, 4), np.float32)
    att[:, 0] = 0.1
    att[0, 0, 0, 0] = 0.3  # frame 0 mean max: (0.3 + 0.1) / 2 = 0.2
    att[0, 1, 1, 2], att[1, 1, 1, 2] = 0.6, 1.0  # mean 0.8: the maximum over all frames
    return att


def test_select_attention_by_hand():
    maps = select_attention(_attention())
    assert maps.shape == (3, 3, 4)
    assert maps[1, 1, 2] == pytest.approx(1.0)
    assert maps[0, 0, 0] == pytest.approx(0.2 / 0.8) and maps[0, 2, 3] == pytest.approx(0.1 / 0.8)
    assert maps[2].max() == 0.0
    one = select_attention(_attention(), layer=-1)  # layer 1: max 1.0
    assert one[1, 1, 2] == pytest.approx(1.0) and one[0, 0, 0] == pytest.approx(0.1)


def test_attention_overlay_is_hottest_where_the_mass_is(data_dir, tmp_path):
    out = attention_strip(
        _sample(),
        _attention(),
        [2, 4, 6],
        data_dir / "videos/v1.mp4",
        tmp_path / "att.png",
        num_frames=3,
        tile_width=128,
    )
    img = np.asarray(Image.open(out).convert("RGB")).astype(int)
    th = 96
    assert img.shape == (PAD + TITLE_H + 2 * (th + LABEL_H) + GAP + COLORBAR_H + PAD, 408, 3)
    top2 = PAD + TITLE_H + th + LABEL_H + GAP
    left = PAD + 1 * (128 + GAP)  # frame 4 is the second of [2, 4, 6]
    tile = img[top2 : top2 + th, left : left + 128]
    heat = tile[..., 0] - tile[..., 2]  # red minus blue
    y, x = np.unravel_index(np.argmax(heat), heat.shape)
    assert 32 <= y < 64 and 64 <= x < 96  # cell (1, 2) of the 3 x 4 grid: 32 px cells
    # its center: 0.45 grey + 0.55 jet(~1): red (jet's top end is (128..255, 0, 0))
    r, g, b = tile[48, 80]
    assert r > 0.45 * GREY + 0.55 * 120 and g <= 0.45 * GREY + 4 and b <= 0.45 * GREY + 4
    r, g, b = tile[16, 16]  # a cold cell: jet(0) = (0, 0, 128)
    assert b - r > 50
    # frame 4 lies in the GT tube: its top-row tile carries the green box
    assert tuple(img[PAD + TITLE_H + 16, left + 40]) == GREEN


MODEL = {
    "d_model": 16,
    "n_heads": 2,
    "n_layers": 2,
    "n_encoder_layers": 1,
    "dim_feedforward": 32,
    "dropout": 0.0,
    "image_channels": 8,
    "text_channels": 16,
    "motion_channels": 8,
    "d_map": 16,
    "map_layers": 1,
    "map_kernel": 3,
}


def test_attention_from_a_tiny_model(data_dir, tmp_path):
    from stvg.models import build_model

    torch.manual_seed(0)
    model = build_model(MODEL)
    batch = {
        "image": torch.randn(1, 3, 8, 3, 4),
        "text": torch.randn(1, 5, 16),
        "text_mask": torch.ones(1, 5, dtype=torch.bool),
        "motion": torch.randn(1, 2, 8, 2, 2),
    }
    att = attention_from_model(model, batch)
    assert att.shape == (2, 3, 3, 4) and att.dtype == np.float32
    # softmax weights over image cells and text tokens: the cells hold part of the mass
    sums = att.sum(axis=(2, 3))
    assert np.all(att >= 0) and np.all(sums > 0) and np.all(sums <= 1 + 1e-5)
    out = attention_strip(_sample(), att, [0, 5, 9], data_dir / "videos/v1.mp4", tmp_path / "m.png")
    assert Image.open(out).size == (2 * PAD + 3 * 200 + 2 * GAP, 456)


@pytest.fixture(scope="module")
def run_and_store(data_dir, tmp_path_factory) -> tuple[Path, Path]:
    """A store with the sample (6 stored frames, 2 clips) and a run folder with a random model."""
    from stvg.features.manifest import Manifest
    from stvg.features.store import create_store
    from stvg.models import build_model

    root = tmp_path_factory.mktemp("attention")
    rng = np.random.default_rng(0)
    store = create_store(root / "store", Manifest(dataset="normalized", backbones={}))
    with store.writer("test", part=(0, 1)) as w:
        w.write_video(
            "v1@0-10",
            np.array([0, 2, 4, 6, 8, 9], np.int32),
            rng.integers(-64, 64, (6, 8, 3, 4)).astype(np.float32) / 8,
            np.array([[0, 5], [5, 10]], np.int32),
            rng.integers(-64, 64, (2, 8, 2, 2)).astype(np.float32) / 8,
        )
        text = rng.integers(-64, 64, (4, 16)).astype(np.float32) / 8
        w.write_query(_sample(), text, np.ones(4, bool), "v1@0-10")
    torch.manual_seed(0)
    model = build_model(MODEL)
    run = root / "run"
    run.mkdir()
    torch.save(
        {"model_config": MODEL, "ema": model.state_dict(), "config": {"num_frames": 3}},
        run / "checkpoint.pt",
    )
    return run, root / "store"


def test_sample_attention_takes_the_runs_frames(run_and_store):
    run, store = run_and_store
    sample, att, frame_ids = sample_attention(run, store, "test", "q1")
    assert sample.sample_id == "q1"
    # Ts = 3 of 6 stored frames: indices floor((k + 0.5) * 6 / 3) = 1, 3, 5 -> frames 2, 6, 9
    assert frame_ids.tolist() == [2, 6, 9]
    assert att.shape == (2, 3, 3, 4)


def _runner_invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_visualize_writes_png_gif_and_attention(data_dir, run_and_store, tmp_path):
    run, store = run_and_store
    out = tmp_path / "pics"
    result = _runner_invoke(
        "visualize",
        "--annotations", data_dir / "annotations.json",
        "--predictions", data_dir / "predictions.json",
        "--sample", "q1", "--out", out, "--frames", "4", "--gif",
        "--attention", run, "--features", store, "--split", "test",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [str(out / n) for n in ("q1.png", "q1.gif", "q1-attention.png")]
    # 200 px tiles: th = 150
    assert Image.open(out / "q1.png").size == (
        2 * PAD + 4 * 200 + 3 * GAP,
        PAD + TITLE_H + 150 + LABEL_H + TIMELINE_H + PAD,
    )
    assert Image.open(out / "q1-attention.png").size == (2 * PAD + 3 * 200 + 2 * GAP, 456)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--sample", "nope"], ["sample nope", "--sample", "annotations.json"]),
        (["--sample", "q1", "--video-root", "NOWHERE"], ["sample q1", "video_path"]),
        (["--sample", "q1", "--predictions", "EMPTY"], ["sample q1", "empty.json"]),
        (["--sample", "q1", "--attention", "RUN"], ["--features"]),
    ],
)
def test_cli_visualize_bad_input_exits_2(data_dir, tmp_path, args, expected):
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"format": "stvg-predictions/1", "predictions": {}}))
    where = {"EMPTY": empty, "RUN": tmp_path, "NOWHERE": tmp_path / "nowhere"}
    args = [str(where.get(a, a)) for a in args]
    result = _runner_invoke(
        "visualize", "--annotations", data_dir / "annotations.json", "--out", tmp_path, *args
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for text in expected:
        assert text in result.output
