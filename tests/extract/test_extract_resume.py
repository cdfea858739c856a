"""Resume after ``kill -9``: ``stvg extract`` runs as a subprocess, is SIGKILLed once entries are
complete (the store is polled), then a rerun finishes the store, which must equal an
uninterrupted run's array for array (exactly).

Tiny sizes: 6 synthetic 64x48 videos of 3 s at 10 fps, small preset overrides. The slow test
kills the same store three times at different points, one of them in the middle of an entry.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from store_contents import store_arrays as all_arrays

from stvg.data.synth import synthesize
from stvg.extract import run
from stvg.extract.config import preset
from stvg.features.store import create_store, open_store

SPLITS = ["train", "val", "test"]
SMALL = {"td": 4, "clip_size": 32, "n_short": 48, "text_layers": 1, "batch_size": 4}
VIDEOS = 6


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    synthesize(root, videos=VIDEOS, seconds=3.0, fps=10.0, size=(64, 48), progress=False)
    return root


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> dict[str, np.ndarray]:
    out = tmp_path_factory.mktemp("uninterrupted") / "features"
    run(preset("synthetic", **SMALL), data, out, SPLITS, progress=False)
    return all_arrays(out)


def complete_videos(out: Path) -> int:
    """Video entries whose completion marker is on disk (zarr: ``complete`` in the group's
    ``zarr.json``, written last by an atomic rename)."""
    n = 0
    for meta in out.glob("*/part-*.zarr/videos/*/zarr.json"):
        try:
            attrs = json.loads(meta.read_text()).get("attributes", {})
        except (OSError, ValueError):
            continue
        n += attrs.get("complete") is True
    return n


def start_extract(data: Path, out: Path) -> subprocess.Popen:
    args = ["extract", "--dataset", "synthetic", "--data-root", str(data), "--out", str(out)]
    args += [x for k, v in SMALL.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    code = "from stvg.cli import main; main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, "-q", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_when(process: subprocess.Popen, out: Path, videos: int, delay: float = 0.0) -> int:
    """SIGKILL ``process`` ``delay`` seconds after ``videos`` entries are complete; return how
    many were complete at the kill (the test needs the kill to land before the end)."""
    deadline = time.monotonic() + 120
    while complete_videos(out) < videos:
        if process.poll() is not None:
            pytest.fail(f"extract ended (code {process.returncode}) before {videos} entries")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("extract made no progress in 120 s")
        time.sleep(0.002)
    time.sleep(delay)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    done = complete_videos(out)
    assert done < VIDEOS, "the kill came after the last entry: nothing was left to resume"
    return done


def test_kill_9_then_rerun_equals_uninterrupted(data, reference, tmp_path):
    out = tmp_path / "features"
    done = kill_when(start_extract(data, out), out, videos=2)  # entry 1 complete, queries too
    summary = run(preset("synthetic", **SMALL), data, out, SPLITS, progress=False)
    assert summary.skipped >= 1 and summary.new_videos + summary.skipped == VIDEOS
    assert summary.new_videos == VIDEOS - done or summary.new_videos == VIDEOS - done + 1
    info = open_store(out).info()
    assert (info["videos"], info["incomplete"]) == (VIDEOS, 0)
    result = all_arrays(out)
    assert sorted(result) == sorted(reference)
    for key in reference:
        assert np.array_equal(result[key], reference[key]), key


@pytest.mark.slow
def test_kill_9_at_several_points(data, reference, tmp_path):
    out = tmp_path / "features"
    # 1: right after the first video entry; 2: 40 ms after the third (inside the fourth
    # entry's work or write); 3: right after the fifth. Each rerun resumes the same store.
    for videos, delay in ((1, 0.0), (3, 0.04), (5, 0.0)):
        kill_when(start_extract(data, out), out, videos=videos, delay=delay)
    process = start_extract(data, out)
    assert process.wait(timeout=120) == 0
    result = all_arrays(out)
    assert sorted(result) == sorted(reference)
    for key in reference:
        assert np.array_equal(result[key], reference[key]), key


def test_an_entry_with_some_of_its_queries_complete_is_finished(data, reference, tmp_path):
    # What a kill between two queries of one entry leaves: the video and its first query
    # complete, the second missing. The rerun writes only what is missing (no "already
    # complete" error) and the store equals the uninterrupted one.
    source = tmp_path / "source"
    run(preset("synthetic", **SMALL), data, source, SPLITS, progress=False)
    done = open_store(source)
    split, sample = next(
        (split, s)
        for split in SPLITS
        for s in done.samples(split)
        if sum(t.video_id == s.video_id for t in done.samples(split)) > 1
    )
    entry = done.entry_of(sample.sample_id, split)
    video = done.video(entry, split)
    partial = tmp_path / "partial"
    target = create_store(partial, done.manifest)
    query = done.query(sample.sample_id, split)
    with target.writer(split, part=(0, 1)) as writer:
        writer.write_video(
            entry, video["frame_ids"], video["image"], video["clip_spans"], video["motion"]
        )
        writer.write_query(sample, query["text"], query["text_mask"], entry)
    summary = run(preset("synthetic", **SMALL), data, partial, SPLITS, progress=False)
    assert summary.failed == [] and summary.new_videos == VIDEOS
    result = all_arrays(partial)
    assert sorted(result) == sorted(reference)
    for key in reference:
        assert np.array_equal(result[key], reference[key]), key
