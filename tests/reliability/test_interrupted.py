"""Interrupted work (docs/design.md section 11, issue 6 item 3): ``kill -9`` at seeded random
moments during ``stvg extract``, ``stvg train --deterministic`` and the pipeline, each in a
subprocess; after the kills a rerun finishes and the result equals an uninterrupted run's
(store arrays exactly, final weights within 1e-6, pipeline metrics.json equal). Two ``stvg
extract`` processes started at once on the same output either split the work (``--shard``) or
the second refuses with a lock error naming the first's pid (exit 2); the store is intact
either way.

Pipeline kill moments are drawn uniformly over the uninterrupted run's duration (measured
here). Extraction and training kills are tied to what the run has done, not to the clock (a
resumed run is shorter, and timed kills once missed all but one run): one in start-up, then a
seeded delay after the run begins a video entry (extract) or logs a seeded step (train). The two-writers test pauses the first writer (SIGSTOP) while it holds the
part's lock, so the second always meets the lock however fast the machine is.
(tests/extract/test_extract_resume.py kills extraction at chosen entry counts;
tests/train/test_trainer.py resumes after one kill.)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from reliability_helpers import (
    EXTRACT,
    EXTRACT_ARGS,
    SYNTH,
    TRAIN_ARGS,
    TRAIN_SETS,
    assert_same_arrays,
    run_stvg,
    store_arrays,
    stvg_command,
)

from stvg.data.synth import synthesize

pytestmark = pytest.mark.slow

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **ONE_THREAD},
    )


def kill_after(process: subprocess.Popen, seconds: float) -> bool:
    """SIGKILL ``process`` after ``seconds`` unless it ended first; True if it was killed."""
    try:
        process.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        code = process.wait(timeout=30)
        assert code in (0, -signal.SIGKILL), code  # 0: it ended on its own at that very moment
        return code == -signal.SIGKILL


def wait_for(process: subprocess.Popen, ready, timeout: float = 120) -> bool:
    """Poll until ``ready()`` holds (True) or ``process`` ends first (False)."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            return False
        assert time.monotonic() < deadline, "the process made no progress"
        time.sleep(0.002)
    return True


def kill_in_startup(argv: list[str], out: Path, begun, seconds: float) -> None:
    """SIGKILL a run ``seconds`` after its start, before it has ``begun()`` any work. The
    reference start-up was timed once, on the first (cold) process of the module: a later run
    can be quicker, so a kill that came too late (work begun, or the run ended first) is undone
    (``out`` removed) and retried sooner, up to four times."""
    for attempt in range(4):
        if kill_after(start(argv), seconds / 2**attempt) and not begun():
            return
        shutil.rmtree(out, ignore_errors=True)  # too late: work begun, or the run ended
    raise AssertionError(f"every run began work within {seconds / 8:.2f} s of its start")


def timed(argv: list[str]) -> float:
    t0 = time.monotonic()
    process = start(argv)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return time.monotonic() - t0


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("interrupted")
    synthesize(root / "data", videos=6, progress=False, **SYNTH)
    return root / "data"


def video_entries(out: Path) -> int:
    """Video entries begun in a feature store so far (each a folder inside its part)."""
    return sum(1 for _ in out.glob("*/part-*.zarr/videos/*"))


@pytest.fixture(scope="module")
def reference(data) -> dict[str, np.ndarray]:
    """An uninterrupted ``stvg extract`` (a subprocess with the same thread count as the
    others: text states in float16 can differ in the last bit between thread counts), timed:
    its start-up (until the first video entry is begun) and its seconds per video entry."""
    out = data.parent / "reference"
    t0 = time.monotonic()
    process = start(extract_argv(data, out))
    assert wait_for(process, lambda: video_entries(out) > 0)
    TIMES["startup"] = time.monotonic() - t0
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    TIMES["entry"] = (time.monotonic() - t0 - TIMES["startup"]) / video_entries(out)
    return store_arrays(out)


TIMES: dict[str, float] = {}


def extract_argv(data: Path, out: Path, *extra: str) -> list[str]:
    return stvg_command(
        "extract", "--dataset", "synthetic", "--data-root", str(data), "--out", str(out),
        *EXTRACT_ARGS, *extra,
    )  # fmt: skip


# ----------------------------------------------------------------------------- extract
def test_extract_killed_at_random_moments(data, reference, tmp_path):
    rng = np.random.default_rng(6)
    out = tmp_path / "features"
    # In start-up, before any entry is begun.
    delay = rng.uniform(0.2, 0.8) * TIMES["startup"]
    kill_in_startup(extract_argv(data, out), out, lambda: video_entries(out) > 0, delay)
    # Then twice a seeded moment after this run begins an entry of its own: mid-entry or
    # mid-part. Tied to progress, not to the clock: a resumed run is shorter than the first.
    for _ in range(2):
        begun = video_entries(out)
        process = start(extract_argv(data, out))
        assert wait_for(process, lambda b=begun: video_entries(out) > b), "nothing left to do"
        assert kill_after(process, rng.uniform(0, 0.8) * TIMES["entry"]), "ended before the kill"
    final = run_stvg(*extract_argv(data, out)[3:], env=ONE_THREAD)
    assert final.returncode == 0, final.stderr
    assert_same_arrays(store_arrays(out), reference)
    info = run_stvg("features", "info", str(out), "--json")
    assert json.loads(info.stdout)["incomplete"] == 0


# ----------------------------------------------------------------------------- train
def train_argv(features: Path, out: Path) -> list[str]:
    return stvg_command(
        "train", "--features", str(features), "--out", str(out), "--resume", "--preset",
        "synthetic", "--deterministic", "--max-steps", "8", "--set", "checkpoint_every=2",
        *TRAIN_ARGS,
    )  # fmt: skip


