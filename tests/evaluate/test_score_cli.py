"""``score()`` aggregation and ``stvg score`` through the CLI, on hand-computed numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sample_factory import make_sample
from typer.testing import CliRunner

from stvg.cli import app
from stvg.data.sample import Annotations, write_normalized
from stvg.errors import InputError
from stvg.evaluate import format_table, score
from stvg.evaluate.predictions import (
    Prediction,
    parse_predictions,
    read_predictions,
    write_predictions,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HCSTVG = FIXTURES / "hcstvg" / "test.json"
VIDSTG = FIXTURES / "tubedetr" / "vidstg_test.json"
BOX = (0.0, 0.0, 10.0, 10.0)
runner = CliRunner()


def sample(sid, tube, qtype="declarative", boxes=True):
    return make_sample(sid, tube, box=BOX if boxes else None, fps=5.0, qtype=qtype)


def perfect(tube, frames=range(10)):
    return Prediction(tube=tube, boxes={f: BOX for f in frames})


def two_samples():
    return Annotations(samples=[sample("a", (2, 6)), sample("b", (0, 4), "interrogative")])


def test_groups_and_means_by_hand():
    # a: identical -> tIoU 1, vIoU 1, sIoU 1. b: GT [0, 4), pred [0, 2) -> tIoU 2/4, vIoU 2/4, sIoU 1
    results = score(two_samples(), {"a": perfect((2, 6)), "b": perfect((0, 2))})
    assert list(results) == ["declarative", "interrogative", "all"]
    assert results["declarative"] == {
        "m_tIoU": 1.0, "m_vIoU": 1.0, "vIoU@0.3": 1.0, "vIoU@0.5": 1.0, "m_sIoU": 1.0, "count": 1
    }  # fmt: skip
    assert results["interrogative"] == {
        "m_tIoU": 0.5, "m_vIoU": 0.5, "vIoU@0.3": 1.0, "vIoU@0.5": 0.0, "m_sIoU": 1.0, "count": 1
    }  # fmt: skip
    # all: (1 + 0.5) / 2 = 0.75; vIoU@0.5: one of two above 0.5 -> 0.5
    assert results["all"] == {
        "m_tIoU": 0.75, "m_vIoU": 0.75, "vIoU@0.3": 1.0, "vIoU@0.5": 0.5, "m_sIoU": 1.0, "count": 2
    }  # fmt: skip
    table = format_table(results, "tubedetr")
    assert "tubedetr" in table and "75.00" in table and "interrogative" in table


def test_json_style_records_are_accepted():
    records = {
        "a": {"tube": [2, 6], "boxes": {f: list(BOX) for f in range(10)}},
        "b": {"tube": [0, 2], "boxes": {str(f): list(BOX) for f in range(10)}},
    }
    assert score(two_samples(), records)["all"]["m_tIoU"] == 0.75  # as above: (1 + 0.5) / 2
    with pytest.raises(InputError) as info:
        score(two_samples(), {"a": {"tube": [2, 6], "boxes": {3: [5, 0, 1, 1]}}, "b": records["b"]})
    assert (info.value.sample, info.value.field) == ("a", "boxes.3")


def test_missing_predictions_error_or_zero():
    with pytest.raises(InputError) as info:
        score(two_samples(), {"a": perfect((2, 6))})
    assert "1 of 2" in str(info.value) and info.value.sample == "b"
    results = score(two_samples(), {"a": perfect((2, 6))}, missing="zero")
    # b scores 0 everywhere: means (1 + 0) / 2
    assert results["all"]["m_tIoU"] == 0.5 and results["all"]["m_sIoU"] == 0.5
    assert results["interrogative"]["vIoU@0.3"] == 0.0


def test_missing_list_is_capped_at_20():
    annotations = Annotations(samples=[sample(f"s{i:02d}", (0, 4)) for i in range(25)])
    with pytest.raises(InputError) as info:
        score(annotations, {})
    text = str(info.value)
    assert "s19" in text and "s20" not in text and "and 5 more" in text


def test_unknown_sample_is_refused():
    with pytest.raises(InputError) as info:
        score(two_samples(), {"a": perfect((2, 6)), "b": perfect((0, 2)), "zzz": perfect((0, 1))})
    assert info.value.sample == "zzz"


def test_sentence_only_reports_tiou_only():
    annotations = Annotations(samples=[sample("a", (2, 6), boxes=False)], has_boxes=False)
    results = score(annotations, {"a": Prediction(tube=(4, 6))})
    assert results["all"]["m_tIoU"] == 0.5  # 2 / 4
    assert results["all"]["m_vIoU"] is None and results["all"]["m_sIoU"] is None
    assert "sentence-only" in format_table(results, "tubedetr")


def test_predictions_round_trip(tmp_path):
    path = tmp_path / "p.json"
    write_predictions(path, {"a": Prediction(tube=(1, 3), boxes={2: (1.0, 2.0, 3.0, 4.0)})})
    data = json.loads(path.read_text())
    assert data == {
        "format": "stvg-predictions/1",
        "predictions": {"a": {"tube": [1, 3], "boxes": {"2": [1.0, 2.0, 3.0, 4.0]}}},
    }
    assert read_predictions(path).by_id["a"].boxes == {2: (1.0, 2.0, 3.0, 4.0)}
    with pytest.raises(InputError) as info:
        parse_predictions({"format": "stvg-predictions/1", "predictions": {"a": {"tube": [3, 1]}}})
    assert info.value.field == "tube"


# ---------------------------------------------------------------- the CLI


def hcstvg_gt_predictions(drop=()):
    """Predictions equal to the raw HC-STVG fixture's GT, in stvg's 0-based ids."""
    raw = json.loads(HCSTVG.read_text())
    out = {}
    for key, a in raw.items():
        if key in drop:
            continue
        st0 = a["st_frame"] - 1
        boxes = {str(st0 + i): [x, y, x + w, y + h] for i, (x, y, w, h) in enumerate(a["bbox"])}
        out[key] = {"tube": [st0, st0 + len(a["bbox"])], "boxes": boxes}
    return out


def write(tmp_path, predictions, name="pred.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"format": "stvg-predictions/1", "predictions": predictions}))
    return path


def run(*args):
    result = runner.invoke(app, ["score", *map(str, args)])
    assert "Traceback" not in result.output
    return result


def test_cli_hcstvg_perfect_predictions(tmp_path):
    pred = write(tmp_path, hcstvg_gt_predictions())
    out = tmp_path / "out.json"
    result = run(
        "--annotations", HCSTVG, "--predictions", pred, "--protocol", "hcstvg", "--json-out", out
    )
    assert result.exit_code == 0, result.output
    assert "hcstvg" in result.stdout and "100.00" in result.stdout
    data = json.loads(out.read_text())
    assert set(data) == {"declarative", "all"}
    assert data["all"] == {
        "m_tIoU": 1.0, "m_vIoU": 1.0, "vIoU@0.3": 1.0, "vIoU@0.5": 1.0, "m_sIoU": 1.0, "count": 3
    }  # fmt: skip


def test_cli_tubedetr_vidstg_perfect_predictions(tmp_path):
    raw = json.loads(VIDSTG.read_text())
    preds = {}
    for v in raw["videos"]:
        traj = raw["trajectories"][v["original_video_id"]][str(v["target_id"])]
        boxes = {}
        for f in range(v["start_frame"], v["end_frame"] + 1):
            x, y, w, h = traj.get(str(f), {"bbox": [0, 0, 1, 1]})["bbox"]
            boxes[str(f)] = [x, y, x + w, y + h]
        preds[str(v["video_id"])] = {
            "tube": [v["tube_start_frame"], v["tube_end_frame"]],
            "boxes": boxes,
        }
    out = tmp_path / "out.json"
    result = run(
        "--annotations", VIDSTG, "--predictions", write(tmp_path, preds), "--json-out", out
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["declarative"]["count"] == 3 and data["interrogative"]["count"] == 2
    assert all(data[g][m] == 1.0 for g in data for m in data[g] if m != "count")


def test_cli_missing_zero_and_missing_error(tmp_path):
    pred = write(tmp_path, hcstvg_gt_predictions(drop={"7_bbbbbbbbbbb.mkv"}))
    out = tmp_path / "out.json"
    args = ["--annotations", HCSTVG, "--predictions", pred, "--protocol", "hcstvg"]
    result = run(*args, "--missing", "zero", "--json-out", out)
    assert result.exit_code == 0, result.output
    # two perfect samples and one 0: every mean is 2/3
    data = json.loads(out.read_text())["all"]
    assert data["m_vIoU"] == pytest.approx(2 / 3, abs=1e-15) and data["vIoU@0.5"] == pytest.approx(
        2 / 3
    )
    result = run(*args)
    assert result.exit_code == 2
    assert "7_bbbbbbbbbbb.mkv" in result.stderr and "--missing zero" in result.stderr


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda p: p["3_aaaaaaaaaaa.mp4"].pop("tube"), ["3_aaaaaaaaaaa.mp4", "'tube'"]),
        (
            lambda p: p["7_bbbbbbbbbbb.mkv"]["boxes"].update({"110": [50, 0, 40, 10]}),
            ["7_bbbbbbbbbbb.mkv", "'boxes.110'", "x2 < x1"],
        ),
        (
            lambda p: p.update({"99_zzz.mp4": {"tube": [0, 1]}}),
            ["99_zzz.mp4", "not in the annotations"],
        ),
        (
            lambda p: p["3_aaaaaaaaaaa.mp4"].update({"tube": [5, 2]}),
            ["3_aaaaaaaaaaa.mp4", "'tube'"],
        ),
    ],
)
def test_cli_bad_predictions_exit_2(tmp_path, mutate, expected):
    preds = hcstvg_gt_predictions()
    mutate(preds)
    pred = write(tmp_path, preds)
    result = run("--annotations", HCSTVG, "--predictions", pred)
    assert result.exit_code == 2, result.output
    message = result.stderr
    assert str(pred) in message
    for text in expected:
        assert text in message


def test_cli_malformed_json_exit_2(tmp_path):
    pred = tmp_path / "broken.json"
    pred.write_text('{"format": "stvg-predictions/1", "predictions": {')
    result = run("--annotations", HCSTVG, "--predictions", pred)
    assert result.exit_code == 2
    assert "broken.json" in result.stderr and "malformed JSON" in result.stderr


def test_cli_not_a_predictions_file_and_unknown_protocol(tmp_path):
    result = run("--annotations", HCSTVG, "--predictions", HCSTVG)
    assert result.exit_code == 2 and "stvg-predictions/1" in result.stderr
    pred = write(tmp_path, hcstvg_gt_predictions())
    result = run("--annotations", HCSTVG, "--predictions", pred, "--protocol", "vidstg")
    assert result.exit_code == 2 and "--protocol" in result.stderr and "stcat" in result.stderr


def test_cli_tubedetr_needs_boxes_on_sampled_gt_frames(tmp_path):
    preds = hcstvg_gt_predictions()
    del preds["12_ccccccccccc.mp4"]["boxes"]["50"]  # fps 7.5, r = 2/3: frames = 0, 2 mod 3 kept
    result = run("--annotations", HCSTVG, "--predictions", write(tmp_path, preds))
    assert result.exit_code == 2
    assert "12_ccccccccccc.mp4" in result.stderr and "'boxes.50'" in result.stderr


def test_cli_group_by_an_extra_key(tmp_path):
    # three samples of two kinds (one without the key: group "-"); b is half right
    samples = [sample("a", (2, 6)), sample("b", (0, 4)), sample("c", (4, 8))]
    samples[0].extra["kind"], samples[1].extra["kind"] = "easy", "hard"
    ann = tmp_path / "ann.json"
    write_normalized(Annotations(samples=samples), ann)
    preds = {"a": perfect((2, 6)), "b": perfect((0, 2)), "c": perfect((4, 8))}
    pred = tmp_path / "pred.json"
    write_predictions(pred, preds)
    out = tmp_path / "out.json"
    result = run(
        "--annotations", ann, "--predictions", pred, "--group-by", "extra.kind", "--json-out", out
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert list(data) == ["-", "easy", "hard", "all"]
    assert [data[g]["m_tIoU"] for g in data] == [1.0, 1.0, 0.5, pytest.approx(2.5 / 3)]
    assert "easy" in result.stdout and "hard" in result.stdout
    bad = run("--annotations", ann, "--predictions", pred, "--group-by", "kind")
    assert bad.exit_code == 2 and "--group-by" in bad.output and "extra.kind" in bad.output
