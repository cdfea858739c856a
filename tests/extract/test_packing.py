"""Packing (``ExtractConfig.pack``): batches made of several entries' frames and clips store the
same values as one entry at a time, whatever the shard, and a bad video in a pack only fails.

Tiny sizes: synthetic 64x48 videos of 2.5 s at 10 fps (25 frames), the ``synthetic`` preset with
``td=4``, ``clip_size=32``, ``n_short=48``, one text layer and ``batch_size=3``, so batches of
frames (13 per whole-video entry) and of clips (4 per entry) straddle entries. The encoders are
built once and shared by every run (``extract_entries`` directly).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from store_contents import store_arrays
from typer.testing import CliRunner

from stvg.cli import app
from stvg.extract import load_splits, make_manifest
from stvg.extract.config import ExtractConfig, preset
from stvg.extract.plan import plan_entries
from stvg.extract.runner import (
    Encoders,
    Packer,
    build_encoders,
    decode_entry,
    encode_entry,
    extract_entries,
)
from stvg.features.store import create_store

SPLITS = ["train", "val", "test"]
SMALL = {"td": 4, "clip_size": 32, "n_short": 48, "text_layers": 1, "batch_size": 3}
# Segment starts given to the samples in turn (clamped to the tube start): segments of 25, 21,
# 16, 23 and 18 frames, i.e. 13, 11, 9, 12 and 10 static frames on the 5 fps grid.
STARTS = (0, 4, 9, 2, 7)


def config(pack: bool, **overrides: Any) -> ExtractConfig:
    return preset("synthetic", **{**SMALL, "pack": pack, **overrides})


@pytest.fixture(scope="module")
def varied(data, tmp_path_factory) -> Path:
    """The same videos, each sample on its own segment ``[start, 25)``: entries of 4-5 lengths."""
    root = tmp_path_factory.mktemp("varied")
    shutil.copytree(data / "videos", root / "videos")
    i = 0
    for split in SPLITS:
        doc = json.loads((data / f"{split}.json").read_text())
        for sample in doc["samples"]:
            sample["segment"][0] = min(STARTS[i % len(STARTS)], sample["tube"][0])
            i += 1
        (root / f"{split}.json").write_text(json.dumps(doc))
    return root


@pytest.fixture(scope="module")
def encoders() -> Encoders:
    return build_encoders(config(True))


def extract(data: Path, out: Path, encoders: Encoders, pack: bool, shard=(0, 1), **overrides):
    """One shard of ``data`` into the store ``out``; returns the run's summary."""
    cfg = config(pack, **overrides)
    entries = plan_entries(load_splits("synthetic", data, SPLITS), data)
    store = create_store(out, make_manifest(cfg, encoders.specs()))
    return extract_entries(store, entries, cfg, encoders, shard, progress=False)


def assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        assert got[key].dtype == value.dtype and np.array_equal(got[key], value), key


@pytest.fixture(scope="module")
def unpacked(varied, encoders, tmp_path_factory) -> dict[str, np.ndarray]:
    out = tmp_path_factory.mktemp("unpacked") / "features"
    summary = extract(varied, out, encoders, pack=False)
    assert (summary.new_videos, summary.queries, summary.failed) == (7, 8, [])
    return store_arrays(out)


@pytest.fixture(scope="module")
def packed(varied, encoders, tmp_path_factory) -> dict[str, np.ndarray]:
    out = tmp_path_factory.mktemp("packed") / "features"
    summary = extract(varied, out, encoders, pack=True)
    assert (summary.new_videos, summary.queries, summary.failed) == (7, 8, [])
    return store_arrays(out)


def test_varied_entries_have_different_lengths(varied, unpacked):
    # the 5 fps grid over [start, 25) at 10 fps: the start, then every even frame after it
    want = {}
    for split in SPLITS:
        for s in json.loads((varied / f"{split}.json").read_text())["samples"]:
            start = s["segment"][0]
            want[f"{split}/{s['video_id']}@{start}-25"] = 1 + (25 - start) // 2
    got = {k[: -len("/frame_ids")]: len(v) for k, v in unpacked.items() if k.endswith("frame_ids")}
    assert got == want
    # several lengths, and some leave a last chunk of one frame when alone (13 % 3 == 1)
    assert len(set(got.values())) >= 4 and any(n % 3 == 1 for n in got.values())


def test_packed_store_equals_unpacked_on_whole_videos(data, encoders, tmp_path):
    a = extract(data, tmp_path / "a", encoders, pack=False)
    b = extract(data, tmp_path / "b", encoders, pack=True)
    assert a.new_videos == b.new_videos == 4
    assert (a.queries, a.frames) == (b.queries, b.frames) == (8, 4 * (13 + 4 * 8))
    assert_same(store_arrays(tmp_path / "b"), store_arrays(tmp_path / "a"))


