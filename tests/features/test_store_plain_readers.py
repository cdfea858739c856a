"""A store read without stvg: plain zarr, xarray, dask and h5py (with hdf5plugin's filters).

Each test rebuilds a query's features from the files alone, the way the README tells a user to,
dequantizing int8 by hand (``codes * scale`` per channel, the formula of the quantize module's
docstring), and compares them with what ``FeatureStore`` returns.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_store_conformance import entry_arrays, entry_id, make_sample

from stvg.features.manifest import Manifest
from stvg.features.store import create_store

BACKBONES = {
    "image": {"name": "resnet18", "layer": "layer3", "stride": 16, "weights": "random"},
    "video": {"name": "pixelflow", "stride": 16, "clip_frames": 8, "weights": "none"},
    "text": {"name": "roberta-base", "weights": "random"},
}


def write_store(root, backend: str, dtype: str, count: int = 3):
    manifest = Manifest(
        dataset="synthetic",
        backbones=BACKBONES,
        sampling={"target_fps": 5},
        dtype=dtype,
        backend=backend,
    )
    store = create_store(root, manifest)
    with store.writer("test") as w:
        for i in range(count):
            a = entry_arrays(i)
            w.write_video(
                entry_id(i), a["frame_ids"], a["image"], a["clip_spans"], a["motion"],
                attrs={"fps": 25.0},
            )  # fmt: skip
            w.write_query(make_sample(i), a["text"], a["text_mask"], entry_id(i))
    return store


def by_id(groups, id_name: str, wanted: str):
    """The entry group whose ``id_name`` attribute is ``wanted`` (keys are escaped ids)."""
    return next(g for _, g in groups if g.attrs[id_name] == wanted)


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_xarray_opens_a_zarr_part_and_rebuilds_a_query(tmp_path, dtype):
    import xarray as xr
    import zarr

    store = write_store(tmp_path / "s", "zarr", dtype)
    part = tmp_path / "s/test/part-0-of-1.zarr"
    root = zarr.open_group(str(part), mode="r")
    assert json.loads(root.attrs["stvg_manifest"])["dtype"] == dtype
    query = by_id(root["queries"].groups(), "sample_id", "s001")
    video = by_id(root["videos"].groups(), "entry_id", query.attrs["entry_id"])
    q = xr.open_zarr(part, group=f"queries/{query.basename}", consolidated=False)
    v = xr.open_zarr(part, group=f"videos/{video.basename}", consolidated=False)

    # frame_ids is image's coordinate (indexed by native frame id)
    assert v.image.dims == ("frame_ids", "image_channel", "image_y", "image_x")
    np.testing.assert_array_equal(v.frame_ids.values, entry_arrays(1)["frame_ids"])
    assert "clip_spans" in v.coords  # (clip, bound): a coordinate of the dataset
    assert v.image.sel(frame_ids=6).shape == (32, 4, 5)  # frame_ids of entry 1: 1, 6, 11, ...
    assert v.frame_ids.attrs["units"] == "frame" and v.frame_ids.attrs["fps"] == 25.0
    assert v.frame_ids.attrs["sample_fps"] == 5
    image_attrs = v.image.attrs
    assert (image_attrs["backbone"], image_attrs["layer"], image_attrs["stride"]) == (
        "resnet18",
        "layer3",
        16,
    )
    assert v.motion.attrs["backbone"] == "pixelflow" and v.motion.attrs["clip_frames"] == 8
    assert q.text.attrs["backbone"] == "roberta-base"

    if dtype == "int8":
        assert v.image.dtype == np.int8 and v.image.attrs["scale_array"] == "image_scale"
        image = (v.image * v.image_scale).values  # broadcast by dimension name
        motion = (v.motion * v.motion_scale).values
        text = (q.text * q.text_scale).values
    else:
        assert v.image.dtype == np.float16
        image, motion, text = (x.values.astype(np.float32) for x in (v.image, v.motion, q.text))
    got_video = store.video(entry_id(1), "test")
    got_query = store.query("s001", "test")
    for plain, stvg_value in ((image, got_video["image"]), (motion, got_video["motion"])):
        assert plain.dtype == np.float32
        np.testing.assert_array_equal(plain, stvg_value)
    np.testing.assert_array_equal(text, got_query["text"])
    np.testing.assert_array_equal(q.text_mask.values, got_query["text_mask"])
    assert json.loads(query.attrs["sample"]) == make_sample(1).to_json()


def test_dask_reads_a_zarr_array(tmp_path):
    import dask.array as da
    import zarr

    store = write_store(tmp_path / "s", "zarr", "float16")
    part = tmp_path / "s/test/part-0-of-1.zarr"
    video = by_id(zarr.open_group(str(part), mode="r")["videos"].groups(), "entry_id", entry_id(2))
    image = da.from_zarr(str(part), component=f"videos/{video.basename}/image")
    np.testing.assert_array_equal(
        image[::2].compute().astype(np.float32), store.video(entry_id(2), "test")["image"][::2]
    )


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_h5py_opens_an_hdf5_part_as_one_file_and_rebuilds_a_query(tmp_path, dtype):
    import h5py
    import hdf5plugin  # noqa: F401 - registers the Blosc filter with h5py

    store = write_store(tmp_path / "s", "hdf5", dtype)
    assert sorted(p.name for p in (tmp_path / "s/test").iterdir()) == [
        "part-0-of-1.h5",
        "part-0-of-1.lock",
    ]
    with h5py.File(tmp_path / "s/test/part-0-of-1.h5", "r") as f:
        assert json.loads(f.attrs["stvg_manifest"])["backend"] == "hdf5"
        query = by_id(f["queries"].items(), "sample_id", "s002")
        video = by_id(f["videos"].items(), "entry_id", query.attrs["entry_id"])
        assert bool(video.attrs["complete"]) and video.attrs["fps"] == 25.0
        image_ds = video["image"]
        assert [d.label for d in image_ds.dims] == [
            "frame_ids",
            "image_channel",
            "image_y",
            "image_x",
        ]
        np.testing.assert_array_equal(image_ds.dims[0][0][()], entry_arrays(2)["frame_ids"])
        assert image_ds.dims[0][0].name.endswith("/frame_ids")
        assert image_ds.attrs["backbone"] == "resnet18" and image_ds.attrs["stride"] == 16
        assert video["frame_ids"].attrs["units"] == "frame"

        def features(group, name):
            x = group[name][()]
            if x.dtype == np.int8:  # codes * per-channel scale, along axis 1
                scale = group[f"{name}_scale"][()]
                return x.astype(np.float32) * scale.reshape(1, -1, *([1] * (x.ndim - 2)))
            return x.astype(np.float32)

        image, motion = features(video, "image"), features(video, "motion")
        text, mask = features(query, "text"), query["text_mask"][()]
    assert image.dtype == (np.float32)
    got_video, got_query = store.video(entry_id(2), "test"), store.query("s002", "test")
    np.testing.assert_array_equal(image, got_video["image"])
    np.testing.assert_array_equal(motion, got_video["motion"])
    np.testing.assert_array_equal(text, got_query["text"])
    np.testing.assert_array_equal(mask, got_query["text_mask"])
    # and the values are the inputs', as float16 or within the int8 bound of each channel
    x = entry_arrays(2)["image"]
    if dtype == "float16":
        np.testing.assert_array_equal(image, x.astype(np.float16).astype(np.float32))
    else:
        bound = np.abs(x).max(axis=(0, 2, 3)) / 127 / 2
        assert np.all(np.abs(image - x).max(axis=(0, 2, 3)) <= bound * (1 + 1e-5))
