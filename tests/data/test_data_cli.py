"""``stvg data stats`` and ``stvg data convert`` through the CLI, including bad input (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stvg.cli import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "vidstg"
NORMALIZED = FIXTURES / "normalized.json"
SENTENCES = FIXTURES / "test_annotations.json"
BOXES = FIXTURES / "vidor"
REAL = Path(__file__).resolve().parents[2].parent / "shared/data/vidstg/test_annotations.json"

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_stats_json_on_vidstg_fixture_with_boxes() -> None:
    result = run("data", "stats", "--annotations", SENTENCES, "--boxes-dir", BOXES, "--json")
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)  # exactly one JSON object on stdout
    assert stats["videos"] == 2 and stats["queries"] == 6
    assert stats["by_qtype"] == {"declarative": 3, "interrogative": 3}
    # Videos: 40 frames at 10 fps and 20 frames at 5 fps, 4 s each.
    assert stats["mean_video_seconds"] == pytest.approx(4.0)
    # Segments: 3 x [0, 30) at 10 fps, [10, 20) at 5 fps, 2 x [2, 20) at 10 fps.
    assert stats["mean_segment_seconds"] == pytest.approx((3 * 3.0 + 2.0 + 2 * 1.8) / 6)
    # Tubes: 3 x [5, 9) at 10 fps, [16, 20) at 5 fps, 2 x [6, 8) at 10 fps.
    assert stats["mean_tube_seconds"] == pytest.approx((3 * 0.4 + 0.8 + 2 * 0.2) / 6)
    assert stats["has_boxes"] is True
    assert stats["boxes"] == 4 + 3 + 4 + 4 + 1 + 1


def test_stats_table_on_normalized_fixture() -> None:
    result = run("data", "stats", "--annotations", NORMALIZED)
    assert result.exit_code == 0, result.output
    lines = {" ".join(ln.split()[:-1]): ln.split()[-1] for ln in result.stdout.splitlines()}
    assert lines["videos"] == "2" and lines["queries"] == "3"
    assert lines["declarative"] == "2" and lines["interrogative"] == "1"
    # v1: 100 frames at 25 fps, v2: 50 at 10 fps -> (4 + 5) / 2 s.
    assert "mean video length    4.50 s" in result.stdout
    # Tubes 3/25, 25/25, 50/10 s -> 2.04 s.
    assert "mean tube length     2.04 s" in result.stdout
    assert lines["boxes"] == "4"


def test_stats_sentence_only_says_so() -> None:
    result = run("data", "stats", "--annotations", SENTENCES)
    assert result.exit_code == 0
    assert "none (sentence-only)" in result.stdout
    assert "sentence-only" in result.stderr


@pytest.mark.skipif(not REAL.exists(), reason=f"real VidSTG test sentences not found at {REAL}")
def test_stats_on_real_vidstg_test_split() -> None:
    result = run("data", "stats", "--annotations", REAL, "--json")
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["videos"] == 732 and stats["queries"] == 10_303
    assert stats["by_qtype"] == {"declarative": 4610, "interrogative": 5693}
    assert stats["has_boxes"] is False


def test_convert_vidstg_with_boxes(tmp_path: Path) -> None:
    out = tmp_path / "norm" / "vidstg_test.json"
    result = run("data", "convert", SENTENCES, "--out", out, "--boxes-dir", BOXES)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"wrote 6 samples on 2 videos to {out}"
    doc = json.loads(out.read_text())
    assert doc["format"] == "stvg-annotations/1"
    assert (doc["dataset"], doc["split"], doc["has_boxes"]) == ("vidstg", "test", True)
    cat = doc["samples"][3]
    assert cat["sample_id"] == "2002-e1-c0" and cat["qtype"] == "declarative"
    assert cat["segment"] == [10, 20] and cat["tube"] == [16, 20]
    assert cat["boxes"] == {
        "16": [2.0, 3.0, 12.0, 13.0],
        "17": [2.5, 3.0, 12.5, 13.0],
        "18": [3.0, 3.0, 3.0, 13.0],
        "19": [3.5, 4.0, 13.5, 14.0],
    }
    # The written file is itself loadable (as normalized), with the same numbers.
    again = run("data", "stats", "--annotations", out, "--json")
    assert json.loads(again.stdout)["boxes"] == 17


def test_convert_sentence_only_and_forced_format(tmp_path: Path) -> None:
    out = tmp_path / "a.json"
    result = run("data", "convert", SENTENCES, "--out", out, "--format", "vidstg")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("(sentence-only: no boxes)")
    assert json.loads(out.read_text())["has_boxes"] is False


def test_convert_refuses_to_overwrite_its_source(tmp_path: Path) -> None:
    src = tmp_path / "n.json"
    src.write_bytes(NORMALIZED.read_bytes())
    result = run("data", "convert", src, "--out", src)
    assert result.exit_code == 2
    assert src.read_bytes() == NORMALIZED.read_bytes()


def _normalized(index: int | None = None, key: str = "", value=None) -> dict:
    doc = json.loads(NORMALIZED.read_text())
    if index is not None:
        doc["samples"][index][key] = value
    return doc


def _write(tmp_path: Path, content) -> Path:
    path = tmp_path / "bad.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(json.dumps(content))
    return path


def _assert_clean_failure(result, *names: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    # The error is one paragraph, the last thing on stderr (log lines may come before it).
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("Bad input:")
    assert result.stderr.count("Bad input:") == 1
    for name in names:
        assert name in message, (name, message)


# (document written to bad.json, sample and field the message must name)
BAD_NORMALIZED = [
    (lambda: _normalized(1, "fps", "fast"), "sample s2", "field 'fps'"),
    (
        lambda: _normalized(0, "boxes", {"11": [9.0, 2.0, 3.0, 22.0]}),
        "sample s1",
        "field 'boxes.11'",
    ),
    (lambda: _normalized(2, "tube", [40, 51]), "sample s3", "field 'tube'"),
    (lambda: _normalized(1, "sample_id", "s1"), "sample s1", "field 'sample_id'"),
    (lambda: _normalized(2, "frame_count", "50"), "sample s3", "field 'frame_count'"),
]


@pytest.mark.parametrize(("make", "sample", "field"), BAD_NORMALIZED)
@pytest.mark.parametrize("cmd", ["stats", "convert"])
def test_bad_normalized_input_exits_2(tmp_path: Path, make, sample, field, cmd) -> None:
    path = _write(tmp_path, make())
    if cmd == "stats":
        result = run("data", "stats", "--annotations", path)
    else:
        result = run("data", "convert", path, "--out", tmp_path / "out.json")
        assert not (tmp_path / "out.json").exists()
    _assert_clean_failure(result, str(path), sample, field)


def test_missing_field_exits_2(tmp_path: Path) -> None:
    doc = _normalized()
    del doc["samples"][2]["caption"]
    path = _write(tmp_path, doc)
    result = run("data", "stats", "--annotations", path)
    _assert_clean_failure(result, str(path), "sample s3", "field 'caption'")


def test_bad_raw_vidstg_exits_2(tmp_path: Path) -> None:
    data = json.loads(SENTENCES.read_text())
    data[2]["temporal_gt"]["begin_fid"] = 1  # before used_segment.begin_fid 2
    path = _write(tmp_path, data)
    result = run("data", "stats", "--annotations", path)
    _assert_clean_failure(
        result, str(path), "sample entry 2 (vid 1001)", "field 'temporal_gt.begin_fid'"
    )


def test_bad_box_file_exits_2(tmp_path: Path) -> None:
    import shutil

    boxes = tmp_path / "vidor"
    shutil.copytree(BOXES, boxes)
    box_file = boxes / "validation" / "0001" / "1001.json"
    doc = json.loads(box_file.read_text())
    doc["trajectories"][6][1]["bbox"]["ymax"] = 0  # tid 0, frame 6: y2 < y1
    box_file.write_text(json.dumps(doc))
    result = run("data", "convert", SENTENCES, "--out", tmp_path / "o.json", "--boxes-dir", boxes)
    _assert_clean_failure(result, str(box_file), "sample 1001", "field 'trajectories.6.1.bbox")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"format": "stvg-annotations/1", "samples": [}', "malformed JSON at line 1, column 46"),
        (b'[{"vid": "caf\xe9"}]', "not UTF-8"),
        ({"hello": "world"}, "normalized, tubedetr-vidstg, tubedetr-hcstvg, vidstg, hcstvg"),
    ],
)
def test_unreadable_files_exit_2(tmp_path: Path, content, expected) -> None:
    path = _write(tmp_path, content)
    result = run("data", "stats", "--annotations", path, "--json")
    _assert_clean_failure(result, str(path), expected)
    assert result.stdout == ""


def test_unknown_format_option_and_missing_file(tmp_path: Path) -> None:
    result = run("data", "stats", "--annotations", NORMALIZED, "--format", "coco")
    # a choice not offered: click's usage error, whose last line names the option
    assert result.exit_code == 2 and "Traceback" not in result.output
    last = result.stderr.strip().splitlines()[-1]
    assert "'--format'" in last and "'coco' is not one of" in last and "'tubedetr-vidstg'" in last
    result = run("data", "convert", tmp_path / "none.json", "--out", tmp_path / "o.json")
    _assert_clean_failure(result, "none.json", "does not exist")
