"""Scale-out: ``--shard K/N``, SLURM array variables and dask workers give the same entries and
the same values as one process (each writer in its own part files).

Tiny sizes: 4 synthetic 64x48 videos of 2.5 s at 10 fps, small preset overrides.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from store_contents import store_arrays as all_arrays
from typer.testing import CliRunner

from stvg.cli import app
from stvg.extract import run
from stvg.extract.config import preset
from stvg.extract.plan import parse_shard

SPLITS = ["train", "val", "test"]
SMALL = {"td": 4, "clip_size": 32, "n_short": 48, "text_layers": 1}
runner = CliRunner()


@pytest.fixture(scope="module")
def single(data, tmp_path_factory) -> dict[str, np.ndarray]:
    out = tmp_path_factory.mktemp("single") / "features"
    run(preset("synthetic", **SMALL), data, out, SPLITS, progress=False)
    return all_arrays(out)


def assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), key


def part_names(root: Path) -> set[str]:
    return {p.name for p in root.glob("*/part-*") if p.suffix in (".zarr", ".h5")}


def test_two_shards_equal_one_process(data, single, tmp_path):
    out = tmp_path / "features"
    config = preset("synthetic", **SMALL)
    first = run(config, data, out, SPLITS, shard=(0, 2), progress=False)
    second = run(config, data, out, SPLITS, shard=(1, 2), progress=False)
    # 4 entries sorted by (split, id); shard k takes every 2nd from k: 2 each, disjoint
    assert first.new_videos == second.new_videos == 2
    assert part_names(out) == {"part-0-of-2.zarr", "part-1-of-2.zarr"}
    assert_same(all_arrays(out), single)


@pytest.mark.parametrize("first_task", [0, 1])  # --array=0-1 and --array=1-2
def test_slurm_array_variables_equal_one_process(data, single, tmp_path, first_task):
    out = tmp_path / "features"
    args = ["extract", "--dataset", "synthetic", "--data-root", str(data), "--out", str(out)]
    args += [x for k, v in SMALL.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    new = []
    for task in (first_task, first_task + 1):
        env = {
            "SLURM_ARRAY_TASK_ID": str(task),
            "SLURM_ARRAY_TASK_MIN": str(first_task),
            "SLURM_ARRAY_TASK_COUNT": "2",
        }
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 0, result.output
        new.append(int(result.output.split(" new videos")[0].split()[-1]))
    assert new == [2, 2]
    assert part_names(out) == {"part-0-of-2.zarr", "part-1-of-2.zarr"}
    assert_same(all_arrays(out), single)


def test_parse_shard_reads_slurm_variables(monkeypatch):
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
    monkeypatch.delenv("SLURM_ARRAY_TASK_MIN", raising=False)
    monkeypatch.delenv("SLURM_ARRAY_TASK_COUNT", raising=False)
    assert parse_shard(None) == (0, 1)
    assert parse_shard("3/8") == (3, 8)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "7")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "8")
    assert parse_shard(None) == (7, 8)
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "1")  # --array=1-8: task 7 is the 7th of 8
    assert parse_shard(None) == (6, 8)
    assert parse_shard("2/4") == (2, 4)  # an explicit --shard wins


@pytest.mark.slow  # two worker processes import torch and build encoders: about 20 s
def test_dask_two_workers_equal_one_process(data, single, tmp_path):
    pytest.importorskip("dask.distributed")
    out = tmp_path / "features"
    summary = run(preset("synthetic", **SMALL), data, out, SPLITS, dask_workers=2, progress=False)
    assert (summary.new_videos, summary.failed) == (4, [])
    assert part_names(out) == {"part-0-of-2.zarr", "part-1-of-2.zarr"}
    assert_same(all_arrays(out), single)
