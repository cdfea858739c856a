"""The synthetic benchmark: determinism, valid records, balanced kinds, exact boxes, and the
ambiguities the kinds promise, all checked on decoded pixels."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage  # scikit-video's dependency
from typer.testing import CliRunner

from stvg.cli import app
from stvg.data.sample import read_normalized
from stvg.data.synth import ACTIONS, COLORS, KINDS, synthesize
from stvg.data.video import probe, read_frames
from stvg.errors import InputError

KNOBS = dict(videos=9, seconds=3.0, fps=10.0, size=(128, 96), queries_per_video=2)
W, H = KNOBS["size"]
T = 30
S = 12  # actor size: min(H // (2 * 4 actors), W // 8)
SPLIT_NAMES = ("train", "val", "test")


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "a"
    synthesize(out, seed=3, progress=False, **KNOBS)
    return out


@pytest.fixture(scope="module")
def samples(synth_dir):
    result = []
    for name in SPLIT_NAMES:
        result += read_normalized(json.loads((synth_dir / f"{name}.json").read_text())).samples
    return result


@pytest.fixture(scope="module")
def frames(synth_dir, samples) -> dict[str, np.ndarray]:
    """Every frame of every video, decoded: {video_id: uint8 [T, H, W, 3]}."""
    ids = sorted({s.video_id for s in samples})
    return {v: read_frames(synth_dir / "videos" / f"{v}.mp4", range(T)) for v in ids}


def _files(folder: Path) -> dict[str, bytes]:
    return {n: (folder / f"{n}.json").read_bytes() for n in (*SPLIT_NAMES, "synth")}


def _all_frames(folder: Path) -> dict[str, np.ndarray]:
    return {p.stem: read_frames(p, range(T)) for p in sorted((folder / "videos").glob("*.mp4"))}


def test_same_seed_same_bytes_and_frames_other_seed_differs(synth_dir, tmp_path):
    again = tmp_path / "b"
    synthesize(again, seed=3, progress=False, **KNOBS)
    assert _files(again) == _files(synth_dir)
    first, second = _all_frames(synth_dir), _all_frames(again)
    assert first.keys() == second.keys() and len(first) == KNOBS["videos"]
    for video_id in first:
        assert np.array_equal(first[video_id], second[video_id])

    other = tmp_path / "c"
    synthesize(other, seed=4, progress=False, **KNOBS)
    changed = _files(other)
    assert all(changed[n] != _files(synth_dir)[n] for n in SPLIT_NAMES)
    assert not np.array_equal(_all_frames(other)["v0000"], first["v0000"])


def test_records_are_valid_and_match_the_videos(synth_dir, samples):
    record = json.loads((synth_dir / "synth.json").read_text())
    assert record["seed"] == 3 and record["size"] == [W, H] and record["frame_count"] == T
    videos_by_split = {n: set(record["splits"][n]) for n in SPLIT_NAMES}
    assert sum(len(v) for v in videos_by_split.values()) == 9
    assert [len(videos_by_split[n]) for n in SPLIT_NAMES] == [7, 1, 1]  # 9 - round(1.35) x 2
    for name in SPLIT_NAMES:
        annotations = read_normalized(json.loads((synth_dir / f"{name}.json").read_text()))
        assert annotations.split == name and annotations.dataset == "synthetic"
        assert {s.video_id for s in annotations.samples} == videos_by_split[name]
    assert len({s.sample_id for s in samples}) == len(samples) >= 9
    for sample in samples:
        sample.validate()
        assert sample.video_path == f"videos/{sample.video_id}.mp4"
        info = probe(synth_dir / sample.video_path)
        assert (info.frame_count, info.width, info.height, info.fps) == (T, W, H, 10.0)
        assert (sample.frame_count, sample.width, sample.height) == (T, W, H)
        assert sample.segment == (0, T)
        assert sorted(sample.boxes) == list(range(*sample.tube))
        assert 6 <= sample.tube[1] - sample.tube[0] <= 18  # 20% .. 60% of 30 frames
        extra = sample.extra
        assert extra["kind"] in KINDS and extra["action"] in ACTIONS
        assert sample.caption == f"the {extra['color']} {extra['shape']} {ACTIONS[extra['action']]}"
    starts = {s.tube[0] for s in samples}
    lengths = {s.tube[1] - s.tube[0] for s in samples}
    assert len(starts) > 3 and len(lengths) > 3


def test_kinds_are_roughly_equal(tmp_path):
    out = tmp_path / "k"
    result = synthesize(out, seed=11, progress=False, **{**KNOBS, "videos": 15})
    kinds = Counter(s.extra["kind"] for a in result.values() for s in a.samples)
    total = sum(kinds.values())
    assert set(kinds) == set(KINDS)
    for kind in KINDS:
        assert abs(kinds[kind] - total / 3) <= 2, kinds


# ------------------------------------------------------------------ pixels


def _color_mask(frame: np.ndarray, color: str) -> np.ndarray:
    """Pixels on the segment from the background grey (the frame's median) to ``color``: at
    least 40% of the way along it and within 70 levels of it. The 40% keeps edge pixels whose
    chroma the 2x2 subsampling of yuv420p mixed with the background; the 70 drops the colored
    fringes that subsampling leaves around other actors."""
    rgb = frame.reshape(-1, 3).astype(float)
    grey = np.median(rgb, axis=0)
    axis = np.asarray(COLORS[color], float) - grey
    along = (rgb - grey) @ axis / (axis @ axis)
    off = np.linalg.norm(rgb - grey - along[:, None] * axis, axis=-1)
    return ((along >= 0.4) & (off < 70)).reshape(frame.shape[:2])


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    if not mask.any():
        return None
    cols, rows = np.flatnonzero(mask.any(0)), np.flatnonzero(mask.any(1))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _grow(box, margin: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    return max(0, x1 - margin), max(0, y1 - margin), min(W, x2 + margin), min(H, y2 + margin)


def _inside(mask: np.ndarray, box) -> np.ndarray:
    x1, y1, x2, y2 = box
    keep = np.zeros_like(mask)
    keep[y1:y2, x1:x2] = True
    return mask & keep


def _shape_of(mask: np.ndarray, box) -> str:
    """square / triangle / cross from the pixels of an upright shape in its box: a square
    fills its box; a triangle is narrow at the top and wide at the bottom; a cross is as narrow
    at the bottom as at the top."""
    x1, y1, x2, y2 = (int(v) for v in box)
    crop = mask[y1:y2, x1:x2]
    if crop.mean() > 0.8:
        return "square"
    quarter = max(1, crop.shape[0] // 4)
    top, bottom = crop[:quarter].sum(1).mean(), crop[-quarter:].sum(1).mean()
    return "triangle" if bottom > 1.6 * top else "cross"


def _motion(boxes: list, masks: list) -> str:
    """An action read from a box track and the actor's pixels alone (an independent reading
    of the rules of the scene): edge (enter/leave), jump, walk_left/right, spin or stop."""
    b = np.asarray(boxes, float)  # [n, 4]
    widths, heights = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    at_edge = (b[:, 0] <= 0) | (b[:, 2] >= W)
    if (at_edge[0] and widths[0] <= 0.5 * S) or (at_edge[-1] and widths[-1] <= 0.5 * S):
        return "edge"  # enters or leaves
    if np.ptp(cy) >= 0.4 * S:
        return "jump"
    shift = cx[-1] - cx[0]
    if abs(shift) >= 0.4 * S and abs(shift) / max(1, len(cx) - 1) > 0.5:
        return "walk_right" if shift > 0 else "walk_left"
    overlap = [
        (m0 & m1).sum() / max(1, (m0 | m1).sum())
        for m0, m1 in zip(masks[:-1], masks[1:], strict=True)
    ]
    if np.ptp(widths) >= 2 or np.ptp(heights) >= 2 or np.median(overlap) < 0.9:
        return "spin"  # same place, changing pixels
    return "stop"


def _gt_track(video: np.ndarray, sample) -> tuple[list, list]:
    """GT boxes over the tube and the actor's color pixels near each (full-frame masks)."""
    boxes = [sample.boxes[t] for t in range(*sample.tube)]
    color = sample.extra["color"]
    masks = [
        _inside(_color_mask(video[t], color), _grow(sample.boxes[t], 2))
        for t in range(*sample.tube)
    ]
    return boxes, masks


