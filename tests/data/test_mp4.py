"""The one MP4 writer: what it writes decodes back to the frames, at the rate and size asked,
with keyframes where asked, the same bytes twice, and nothing at the path when writing fails."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from stvg.data.mp4 import write_mp4
from stvg.data.video import VideoInfo, open_video, probe

W, H = 64, 48
# Four flat colors, far apart: H.264 at crf 12 keeps a flat area within a few levels.
PALETTE = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 220)]


def _frames(n: int) -> list[np.ndarray]:
    """Frame i: left half PALETTE[i % 4], right half black (an independent pattern to check)."""
    out = []
    for i in range(n):
        array = np.zeros((H, W, 3), np.uint8)
        array[:, : W // 2] = PALETTE[i % 4]
        out.append(array)
    return out


def test_round_trip(tmp_path: Path) -> None:
    path = write_mp4(tmp_path / "a.mp4", iter(_frames(12)), 10)
    assert path == tmp_path / "a.mp4"
    assert probe(path) == VideoInfo(fps=10.0, frame_count=12, width=W, height=H)
    with open_video(path) as video:
        decoded = video.get(list(range(12))).astype(int)
    for i in range(12):
        left = decoded[i, 4:-4, 4 : W // 2 - 4].reshape(-1, 3)
        right = decoded[i, 4:-4, W // 2 + 4 : -4]
        assert np.abs(left - np.array(PALETTE[i % 4])).max() <= 6, i
        assert right.max() <= 6, i


def test_ntsc_rate_and_keyframes(tmp_path: Path) -> None:
    # 29.97 fps is 30000/1001; one keyframe every 5 frames of a still picture.
    still = [np.full((H, W, 3), 90, np.uint8)] * 20
    path = write_mp4(tmp_path / "b.mp4", still, 30000 / 1001, keyframe_interval=5)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == Fraction(30000, 1001)
        rate = Fraction(30000, 1001)
        keys = sorted(
            round(p.pts * stream.time_base * rate)
            for p in container.demux(stream)
            if p.pts is not None and p.is_keyframe
        )
    assert keys == [0, 5, 10, 15]


def test_same_frames_same_bytes(tmp_path: Path) -> None:
    one = write_mp4(tmp_path / "one.mp4", _frames(8), 7.5, crf=20, keyframe_interval=4)
    two = write_mp4(tmp_path / "two.mp4", (f for f in _frames(8)), 7.5, crf=20, keyframe_interval=4)
    assert one.read_bytes() == two.read_bytes()
    other = write_mp4(tmp_path / "three.mp4", _frames(8), 7.5, crf=30, keyframe_interval=4)
    assert other.read_bytes() != one.read_bytes()


def test_failure_leaves_the_old_file(tmp_path: Path) -> None:
    path = write_mp4(tmp_path / "c.mp4", _frames(4), 10)
    before = path.read_bytes()

    def broken():
        yield from _frames(3)
        raise RuntimeError("camera unplugged")

    with pytest.raises(RuntimeError, match="camera unplugged"):
        write_mp4(path, broken(), 10)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.mp4"]


def test_bad_frames(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no frames"):
        write_mp4(tmp_path / "d.mp4", [], 10)
    with pytest.raises(ValueError, match="uint8"):
        write_mp4(tmp_path / "d.mp4", [np.zeros((H, W, 3), np.float32)], 10)
    assert not (tmp_path / "d.mp4").exists()
