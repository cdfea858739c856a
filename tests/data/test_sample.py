"""The shared Sample record and the normalized format: round trip and every validation."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest

from stvg.data.sample import (
    FORMAT,
    Annotations,
    Sample,
    check_box,
    parse_box,
    read_normalized,
    write_json_atomic,
    write_normalized,
)
from stvg.errors import InputError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "vidstg" / "normalized.json"


def good_record() -> dict:
    return {
        "sample_id": "s1",
        "video_id": "v1",
        "video_path": "videos/v1.mp4",
        "fps": 25.0,
        "frame_count": 100,
        "width": 320,
        "height": 240,
        "segment": [10, 90],
        "tube": [20, 23],
        "boxes": {"20": [1.0, 2.0, 11.0, 22.0], "22": [0, 0, 0, 0]},
        "caption": "the red square moves right",
        "qtype": "declarative",
        "extra": {"kind": "easy"},
    }


def test_from_json_reads_every_field() -> None:
    s = Sample.from_json(good_record(), file="f.json")
    assert (s.sample_id, s.video_id, s.video_path) == ("s1", "v1", "videos/v1.mp4")
    assert (s.fps, s.frame_count, s.width, s.height) == (25.0, 100, 320, 240)
    assert s.segment == (10, 90) and s.tube == (20, 23)
    assert s.boxes == {20: (1.0, 2.0, 11.0, 22.0), 22: (0.0, 0.0, 0.0, 0.0)}
    assert s.caption == "the red square moves right" and s.qtype == "declarative"
    assert s.extra == {"kind": "easy"}


def test_integer_ids_and_missing_extra_are_accepted() -> None:
    record = good_record()
    record["sample_id"], record["video_id"] = 7, 8
    del record["extra"]
    s = Sample.from_json(record)
    assert (s.sample_id, s.video_id, s.extra) == ("7", "8", {})


def test_round_trip_through_a_file(tmp_path: Path) -> None:
    data = json.loads(FIXTURE.read_text())
    annotations = read_normalized(data, file=FIXTURE)
    assert [s.sample_id for s in annotations.samples] == ["s1", "s2", "s3"]
    assert (annotations.dataset, annotations.split, annotations.has_boxes) == ("toy", "val", True)
    out = tmp_path / "sub" / "out.json"
    write_normalized(annotations, out)
    again = read_normalized(json.loads(out.read_text()), file=out)
    assert again.samples == annotations.samples
    assert (again.dataset, again.split, again.has_boxes) == ("toy", "val", True)
    # Same samples, same bytes; no temporary file left behind.
    first = out.read_bytes()
    write_normalized(again, out)
    assert out.read_bytes() == first
    assert [p.name for p in out.parent.iterdir()] == ["out.json"]
    written = json.loads(first)
    assert written["format"] == FORMAT
    # Frame keys are written as sorted strings, boxes as floats.
    assert written["samples"][0]["boxes"] == {
        "10": [1.0, 2.0, 11.0, 22.0],
        "11": [2.0, 2.0, 12.0, 22.0],
        "12": [3.0, 2.0, 13.0, 22.0],
    }
    assert written["samples"][2]["fps"] == 10.0


def test_to_json_sorts_frames_numerically() -> None:
    s = Sample.from_json(good_record())
    s.tube = (2, 30)
    s.boxes = {10: (0, 0, 1, 1), 9: (0, 0, 1, 1), 21: (0, 0, 1, 1)}
    assert list(s.to_json()["boxes"]) == ["9", "10", "21"]


def test_write_json_atomic_creates_parents(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b.json"
    write_json_atomic(path, {"x": [1, 2]})
    assert path.read_text() == '{"x": [1, 2]}\n'


def _set(key, value):
    def mutate(r):
        r[key] = value

    return mutate


def _delete(key):
    def mutate(r):
        del r[key]

    return mutate


# (mutation of a good record, field the error must name)
BAD_RECORDS = [
    (_delete("fps"), "fps"),
    (_delete("boxes"), "boxes"),
    (_delete("caption"), "caption"),
    (_set("fps", "25"), "fps"),
    (_set("fps", True), "fps"),
    (_set("frame_count", 100.0), "frame_count"),
    (_set("width", None), "width"),
    (_set("video_path", 3), "video_path"),
    (_set("segment", [0]), "segment"),
    (_set("segment", [0, 1, 2]), "segment"),
    (_set("tube", [20.5, 23]), "tube"),
    (_set("tube", "20-23"), "tube"),
    (_set("boxes", [[1, 2, 3, 4]]), "boxes"),
    (_set("boxes", {"x": [1, 2, 3, 4]}), "boxes"),
    (_set("boxes", {"20": [1, 2, 3]}), "boxes.20"),
    (_set("boxes", {"20": [1, 2, "3", 4]}), "boxes.20"),
    (_set("boxes", {"20": [1, 2, True, 4]}), "boxes.20"),
    (_set("boxes", {"20": [5.0, 2.0, 4.0, 22.0]}), "boxes.20"),  # x2 < x1
    (_set("boxes", {"20": [1.0, 9.0, 4.0, 8.0]}), "boxes.20"),  # y2 < y1
    (_set("boxes", {"19": [1.0, 2.0, 4.0, 8.0]}), "boxes.19"),  # before the tube
    (_set("boxes", {"23": [1.0, 2.0, 4.0, 8.0]}), "boxes.23"),  # end is exclusive
    (_set("extra", []), "extra"),
    (_set("fps", 0), "fps"),
    (_set("fps", -25.0), "fps"),
    (_set("frame_count", 0), "frame_count"),
    (_set("width", -1), "width"),
    (_set("height", 0), "height"),
    (_set("segment", [-1, 90]), "segment"),
    (_set("segment", [50, 50]), "segment"),
    (_set("segment", [10, 101]), "segment"),  # past frame_count
    (_set("tube", [20, 20]), "tube"),  # empty
    (_set("tube", [5, 23]), "tube"),  # starts before the segment
    (_set("tube", [20, 91]), "tube"),  # ends after the segment
    (_set("caption", "   "), "caption"),
    (_set("qtype", "imperative"), "qtype"),
]


@pytest.mark.parametrize(("mutate", "field"), BAD_RECORDS)
def test_bad_record_names_file_sample_and_field(mutate, field) -> None:
    record = good_record()
    mutate(record)
    with pytest.raises(InputError) as info:
        Sample.from_json(record, file="ann.json", index=4)
    error = info.value
    assert (error.file, error.sample, error.field) == ("ann.json", "s1", field)
    text = str(error)
    assert "ann.json" in text and "sample s1" in text and f"field '{field}'" in text


def test_non_object_sample_is_named_by_index() -> None:
    with pytest.raises(InputError) as info:
        Sample.from_json(["not", "an", "object"], file="ann.json", index=4)
    assert info.value.sample == "4"


def test_nan_fps_and_nonfinite_boxes_are_refused() -> None:
    s = Sample.from_json(good_record())
    s.fps = math.nan
    with pytest.raises(InputError, match="fps"):
        s.validate()
    s = Sample.from_json(good_record())
    s.boxes = {20: (0.0, 0.0, math.inf, 1.0)}
    with pytest.raises(InputError, match="non-finite") as info:
        s.validate(file="x.json")
    assert info.value.field == "boxes.20"


def test_parse_and_check_box() -> None:
    assert parse_box([1, 2, 3, 4]) == (1.0, 2.0, 3.0, 4.0)
    assert parse_box((0, 0, 0, 0)) == (0.0, 0.0, 0.0, 0.0)  # zero area is allowed
    check_box((1.0, 1.0, 1.0, 1.0))
    with pytest.raises(InputError, match="x2 < x1"):
        check_box((2.0, 0.0, 1.0, 1.0), file="f", sample="s", field="b")
    with pytest.raises(InputError, match="expected"):
        parse_box({"x1": 1})


def test_read_normalized_refuses_other_documents() -> None:
    with pytest.raises(InputError) as info:
        read_normalized({"format": "stvg-annotations/2", "samples": []}, file="a.json")
    assert info.value.field == "format"
    with pytest.raises(InputError):
        read_normalized([good_record()], file="a.json")
    with pytest.raises(InputError) as info:
        read_normalized({"format": FORMAT, "samples": {"s1": good_record()}}, file="a.json")
    assert info.value.field == "samples"


def test_duplicate_ids_are_refused() -> None:
    second = copy.deepcopy(good_record())
    second["caption"] = "another sentence"
    with pytest.raises(InputError, match="more than once") as info:
        read_normalized({"format": FORMAT, "samples": [good_record(), second]}, file="a.json")
    assert (info.value.sample, info.value.field) == ("s1", "sample_id")


def test_annotations_defaults_and_by_id() -> None:
    data = json.loads(FIXTURE.read_text())
    del data["has_boxes"], data["dataset"], data["split"]
    annotations = read_normalized(data)
    assert (annotations.dataset, annotations.split, annotations.has_boxes) == (
        "custom",
        "test",
        True,
    )
    assert sorted(annotations.by_id()) == ["s1", "s2", "s3"]
    assert Annotations(samples=[]).to_json()["samples"] == []
