"""Image encoder and the weights switch: shapes, preprocessing, determinism, offline errors."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from stvg.errors import InputError
from stvg.extract.backbones import WeightsUnavailable, build_image_encoder, resize_shape
from stvg.extract.backbones.image import IMAGENET_MEAN, IMAGENET_STD


def frames(n: int = 2, h: int = 240, w: int = 320, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def r18():
    return build_image_encoder("resnet18", "layer3", "random")


@pytest.mark.parametrize(
    "height, width, n_short, expected",
    [
        (240, 320, 64, (64, 85)),  # 320 * 64 / 240 = 85.33 -> 85
        (320, 240, 64, (85, 64)),  # portrait: same sides swapped
        (100, 400, 64, (28, 112)),  # capped: long <= 1.8 * 64 = 115.2 -> short 28, long 112
        (1080, 1920, 320, (320, 568)),  # HC-STVG size: 1920 * 320 / 1080 = 568.9
        (480, 640, 448, (448, 597)),  # VidSTG size: 640 * 448 / 480 = 597.3
        (32, 32, 64, (64, 64)),  # small frames are scaled up, as DETR's resize does
    ],
)
def test_resize_shape_by_hand(height, width, n_short, expected):
    assert resize_shape(height, width, n_short) == expected


@pytest.mark.parametrize(
    "name, layer, channels, stride, out_hw",
    [
        # 64x85 input: every stride-2 stage maps n -> ceil(n / 2), so ceil(85 / 32) = 3
        ("resnet101", "layer4", 2048, 32, (2, 3)),
        ("resnet101", "layer3", 1024, 16, (4, 6)),
        ("resnet101", "layer2", 512, 8, (8, 11)),
        ("resnet18", "layer3", 256, 16, (4, 6)),
    ],
)
def test_image_shapes_and_channels(name, layer, channels, stride, out_hw):
    enc = build_image_encoder(name, layer, "random")
    x = enc.preprocess(frames(2), n_short=64)
    assert tuple(x.shape) == (2, 3, 64, 85) and x.dtype == torch.float32
    y = enc(x)
    assert tuple(y.shape) == (2, channels, *out_hw) and y.dtype == torch.float32
    assert (enc.out_channels, enc.stride) == (channels, stride)
    assert enc.output_shape(64, 85) == out_hw
    assert enc.spec["name"] == name and enc.spec["layer"] == layer
    assert enc.spec["weights"] == "random:seed0"
    assert not enc.training and not any(p.requires_grad for p in enc.parameters())


def test_preprocess_normalizes_a_uniform_frame(r18):
    value = 200
    x = r18.preprocess(np.full((1, 30, 40, 3), value, np.uint8), n_short=30)  # no resize
    expected = [(value / 255 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]
    got = x[0, :, 0, 0].tolist()
    assert got == pytest.approx(expected, abs=1e-6)
    assert torch.allclose(x, x[:, :, :1, :1].expand_as(x))


def test_random_cut_fits_fp16(r18):
    """The documented random-weights cut stays far from the fp16 limit (65504)."""
    y = r18(r18.preprocess(frames(2, 128, 160), n_short=128))
    assert torch.isfinite(y.half()).all()
    assert y.abs().max() < 1000


def test_random_weights_are_deterministic(r18):
    again = build_image_encoder("resnet18", "layer3", "random")
    for (k, a), (_, b) in zip(r18.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    x = r18.preprocess(frames(1), 64)
    assert torch.equal(r18(x), again(x))
    # the caller's RNG is left alone
    torch.manual_seed(123)
    first = torch.rand(1)
    torch.manual_seed(123)
    build_image_encoder("resnet18", "layer2", "random")
    assert torch.equal(torch.rand(1), first)


def _param_digest(enc) -> str:
    h = hashlib.sha256()
    for t in enc.state_dict().values():
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def test_random_weights_identical_in_another_process(r18):
    code = (
        "import hashlib\n"
        "from stvg.extract.backbones import build_image_encoder\n"
        "e = build_image_encoder('resnet18', 'layer3', 'random')\n"
        "h = hashlib.sha256()\n"
        "[h.update(t.contiguous().numpy().tobytes()) for t in e.state_dict().values()]\n"
        "print(h.hexdigest())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == _param_digest(r18)


def test_pretrained_offline_stops_quickly(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(WeightsUnavailable) as info:
        build_image_encoder("resnet101", "layer4", "pretrained")
    assert time.monotonic() - start < 5
    text = str(info.value)
    assert isinstance(info.value, InputError)
    assert "https://download.pytorch.org/models/resnet101-" in text
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in text
    assert "TORCH_HOME" in text and "--weights random" in text


def test_missing_path_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope" / "resnet101.pth"
    with pytest.raises(WeightsUnavailable) as info:
        build_image_encoder("resnet101", "layer4", str(missing))
    assert str(missing) in str(info.value) and "--weights" in str(info.value)


def test_local_checkpoint_file_and_folder(r18, tmp_path):
    # A DETR-style checkpoint: nested under "model", keys prefixed, plus unrelated keys.
    state = {f"backbone.0.body.{k}": v for k, v in r18.body.state_dict().items()}
    state["transformer.w"] = torch.zeros(1)
    path = tmp_path / "detr.pth"
    torch.save({"model": state}, path)
    enc = build_image_encoder("resnet18", "layer3", str(path))
    assert enc.spec["weights"] == "file:" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    x = r18.preprocess(frames(1), 64)
    assert torch.equal(enc(x), r18(x))
    # a folder holding the file under its torch hub name works too
    folder = tmp_path / "weights"
    folder.mkdir()
    torch.save(r18.body.state_dict(), folder / "resnet18-f37072fd.pth")
    assert torch.equal(build_image_encoder("resnet18", "layer3", str(folder))(x), r18(x))


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(build_image_encoder("resnet18", "layer3", "random").body.state_dict(), path)
    with pytest.raises(WeightsUnavailable, match="lack|wrong shape"):
        build_image_encoder("resnet101", "layer3", str(path))


def test_amp_and_channels_last_stay_close(r18):
    x = r18.preprocess(frames(2, 96, 128), 96)
    ref = r18(x)
    fast = build_image_encoder("resnet18", "layer3", "random", amp=True, channels_last=True)
    assert fast.spec["autocast"] == "bfloat16"
    y = fast(x)
    assert y.dtype == torch.float32 and y.shape == ref.shape
    rel = (y - ref).norm() / ref.norm()
    assert rel < 0.05  # bf16 keeps 8 bits of mantissa


def test_unknown_choices_are_refused():
    with pytest.raises(ValueError, match="resnet101"):
        build_image_encoder("vgg16", "layer4", "random")
    with pytest.raises(ValueError, match="layer4"):
        build_image_encoder("resnet18", "layer5", "random")


def test_pixels_cells_are_mean_pooled_thumbnails_by_hand():
    enc = build_image_encoder("pixels", "layer3", "pretrained")  # no weights: nothing to fetch
    assert (enc.out_channels, enc.stride, enc.spec["weights"]) == (192, 16, "none")
    x = torch.randn(2, 3, 20, 40)  # pads to 32 x 48: a 2 x 3 grid of 16-px cells
    y = enc(x)
    assert tuple(y.shape) == (2, 192, 2, 3) == (2, 192, *enc.output_shape(20, 40))
    padded = np.zeros((2, 3, 32, 48), np.float32)
    padded[:, :, :20, :40] = x.numpy()
    expected = np.zeros((2, 192, 2, 3), np.float32)
    for c in range(3):
        for row in range(8):
            for col in range(8):
                for i in range(2):
                    for j in range(3):
                        top, left = 16 * i + 2 * row, 16 * j + 2 * col
                        cell = padded[:, c, top : top + 2, left : left + 2]
                        expected[:, c * 64 + row * 8 + col, i, j] = cell.mean(axis=(1, 2))
    np.testing.assert_allclose(y.numpy(), expected, atol=1e-6)


def test_pixels_at_layer2_keep_every_pixel():
    enc = build_image_encoder("pixels", "layer2", "random")
    x = torch.randn(1, 3, 16, 8)
    y = enc(x)  # stride 8 = thumbnail side: a pure space-to-depth, nothing averaged
    assert tuple(y.shape) == (1, 192, 2, 1)
    assert torch.equal(y[0, 64 * 2 + 8 * 3 + 5, 1, 0], x[0, 2, 8 + 3, 5])
