"""TubeDETR preprocessed (VidSTG, HC-STVG) and raw HC-STVG (v1, v2) loaders on hand-written fixtures.

Expected values are read off the fixture files by hand: xywh -> xyxy is (x, y, x + w, y + h);
raw HC-STVG ids are st_frame - 1 + i (0-based); TubeDETR ids are kept as given.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from stvg.data.formats.hcstvg import load_hcstvg_raw, looks_like_hcstvg_raw
from stvg.data.formats.tubedetr import (
    load_tubedetr_hcstvg,
    load_tubedetr_vidstg,
    looks_like_tubedetr_hcstvg,
    looks_like_tubedetr_vidstg,
)
from stvg.errors import InputError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TD_VIDSTG = FIXTURES / "tubedetr" / "vidstg_test.json"
TD_HCSTVG = FIXTURES / "tubedetr" / "hcstvg_test_proc.json"
HC_V1 = FIXTURES / "hcstvg" / "test.json"
HC_V2 = FIXTURES / "hcstvg" / "valv2.json"


def raw(path):
    return json.loads(path.read_text())


def test_detectors_accept_their_own_format_only():
    docs = {p: raw(p) for p in (TD_VIDSTG, TD_HCSTVG, HC_V1, HC_V2)}
    detectors = {
        looks_like_tubedetr_vidstg: {TD_VIDSTG},
        looks_like_tubedetr_hcstvg: {TD_HCSTVG},
        looks_like_hcstvg_raw: {HC_V1, HC_V2},
    }
    for detect, mine in detectors.items():
        for path, doc in docs.items():
            assert detect(doc) == (path in mine), (detect.__name__, path.name)
        assert not detect([]) and not detect({}) and not detect({"format": "stvg-annotations/1"})


@pytest.mark.parametrize(
    "path, fmt",
    [
        (TD_VIDSTG, "tubedetr-vidstg"),
        (TD_HCSTVG, "tubedetr-hcstvg"),
        (HC_V1, "hcstvg"),
        (HC_V2, "hcstvg"),
    ],
)
def test_load_annotations_detects_the_format(path, fmt):
    from stvg.data.formats import load_annotations

    annotations = load_annotations(path)
    assert annotations.source_format == fmt and annotations.has_boxes


def test_tubedetr_vidstg_mapping():
    ann = load_tubedetr_vidstg(raw(TD_VIDSTG), file=TD_VIDSTG)
    assert [s.sample_id for s in ann.samples] == ["0", "1", "2", "3", "4"]
    assert (ann.dataset, ann.split) == ("vidstg", "test")
    s0 = ann.by_id()["0"]
    assert (s0.video_id, s0.fps, s0.frame_count, s0.width, s0.height) == (
        "1001",
        10.0,
        60,
        320,
        240,
    )
    assert (s0.segment, s0.tube, s0.qtype) == ((10, 50), (20, 30), "interrogative")
    assert s0.caption == "who walks to the door?" and s0.video_path == "0001/1001.mp4"
    assert sorted(s0.boxes) == list(range(20, 30))  # frame 30 of the trajectory is outside the tube
    assert s0.boxes[20] == (40, 30, 100, 110)  # [40, 30, 60, 80] -> 40 + 60, 30 + 80
    assert s0.extra["target_id"] == 0 and s0.extra["target_type"] == "adult"
    s1 = ann.by_id()["1"]
    assert s1.tube == (10, 16) and sorted(s1.boxes) == list(range(10, 16))  # 9 and 16 dropped
    assert ann.by_id()["2"].boxes[259] == (114, 204, 238, 267)  # [114, 204, 124, 63]
    assert "sampling_segment" not in s0.extra


def test_tubedetr_vidstg_tube_past_the_segment_end():
    # tube_end_frame 97 == end_frame 96 + 1 == frame_count: segment grows to hold the tube,
    # sampling keeps TubeDETR's [start_frame, end_frame)
    s4 = load_tubedetr_vidstg(raw(TD_VIDSTG), file=TD_VIDSTG).by_id()["4"]
    assert (s4.segment, s4.tube) == ((0, 97), (90, 97))
    assert s4.extra["sampling_segment"] == [0, 96]
    # any other tube outside its segment is refused
    data = raw(TD_VIDSTG)
    data["videos"][0]["tube_end_frame"] = 52  # end_frame is 50
    with pytest.raises(InputError) as info:
        load_tubedetr_vidstg(data, file="x.json")
    assert (info.value.sample, info.value.field) == ("0", "tube")


def test_tubedetr_hcstvg_mapping():
    ann = load_tubedetr_hcstvg(raw(TD_HCSTVG), file=TD_HCSTVG)
    assert (ann.dataset, ann.split, len(ann.samples)) == ("hcstvg", "test", 3)
    s0 = ann.by_id()["0"]
    # ids as given: tube_start_frame 1 (HC-STVG's 1-based st_frame), 6 boxes -> [1, 7)
    assert (s0.tube, sorted(s0.boxes)) == ((1, 7), [1, 2, 3, 4, 5, 6])
    assert s0.boxes[1] == (100, 50, 180, 250)  # [100, 50, 80, 200]
    assert (s0.fps, s0.segment, s0.qtype) == (5.0, (0, 100), "declarative")  # 100 / 20
    assert s0.extra["sampling_segment"] == [0, 99]
    assert s0.video_id == "10_aaaaaaaaaaa" and s0.video_path == "10/10_aaaaaaaaaaa.mp4"
    s2 = ann.by_id()["2"]
    # st_frame 116 + 5 boxes = 121 > frame_count 120: the tube runs through the last frame
    assert (s2.tube, s2.frame_count, s2.segment, s2.fps) == ((116, 121), 121, (0, 121), 6.0)
    assert s2.extra["frame_count_in_file"] == 120 and s2.extra["sampling_segment"] == [0, 119]


def test_hcstvg_raw_v1_mapping():
    ann = load_hcstvg_raw(raw(HC_V1), file=HC_V1)
    assert (ann.dataset, ann.split, ann.source_format) == ("hcstvg-v1", "test", "hcstvg")
    s = ann.by_id()["7_bbbbbbbbbbb.mkv"]
    # st_frame 111 (1-based) -> first 0-based frame 110; 10 boxes -> [110, 120) = the video's end
    assert (s.tube, s.frame_count, s.segment, s.fps) == ((110, 120), 120, (0, 120), 6.0)
    assert s.boxes[110] == (200, 50, 260, 170)  # [200, 50, 60, 120]
    assert s.boxes[119] == (209, 54, 273, 177)  # [209, 54, 64, 123]
    assert (s.video_id, s.width, s.height, s.qtype) == ("7_bbbbbbbbbbb", 640, 480, "declarative")
    assert s.extra["st_frame"] == 111 and s.extra["sampling_segment"] == [0, 119]
    assert s.video_path == "7_bbbbbbbbbbb.mkv"
    assert ann.by_id()["3_aaaaaaaaaaa.mp4"].tube == (0, 5)  # st_frame 1: the very first frame


def test_hcstvg_raw_v2_mapping():
    ann = load_hcstvg_raw(raw(HC_V2), file=HC_V2)
    assert (ann.dataset, ann.split) == ("hcstvg-v2", "val")
    s = ann.by_id()["20_ddddddddddd.mp4"]
    assert (s.width, s.height) == (640, 360)  # img_size is [height, width]
    assert s.caption == "The man with glasses nods and leaves."  # from "English"
    assert (s.tube, s.fps) == ((31, 37), 6.25)  # st_frame 32, 6 boxes; 125 / 20


def test_hcstvg_raw_video_root(tmp_path):
    (tmp_path / "part1").mkdir()
    (tmp_path / "part1" / "3_aaaaaaaaaaa.mp4").write_bytes(b"")
    ann = load_hcstvg_raw(raw(HC_V1), file=HC_V1, video_root=tmp_path)
    paths = {s.sample_id: s.video_path for s in ann.samples}
    assert paths["3_aaaaaaaaaaa.mp4"] == str(tmp_path / "part1" / "3_aaaaaaaaaaa.mp4")
    assert paths["12_ccccccccccc.mp4"] == str(tmp_path / "12_ccccccccccc.mp4")  # not found


def bad(data, key, **changes):
    data = copy.deepcopy(data)
    for name, value in changes.items():
        if value is None:
            data[key].pop(name)
        else:
            data[key][name] = value
    return data


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"img_num": None}, "img_num"),
        ({"st_frame": 0}, "st_frame"),
        ({"bbox": [[10, 20, -5, 40]]}, "bbox.0"),  # w < 0 -> x2 < x1
        ({"bbox": [[10, 20, 30]]}, "bbox.0"),
        ({"st_frame": 98}, "bbox"),  # 5 boxes from 98 end at 1-based 102 > img_num 100
        ({"caption": None}, "caption"),
    ],
)
def test_hcstvg_raw_errors_name_file_sample_field(changes, field):
    data = bad(raw(HC_V1), "3_aaaaaaaaaaa.mp4", **changes)
    with pytest.raises(InputError) as info:
        load_hcstvg_raw(data, file=HC_V1)
    error = info.value
    assert (error.file, error.sample, error.field) == (str(HC_V1), "3_aaaaaaaaaaa.mp4", field)


def test_tubedetr_errors_name_file_sample_field():
    data = raw(TD_VIDSTG)
    del data["trajectories"]["1003"]
    with pytest.raises(InputError) as info:
        load_tubedetr_vidstg(data, file=TD_VIDSTG)
    assert (info.value.sample, info.value.field) == ("3", "target_id")
    data = raw(TD_VIDSTG)
    del data["videos"][1]["fps"]
    with pytest.raises(InputError) as info:
        load_tubedetr_vidstg(data, file=TD_VIDSTG)
    assert (info.value.sample, info.value.field) == ("1", "fps")
    data = raw(TD_HCSTVG)
    data[1]["tube_end_frame"] = 149  # 10 boxes from 140 end at 150
    with pytest.raises(InputError) as info:
        load_tubedetr_hcstvg(data, file=TD_HCSTVG)
    assert (info.value.file, info.value.sample, info.value.field) == (
        str(TD_HCSTVG),
        "1",
        "tube_end_frame",
    )
    data = raw(TD_HCSTVG)
    data[0]["trajectory"][2] = [10, 10, 5, -1]  # h < 0 -> y2 < y1
    with pytest.raises(InputError) as info:
        load_tubedetr_hcstvg(data, file=TD_HCSTVG)
    assert info.value.field == "trajectory.2"
