"""``stvg features info``: text and JSON summaries, clean errors on a non-store."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from stvg.cli import app
from stvg.data.sample import Sample
from stvg.features.manifest import Manifest
from stvg.features.store import create_store

runner = CliRunner()


def small_store(root, backend="zarr"):
    store = create_store(
        root,
        Manifest(
            dataset="synthetic",
            backbones={"image": {"name": "resnet18", "weights": "random"}},
            sampling={"clips": 2},
            backend=backend,
        ),
    )
    rng = np.random.default_rng(0)
    with store.writer("test", part=(0, 1)) as w:
        for i, ts in enumerate((3, 5)):  # two videos with 3 and 5 static frames
            w.write_video(
                f"v{i}@0-50",
                np.arange(ts) * 10,
                rng.random((ts, 4, 2, 3)).astype(np.float32),
                np.array([[0, 25], [25, 50]]),
                rng.random((2, 6, 1, 1)).astype(np.float32),
            )
        sample = Sample("q0", "v0", "v0.mp4", 25.0, 50, 64, 48, (0, 50), (5, 20), {}, "a dot")
        w.write_query(sample, rng.random((7, 8)).astype(np.float32), np.ones(7, bool), "v0@0-50")
    store.record_failure("test", {"video_id": "v9", "reason": "truncated file"})
    return store


def test_info_json(tmp_path):
    small_store(tmp_path / "s")
    result = runner.invoke(app, ["features", "info", str(tmp_path / "s"), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert (info["videos"], info["queries"], info["incomplete"], info["failures"]) == (2, 1, 0, 1)
    total = sum(p.stat().st_size for p in (tmp_path / "s").rglob("*") if p.is_file())
    assert info["bytes"] == total
    assert info["shapes"]["image"] == {"entries": 2, "rows": 8, "shape": [None, 4, 2, 3]}
    assert info["shapes"]["motion"] == {"entries": 2, "rows": 4, "shape": [2, 6, 1, 1]}
    assert info["backbones"] == {"image": {"name": "resnet18", "weights": "random"}}
    assert info["splits"]["test"]["parts"] == ["part-0-of-1.zarr"]


def test_info_text(tmp_path):
    small_store(tmp_path / "s", backend="hdf5")
    result = runner.invoke(app, ["features", "info", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "(hdf5, float16, stvg-features/1, dataset synthetic)" in out
    assert "videos 2  queries 1  incomplete 0  failures 1" in out
    assert "image        [*, 4, 2, 3]  entries 2  rows 8" in out
    assert 'image: {"name": "resnet18", "weights": "random"}' in out
    assert "part-0-of-1.h5" in out


def test_info_on_a_non_store_exits_2(tmp_path):
    result = runner.invoke(app, ["features", "info", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a stvg feature store" in result.output
    assert "Traceback" not in result.output
