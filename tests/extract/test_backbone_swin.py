"""The video Swin backbone (``swin3d_t``): map shape and stride, the time mean of its last
normalized map, checkpoint files, and ``stvg extract --video-backbone swin3d_t`` into a store.

Tiny clips (40 px: a 2x2 map, the last one padded) keep the module to seconds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from stvg.cli import app
from stvg.extract.backbones import WeightsUnavailable, build_video_encoder
from stvg.extract.backbones.weights import file_id
from stvg.features.store import open_store

SIZE = 40  # ceil(40 / 32) = 2: the patch embedding and merging pad 10 -> 5 -> 3 -> 2


@pytest.fixture(scope="module", autouse=True)
def one_thread_module():
    """Torch on one thread for the whole module (its encoders are module fixtures), restored."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def swin():
    return build_video_encoder("swin3d_t", "random", size=SIZE)


@pytest.fixture(scope="module")
def run(swin):
    """One clip (48x64 frames) through the encoder, with the last norm's output captured."""
    frames = np.random.default_rng(0).integers(0, 256, (32, 48, 64, 3), dtype=np.uint8)
    x = swin.preprocess(frames)[None]  # [1, 3, 32, 40, 40]
    captured = []
    hook = swin.body.net.norm.register_forward_hook(lambda m, i, out: captured.append(out))
    y = swin(x)
    hook.remove()
    return x, y, captured[0]


def test_shape_stride_and_spec(swin, run):
    x, y, _ = run
    assert (swin.out_channels, swin.stride, swin.clip_frames) == (768, 32, 32)
    assert tuple(x.shape) == (1, 3, 32, SIZE, SIZE)
    assert tuple(y.shape) == (1, 768, 2, 2) and y.dtype == torch.float32
    assert swin.output_shape() == (2, 2)
    assert swin.spec["weights"] == "random:seed0" and swin.spec["slow_frames"] is None
    assert swin.spec["normalize"] == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def test_output_is_the_time_mean_of_the_last_norm(swin, run):
    x, y, last = run
    assert tuple(last.shape) == (1, 16, 2, 2, 768)  # [B, 32 / 2 time steps, h, w, C]
    by_hand = sum(last[:, t] for t in range(16)) / 16  # [1, 2, 2, 768]
    assert torch.allclose(y, by_hand.permute(0, 3, 1, 2), atol=1e-5)
    # torchvision's own forward (its classifier dropped) pools the same map over time and space
    with torch.inference_mode():
        pooled = swin.body.net(x)  # [1, 768]
    assert torch.allclose(y.mean(dim=(2, 3)), pooled, atol=1e-5)


def test_checkpoint_file_round_trip(swin, run, tmp_path):
    state = {k: v.clone() for k, v in swin.body.net.state_dict().items()}
    state["norm.bias"] += 1.0  # the last op: every output value moves by exactly 1
    state["head.weight"] = torch.zeros(400, 768)  # a classifier in the file is ignored
    path = tmp_path / "swin3d_t.pth"
    torch.save(state, path)
    loaded = build_video_encoder("swin3d_t", str(path), size=SIZE)
    assert loaded.spec["weights"] == file_id(path)
    x, y, _ = run
    assert torch.allclose(loaded(x), y + 1.0, atol=1e-5)


def test_bad_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "broken.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsUnavailable, match="swin3d_t") as info:
        build_video_encoder("swin3d_t", str(path), size=SIZE)
    assert str(path) in str(info.value)


def test_pretrained_offline_names_the_kinetics_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("STVG_OFFLINE", "1")
    with pytest.raises(WeightsUnavailable) as info:
        build_video_encoder("swin3d_t", "pretrained", size=SIZE)
    text = str(info.value)
    assert "https://download.pytorch.org/models/swin3d_t-7615ae03.pth" in text
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in text


def test_cli_extract_records_the_backbone_and_refuses_another(tiny_data, tmp_path):
    out = tmp_path / "features"
    cli = ["extract", "--dataset", "synthetic", "--data-root", str(tiny_data), "--out", str(out)]
    small = ["--split", "val", "--td", "2", "--clip-size", "32", "--n-short", "48"]
    small += ["--text-layers", "1", "--batch-size", "2"]  # forwards are padded to the batch
    result = CliRunner().invoke(app, [*cli, *small, "--video-backbone", "swin3d_t"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    video = manifest["backbones"]["video"]
    assert (video["name"], video["out_channels"], video["stride"]) == ("swin3d_t", 768, 32)
    store = open_store(out)
    (entry,) = store.entry_ids("val")
    assert store.video(entry, "val")["motion"].shape == (2, 768, 1, 1)  # td 2, ceil(32 / 32)
    store.close()

    other = CliRunner().invoke(app, [*cli, *small, "--video-backbone", "pixelflow"])
    assert other.exit_code == 2, other.output
    assert "backbones.video.name: store has 'swin3d_t', this run asks for 'pixelflow'" in (
        " ".join(other.output.split())
    )
