"""Bad videos in one extraction run (docs/design.md section 11, issue 6 item 1).

Twelve tiny synthetic videos (64x48, 2 s at 10 fps: 20 frames, segment [0, 20)); ten are
replaced by a bad file of one kind each. One ``stvg extract`` run must record all ten in
``failures.jsonl`` with their reason, complete the two good ones, say "10 failed" and exit 3; a
rerun retries only the failed ones (one repaired file then completes, the rest still fail) and
``--skip-failed`` leaves them alone. (tests/extract/test_extract_cli.py covers truncated-by-copy,
corrupt data and missing files.)
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import stvg.data.video as video_module
from stvg.cli import app
from stvg.data.mp4 import write_mp4
from stvg.data.synth import synthesize
from stvg.data.video import VideoError, probe
from stvg.features.store import open_store

runner = CliRunner()
SMALL = ["--td", "4", "--clip-size", "32", "--n-short", "48", "--text-layers", "1"]
FRAMES = 20

# video id -> the reason failures.jsonl must give
EXPECTED = {
    "v0000": "empty",  # zero bytes
    "v0001": "truncated",  # the first half of an mp4 (no moov index)
    "v0002": "not-a-video",  # a PNG named .mp4
    "v0003": "not-a-video",  # a text file named .mp4
    "v0004": "no-video-stream",  # audio only
    "v0005": "too-few-frames",  # a single frame
    "v0006": "too-few-frames",  # 10 frames where the annotation says 20
    "v0007": "unreadable",  # permission denied (simulated: we may be root)
    "v0008": "unreadable",  # a named pipe (opening it would block forever)
    "v0009": "unreadable",  # a directory
}
GOOD = ["v0010", "v0011"]


def write_video(path: Path, frames: int, size: tuple[int, int] = (64, 48)) -> None:
    """``frames`` plain frames at 10 fps, frame ``i`` of grey level ``40 + 10 i``."""
    arrays = (np.full((size[1], size[0], 3), 40 + 10 * i, np.uint8) for i in range(frames))
    write_mp4(path, arrays, 10, crf=23)


def write_audio_only(path: Path) -> None:
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def probe_within(path: Path, seconds: float = 10.0) -> VideoError | None:
    """``probe(path)`` in a daemon thread; fails the test if it blocks (a FIFO would)."""
    box: list = []

    def target() -> None:
        try:
            probe(path)
            box.append(None)
        except VideoError as error:
            box.append(error)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"probing {path} blocked for {seconds} s")
    return box[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    """The data root with the ten bad files in place, and the good bytes of each."""
    root = tmp_path_factory.mktemp("bad-videos")
    synthesize(root, videos=12, seconds=2.0, fps=10.0, size=(64, 48), progress=False)
    videos = root / "videos"
    original = {v: (videos / f"{v}.mp4").read_bytes() for v in EXPECTED}
    (videos / "v0000.mp4").write_bytes(b"")
    (videos / "v0001.mp4").write_bytes(original["v0001"][: len(original["v0001"]) // 2])
    Image.new("RGB", (64, 48), (200, 10, 10)).save(videos / "v0002.mp4", format="PNG")
    (videos / "v0003.mp4").write_text("this is not a video\n" * 50)
    write_audio_only(videos / "v0004.mp4")
    write_video(videos / "v0005.mp4", frames=1)
    write_video(videos / "v0006.mp4", frames=FRAMES // 2)
    # v0007 keeps its good bytes: reading it is denied by `deny_v0007` below.
    (videos / "v0008.mp4").unlink()
    os.mkfifo(videos / "v0008.mp4")
    (videos / "v0009.mp4").unlink()
    (videos / "v0009.mp4").mkdir()
    return root, original


@pytest.fixture
def deny_v0007(monkeypatch):
    """Opening v0007.mp4 raises EACCES, as a chmod 000 file does for a non-root user."""
    real_open = open

    def fake_open(path, *args, **kwargs):
        if str(path).endswith("v0007.mp4"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(video_module, "open", fake_open, raising=False)


def extract(root: Path, out: Path, *extra: str):
    args = ["extract", "--dataset", "synthetic", "--data-root", str(root), "--out", str(out)]
    return runner.invoke(app, [*args, *SMALL, *extra])


def splits_of(root: Path) -> dict[str, str]:
    return {
        s["video_id"]: split
        for split in ("train", "val", "test")
        for s in json.loads((root / f"{split}.json").read_text())["samples"]
    }


def complete_entries(out: Path) -> set[str]:
    store = open_store(out)
    done = {e.split("@")[0] for split in store.splits() for e in store.entry_ids(split)}
    store.close()
    return done


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    error = probe_within(fifo)
    assert error is not None and error.reason == "unreadable"


def test_each_bad_video_is_recorded_and_the_rest_complete(data, deny_v0007, tmp_path):
    root, original = data
    assert probe_within(root / "videos" / "v0008.mp4") is not None  # no hang ahead
    out = tmp_path / "features"
    result = extract(root, out)
    assert result.exit_code == 3, result.output
    assert "2 new videos, 0 skipped (complete), 10 failed" in result.stdout
    assert "10 video(s) failed" in result.stderr
    for video_id, reason in EXPECTED.items():
        assert f"failed: {video_id}@0-{FRAMES} ({reason})" in result.stderr
    records = [json.loads(x) for x in (out / "failures.jsonl").read_text().splitlines()]
    assert {r["video_id"]: r["reason"] for r in records} == EXPECTED
    split_of = splits_of(root)
    for r in records:
        assert r["split"] == split_of[r["video_id"]]
        assert r["message"] and r["video_path"].endswith(f"{r['video_id']}.mp4")
        assert r["samples"] and all(s.startswith(r["video_id"]) for s in r["samples"])
    assert complete_entries(out) == set(GOOD)

    # Repair one file: the rerun retries only the failed ones; it completes, the rest fail again.
    videos = root / "videos"
    (videos / "v0006.mp4").write_bytes(original["v0006"])
    again = extract(root, out)
    assert again.exit_code == 3, again.output
    assert "1 new videos, 2 skipped (complete), 9 failed" in again.stdout
    assert "failed: v0006" not in again.stderr
    assert complete_entries(out) == {*GOOD, "v0006"}
    lines = (out / "failures.jsonl").read_text().splitlines()
    assert len(lines) == 10 + 9
    assert {json.loads(x)["video_id"] for x in lines[10:]} == set(EXPECTED) - {"v0006"}

    # --skip-failed: nothing is retried, nothing fails, exit 0.
    skipping = extract(root, out, "--skip-failed")
    assert skipping.exit_code == 0, skipping.output
    assert "0 new videos, 12 skipped (complete), 0 failed" in skipping.stdout
    assert len((out / "failures.jsonl").read_text().splitlines()) == 19

    store = open_store(out)
    v = store.video(f"v0006@0-{FRAMES}", split_of["v0006"])
    assert v["frame_ids"].tolist() == list(range(0, FRAMES, 2))  # 5 fps grid of a 10 fps video
    assert np.isfinite(v["image"]).all() and np.isfinite(v["motion"]).all()
    store.close()
    shutil.rmtree(out)