def test_packed_store_equals_unpacked_with_entries_of_different_lengths(packed, unpacked):
    assert_same(packed, unpacked)


def test_packed_two_shards_equal_packed_single(varied, encoders, packed, tmp_path):
    out = tmp_path / "features"
    first = extract(varied, out, encoders, pack=True, shard=(0, 2))
    second = extract(varied, out, encoders, pack=True, shard=(1, 2))
    assert (first.new_videos, second.new_videos) == (4, 3)  # 7 entries, every 2nd from k
    assert_same(store_arrays(out), packed)


def test_corrupt_video_in_the_middle_of_a_pack(data, encoders, tmp_path):
    damaged = tmp_path / "data"
    shutil.copytree(data, damaged)
    entries = plan_entries(load_splits("synthetic", damaged, SPLITS), damaged)
    bad = entries[1]  # sorted (split, id): decoded between two good entries
    payload = bytearray(bad.video_path.read_bytes())
    start = payload.find(b"mdat") + 4  # garbage over the coded frames
    n = len(payload) - start
    payload[start:] = np.random.default_rng(0).integers(0, 256, n, np.uint8).tobytes()
    bad.video_path.write_bytes(bytes(payload))

    # batch_size 16 > 13 frames: a batch holds the frames of the entries around the bad one
    reference = tmp_path / "reference"
    extract(data, reference, encoders, pack=False, batch_size=16)
    out = tmp_path / "features"
    summary = extract(damaged, out, encoders, pack=True, batch_size=16)
    assert [entry_id for entry_id, _ in summary.failed] == [bad.entry_id]
    assert summary.new_videos == 3 and summary.queries == 6
    lines = [json.loads(x) for x in (out / "failures.jsonl").read_text().splitlines()]
    assert [(x["entry_id"], x["split"]) for x in lines] == [(bad.entry_id, bad.split)]
    want = {k: v for k, v in store_arrays(reference).items() if bad.video_id not in k}
    assert_same(store_arrays(out), want)


class Recording:
    """An encoder wrapper that remembers the batch size of every forward."""

    def __init__(self, encoder: Any) -> None:
        self.encoder, self.sizes = encoder, []

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self.sizes.append(len(batch))
        return self.encoder(batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.encoder, name)


def test_packer_straddles_entries_and_matches_one_entry_at_a_time(varied, encoders):
    cfg = config(True)
    entries = plan_entries(load_splits("synthetic", varied, SPLITS), varied)
    image, video = Recording(encoders.image), Recording(encoders.video)
    recording = Encoders(image=image, text=encoders.text, video=video)
    decoded = [decode_entry(e, cfg, recording) for e in entries]
    frames = [len(d.static) for d in decoded]
    want = {d.entry.entry_id: encode_entry(d, cfg, recording) for d in decoded}
    # one entry at a time: ceil(n / 3) forwards each (13 frames: 3 + 3 + 3 + 3 + 1 padded)
    assert len(image.sizes) == sum(math.ceil(n / 3) for n in frames)
    assert len(video.sizes) == len(entries) * math.ceil(4 / 3)
    assert set(image.sizes) == set(video.sizes) == {3}
    image.sizes.clear()
    video.sizes.clear()

    packer = Packer(cfg, recording)
    got = {}
    for d in decoded:
        packer.add(d)
        got.update({done.entry.entry_id: values for done, values in packer.finished()})
    packer.flush()
    got.update({done.entry.entry_id: values for done, values in packer.finished()})
    assert packer.waiting == [] and packer.queues == {}
    # packed: ceil(total / 3) forwards, fewer than one entry at a time, again all of 3 rows
    assert len(image.sizes) == math.ceil(sum(frames) / 3) < sum(math.ceil(n / 3) for n in frames)
    assert len(video.sizes) == math.ceil(4 * len(entries) / 3)
    assert set(image.sizes) == set(video.sizes) == {3}
    assert sorted(got) == sorted(want)
    for entry_id, values in want.items():
        for key in ("frame_ids", "image", "clip_spans", "motion"):
            assert np.array_equal(got[entry_id][key], values[key]), (entry_id, key)
        for (s1, t1, m1), (s2, t2, m2) in zip(got[entry_id]["texts"], values["texts"], strict=True):
            assert s1 is s2 and np.array_equal(t1, t2) and np.array_equal(m1, m2)


def test_cli_pack_flag():
    result = CliRunner().invoke(app, ["extract", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--pack" in result.output and "--no-pack" in result.output