def logged_steps(run: Path) -> list[int]:
    """The training steps in ``run/metrics.jsonl`` so far (a half-written last line skipped)."""
    path = run / "metrics.jsonl"
    steps = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            steps += [json.loads(line)["step"]] if '"loss"' in line else []
        except json.JSONDecodeError:
            pass
    return steps


def test_train_killed_at_random_moments(data, reference, tmp_path):
    features = data.parent / "reference"
    ref_run = tmp_path / "uninterrupted"
    t0 = time.monotonic()
    process = start(train_argv(features, ref_run))
    assert wait_for(process, lambda: logged_steps(ref_run))
    startup = time.monotonic() - t0
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    step_seconds = (time.monotonic() - t0 - startup) / 7

    rng = np.random.default_rng(7)
    out = tmp_path / "run"
    # In start-up, before any step or checkpoint.
    began = lambda: bool(logged_steps(out)) or (out / "checkpoint.pt").exists()  # noqa: E731
    kill_in_startup(train_argv(features, out), out, began, rng.uniform(0.2, 0.8) * startup)
    # Then shortly after seeded steps are logged (checkpoints every 2 steps): mid-step or
    # mid-save. Targets two apart, so a target is never a line the killed run left behind.
    first = int(rng.integers(1, 3))
    second = first + int(rng.integers(2, 4))
    for target in (first, second, second + int(rng.integers(2, 8 - second))):
        process = start(train_argv(features, out))
        assert wait_for(process, lambda t=target: t in logged_steps(out)), (
            f"ended before step {target}"
        )
        assert kill_after(process, rng.uniform(0, 0.8) * step_seconds), f"ended after step {target}"
    final = run_stvg(*train_argv(features, out)[3:], env=ONE_THREAD)
    assert final.returncode == 0, final.stderr

    want = torch.load(ref_run / "checkpoint.pt", map_location="cpu", weights_only=False)
    got = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert got["step"] == want["step"] == 8
    for part in ("model", "ema"):
        for key, value in want[part].items():
            if value.is_floating_point():
                diff = (got[part][key] - value).abs().max().item()
                assert diff <= 1e-6, f"{part}.{key} differs by {diff}"

    def losses(run: Path) -> list[tuple[int, float]]:
        lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        return [(x["step"], x["loss"]) for x in lines if "loss" in x]

    assert [s for s, _ in losses(out)] == list(range(1, 9))  # each step logged once
    np.testing.assert_allclose([v for _, v in losses(out)], [v for _, v in losses(ref_run)], 1e-6)


# ----------------------------------------------------------------------------- pipeline
PIPELINE = """
import sys
from pathlib import Path
from stvg.pipelines.chain import PipelineConfig, run_pipeline
cfg = PipelineConfig(out=Path(sys.argv[1]), synth={synth}, extract={extract}, train={train},
                     progress=False)
run_pipeline(cfg)
"""


def pipeline_argv(out: Path) -> list[str]:
    import sys

    synth = {"videos": 4, **SYNTH}
    code = PIPELINE.format(synth=synth, extract=EXTRACT, train=[*TRAIN_SETS, "max_steps=3"])
    return [sys.executable, "-c", code, str(out)]


def test_pipeline_killed_during_synth_and_at_random_moments(tmp_path):
    ref = tmp_path / "uninterrupted"
    full = timed(pipeline_argv(ref))
    out = tmp_path / "pipeline"

    # First kill: inside the synth step, once some videos exist but not synth.json.
    process = start(pipeline_argv(out))
    deadline = time.monotonic() + 120
    while not list((out / "data" / "videos").glob("v*.mp4")):
        assert process.poll() is None and time.monotonic() < deadline, "synth did not start"
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert not (out / "data" / "synth.json").exists()

    rng = np.random.default_rng(8)
    for _ in range(2):
        kill_after(start(pipeline_argv(out)), rng.uniform(0.2, 1.0) * full)
    final = start(pipeline_argv(out))
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err
    state = json.loads((out / "pipeline.json").read_text())
    assert {s["status"] for s in state["steps"].values()} == {"complete"}
    assert json.loads((out / "metrics.json").read_text()) == json.loads(
        (ref / "metrics.json").read_text()
    )


# ----------------------------------------------------------------------------- two writers
def test_two_extracts_on_the_same_part_one_refuses(data, reference, tmp_path):
    out = tmp_path / "features"
    first = start(extract_argv(data, out))

    def holds_lock() -> bool:
        return any(p.read_text().startswith(f"{first.pid} ") for p in out.glob("*/part-*.lock"))

    assert wait_for(first, holds_lock), "the first extract ended without taking a lock"
    os.kill(first.pid, signal.SIGSTOP)  # hold it mid-part, lock taken
    try:
        assert first.poll() is None, "the first extract finished before it could be paused"
        second = start(extract_argv(data, out))
        _, loser_err = second.communicate(timeout=300)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 2, loser_err
    message = next(x for x in loser_err.splitlines() if x.startswith("Bad input:"))
    assert "another writer is writing this part" in message
    assert f"pid/host {first.pid} " in message and "part-0-of-1.zarr" in message
    assert "--shard" in message  # how to proceed
    assert_same_arrays(store_arrays(out), reference)


def test_two_extracts_on_disjoint_shards_cooperate(data, reference, tmp_path):
    out = tmp_path / "features"
    processes = [start(extract_argv(data, out, "--shard", f"{k}/2")) for k in range(2)]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    assert sorted(p.name for p in (out / "train").iterdir() if p.suffix == ".zarr") == [
        "part-0-of-2.zarr",
        "part-1-of-2.zarr",
    ]
    assert_same_arrays(store_arrays(out), reference)
