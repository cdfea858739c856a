"""The feature store manifest: atomic read/write, and refusal of mismatched settings."""

from __future__ import annotations

import json
import os

import pytest

from stvg.errors import InputError
from stvg.features.manifest import (
    LAYOUT_VERSION,
    Manifest,
    check_compatible,
    create_manifest,
    read_manifest,
    write_manifest,
)
from stvg.features.store import create_store, open_store


def manifest(**changes):
    fields = {
        "dataset": "synthetic",
        "backbones": {
            "image": {"name": "resnet18", "layer": "layer3", "weights": "random"},
            "text": {"name": "roberta-base", "weights": "random"},
        },
        "sampling": {"static_fps": 5, "max_frames": 200, "clips": 16},
    }
    fields.update(changes)
    return Manifest(**fields)


def test_round_trip_and_file_content(tmp_path):
    m = manifest(dtype="int8", backend="hdf5")
    write_manifest(tmp_path, m)
    raw = json.loads((tmp_path / "manifest.json").read_text())
    assert raw["layout"] == LAYOUT_VERSION == "stvg-features/1"
    assert raw["dtype"] == "int8" and raw["backend"] == "hdf5"
    assert raw["backbones"]["image"]["weights"] == "random"
    assert read_manifest(tmp_path) == m
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]  # no temporary left


def test_dtype_alias_and_bad_values():
    assert manifest(dtype="fp16").dtype == "float16"
    with pytest.raises(InputError, match="dtype must be one of float16, int8"):
        manifest(dtype="bfloat16")
    with pytest.raises(InputError, match="backend must be one of zarr, hdf5"):
        manifest(backend="lmdb")


def test_read_missing_and_malformed(tmp_path):
    with pytest.raises(InputError, match="not a stvg feature store"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot read the manifest"):
        read_manifest(tmp_path)
    data = manifest().to_json()
    del data["backbones"]
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(InputError) as error:
        read_manifest(tmp_path)
    assert error.value.field == "backbones" and "missing" in str(error.value)


def test_weights_difference_is_named_with_a_way_out():
    store = manifest()
    run = manifest(
        backbones={
            "image": {"name": "resnet18", "layer": "layer3", "weights": "pretrained"},
            "text": {"name": "roberta-base", "weights": "random"},
        }
    )
    with pytest.raises(InputError) as error:
        check_compatible(store, run, root="features/x")
    text = str(error.value)
    assert "backbones.image.weights: store has 'random', this run asks for 'pretrained'" in text
    assert "another --out" in text and "delete the store" in text
    assert error.value.field == "backbones.image.weights"
    assert "text" not in error.value.field


def test_every_difference_is_listed_including_absent_keys():
    run = manifest(dtype="int8", sampling={"static_fps": 5, "max_frames": 100})
    with pytest.raises(InputError) as error:
        check_compatible(manifest(), run)
    text = str(error.value)
    assert "dtype: store has 'float16', this run asks for 'int8'" in text
    assert "sampling.max_frames: store has 200, this run asks for 100" in text
    assert "sampling.clips: store has 16, this run asks for (absent)" in text


def test_other_layout_is_refused():
    old = manifest(layout="stvg-features/0")
    with pytest.raises(InputError, match="layout: store has 'stvg-features/0'"):
        check_compatible(old, manifest())


def test_stvg_version_alone_is_compatible(caplog):
    check_compatible(manifest(stvg_version="0.0.1"), manifest())
    assert "stvg 0.0.1" in caplog.text


def test_create_manifest_keeps_the_first(tmp_path):
    first = manifest()
    assert create_manifest(tmp_path, first) == first
    second = manifest(dataset="vidstg")
    assert create_manifest(tmp_path, second) == first  # the existing one is returned
    assert read_manifest(tmp_path).dataset == "synthetic"
    assert sorted(os.listdir(tmp_path)) == ["manifest.json"]


def test_create_store_checks_and_open_store_refuses_other_layout(tmp_path):
    root = tmp_path / "store"
    create_store(root, manifest())
    create_store(root, manifest())  # same settings: reopened
    with pytest.raises(InputError, match="backend: store has 'zarr', this run asks for 'hdf5'"):
        create_store(root, manifest(backend="hdf5"))
    data = json.loads((root / "manifest.json").read_text())
    data["layout"] = "stvg-features/9"
    (root / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match="this stvg reads 'stvg-features/1'"):
        open_store(root)


def test_create_store_refuses_a_foreign_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a feature store"):
        create_store(tmp_path, manifest())