def _other_tracks(video: np.ndarray, color: str, sample, *, exclude_own: bool) -> list:
    """Tracks of the blobs of ``color`` over the tube (outside the target's box if asked): a
    list of (boxes, masks), each blob followed by its nearest blob on the next frame. Empty
    when some tube frame has no such blob."""
    per_frame = []
    for t in range(*sample.tube):
        mask = _color_mask(video[t], color)
        if exclude_own:
            x1, y1, x2, y2 = _grow(sample.boxes[t], 2)
            mask[y1:y2, x1:x2] = False
        labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
        blobs = [labels == k for k in range(1, count + 1)]
        blobs = [b for b in blobs if b.sum() >= 4]  # drop stray codec fringes
        if not blobs:
            return []
        per_frame.append(blobs)
    tracks = []
    for first in per_frame[0]:
        masks = [first]
        for blobs in per_frame[1:]:
            here = np.argwhere(masks[-1]).mean(0)
            masks.append(min(blobs, key=lambda b: np.linalg.norm(np.argwhere(b).mean(0) - here)))
        tracks.append(([_bbox(m) for m in masks], masks))
    return tracks


EXPECTED_MOTION = {**{a: a for a in ACTIONS}, "enter": "edge", "leave": "edge"}


def test_gt_boxes_follow_the_named_action_and_shape(samples, frames):
    shapes = Counter()
    for sample in samples:
        video = frames[sample.video_id]
        motion = _motion(*_gt_track(video, sample))
        assert motion == EXPECTED_MOTION[sample.extra["action"]], sample.sample_id
        if motion == "spin":
            continue
        for t, box in sample.boxes.items():
            if abs(box[2] - box[0] - S) <= 1 and abs(box[3] - box[1] - S) <= 1:
                shapes[
                    _shape_of(_color_mask(video[t], sample.extra["color"]), box)
                    == sample.extra["shape"]
                ] += 1
    assert shapes[True] > 50 and shapes[False] <= 0.05 * shapes[True], shapes


