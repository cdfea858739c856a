"""Windows of long videos (stvg.ground.windows), by hand, and the front-to-back reader."""

from __future__ import annotations

import random
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from stvg.data.video import read_frames
from stvg.ground.windows import last_use, plan_window, window_length, window_spans


@pytest.mark.parametrize(
    "frames, length, stride, expected",
    [
        (10, 4, None, [(0, 4), (2, 6), (4, 8), (6, 10)]),  # the last one ends on the last frame
        (11, 4, None, [(0, 4), (2, 6), (4, 8), (6, 10), (7, 11)]),  # a last window is added
        (5, 4, None, [(0, 4), (1, 5)]),
        (4, 4, None, [(0, 4)]),  # exactly one window
        (3, 4, None, [(0, 3)]),  # a short video is one window
        (1, 60, None, [(0, 1)]),
        (100, 60, 30, [(0, 60), (30, 90), (40, 100)]),
        (9, 3, 3, [(0, 3), (3, 6), (6, 9)]),  # no overlap when asked
        (7, 3, 1, [(0, 3), (1, 4), (2, 5), (3, 6), (4, 7)]),
    ],
)
def test_window_spans_by_hand(frames, length, stride, expected):
    assert window_spans(frames, length, stride) == expected


def test_windows_cover_overlap_and_keep_their_length():
    rng = random.Random(0)
    for _ in range(300):
        length = rng.randint(1, 40)
        frames = rng.randint(1, 400)
        spans = window_spans(frames, length)
        covered = set().union(*(range(a, b) for a, b in spans))
        assert covered == set(range(frames))
        assert all(b - a == min(length, frames) for a, b in spans)
        starts = [a for a, _ in spans]
        assert starts == sorted(set(starts))
        # consecutive windows share at least half a window (the stride is L // 2)
        assert all(b0 - a1 >= length - max(1, length // 2) for (_, b0), (a1, _) in pairwise(spans))


def test_window_length_and_refusals():
    assert window_length(6.0, 10.0) == 60
    assert window_length(2.0, 29.97) == 60  # 59.94 rounds to 60
    assert window_length(0.01, 10.0) == 1
    with pytest.raises(ValueError):
        window_spans(0, 4)
    with pytest.raises(ValueError):
        window_spans(10, 4, 0)


def test_plan_window_reads_what_extraction_reads_for_the_segment():
    plan = plan_window((20, 40), fps=10.0, target_fps=5.0, max_frames=200, td=4, clip_frames=2)
    # 5 fps of a 10 fps video: every other frame of [20, 40)
    assert plan.static_ids == tuple(range(20, 40, 2))
    assert plan.clips == ((20, 25), (25, 30), (30, 35), (35, 40))
    # clip frame k = start + floor((k + 0.5) * 5 / 2): offsets 1 and 3
    assert plan.clip_ids == ((21, 23), (26, 28), (31, 33), (36, 38))
    assert plan.needed() == sorted(set(range(20, 40, 2)) | {21, 23, 26, 28, 31, 33, 36, 38})
    capped = plan_window((0, 100), fps=10.0, target_fps=5.0, max_frames=10, td=2, clip_frames=1)
    assert len(capped.static_ids) == 10  # max_frames keeps 10 of the 50 grid frames


def test_last_use():
    a = plan_window((0, 8), 10.0, 5.0, 200, 2, 1)
    b = plan_window((4, 12), 10.0, 5.0, 200, 2, 1)
    last = last_use([a, b])
    assert last[0] == 0 and last[4] == 1 and last[6] == 1 and last[10] == 1
    assert set(last) == set(a.needed()) | set(b.needed())


def test_read_windows_decodes_once_front_to_back(tiny_data: Path, monkeypatch):
    """Overlapping windows get exactly the frames a random-access read gives, from one pass of
    the sequential decoder (it never goes back to the start)."""
    from stvg.data import video as video_module
    from stvg.ground.run import read_windows

    path = tiny_data / "videos" / "v0000.mp4"
    plans = [plan_window(s, 10.0, 5.0, 200, 2, 2) for s in window_spans(20, 8)]
    restarts = []
    original = video_module._PyAVReader._restart

    def counting(self):
        restarts.append(1)
        original(self)

    monkeypatch.setattr(video_module._PyAVReader, "_restart", counting)
    monkeypatch.setattr(video_module, "_decord_available", lambda: False)
    got = [(plan, dict(frames)) for plan, frames in read_windows(path, plans)]
    assert len(restarts) == 1  # the first read only
    assert [p for p, _ in got] == plans
    for plan, frames in got:
        ids = plan.needed()
        assert sorted(frames) == ids
        np.testing.assert_array_equal(np.stack([frames[i] for i in ids]), read_frames(path, ids))
