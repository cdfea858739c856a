"""The training recipe: run folder contents, metrics, checkpoints, EMA, and exact resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tiny_settings import TINY_TRAIN

from stvg.models import build_model
from stvg.train import run as train
from stvg.train.config import resolve

CHECKPOINT_KEYS = {"model", "ema", "optimizer", "scheduler", "step", "rng", "config"}


@pytest.fixture
def features(tiny_features) -> Path:
    """4 synthetic videos of 2 s at 64x48 (train 2 videos / 4 queries, val 1, test 1).
    Read-only, shared by the session."""
    return tiny_features


def _lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_run_folder_metrics_and_checkpoints(features, tmp_path, one_thread):
    out = tmp_path / "run"
    config = resolve("synthetic", [*TINY_TRAIN, "max_steps=4", "checkpoint_every=3", "val_every=1"])
    summary = train(features, out, config, progress=False)
    assert summary["steps"] == 4
    assert sorted(p.name for p in out.iterdir()) == [
        "best.pt",
        "checkpoint.pt",
        "config.json",
        "metrics.jsonl",
    ]

    saved = json.loads((out / "config.json").read_text())
    assert {
        k: v for k, v in saved.items() if k not in ("model_resolved", "features")
    } == config.to_json()
    assert saved["model_resolved"]["d_model"] == 32 and saved["model_resolved"]["n_layers"] == 1
    assert saved["model_resolved"]["image_channels"] == 192  # from the store, not the preset

    lines = _lines(out)
    steps = [x for x in lines if "loss" in x]
    assert [x["step"] for x in steps] == [1, 2, 3, 4]
    # 4 training queries, batch 2: epochs end after steps 2 and 4, each validated once
    assert [x["epoch"] for x in steps] == [0, 0, 1, 1]
    assert [x["step"] for x in lines if "val" in x] == [2, 4]
    for x in steps:
        assert set(x) == {"step", "epoch", "loss", "l1", "giou", "tg", "ta", "att", "lr"}
        # the paper's weights 5 / 2 / 5 / 1, plus the synthetic preset's attention loss at 1
        total = 5 * x["l1"] + 2 * x["giou"] + 5 * x["tg"] + 1 * x["ta"] + 1 * x["att"]
        assert x["loss"] == pytest.approx(total, rel=1e-5)
        # linear warm-up over 50 steps to lr 1e-3: step s (1-based) runs at 1e-3 * s / 50
        assert x["lr"] == pytest.approx(1e-3 * x["step"] / 50, rel=1e-9)
    val = next(x for x in lines if "val" in x)["val"]["all"]
    assert set(val) == {"m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5", "m_sIoU", "count"}
    assert val["count"] == 2

    checkpoint = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert CHECKPOINT_KEYS <= set(checkpoint)
    assert checkpoint["step"] == 4 and checkpoint["config"] == config.to_json()
    assert {"python", "numpy", "torch"} <= set(checkpoint["rng"])
    assert checkpoint["model"].keys() == checkpoint["ema"].keys()
    assert len(checkpoint["optimizer"]["state"]) > 0
    assert checkpoint["scheduler"]["last_epoch"] == 4
    best = torch.load(out / "best.pt", map_location="cpu", weights_only=False)
    assert best["ema"].keys() == checkpoint["model"].keys() and best["step"] in (2, 4)


def test_ema_equals_hand_recomputation(features, tmp_path, one_thread):
    """Two steps with decay d = 0.5 from e0 = w0: e2 = d^2 w0 + d (1 - d) w1 + (1 - d) w2."""
    out = tmp_path / "run"
    sets = [*TINY_TRAIN, "ema_decay=0.5", "validate=false", "lr=0.01", "lr_schedule=constant"]
    sets += ["warmup_steps=0"]  # a constant rate: the second step moves the weights too
    train(features, out, resolve("synthetic", [*sets, "max_steps=1"]), progress=False)
    first = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    train(features, out, resolve("synthetic", [*sets, "max_steps=2"]), resume=True, progress=False)
    second = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert (first["step"], second["step"]) == (1, 2)

    torch.manual_seed(0)  # the trainer seeds, then builds the model: its initial weights w0
    w0 = build_model(first["model_config"]).state_dict()
    w1, w2, ema = first["model"], second["model"], second["ema"]
    moved = 0
    for key, value in ema.items():
        if not value.is_floating_point():
            assert torch.equal(value, w2[key])
            continue
        expected = 0.25 * w0[key] + 0.25 * w1[key] + 0.5 * w2[key]
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)
        moved += int(not torch.equal(w1[key], w2[key]))
    assert moved > 0  # the weights did change, so the check has teeth


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from stvg.cli import main; main()", "-q", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.mark.slow  # three subprocesses: ~15-30 s on a shared 2-core CPU
def test_resume_after_sigkill_equals_uninterrupted(features, tmp_path):
    steps, every = 24, 4
    args = [
        "train",
        "--features",
        str(features),
        "--preset",
        "synthetic",
        "--deterministic",
        "--max-steps",
        str(steps),
    ]
    for item in [*TINY_TRAIN, f"checkpoint_every={every}"]:
        args += ["--set", item]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    subprocess.run(_cli(*args, "--out", str(whole)), env=_env(), check=True, capture_output=True)

    proc = subprocess.Popen(
        _cli(*args, "--out", str(cut)),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not (cut / "checkpoint.pt").exists() and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint within 60 s"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    killed_at = torch.load(cut / "checkpoint.pt", map_location="cpu", weights_only=False)["step"]
    assert killed_at % every == 0 and 0 < killed_at < steps

    subprocess.run(
        _cli(*args, "--out", str(cut), "--resume"), env=_env(), check=True, capture_output=True
    )
    a = torch.load(whole / "checkpoint.pt", map_location="cpu", weights_only=False)
    b = torch.load(cut / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert a["step"] == b["step"] == steps
    for part in ("model", "ema"):
        for key, value in a[part].items():
            diff = (value.double() - b[part][key].double()).abs().max().item()
            assert diff <= 1e-6, f"{part}.{key} differs by {diff}"

    cut_lines = [x for x in _lines(cut) if "loss" in x]
    assert [x["step"] for x in cut_lines] == list(range(1, steps + 1))  # each step once
    whole_lines = [x for x in _lines(whole) if "loss" in x]
    assert [x["loss"] for x in cut_lines] == pytest.approx([x["loss"] for x in whole_lines])


def test_resume_mid_epoch_sees_the_same_batches(features, tmp_path, one_thread):
    """Stop after an odd step count (mid-epoch), resume in-process: same losses as one run."""
    sets = [*TINY_TRAIN, "validate=false", "checkpoint_every=100"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    train(features, whole, resolve("synthetic", [*sets, "max_steps=5"]), progress=False)
    train(features, cut, resolve("synthetic", [*sets, "max_steps=3"]), progress=False)
    train(features, cut, resolve("synthetic", [*sets, "max_steps=5"]), resume=True, progress=False)
    a, b = _lines(whole), _lines(cut)
    assert [x["step"] for x in b] == [1, 2, 3, 4, 5]
    assert [x["epoch"] for x in b] == [0, 0, 1, 1, 2]
    assert [x["loss"] for x in b] == pytest.approx([x["loss"] for x in a], rel=1e-5)
