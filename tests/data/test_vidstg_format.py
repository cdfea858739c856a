"""Raw VidSTG sentences + VidOR boxes, on hand-written fixtures and on the real test split."""

from __future__ import annotations

import copy
import json
import logging
import shutil
from collections import Counter
from pathlib import Path

import pytest

from stvg.data.formats import load_annotations
from stvg.data.formats.vidstg import load_vidstg_raw, looks_like_vidstg_raw, split_from_name
from stvg.errors import InputError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "vidstg"
SENTENCES = FIXTURES / "test_annotations.json"
BOXES = FIXTURES / "vidor"
REAL = Path(__file__).resolve().parents[2].parent / "shared/data/vidstg/test_annotations.json"


def raw() -> list:
    return json.loads(SENTENCES.read_text())


def test_fixture_with_boxes() -> None:
    ann = load_annotations(SENTENCES, boxes_dir=BOXES)
    assert (ann.dataset, ann.split, ann.source_format, ann.has_boxes) == (
        "vidstg",
        "test",
        "vidstg",
        True,
    )
    # TubeDETR's order: per entry, questions then captions.
    assert [s.sample_id for s in ann.samples] == [
        "1001-e0-q0",
        "1001-e0-q1",
        "1001-e0-c0",
        "2002-e1-c0",
        "1001-e2-q0",
        "1001-e2-c0",
    ]
    assert [s.extra["tubedetr_video_id"] for s in ann.samples] == [0, 1, 2, 3, 4, 5]
    assert [s.qtype[0] for s in ann.samples] == ["i", "i", "d", "d", "i", "d"]
    by_id = ann.by_id()

    s = by_id["1001-e0-c0"]
    assert (s.video_id, s.fps, s.frame_count, s.width, s.height) == ("1001", 10.0, 40, 64, 48)
    assert s.video_path == "video/0001/1001.mp4"
    assert s.segment == (0, 30) and s.tube == (5, 9)
    assert s.caption == "an adult leads a dog."
    # Target tid 0 on frames 5..8 (end_fid 9 is exclusive; frame 4 is before the tube).
    assert s.boxes == {
        5: (5.0, 10.0, 25.0, 40.0),
        6: (6.0, 10.0, 26.0, 40.0),
        7: (7.0, 11.0, 27.0, 41.0),
        8: (8.0, 11.0, 28.0, 41.0),
    }
    assert s.extra["target_id"] == 0 and s.extra["category"] == "adult"
    assert s.extra["relation"] == [0, "lead", 1]
    assert "frames_without_box" not in s.extra

    # tid 1 has no box on frame 7: that frame gets none, and it is counted.
    q = by_id["1001-e0-q1"]
    assert q.boxes == {
        5: (30.0, 30.0, 40.0, 38.0),
        6: (31.0, 30.0, 41.0, 38.0),
        8: (33.0, 31.0, 43.0, 39.0),
    }
    assert q.extra["frames_without_box"] == 1 and q.extra["target_type"] == "object"
    assert by_id["1001-e2-c0"].boxes == {6: (31.0, 30.0, 41.0, 38.0)}

    # Tube [16, 20) ends one frame past used_segment.end_fid 19 = frame_count - 1.
    c = by_id["2002-e1-c0"]
    assert c.segment == (10, 20) and c.tube == (16, 20)
    assert c.extra["segment_extended"] is True and c.extra["used_segment"] == [10, 19]
    assert c.extra["sampling_segment"] == [10, 19]
    assert c.fps == 5.0 and isinstance(c.fps, float)
    assert c.boxes[17] == (2.5, 3.0, 12.5, 13.0)
    assert c.boxes[18] == (3.0, 3.0, 3.0, 13.0)  # zero width is allowed
    assert sorted(c.boxes) == [16, 17, 18, 19]
    assert c.video_path == "video/0002/2002.mp4"
    assert "segment_extended" not in by_id["1001-e0-c0"].extra


def test_sentence_only_mode_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        ann = load_annotations(SENTENCES)
    assert ann.has_boxes is False
    assert all(s.boxes == {} for s in ann.samples)
    assert ann.by_id()["1001-e0-c0"].video_path == "video/1001.mp4"
    assert any("sentence-only" in r.getMessage() for r in caplog.records)


def test_video_root_gives_flat_paths(tmp_path: Path) -> None:
    ann = load_vidstg_raw(raw(), file=SENTENCES, boxes_dir=BOXES, video_root=tmp_path)
    assert ann.by_id()["2002-e1-c0"].video_path == str(tmp_path / "2002.mp4")


def test_detection_and_split_name() -> None:
    assert looks_like_vidstg_raw(raw())
    assert not looks_like_vidstg_raw([])
    assert not looks_like_vidstg_raw({"videos": []})
    assert split_from_name("val_annotations.json") == "val"
    assert split_from_name("train_annotations.json") == "train"
    assert split_from_name("mine.json") == "test"


