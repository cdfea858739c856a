"""Video encoders: SlowFast body before its RoI head, the frame-difference encoder, errors."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import torch

from stvg.extract.backbones import WeightsUnavailable, build_image_encoder, build_video_encoder
from stvg.extract.backbones.video import FLOW_RIDGE, cell_flow
from stvg.extract.backbones.weights import seeded

SIZE = 64  # tiny clips: 64 / 16 = 4x4 maps


def clip(t: int, h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def r50():
    return build_video_encoder("slowfast_r50_detection", "random", size=SIZE)


@pytest.fixture(scope="module")
def r50_input(r50):
    return r50.preprocess(clip(32))[None]  # [1, 3, 32, 64, 64]


@pytest.fixture(scope="module")
def r50_output(r50, r50_input):
    return r50(r50_input)  # [1, 2304, 4, 4]


def test_slowfast_r50_detection_shape(r50, r50_input, r50_output):
    assert (r50.out_channels, r50.stride, r50.clip_frames) == (2304, 16, 32)
    assert tuple(r50_input.shape) == (1, 3, 32, SIZE, SIZE)
    y = r50_output
    assert tuple(y.shape) == (1, 2304, 4, 4) and y.dtype == torch.float32
    assert r50.output_shape() == (4, 4)
    assert r50.spec["weights"] == "random:seed0" and r50.spec["slow_frames"] == 8


def test_slowfast_pathway_channels(r50, r50_input, r50_output):
    """Slow res5 has 2048 channels over 8 frames, fast res5 256 over 32 (alpha 4, beta 1/8)."""
    slow_ids = torch.tensor([0, 4, 8, 13, 17, 22, 26, 31])  # linspace(0, 31, 8), truncated
    paths = [r50_input[:, :, slow_ids], r50_input]
    with torch.inference_mode():
        for block in r50.body.blocks:
            paths = block(paths)
    slow, fast = paths
    assert tuple(slow.shape) == (1, 2048, 8, 4, 4)
    assert tuple(fast.shape) == (1, 256, 32, 4, 4)
    y = r50_output
    assert torch.allclose(y[:, :2048], slow.mean(2), atol=1e-5)
    assert torch.allclose(y[:, 2048:], fast.mean(2), atol=1e-5)


def test_slowfast_matches_pytorchvideo_features_before_roi_head(r50_input, r50_output):
    """Our output equals what pytorchvideo's detection net feeds its RoI head."""
    from pytorchvideo.models.hub import slowfast_r50_detection

    with seeded(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = slowfast_r50_detection(pretrained=False).eval()
    slow_ids = torch.tensor([0, 4, 8, 13, 17, 22, 26, 31])
    with torch.inference_mode():
        features = ref.model([r50_input[:, :, slow_ids], r50_input])  # [1, 2304, 1, 4, 4]
    assert tuple(features.shape) == (1, 2304, 1, 4, 4)
    assert torch.allclose(r50_output, features[:, :, 0], atol=1e-5)


def test_slowfast_r101_shape():
    enc = build_video_encoder("slowfast_r101", "random", size=SIZE)
    y = enc(enc.preprocess(clip(32))[None])
    assert tuple(y.shape) == (1, 2304, 2, 2)  # undilated res5: stride 32
    assert (enc.out_channels, enc.stride, enc.clip_frames) == (2304, 32, 32)


@pytest.fixture(scope="module")
def framediff():
    return build_video_encoder("framediff_resnet18", "random", size=SIZE)


def test_framediff_is_mean_and_difference_of_resnet18_maps(framediff):
    assert (framediff.out_channels, framediff.stride, framediff.clip_frames) == (512, 16, 8)
    x = torch.stack([framediff.preprocess(clip(8, seed=s)) for s in range(2)])  # [2,3,8,64,64]
    y = framediff(x)
    assert tuple(y.shape) == (2, 512, 4, 4)
    image = build_image_encoder("resnet18", "layer3", "random")  # same seed, same weights
    for b in range(2):
        maps = image(x[b].permute(1, 0, 2, 3))  # [8, 256, 4, 4]
        assert torch.allclose(y[b, :256], maps.mean(0), atol=1e-5)
        assert torch.allclose(y[b, 256:], maps[-1] - maps[0], atol=1e-5)
    assert torch.equal(build_video_encoder("framediff_resnet18", "random", size=SIZE)(x), y)


def test_framediff_of_a_still_clip_has_zero_difference(framediff):
    still = np.repeat(clip(1), 8, axis=0)
    y = framediff(framediff.preprocess(still)[None])
    assert torch.equal(y[:, 256:], torch.zeros_like(y[:, 256:]))


def test_preprocess_pads_right_bottom_and_normalizes(r50):
    white = np.full((32, 48, 64, 3), 255, np.uint8)  # 48 high, 64 wide -> 64x64 square, no resize
    x = r50.preprocess(white)
    assert tuple(x.shape) == (3, 32, 64, 64)
    on, off = (1 - 0.45) / 0.225, (0 - 0.45) / 0.225
    assert torch.allclose(x[:, :, :48], torch.full_like(x[:, :, :48], on))
    assert torch.allclose(x[:, :, 48:], torch.full_like(x[:, :, 48:], off))


def test_preprocess_resizes_to_size(framediff):
    x = framediff.preprocess(clip(8, 120, 200))
    assert tuple(x.shape) == (3, 8, SIZE, SIZE)


def test_wrong_clip_length_is_refused(r50, framediff):
    with pytest.raises(ValueError, match="32"):
        r50.preprocess(clip(8))
    with pytest.raises(ValueError, match="8"):
        framediff(torch.zeros(1, 3, 4, SIZE, SIZE))


def test_pool_to():
    enc = build_video_encoder("framediff_resnet18", "random", size=SIZE, pool_to=2)
    assert tuple(enc(enc.preprocess(clip(8))[None]).shape) == (1, 512, 2, 2)
    assert enc.output_shape() == (2, 2) and enc.spec["pool_to"] == 2


def test_pretrained_offline_stops_quickly(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(WeightsUnavailable) as info:
        build_video_encoder("slowfast_r50_detection", "pretrained", size=SIZE)
    assert time.monotonic() - start < 5
    text = str(info.value)
    url = (
        "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/ava/SLOWFAST_8x8_R50_DETECTION.pyth"
    )
    assert url in text and str(tmp_path / "torch" / "hub" / "checkpoints") in text


def test_local_checkpoint_in_pytorchvideo_format(tmp_path):
    with seeded(1), warnings.catch_warnings():  # other weights than seed 0
        warnings.simplefilter("ignore")
        from pytorchvideo.models.hub import slowfast_r50_detection

        other = slowfast_r50_detection(pretrained=False)
    torch.save({"model_state": other.state_dict()}, tmp_path / "SLOWFAST_8x8_R50_DETECTION.pyth")
    enc = build_video_encoder("slowfast_r50_detection", str(tmp_path), size=SIZE)
    assert enc.spec["weights"].startswith("file:")
    first = next(iter(other.model.blocks[0].parameters()))
    assert torch.equal(next(iter(enc.body.blocks[0].parameters())), first)
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsUnavailable, match="SLOWFAST_8x8_R50_DETECTION.pyth"):
        build_video_encoder("slowfast_r50_detection", str(tmp_path / "empty"))


def test_pixelflow_channels_and_cell_color():
    enc = build_video_encoder("pixelflow", "random", size=SIZE)
    assert (enc.out_channels, enc.stride, enc.clip_frames, enc.spec["weights"]) == (
        27,
        16,
        8,
        "none",
    )
    x = torch.stack([enc.preprocess(clip(8, seed=s)) for s in range(2)])  # [2, 3, 8, 64, 64]
    y = enc(x)
    assert tuple(y.shape) == (2, 27, 4, 4)
    for i in range(4):
        for j in range(4):  # mean over the clip and the 16 x 16 cell, per color channel
            cell = x[:, :, :, 16 * i : 16 * i + 16, 16 * j : 16 * j + 16]
            assert torch.allclose(y[:, :3, i, j], cell.mean(dim=(2, 3, 4)), atol=1e-5)


def test_flow_of_a_translating_ramp_by_hand():
    # I = 0.05 (x - v t) in each of 3 channels, 32 px wide, v = 1 px per frame, 4 frames. At half
    # resolution the ramp has slope 0.1 (0.05 at the two border columns: replicate padding) and
    # It = -0.05 everywhere; no vertical gradient, so vx = -<Ix It> / (<Ix Ix> + ridge) per cell.
    x = torch.arange(32.0)[None, None, None, None, :] - torch.arange(4.0)[None, None, :, None, None]
    x = (0.05 * x).expand(1, 3, 4, 32, 32).contiguous()
    flow = cell_flow(x, 16)  # [1, 12, 2, 2]: vx of 3 pairs and the clip, then vy, then rms
    ix = [0.05] + [0.1] * 7  # the 8 half-resolution columns of either cell (border one first)
    mxx = 3 * sum(g * g for g in ix) / 8
    mxt = 3 * sum(g * -0.05 for g in ix) / 8
    vx = -mxt / (mxx + FLOW_RIDGE)
    assert vx == pytest.approx(0.437, abs=1e-3)  # the true half-resolution velocity 0.5, shrunk
    assert torch.allclose(flow[0, :4], torch.full((4, 2, 2), vx), atol=1e-5)
    assert torch.allclose(flow[0, 4:8], torch.zeros(4, 2, 2), atol=1e-6)
    assert torch.allclose(flow[0, 8:], torch.full((4, 2, 2), (3 * 0.05**2) ** 0.5), atol=1e-5)


def test_flow_sees_a_square_walk_left_and_nothing_elsewhere():
    frames = np.full((8, 64, 64, 3), 90, np.uint8)
    for t in range(8):  # a red 12-px square walking left by 2 px a frame along rows 20..31
        frames[t, 20:32, 40 - 2 * t : 52 - 2 * t] = (230, 40, 40)
    enc = build_video_encoder("pixelflow", "random", size=SIZE)
    flow = enc(enc.preprocess(frames)[None])[0, 3:]  # [24, 4, 4]
    clip_vx, clip_vy, clip_rms = flow[7], flow[15], flow[23]
    assert clip_vx[1, 2] < -0.5 and abs(float(clip_vy[1, 2])) < 0.2  # about -1 (half resolution)
    assert torch.equal(clip_rms[[0, 3]], torch.zeros(2, 4))  # rows the square never touches
    still = enc(enc.preprocess(np.repeat(frames[:1], 8, axis=0))[None])[0, 3:]
    assert torch.equal(still, torch.zeros_like(still))
