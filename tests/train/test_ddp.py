"""Two-process DistributedDataParallel on CPU (gloo, under torchrun): the replicas stay in sync."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_settings import TINY_TRAIN

pytestmark = pytest.mark.slow  # torchrun + 2 processes: ~15-25 s on a shared 2-core CPU

TINY_SETS = [*TINY_TRAIN, "num_workers=1", "in_memory=false"]

# Runs stvg.train.run under torchrun and dumps this rank's final weights. The trainer writes
# files on rank 0 only, so the wrapped module is caught where DDP receives it.
DRIVER = """
import json, os, sys
import torch
import torch.nn.parallel
from stvg.train import run
from stvg.train.config import resolve

wrapped = []
class Recording(torch.nn.parallel.DistributedDataParallel):
    def __init__(self, module, *args, **kwargs):
        super().__init__(module, *args, **kwargs)
        wrapped.append(module)
torch.nn.parallel.DistributedDataParallel = Recording

features, out, dumps, sets = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
run(features, out, resolve("synthetic", sets), progress=False)
rank = os.environ["RANK"]
torch.save(
    {"model": wrapped[0].state_dict(), "world": os.environ["WORLD_SIZE"]},
    os.path.join(dumps, f"rank{rank}.pt"),
)
"""


@pytest.fixture
def features(tiny_features) -> Path:
    """4 synthetic videos: 2 train videos with 2 queries each (the train split has 4 queries).
    Read-only, shared by the session."""
    return tiny_features


def test_two_gloo_processes_stay_in_sync(features, tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    out = tmp_path / "run"
    # 4 queries, batch 2: 2 batches per epoch, one per rank, so every step ends an epoch.
    sets = [*TINY_SETS, "max_steps=5", "checkpoint_every=2"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [*torchrun, "--nproc_per_node", "2", str(driver), str(features), str(out)]
    done = subprocess.run(
        [*command, str(dumps), json.dumps(sets)], env=env, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]

    rank0 = torch.load(dumps / "rank0.pt", weights_only=False)
    rank1 = torch.load(dumps / "rank1.pt", weights_only=False)
    assert rank0["world"] == rank1["world"] == "2"
    assert rank0["model"].keys() == rank1["model"].keys()
    for key, value in rank0["model"].items():
        assert torch.equal(value, rank1["model"][key]), f"{key} differs between ranks"

    # rank 0 wrote the run folder: its checkpoint holds the same weights after 5 steps
    checkpoint = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert checkpoint["step"] == 5
    for key, value in checkpoint["model"].items():
        assert torch.equal(value, rank0["model"][key])
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == [1, 2, 3, 4, 5]
    # one step per epoch per rank (2 batches shared by 2 ranks): epochs 0..4
    assert [x["epoch"] for x in lines if "loss" in x] == [0, 1, 2, 3, 4]


def test_uneven_batches_do_not_hang(features, tmp_path):
    """One batch per epoch over 2 ranks: the epoch is padded so that both ranks step."""
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    sets = [*TINY_SETS, "batch_size=4", "max_steps=3", "validate=false"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [*torchrun, "--nproc_per_node", "2", str(driver), str(features), str(tmp_path / "r")]
    done = subprocess.run(
        [*command, str(dumps), json.dumps(sets)], env=env, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    rank0 = torch.load(dumps / "rank0.pt", weights_only=False)["model"]
    rank1 = torch.load(dumps / "rank1.pt", weights_only=False)["model"]
    assert all(torch.equal(v, rank1[k]) for k, v in rank0.items())


def test_global_batch_and_aux_loss_under_two_ranks(features, tmp_path):
    """global_batch 4 over 2 ranks: 2 queries per rank, so one step per epoch of 4 queries
    (batch_size, 1 here, is ignored); the auxiliary losses pass through DDP's forward."""
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    out = tmp_path / "r"
    sets = [*TINY_SETS, "batch_size=1", "global_batch=4", "epochs=2", "validate=false",
            "aux_loss=true", "model.n_layers=2"]  # fmt: skip
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [*torchrun, "--nproc_per_node", "2", str(driver), str(features), str(out)]
    done = subprocess.run(
        [*command, str(dumps), json.dumps(sets)], env=env, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(x["step"], x["epoch"]) for x in lines if "loss" in x] == [(1, 0), (2, 1)]
    assert all(x["aux_l1"] > 0 for x in lines if "loss" in x)
    rank0 = torch.load(dumps / "rank0.pt", weights_only=False)["model"]
    rank1 = torch.load(dumps / "rank1.pt", weights_only=False)["model"]
    assert all(torch.equal(v, rank1[k]) for k, v in rank0.items())