def test_boxes_are_exact_on_decoded_frames(samples, frames):
    """The actor's color fills the GT box up to a 2-px codec margin, and (when no look-alike
    shares the color) no pixel of that color lies anywhere else in the frame."""
    checked = 0
    for sample in samples:
        color = sample.extra["color"]
        for t, box in sample.boxes.items():
            frame = frames[sample.video_id][t]
            mask = _color_mask(frame, color)
            near = _inside(mask, _grow(box, 2))
            found = _bbox(near)
            assert found is not None, (sample.sample_id, t)
            assert np.abs(np.subtract(found, box)).max() <= 2, (sample.sample_id, t, found, box)
            width, height = box[2] - box[0], box[3] - box[1]
            # Thin slivers (an actor entering) lose their color to chroma subsampling.
            share = 0.3 if min(width, height) >= 6 else 0.1
            assert _inside(mask, _grow(box, 0)).sum() >= share * width * height
            if sample.extra["kind"] != "static_ambiguous":
                assert mask.sum() == near.sum(), (sample.sample_id, t)
            checked += 1
    assert checked > 100


def test_static_ambiguous_has_a_look_alike_doing_something_else(samples, frames):
    static = [s for s in samples if s.extra["kind"] == "static_ambiguous"]
    assert static
    for sample in static:
        video = frames[sample.video_id]
        color = sample.extra["color"]
        tracks = _other_tracks(video, color, sample, exclude_own=True)
        assert len(tracks) == 1, sample.sample_id  # one look-alike, visible all along
        track, masks = tracks[0]
        motion, other_motion = _motion(*_gt_track(video, sample)), _motion(track, masks)
        assert motion != other_motion, sample.sample_id
        # Same shape: read on the frames where neither turns and both are upright and whole.
        if "spin" in (motion, other_motion):
            continue
        seen = Counter()
        for t, other in zip(range(*sample.tube), track, strict=True):
            own = tuple(int(v) for v in sample.boxes[t])
            if all(abs(b[2] - b[0] - S) <= 1 and abs(b[3] - b[1] - S) <= 1 for b in (own, other)):
                mask = _color_mask(video[t], color)
                seen[(_shape_of(mask, own), _shape_of(mask, other))] += 1
        if seen:
            shape = sample.extra["shape"]
            assert seen.most_common(1)[0][0] == (shape, shape), (sample.sample_id, seen)


def test_dynamic_ambiguous_has_another_color_doing_the_same(samples, frames):
    dynamic = [s for s in samples if s.extra["kind"] == "dynamic_ambiguous"]
    assert dynamic
    for sample in dynamic:
        video = frames[sample.video_id]
        target = _motion(*_gt_track(video, sample))
        twins = []
        for color in COLORS:
            if color == sample.extra["color"]:
                continue
            for track, masks in _other_tracks(video, color, sample, exclude_own=False):
                if _motion(track, masks) == target:
                    twins.append(color)
        assert twins, sample.sample_id


def test_bad_knobs_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="even"):
        synthesize(tmp_path / "x", videos=3, size=(161, 120), progress=False)
    with pytest.raises(InputError, match="at least 3 videos"):
        synthesize(tmp_path / "x", videos=2, progress=False)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep me")
    with pytest.raises(InputError, match="not empty"):
        synthesize(busy, videos=3, seconds=1.0, size=(64, 64), progress=False)
    assert (busy / "mine.txt").read_text() == "keep me"


def test_cli_synth(tmp_path):
    out = tmp_path / "cli"
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "data",
            "synth",
            "--out",
            str(out),
            "--videos",
            "3",
            "--seed",
            "1",
            "--seconds",
            "2",
            "--fps",
            "10",
            "--size",
            "96x64",
            "--queries-per-video",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "3 videos" in result.output
    kinds = Counter(
        s["extra"]["kind"]
        for n in SPLIT_NAMES
        for s in json.loads((out / f"{n}.json").read_text())["samples"]
    )
    assert sum(kinds.values()) == 3 and kinds == Counter(KINDS)  # one video per split, rarest first
    assert probe(out / "videos" / "v0000.mp4").width == 96

    bad = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "bad"), "--size", "96by64"])
    assert bad.exit_code == 2
    assert "WIDTHxHEIGHT" in bad.output and "Traceback" not in bad.output
