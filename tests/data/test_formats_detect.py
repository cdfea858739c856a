"""Format detection from content, forced formats, and reading files that are not JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stvg.data.formats import FORMATS, detect_format, load_annotations, read_json_file
from stvg.errors import InputError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "vidstg"
NORMALIZED = FIXTURES / "normalized.json"
SENTENCES = FIXTURES / "test_annotations.json"


def test_formats_tuple() -> None:
    assert FORMATS == ("normalized", "tubedetr-vidstg", "tubedetr-hcstvg", "vidstg", "hcstvg")


def test_detects_normalized_and_vidstg_from_content(tmp_path: Path) -> None:
    assert detect_format(json.loads(NORMALIZED.read_text())) == "normalized"
    assert detect_format(json.loads(SENTENCES.read_text())) == "vidstg"
    # The file name plays no part.
    odd = tmp_path / "train_proc.json"
    odd.write_bytes(SENTENCES.read_bytes())
    assert load_annotations(odd).source_format == "vidstg"


@pytest.mark.parametrize(
    "data",
    [{"a": 1}, [], {}, [1, 2], "text", 3, [{"vid": "1"}]],
)
def test_unknown_content_lists_known_formats(data) -> None:
    with pytest.raises(InputError) as info:
        detect_format(data)
    text = str(info.value)
    assert all(name in text for name in FORMATS)
    assert "--format" in text


def test_unknown_format_string_and_unknown_format_name(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"format": "stvg-annotations/9", "samples": []}))
    with pytest.raises(InputError, match="stvg-annotations/9") as info:
        load_annotations(path)
    assert (info.value.file, info.value.field) == (str(path), "format")
    with pytest.raises(InputError, match="known formats") as info:
        load_annotations(NORMALIZED, "coco")
    assert info.value.field == "--format"


def test_describes_what_was_seen(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text(json.dumps([{"zebra": 1, "apple": 2}]))
    with pytest.raises(InputError) as info:
        load_annotations(path)
    assert "a list of 1 items" in str(info.value) and "{apple, zebra}" in str(info.value)
    assert info.value.file == str(path)


def test_forced_format_that_does_not_fit() -> None:
    with pytest.raises(InputError, match="list of VidSTG"):
        load_annotations(NORMALIZED, "vidstg")
    with pytest.raises(InputError, match="stvg-annotations/1"):
        load_annotations(SENTENCES, "normalized")


def test_boxes_dir_only_for_vidstg() -> None:
    with pytest.raises(InputError) as info:
        load_annotations(NORMALIZED, boxes_dir=FIXTURES / "vidor")
    assert info.value.field == "--boxes-dir"


def test_malformed_json_gives_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "a": 1,\n  "b": }\n')
    with pytest.raises(InputError) as info:
        read_json_file(path)
    # The '}' is the 8th character of line 3.
    assert "line 3, column 8" in str(info.value) and str(path) in str(info.value)


def test_non_utf8_missing_and_directory(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'["caf\xe9"]')
    with pytest.raises(InputError, match="not UTF-8.*0xe9 at offset 5"):
        read_json_file(path)
    with pytest.raises(InputError, match="does not exist"):
        load_annotations(tmp_path / "nope.json")
    with pytest.raises(InputError, match="directory"):
        load_annotations(tmp_path)


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + NORMALIZED.read_bytes())
    assert len(load_annotations(path).samples) == 3


# Minimal documents in the shape of TubeDETR's preprocessed files and raw HC-STVG.
TUBEDETR_VIDSTG = {
    "videos": [
        {
            "original_video_id": "1001",
            "frame_count": 40,
            "fps": 10.0,
            "width": 64,
            "height": 48,
            "start_frame": 0,
            "end_frame": 30,
            "tube_start_frame": 5,
            "tube_end_frame": 7,
            "video_path": "0001/1001.mp4",
            "caption": "an adult leads a dog.",
            "type": "person",
            "target_id": 0,
            "video_id": 0,
            "qtype": "declarative",
        }
    ],
    "trajectories": {
        "1001": {
            "0": {
                "5": {"bbox": [5, 10, 20, 30], "generated": 0, "tracker": "none", "category_id": 0},
                "6": {"bbox": [6, 10, 20, 30], "generated": 0, "tracker": "none", "category_id": 0},
            }
        }
    },
}
TUBEDETR_HCSTVG = [
    {
        "original_video_id": "1_aa",
        "frame_count": 100,
        "width": 64,
        "height": 48,
        "tube_start_frame": 11,
        "tube_end_frame": 13,
        "tube_start_time": 2.1,
        "tube_end_time": 2.6,
        "video_path": "1/1_aa.mp4",
        "caption": "the man in red turns around.",
        "video_id": 0,
        "trajectory": [[1, 2, 10, 20], [2, 2, 10, 20]],
    }
]
HCSTVG_RAW = {
    "1_aa.mp4": {
        "bbox": [[1, 2, 10, 20], [2, 2, 10, 20]],
        "st_time": 2.1,
        "ed_time": 2.6,
        "img_num": 100,
        "caption": "the man in red turns around.",
        "width": 64,
        "height": 48,
        "st_frame": 11,
    }
}


def test_detects_tubedetr_formats() -> None:
    pytest.importorskip("stvg.data.formats.tubedetr")
    assert detect_format(TUBEDETR_VIDSTG) == "tubedetr-vidstg"
    assert detect_format(TUBEDETR_HCSTVG) == "tubedetr-hcstvg"


def test_detects_hcstvg_raw() -> None:
    pytest.importorskip("stvg.data.formats.hcstvg")
    assert detect_format(HCSTVG_RAW) == "hcstvg"
