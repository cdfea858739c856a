"""FeatureDataset: targets by hand on a hand-written store; lazy reads equal in-memory reads."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sample_factory import make_sample
from torch.utils.data import DataLoader

from stvg.data.sample import Sample
from stvg.features.dataset import FeatureDataset, collate, jittered_indices, uniform_indices
from stvg.features.manifest import Manifest
from stvg.features.store import create_store

ENTRY = "v1@4-44"
FRAME_IDS = np.array([4, 8, 12, 16, 20, 24], dtype=np.int32)  # S = 6 stored static frames
CLIP_SPANS = np.array([[4, 14], [14, 24], [24, 34], [34, 44]], dtype=np.int32)  # Td = 4


def _sample(sid: str, caption: str) -> Sample:
    # frame 100 x 50 px, segment [4, 44), tube [8, 20); boxes on 8, 9, 12, 16 (9 is not stored)
    return make_sample(
        sid,
        (8, 20),
        {
            8: [10.0, 10.0, 30.0, 20.0],
            9: [0.0, 0.0, 1.0, 1.0],
            12: [10.0, 10.0, 30.0, 20.0],
            16: [20.0, 0.0, 60.0, 50.0],
        },
        video_id="v1",
        video_path="videos/v1.mp4",
        frame_count=50,
        height=50,
        segment=(4, 44),
        caption=caption,
    )


def _features() -> dict[str, np.ndarray]:
    # multiples of 1/8 below 64: exact in float16, so reads must return them bit for bit
    rng = np.random.default_rng(0)
    return {
        "image": rng.integers(-512, 512, (6, 3, 2, 2)).astype(np.float32) / 8,
        "motion": rng.integers(-512, 512, (4, 5, 2, 2)).astype(np.float32) / 8,
        "text_a": rng.integers(-512, 512, (3, 7)).astype(np.float32) / 8,
        "text_b": rng.integers(-512, 512, (5, 7)).astype(np.float32) / 8,
    }


@pytest.fixture(scope="module", params=["zarr", "hdf5"])
def store_root(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"store-{request.param}")
    feats = _features()
    manifest = Manifest(dataset="normalized", backbones={}, backend=request.param)
    store = create_store(root, manifest)
    with store.writer("train", part=(0, 1)) as w:
        w.write_video(ENTRY, FRAME_IDS, feats["image"], CLIP_SPANS, feats["motion"])
        w.write_query(_sample("a", "red square"), feats["text_a"], np.ones(3, bool), ENTRY)
        w.write_query(_sample("b", "the blue disc jumps"), feats["text_b"], np.ones(5, bool), ENTRY)
    return root


def test_uniform_indices_by_hand():
    # floor((k + 0.5) * S / Ts)
    assert uniform_indices(6, 4).tolist() == [0, 2, 3, 5]
    assert uniform_indices(6, 3).tolist() == [1, 3, 5]
    # fewer stored frames than Ts: frames repeat, in order
    assert uniform_indices(6, 8).tolist() == [0, 1, 1, 2, 3, 4, 4, 5]
    assert uniform_indices(1, 3).tolist() == [0, 0, 0]


def test_jittered_indices_one_per_segment():
    # S = 30, Ts = 8: frame k is floor(x) for some x in [k * 3.75, (k + 1) * 3.75)
    bins = [(math.floor(k * 3.75), math.ceil((k + 1) * 3.75)) for k in range(8)]
    seen = set()
    for epoch in range(60):
        idx = jittered_indices(30, 8, (0, epoch, 3))
        assert all(lo <= i < hi for i, (lo, hi) in zip(idx.tolist(), bins, strict=True))
        assert np.array_equal(idx, jittered_indices(30, 8, (0, epoch, 3)))  # a function of key
        seen.update(idx.tolist())
    assert seen == set(range(30))  # every stored frame is drawn sooner or later
    assert not np.array_equal(
        jittered_indices(30, 8, (0, 1, 3)), jittered_indices(30, 8, (0, 2, 3))
    )
    assert jittered_indices(1, 3, (0, 0, 0)).tolist() == [0, 0, 0]


def test_jitter_is_keyed_by_epoch_and_off_without_it(store_root):
    plain = FeatureDataset(store_root, "train", num_frames=3)
    jittered = FeatureDataset(store_root, "train", num_frames=3, jitter=True, seed=5)
    # no epoch (validation, prediction): the uniform centres, as without jitter
    assert jittered[0]["frame_idx"].tolist() == plain[0]["frame_idx"].tolist() == [1, 3, 5]
    assert plain[(0, 7)]["frame_idx"].tolist() == [1, 3, 5]
    for epoch in range(4):
        want = jittered_indices(6, 3, (5, epoch, 0)).tolist()
        item = jittered[(0, epoch)]
        assert item["frame_idx"].tolist() == want
        assert item["frame_ids"].tolist() == FRAME_IDS[want].tolist()


def test_targets_by_hand(store_root):
    ds = FeatureDataset(store_root, "train", num_frames=4)
    assert [s.sample_id for s in ds.samples] == ["a", "b"]
    item = ds[0]
    feats = _features()
    # stored indices 0, 2, 3, 5 -> native frames 4, 12, 16, 24
    assert item["frame_idx"].tolist() == [0, 2, 3, 5]
    assert item["frame_ids"].tolist() == [4, 12, 16, 24]
    assert item["box_mask"].tolist() == [False, True, True, False]
    assert item["frame_in_tube"].tolist() == [False, True, True, False]
    # frame 12: [10, 10, 30, 20] -> cx 20/100, cy 15/50, w 20/100, h 10/50
    # frame 16: [20, 0, 60, 50]  -> cx 40/100, cy 25/50, w 40/100, h 50/50
    expected = torch.tensor(
        [[0, 0, 0, 0], [0.2, 0.3, 0.2, 0.2], [0.4, 0.5, 0.4, 1.0], [0, 0, 0, 0]]
    )
    torch.testing.assert_close(item["boxes"], expected)
    # clip of each frame: 4 -> [4, 14), 12 -> [4, 14), 16 -> [14, 24), 24 -> [24, 34)
    assert item["frame_clip_index"].tolist() == [0, 0, 1, 2]
    # clips overlapping the tube [8, 20)
    assert item["clip_in_tube"].tolist() == [True, True, False, False]
    # tube as fractions of the segment: (8 - 4) / 40, (20 - 4) / 40
    torch.testing.assert_close(item["span"], torch.tensor([0.1, 0.4]))
    assert item["clip_spans"].tolist() == CLIP_SPANS.tolist()
    assert torch.equal(item["image"], torch.from_numpy(feats["image"][[0, 2, 3, 5]]))
    assert torch.equal(item["motion"], torch.from_numpy(feats["motion"]))
    assert torch.equal(item["text"], torch.from_numpy(feats["text_a"]))
    assert item["image"].dtype == torch.float32 and item["text_mask"].tolist() == [True] * 3


def test_fewer_stored_frames_than_ts(store_root):
    item = FeatureDataset(store_root, "train", num_frames=8)[1]
    assert item["frame_idx"].tolist() == [0, 1, 1, 2, 3, 4, 4, 5]
    assert item["frame_ids"].tolist() == [4, 8, 8, 12, 16, 20, 20, 24]
    assert item["box_mask"].tolist() == [False, True, True, True, True, False, False, False]
    assert item["frame_in_tube"].tolist() == [False, True, True, True, True, False, False, False]
    assert item["image"].shape == (8, 3, 2, 2)
    assert torch.equal(item["image"][1], item["image"][2])


def test_explicit_frames_for_prediction_passes(store_root):
    item = FeatureDataset(store_root, "train", num_frames=3).item(0, frames=np.array([5, 1, 1]))
    assert item["frame_ids"].tolist() == [24, 8, 8]
    assert torch.equal(item["image"], torch.from_numpy(_features()["image"][[5, 1, 1]]))


def test_pass_items_equal_single_reads(store_root):
    # Both queries share the entry: one read serves both (the second hits the kept entry).
    for in_memory in (False, True):
        ds = FeatureDataset(store_root, "train", num_frames=3, in_memory=in_memory)
        passes = [np.array([0, 2, 4]), np.array([1, 3, 5]), np.array([5, 5, 5])]
        for index in (0, 1):
            got = ds.pass_items(index, passes)
            assert len(got) == 3
            for idx, item in zip(passes, got, strict=True):
                _assert_items_equal(item, ds.item(index, frames=idx))


def test_collate_pads_text(store_root):
    ds = FeatureDataset(store_root, "train", num_frames=4)
    batch = collate([ds[0], ds[1]])
    assert batch["text"].shape == (2, 5, 7)
    assert batch["text_mask"].tolist() == [[True] * 3 + [False] * 2, [True] * 5]
    assert torch.equal(batch["text"][0, 3:], torch.zeros(2, 7))
    assert batch["image"].shape == (2, 4, 3, 2, 2)
    assert batch["index"].tolist() == [0, 1]


def _assert_items_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if torch.is_tensor(a[key]):
            assert a[key].dtype == b[key].dtype, key
            assert torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key


def test_lazy_reads_equal_in_memory_reads(store_root):
    lazy = FeatureDataset(store_root, "train", num_frames=4)
    ram = FeatureDataset(store_root, "train", num_frames=4, in_memory=True)
    for i in range(len(lazy)):
        _assert_items_equal(lazy[i], ram[i])
        frames = np.array([3, 0, 3])
        _assert_items_equal(lazy.item(i, frames=frames), ram.item(i, frames=frames))


def test_dataloader_workers_equal_direct_reads(store_root):
    ds = FeatureDataset(store_root, "train", num_frames=4)
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate)
    (batch,) = list(loader)
    _assert_items_equal(batch, collate([ds[0], ds[1]]))