def _error(data, **kwargs) -> InputError:
    with pytest.raises(InputError) as info:
        load_vidstg_raw(data, file="s.json", **kwargs)
    return info.value


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("temporal_gt", "begin_fid"), -1, "temporal_gt.begin_fid"),  # before the segment
        (("temporal_gt", "end_fid"), 32, "temporal_gt.end_fid"),  # two past the segment end
        (("temporal_gt", "end_fid"), 5, "temporal_gt"),  # empty
        (("used_segment", "end_fid"), 41, "used_segment"),  # past frame_count
        (("used_segment", "end_fid"), "30", "used_segment.end_fid"),
        (("frame_count",), "40", "frame_count"),
        (("fps",), 0, "fps"),
        (("width",), 0, "width"),
        (("vid",), None, "vid"),
        (("captions",), {"description": "x"}, "captions"),
        (("captions", 0, "target_id"), 7, "captions.0.target_id"),  # not in subject/objects
        (("captions", 0, "target_id"), "0", "captions.0.target_id"),
        (("questions", 1, "description"), "  ", "questions.1.description"),
    ],
)
def test_bad_entries(path, value, field) -> None:
    data = raw()
    obj = data[0]
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value
    error = _error(data)
    assert (error.file, error.field) == ("s.json", field)
    assert error.sample.startswith("entry 0")


def test_missing_fields_and_wrong_shapes() -> None:
    data = raw()
    del data[2]["questions"]
    error = _error(data)
    assert (error.sample, error.field) == ("entry 2 (vid 1001)", "questions")
    assert _error({"vid": "1"}).field is None
    assert _error([1, 2]).sample == "entry 0"


def test_box_problems(tmp_path: Path) -> None:
    boxes = tmp_path / "vidor"
    shutil.copytree(BOXES, boxes)
    # A tube that starts before the target's first box (frame 4 for tid 0), as TubeDETR asserts.
    data = raw()
    data[0]["temporal_gt"]["begin_fid"] = 3
    error = _error(data, boxes_dir=boxes)
    assert (error.sample, error.field) == ("1001-e0-q0", "temporal_gt")
    assert "4..8" in error.message
    # A target without any box in the video.
    data = raw()
    data[1]["subject/objects"].append({"tid": 9, "category": "toy"})
    data[1]["captions"][0]["target_id"] = 9
    error = _error(data, boxes_dir=boxes)
    assert (error.sample, error.field) == ("2002-e1-c0", "target_id")
    # x2 < x1 in a box file: the box file, the video and the frame are named.
    bad = json.loads((boxes / "validation/0002/2002.json").read_text())
    bad["trajectories"][17][0]["bbox"]["xmax"] = 1.0
    (boxes / "validation/0002/2002.json").write_text(json.dumps(bad))
    error = _error(raw(), boxes_dir=boxes)
    assert error.file.endswith("2002.json") and error.sample == "2002"
    assert error.field.startswith("trajectories.17.0.bbox")
    # A tid that is not an integer (a list cannot even be looked up).
    bad["trajectories"][17][0]["bbox"]["xmax"] = 300.0
    bad["trajectories"][10][0]["tid"] = [0]
    (boxes / "validation/0002/2002.json").write_text(json.dumps(bad))
    error = _error(raw(), boxes_dir=boxes)
    assert (error.sample, error.field) == ("2002", "trajectories.10.0.tid")
    assert "integer" in error.message
    # A missing box file.
    (boxes / "validation/0002/2002.json").unlink()
    error = _error(raw(), boxes_dir=boxes)
    assert (error.sample, error.field) == ("2002-e1-c0", "vid")
    # A missing box directory.
    error = _error(raw(), boxes_dir=tmp_path / "nowhere")
    assert error.field == "--boxes-dir"


def test_duplicate_box_files_are_refused(tmp_path: Path) -> None:
    boxes = tmp_path / "vidor"
    shutil.copytree(BOXES, boxes)
    (boxes / "training/0009").mkdir(parents=True)
    shutil.copy(boxes / "validation/0001/1001.json", boxes / "training/0009/1001.json")
    assert "found" in _error(raw(), boxes_dir=boxes).message


@pytest.mark.skipif(not REAL.exists(), reason=f"real VidSTG test sentences not found at {REAL}")
def test_real_vidstg_test_split() -> None:
    ann = load_annotations(REAL)
    entries = json.loads(REAL.read_text())
    # The numbers the papers give for the test split.
    assert len({s.video_id for s in ann.samples}) == 732
    assert len(ann.samples) == 10_303
    assert Counter(s.qtype for s in ann.samples) == {"declarative": 4610, "interrogative": 5693}
    assert len({s.sample_id for s in ann.samples}) == 10_303
    assert ann.has_boxes is False
    # Extended segments: exactly the queries whose raw tube ends one frame past the segment.
    expected = sum(
        len(e["captions"]) + len(e["questions"])
        for e in entries
        if e["temporal_gt"]["end_fid"] == e["used_segment"]["end_fid"] + 1
    )
    assert sum(1 for s in ann.samples if s.extra.get("segment_extended")) == expected
    for s in ann.samples:
        e = entries[s.extra["entry"]]
        assert s.tube == (e["temporal_gt"]["begin_fid"], e["temporal_gt"]["end_fid"])
        assert s.segment[0] == e["used_segment"]["begin_fid"]
        assert s.segment[1] == max(e["used_segment"]["end_fid"], e["temporal_gt"]["end_fid"])


def test_entry_copy_is_not_mutated() -> None:
    data = raw()
    before = copy.deepcopy(data)
    load_vidstg_raw(data, file="s.json", boxes_dir=BOXES)
    assert data == before
