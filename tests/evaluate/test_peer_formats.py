"""Predictions of TubeDETR, STCAT and the official HC-STVG script: readers and writers by hand,
exact round trips between every pair of formats, equal scores for a converted file, the official
HC-STVG script (an independent port below) on an exported file, bad input, provenance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from stvg.cli import app
from stvg.data.formats import load_annotations
from stvg.errors import InputError
from stvg.evaluate.peer_formats import FORMATS, convert, detect_format, read_any, write_any
from stvg.evaluate.predict import prediction_provenance
from stvg.evaluate.predictions import (
    Prediction,
    Predictions,
    parse_predictions,
    read_predictions,
    write_predictions,
)
from stvg.evaluate.score import score

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HCSTVG = FIXTURES / "hcstvg" / "test.json"
VIDSTG = FIXTURES / "tubedetr" / "vidstg_test.json"
runner = CliRunner()

A = [1.0, 2.0, 30.0, 40.0]
B = [5.0, 6.0, 70.0, 80.0]
C = [0.5, 0.25, 9.0, 9.5]


def cli(*args):
    result = runner.invoke(app, [*map(str, args)])
    assert "Traceback" not in result.output
    return result


# ---------------------------------------------------------------- each format by hand


def tubedetr_document():
    """TubeDETR's shapes: '<video_id>_<frame_id>' keys, one box in a list, sted floats."""
    return {
        "predictions": {
            "7_10": {"boxes": [A]},
            "7_12": {"boxes": [B]},
            "12_3": {"boxes": [C]},
        },
        "video_predictions": {
            "7": {"sted": [10.0, 13.0], "qtype": "declarative"},
            "12": {"sted": [3.0, 4.0], "qtype": "interrogative"},
        },
    }


def test_tubedetr_read_by_hand(tmp_path):
    path = tmp_path / "tubedetr.json"
    path.write_text(json.dumps(tubedetr_document()))
    preds = read_any(path)
    assert set(preds.by_id) == {"7", "12"}
    assert preds.by_id["7"] == Prediction(
        tube=(10, 13), boxes={10: tuple(A), 12: tuple(B)}, extra={"qtype": "declarative"}
    )
    assert preds.by_id["12"].tube == (3, 4) and preds.by_id["12"].boxes == {3: tuple(C)}
    assert preds.provenance["converted_from"] == "tubedetr"
    assert preds.provenance["source"] == "tubedetr.json"
    # TubeDETR's log_stats.json nests the evaluator's summary under test_<dataset>_<dataset>
    path.write_text(json.dumps({"test_vidstg_vidstg": tubedetr_document(), "epoch": 3}))
    assert read_any(path).by_id == preds.by_id


def test_tubedetr_write_by_hand(tmp_path):
    preds = {
        "s_1": Prediction(tube=(4, 6), boxes={4: tuple(A), 9: tuple(B)}),
    }
    path = tmp_path / "out.json"
    write_any(path, preds, "tubedetr")
    assert json.loads(path.read_text()) == {
        "predictions": {"s_1_4": {"boxes": [A]}, "s_1_9": {"boxes": [B]}},
        "video_predictions": {"s_1": {"sted": [4.0, 6.0]}},
    }
    # a sample id with "_" still parses: the frame is after the last "_"
    assert read_any(path).by_id["s_1"].boxes == {4: tuple(A), 9: tuple(B)}


def stcat_document():
    """STCAT's test_results.pt: int item ids and frame ids, [[box]], metrics as numpy floats."""
    return {
        "gt_viou": np.float64(0.25),
        "tiou": 0.5,
        "predictions": {0: {20: [A], 21: [B]}, 1: {5: [C]}},
        "video_predictions": {0: {"sted": [20, 22]}, 1: {"sted": [5, 5]}},
        "vid_metrics": {0: {"viou": np.float64(0.1), "tiou": 0.2, "ious": np.zeros(3)}},
        "vid2names": {0: "3_aaaaaaaaaaa.mp4", 1: "7_bbbbbbbbbbb.mkv"},
        "vid2sents": {0: "a man", 1: "a woman"},
    }


def test_stcat_read_pt_by_hand(tmp_path):
    path = tmp_path / "test_results.pt"
    torch.save(stcat_document(), path)
    preds = read_any(path)
    assert preds.by_id["0"] == Prediction(
        tube=(20, 22), boxes={20: tuple(A), 21: tuple(B)}, extra={"video_name": "3_aaaaaaaaaaa.mp4"}
    )
    assert preds.by_id["1"].tube == (5, 5) and preds.by_id["1"].boxes == {5: tuple(C)}
    # written back as a .pt: STCAT's int keys; as JSON: string keys
    write_any(tmp_path / "back.pt", preds, "stcat")
    back = torch.load(tmp_path / "back.pt", weights_only=True)
    assert back["predictions"] == {0: {20: [A], 21: [B]}, 1: {5: [C]}}
    assert back["video_predictions"] == stcat_document()["video_predictions"]
    assert back["vid2names"] == stcat_document()["vid2names"]
    write_any(tmp_path / "back.json", preds, "stcat")
    data = json.loads((tmp_path / "back.json").read_text())
    assert data["predictions"] == {"0": {"20": [A], "21": [B]}, "1": {"5": [C]}}
    assert data["video_predictions"] == {"0": {"sted": [20, 22]}, "1": {"sted": [5, 5]}}


def test_hcstvg_read_and_write_by_hand(tmp_path):
    path = tmp_path / "official.json"
    # 1-based frames, ed_frame inclusive: frames 11..14 -> stvg's [10, 14)
    path.write_text(
        json.dumps({"a.mp4": {"st_frame": 11, "ed_frame": 14, "bbox": {"11": A, "14": B}}})
    )
    preds = read_any(path)
    assert preds.by_id["a.mp4"] == Prediction(tube=(10, 14), boxes={10: tuple(A), 13: tuple(B)})
    # boxes outside the tube are set aside where the script does not look
    out = tmp_path / "out.json"
    write_any(
        out, {"a.mp4": Prediction(tube=(10, 14), boxes={9: tuple(C), 10: tuple(A)})}, "hcstvg"
    )
    assert json.loads(out.read_text()) == {
        "a.mp4": {
            "st_frame": 11,
            "ed_frame": 14,
            "bbox": {"11": A},
            "boxes_outside_span": {"10": C},
        }
    }
    assert read_any(out).by_id["a.mp4"].boxes == {9: tuple(C), 10: tuple(A)}
    # an empty span [5, 5) -> st_frame 6, ed_frame 5, and back
    write_any(out, {"e": Prediction(tube=(5, 5))}, "hcstvg")
    assert json.loads(out.read_text())["e"] == {"st_frame": 6, "ed_frame": 5, "bbox": {}}
    assert read_any(out).by_id["e"].tube == (5, 5)


def test_detect_format():
    assert detect_format({"format": "stvg-predictions/1", "predictions": {}}) == "stvg"
    assert detect_format(tubedetr_document()) == "tubedetr"
    assert detect_format({"test_hcstvg_hcstvg": tubedetr_document()}) == "tubedetr"
    assert detect_format(stcat_document()) == "stcat"
    assert detect_format({"v": {"st_frame": 1, "ed_frame": 2, "bbox": {}}}) == "hcstvg"
    with pytest.raises(InputError, match="cannot tell"):
        detect_format(json.loads(HCSTVG.read_text()))  # raw annotations: no ed_frame


# ---------------------------------------------------------------- random predictions


def jitter(rng, box, scale):
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    nx1 = round(float(x1 + rng.normal(0, scale * w)), 3)
    ny1 = round(float(y1 + rng.normal(0, scale * h)), 3)
    sw, sh = rng.uniform(1 - scale, 1 + scale, size=2)
    return (nx1, ny1, round(nx1 + float(w * sw), 3), round(ny1 + float(h * sh), 3))


def random_predictions(annotations, seed, drop=0.0):
    """A span near each GT tube and a box on every frame of the segment (``drop``: skip some)."""
    rng = np.random.default_rng(seed)
    out = {}
    for sample in annotations.samples:
        s0, s1 = sample.segment
        ts, te = sample.tube
        a = int(np.clip(ts + rng.integers(-4, 5), s0, s1))
        b = int(np.clip(te + rng.integers(-4, 5), a, s1))
        near = sorted(sample.boxes)
        scale = float(rng.choice([0.05, 0.2, 0.4]))
        boxes = {}
        for f in range(s0, s1):
            if drop and rng.random() < drop:
                continue
            gt = sample.boxes[min(near, key=lambda g, f=f: abs(g - f))]
            boxes[f] = jitter(rng, gt, scale)
        out[sample.sample_id] = Prediction(tube=(a, b), boxes=boxes)
    return Predictions(by_id=out)


# ---------------------------------------------------------------- round trips


def native_documents(tmp_path):
    """One file per format as its own codebase would write it (HC-STVG: boxes in the span)."""
    annotations = load_annotations(HCSTVG)
    preds = random_predictions(annotations, 0)
    paths = {}
    paths["stvg"] = tmp_path / "native.stvg.json"
    write_predictions(paths["stvg"], preds, {"run": "r", "split": "test"})
    tubedetr = {"predictions": {}, "video_predictions": {}}
    stcat = {"predictions": {}, "video_predictions": {}, "vid2names": {}, "tiou": np.float64(0.5)}
    official = {}
    for i, (sid, p) in enumerate(preds.by_id.items()):
        start, end = p.tube
        tubedetr["video_predictions"][str(i)] = {"sted": [float(start), float(end)], "qtype": "x"}
        for f, box in p.boxes.items():
            if f % 3 == 0:  # TubeDETR boxes only the frames it samples
                tubedetr["predictions"][f"{i}_{f}"] = {"boxes": [list(box)]}
        stcat["video_predictions"][i] = {"sted": [start, end]}
        stcat["predictions"][i] = {f: [list(box)] for f, box in p.boxes.items()}
        stcat["vid2names"][i] = sid
        official[sid] = {
            "st_frame": start + 1,
            "ed_frame": end,
            "bbox": {str(f + 1): list(b) for f, b in p.boxes.items() if start <= f < end},
        }
    paths["tubedetr"] = tmp_path / "native.tubedetr.json"
    paths["tubedetr"].write_text(json.dumps(tubedetr))
    paths["stcat"] = tmp_path / "native.stcat.pt"
    torch.save(stcat, paths["stcat"])
    paths["hcstvg"] = tmp_path / "native.hcstvg.json"
    paths["hcstvg"].write_text(json.dumps(official))
    return paths


def content(path, fmt):
    """What a file says about the predictions (stvg: without provenance; STCAT: no metrics)."""
    if fmt == "stcat" and path.suffix == ".pt":
        data = torch.load(path, weights_only=False)
    else:
        data = json.loads(path.read_text())
    if fmt == "stvg":
        return data["predictions"]
    if fmt in ("tubedetr", "stcat"):
        keys = ("predictions", "video_predictions", "vid2names")
        return {k: data[k] for k in keys if k in data}
    return data


@pytest.mark.parametrize("source", FORMATS)
def test_round_trip_through_every_format_is_exact(tmp_path, source):
    native = native_documents(tmp_path)[source]
    suffix = ".pt" if source == "stcat" else ".json"
    for middle in FORMATS:
        if middle == source:
            continue
        for middle_suffix in (".json", ".pt") if middle == "stcat" else (".json",):
            there = tmp_path / f"{source}-to-{middle}{middle_suffix}"
            back = tmp_path / f"{source}-to-{middle}-back{suffix}"
            convert(native, there, middle, source)
            convert(there, back, source)  # format of `there` detected from its content
            assert content(back, source) == content(native, source), (middle, middle_suffix)


def test_round_trip_through_the_cli(tmp_path):
    native = native_documents(tmp_path)["tubedetr"]
    there, back = tmp_path / "h.json", tmp_path / "t.json"
    result = cli("predictions", "convert", native, "--to", "hcstvg", "--out", there)
    assert result.exit_code == 0, result.output
    assert "tubedetr -> hcstvg" in result.stdout
    result = cli(
        "predictions", "convert", there, "--from", "hcstvg", "--to", "tubedetr", "--out", back
    )
    assert result.exit_code == 0, result.output
    assert content(back, "tubedetr") == content(native, "tubedetr")


# ---------------------------------------------------------------- scoring converted files


@pytest.mark.parametrize("annotations_path", [HCSTVG, VIDSTG])
@pytest.mark.parametrize("protocol", ["tubedetr", "hcstvg", "stcat"])
def test_a_converted_file_scores_as_the_stvg_file(tmp_path, annotations_path, protocol):
    annotations = load_annotations(annotations_path)
    native = tmp_path / "native.json"
    write_predictions(native, random_predictions(annotations, 1))
    want = score(annotations, read_predictions(native), protocol)
    for fmt, name in [
        ("tubedetr", "t.json"),
        ("stcat", "s.pt"),
        ("stcat", "s.json"),
        ("hcstvg", "h.json"),
    ]:
        exported = tmp_path / name
        convert(native, exported, fmt)
        imported = tmp_path / f"imported-{name}.json"
        convert(exported, imported, "stvg")
        assert score(annotations, read_predictions(imported), protocol) == want, (fmt, name)
        assert score(annotations, read_predictions(exported), protocol) == want, (fmt, name)


def test_stvg_score_reads_a_peer_file(tmp_path):
    annotations = load_annotations(HCSTVG)
    native = tmp_path / "native.json"
    write_predictions(native, random_predictions(annotations, 2))
    exported = tmp_path / "results.pt"
    convert(native, exported, "stcat")
    tables = []
    for path in (native, exported):
        out = tmp_path / f"{path.stem}.metrics.json"
        result = cli(
            "score",
            "--annotations",
            HCSTVG,
            "--predictions",
            path,
            "--protocol",
            "stcat",
            "--json-out",
            out,
        )
        assert result.exit_code == 0, result.output
        tables.append(json.loads(out.read_text()))
    assert tables[0] == tables[1]


# ---------------------------------------------------------------- the official HC-STVG script


def official_iou2d(box1, box2):
    """``iou2d`` of eval_hcvg.py: 0 for an empty overlap, else inter / (area1 + area2 - inter)."""
    area_sum = (box1[2] - box1[0]) * (box1[3] - box1[1]) + (box2[2] - box2[0]) * (box2[3] - box2[1])
    x1, y1 = max(box1[0], box2[0]), max(box1[1], box2[1])
    x2, y2 = min(box1[2], box2[2]), min(box1[3], box2[3])
    if x1 >= x2 or y1 >= y2:
        return 0
    inter = (x2 - x1) * (y2 - y1)
    return inter / (area_sum - inter)


def official_hcvg_eval(pred_path, raw_annotations_path):
    """``hcvg_eval`` of eval_hcvg.py on a prediction file, with its GT dict built from the raw
    annotation file (1-based ``st_frame``, one ``[x, y, w, h]`` per frame from it, inclusive end)."""
    raw = json.loads(Path(raw_annotations_path).read_text())
    gt = {
        video: {
            "st_frame": a["st_frame"],
            "ed_frame": a["st_frame"] + len(a["bbox"]) - 1,
            "bbox": {
                str(a["st_frame"] + i): [x, y, x + w, y + h]
                for i, (x, y, w, h) in enumerate(a["bbox"])
            },
        }
        for video, a in raw.items()
    }
    pred = json.loads(Path(pred_path).read_text())
    vious, tious = [], []
    for video in gt:
        if video not in pred:
            viou = tiou = 0
        else:
            gt_v, pred_v = gt[video], pred[video]
            ious = [
                official_iou2d(pred_v["bbox"][f], gt_v["bbox"][f])
                for f in gt_v["bbox"]
                if f in pred_v["bbox"]
            ]
            all_frame = (
                max(gt_v["ed_frame"], pred_v["ed_frame"])
                - min(gt_v["st_frame"], pred_v["st_frame"])
                + 1
            )
            viou = sum(ious) / all_frame
            tiou = len(ious) / all_frame
        vious.append(viou)
        tious.append(tiou)
    vious = np.array(vious)
    return [np.mean(vious), np.mean(tious), np.mean((vious > 0.3) + 0), np.mean((vious > 0.5) + 0)]


@pytest.mark.parametrize("name", ["test.json", "valv2.json"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_exported_hcstvg_file_scored_by_the_official_script(tmp_path, seed, name):
    annotations_path = FIXTURES / "hcstvg" / name
    annotations = load_annotations(annotations_path)
    preds = random_predictions(annotations, seed, drop=0.15)  # some frames without a box
    native, exported = tmp_path / "native.json", tmp_path / "official.json"
    write_predictions(native, preds)
    result = cli("predictions", "convert", native, "--to", "hcstvg", "--out", exported)
    assert result.exit_code == 0, result.output
    metrics = tmp_path / "metrics.json"
    result = cli(
        "score", "--annotations", annotations_path, "--predictions", native,
        "--protocol", "hcstvg", "--json-out", metrics,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    got = json.loads(metrics.read_text())["all"]
    np.testing.assert_allclose(
        [got["m_vIoU"], got["m_tIoU"], got["vIoU@0.3"], got["vIoU@0.5"]],
        official_hcvg_eval(exported, annotations_path),
        rtol=0,
        atol=1e-12,
    )


def test_official_script_on_an_exported_file_by_hand(tmp_path):
    # 3_aaaaaaaaaaa.mp4: GT st_frame 1 + 5 boxes -> stvg frames [0, 5). Predict [2, 7) with the
    # GT box on 2..4 (and on 0, outside the span): the script sees frames 3..7, 3 common boxed
    # frames, denominator max(5, 7) - min(1, 3) + 1 = 7 -> vIoU = tIoU = 3/7
    raw = json.loads(HCSTVG.read_text())
    keep = {k: v for k, v in raw.items() if k == "3_aaaaaaaaaaa.mp4"}
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(keep))
    exported = tmp_path / "official.json"
    bboxes = raw["3_aaaaaaaaaaa.mp4"]["bbox"]
    boxes = {f: (bx, by, bx + bw, by + bh) for f, (bx, by, bw, bh) in enumerate(bboxes) if f != 1}
    write_any(exported, {"3_aaaaaaaaaaa.mp4": Prediction(tube=(2, 7), boxes=boxes)}, "hcstvg")
    m_viou, m_tiou, *_ = official_hcvg_eval(exported, gt_path)
    assert m_tiou == pytest.approx(3 / 7, abs=1e-15) and m_viou == pytest.approx(3 / 7, abs=1e-15)
    got = score(load_annotations(gt_path), read_predictions(exported), "hcstvg")["all"]
    assert got["m_tIoU"] == pytest.approx(3 / 7, abs=1e-15)


# ---------------------------------------------------------------- TubeDETR's and STCAT's evaluators


def np_box_iou(boxes1, boxes2):
    """``np_box_iou`` of TubeDETR's / STCAT's ``box_ops``: [N, 4] x [M, 4] xyxy -> [N, M] IoU."""
    boxes1, boxes2 = np.asarray(boxes1, dtype=float), np.asarray(boxes2, dtype=float)
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    lt = np.maximum(boxes1[:, None, :2], boxes2[:, :2])
    rb = np.minimum(boxes1[:, None, 2:], boxes2[:, 2:])
    wh = (rb - lt).clip(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    return inter / (area1[:, None] + area2 - inter)


def tubedetr_vidstg_eval(anns, predictions, video_predictions, fps=5, video_max_len=200):
    """TubeDETR's ``VidSTGiouEvaluator`` + ``summarize`` (tmp_loc) on its annotation file:
    per-qtype means of tiou, viou, viou@0.3, viou@0.5, gt_viou."""
    vid2imgids, vid2steds, img2box = {}, {}, {}
    for video in anns["videos"]:
        rate = fps / video["fps"]
        frame_ids = [video["start_frame"]]
        for frame_id in range(video["start_frame"], video["end_frame"]):
            if int(frame_ids[-1] * rate) < int(frame_id * rate):
                frame_ids.append(frame_id)
        if len(frame_ids) > video_max_len:
            frame_ids = [
                frame_ids[(j * len(frame_ids)) // video_max_len] for j in range(video_max_len)
            ]
        inter_frames = []
        vid2steds[video["video_id"]] = [video["tube_start_frame"], video["tube_end_frame"]]
        for frame_id in frame_ids:
            if video["tube_start_frame"] <= frame_id < video["tube_end_frame"]:
                traj = anns["trajectories"][video["original_video_id"]][str(video["target_id"])]
                x1, y1, w, h = traj[str(frame_id)]["bbox"]
                img2box[f"{video['video_id']}_{frame_id}"] = [[x1, y1, x1 + w, y1 + h]]
                inter_frames.append(f"{video['video_id']}_{frame_id}")
        vid2imgids[video["video_id"]] = [frame_ids, inter_frames]
    rows = {}
    for video_id, video_pred in video_predictions.items():
        gt_sted, pred_sted = vid2steds[video_id], video_pred["sted"]
        frame_ids, inter_frames = vid2imgids[video_id]
        max_start, min_end = max(gt_sted[0], pred_sted[0]), min(gt_sted[1], pred_sted[1])
        min_start, max_end = min(gt_sted[0], pred_sted[0]), max(gt_sted[1], pred_sted[1])
        if min_end <= max_start:
            tiou = 0
        else:
            intersection = min_end - max_start
            tiou = intersection / (
                gt_sted[1] - gt_sted[0] + pred_sted[1] - pred_sted[0] - intersection
            )
        union_predgt = [f for f in frame_ids if min_start <= f < max_end]
        inter_predgt = {f for f in frame_ids if max_start <= f < min_end}
        viou = gt_viou = 0
        for image_id in inter_frames:
            iou = np_box_iou(predictions[image_id]["boxes"], img2box[image_id])[0][0]
            if int(image_id.split("_")[1]) in inter_predgt:
                viou += iou
            gt_viou += iou
        viou = viou / max(len(union_predgt), 1)
        gt_viou = gt_viou / max(len(inter_frames), 1)
        row = (tiou, viou, int(viou > 0.3), int(viou > 0.5), gt_viou)
        rows.setdefault(video_pred["qtype"], []).append(row)
    return {q: [sum(c) / len(r) for c in zip(*r, strict=True)] for q, r in rows.items()}


def stcat_hcstvg_eval(raw, predictions, video_predictions):
    """STCAT's ``HCSTVGiouEvaluator`` + ``summarize``, with the GT items STCAT's HC-STVG
    preprocessing builds from the raw file (``gt_temp_bound`` inclusive, 0-based):
    means of tiou, viou, viou@0.3, viou@0.5, gt_viou."""
    vid2steds, vid2box = {}, {}
    for video, a in raw.items():
        begin = a["st_frame"] - 1
        end = min(begin + len(a["bbox"]) - 1, a["img_num"] - 1)
        vid2steds[video] = [begin, end]
        vid2box[video] = {
            fid: [[x, y, x + w, y + h]]
            for fid, (x, y, w, h) in zip(range(begin, end + 1), a["bbox"], strict=True)
        }
    rows = []
    for video_id, video_pred in video_predictions.items():
        gt_sted, pred_sted = vid2steds[video_id], video_pred["sted"]
        max_start, min_end = max(gt_sted[0], pred_sted[0]), min(gt_sted[1], pred_sted[1])
        min_start, max_end = min(gt_sted[0], pred_sted[0]), max(gt_sted[1], pred_sted[1])
        if min_end <= max_start:
            tiou = 0
        else:
            intersection = min_end - max_start
            tiou = intersection / (
                gt_sted[1] - gt_sted[0] + pred_sted[1] - pred_sted[0] - intersection
            )
        union_predgt = set(range(min_start, max_end))
        inter_predgt = set(range(max_start, min_end))
        viou = gt_viou = 0
        for fid, gt_boxes in vid2box[video_id].items():
            iou = np_box_iou(predictions[video_id][fid], gt_boxes)[0][0]
            if fid in inter_predgt:
                viou += iou
            gt_viou += iou
        viou = viou / max(len(union_predgt), 1)
        gt_viou = gt_viou / max(len(vid2box[video_id]), 1)
        rows.append((tiou, viou, int(viou > 0.3), int(viou > 0.5), gt_viou))
    return [sum(c) / len(rows) for c in zip(*rows, strict=True)]


def metrics(group):
    return [group[k] for k in ("m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5", "m_sIoU")]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exported_tubedetr_file_scored_by_tubedetrs_evaluator(tmp_path, seed):
    annotations = load_annotations(VIDSTG)
    native, exported = tmp_path / "native.json", tmp_path / "tubedetr.json"
    write_predictions(native, random_predictions(annotations, seed))
    result = cli(
        "predictions",
        "convert",
        native,
        "--to",
        "tubedetr",
        "--out",
        exported,
        "--annotations",
        VIDSTG,
    )
    assert result.exit_code == 0, result.output
    data = json.loads(exported.read_text())
    # JSON keys are strings; TubeDETR holds its int video ids in memory
    video_predictions = {int(k): v for k, v in data["video_predictions"].items()}
    want = tubedetr_vidstg_eval(
        json.loads(VIDSTG.read_text()), data["predictions"], video_predictions
    )
    got = score(annotations, read_predictions(native), "tubedetr")
    assert set(want) == {"declarative", "interrogative"}
    for qtype, numbers in want.items():
        np.testing.assert_allclose(metrics(got[qtype]), numbers, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exported_stcat_file_scored_by_stcats_evaluator(tmp_path, seed):
    annotations = load_annotations(HCSTVG)
    native, exported = tmp_path / "native.json", tmp_path / "test_results.pt"
    write_predictions(native, random_predictions(annotations, seed))
    convert(native, exported, "stcat")
    data = torch.load(exported, weights_only=True)
    want = stcat_hcstvg_eval(
        json.loads(HCSTVG.read_text()), data["predictions"], data["video_predictions"]
    )
    got = score(annotations, read_predictions(native), "stcat")["all"]
    np.testing.assert_allclose(metrics(got), want, rtol=0, atol=1e-12)


def test_annotations_check_ids_and_add_qtype(tmp_path):
    native = tmp_path / "native.json"
    write_predictions(native, {"1": Prediction(tube=(10, 16)), "99": Prediction(tube=(0, 1))})
    result = cli(
        "predictions",
        "convert",
        native,
        "--to",
        "tubedetr",
        "--out",
        tmp_path / "t.json",
        "--annotations",
        VIDSTG,
    )
    assert result.exit_code == 2
    assert "sample 99" in result.stderr and "not in the annotations" in result.stderr
    write_predictions(native, {"1": Prediction(tube=(10, 16))})
    convert(native, tmp_path / "t.json", "tubedetr", annotations=VIDSTG)
    record = json.loads((tmp_path / "t.json").read_text())["video_predictions"]["1"]
    assert record == {"sted": [10.0, 16.0], "qtype": "declarative"}  # video_id 1


# ---------------------------------------------------------------- bad input


def write_json(tmp_path, data, name="bad.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("data", "sample", "field", "text"),
    [
        ({"videos": []}, None, "format", "cannot tell"),
        (
            {"predictions": {"7_x": {"boxes": [A]}}, "video_predictions": {"7": {"sted": [1, 2]}}},
            "7",
            "predictions.7_x",
            "frame key 'x'",
        ),
        (
            {"predictions": {"710": {"boxes": [A]}}, "video_predictions": {"7": {"sted": [1, 2]}}},
            "710",
            "predictions",
            "not '<video_id>_<frame_id>'",
        ),
        (
            {"predictions": {"7_3": {"boxes": [A]}}, "video_predictions": {"7": {"qtype": "x"}}},
            "7",
            "video_predictions.sted",
            "the field is missing",
        ),
        (
            {"predictions": {"8_3": {"boxes": [A]}}, "video_predictions": {"7": {"sted": [1, 2]}}},
            "8",
            "video_predictions.sted",
            "no 'sted'",
        ),
        (
            {
                "predictions": {"7_3": {"boxes": [A]}},
                "video_predictions": {"7": {"sted": [1.5, 2]}},
            },
            "7",
            "video_predictions.sted",
            "whole frame id",
        ),
        (
            {"predictions": {"0": {"a": [A]}}, "video_predictions": {"0": {"sted": [1, 2]}}},
            "0",
            "predictions.a",
            "frame key",
        ),
        ({"v.mp4": {"st_frame": 0, "ed_frame": 3, "bbox": {}}}, "v.mp4", "st_frame", "below 1"),
        (
            {"v.mp4": {"st_frame": 5, "ed_frame": 3, "bbox": {}}},
            "v.mp4",
            "ed_frame",
            "before st_frame",
        ),
        (
            {"v.mp4": {"st_frame": 1, "ed_frame": 3, "bbox": {"0": A}}},
            "v.mp4",
            "bbox.0",
            "frame key",
        ),
        (
            {"v.mp4": {"st_frame": 1, "ed_frame": 3, "bbox": {"2": [3, 3, 1, 1]}}},
            "v.mp4",
            "bbox.2",
            "x2 < x1",
        ),
    ],
)
def test_bad_input_names_file_sample_field(tmp_path, data, sample, field, text):
    path = write_json(tmp_path, data)
    with pytest.raises(InputError) as info:
        read_any(path)
    error = info.value
    assert error.file == str(path) and error.sample == sample and error.field == field
    assert text in error.message
    result = cli("predictions", "convert", path, "--to", "stvg", "--out", tmp_path / "out.json")
    assert result.exit_code == 2
    assert str(path) in result.stderr and f"'{field}'" in result.stderr and text in result.stderr
    assert not (tmp_path / "out.json").exists()


def test_bad_options_and_files(tmp_path):
    path = write_json(tmp_path, tubedetr_document())
    result = cli("predictions", "convert", path, "--to", "mdetr", "--out", tmp_path / "o.json")
    assert result.exit_code == 2 and "'--to'" in result.stderr and "'mdetr'" in result.stderr
    result = cli(
        "predictions", "convert", path, "--from", "x", "--to", "stvg", "--out", tmp_path / "o.json"
    )
    assert result.exit_code == 2 and "'--from'" in result.stderr
    # forcing the wrong format: the reader says what it misses
    result = cli(
        "predictions",
        "convert",
        path,
        "--from",
        "hcstvg",
        "--to",
        "stvg",
        "--out",
        tmp_path / "o.json",
    )
    assert result.exit_code == 2 and "field 'st_frame': the field is missing" in result.stderr
    result = cli(
        "predictions",
        "convert",
        tmp_path / "none.json",
        "--to",
        "stvg",
        "--out",
        tmp_path / "o.json",
    )
    assert result.exit_code == 2 and "does not exist" in result.stderr
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"PK\x03\x04 not a zip")
    result = cli("predictions", "convert", broken, "--to", "stvg", "--out", tmp_path / "o.json")
    assert result.exit_code == 2 and "cannot load the torch file" in result.stderr
    assert not (tmp_path / "o.json").exists()


def test_a_pickle_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"predictions": {}, "video_predictions": {}, "x": Path("a")}, path)
    with pytest.raises(InputError, match="cannot load the torch file"):
        read_any(path)


# ---------------------------------------------------------------- provenance


def test_provenance_is_written_and_read(tmp_path):
    path = tmp_path / "p.json"
    provenance = prediction_provenance(tmp_path / "runs" / "csdvl-1", "test")
    write_predictions(path, {"a": Prediction(tube=(1, 3))}, provenance)
    data = json.loads(path.read_text())
    assert data["provenance"]["run"] == "csdvl-1" and data["provenance"]["split"] == "test"
    assert {"stvg_version", "date", "frames", "boxes"} <= set(data["provenance"])
    assert read_predictions(path).provenance == data["provenance"]
    # files from before provenance existed read as before
    old = parse_predictions(
        {"format": "stvg-predictions/1", "predictions": {"a": {"tube": [1, 3]}}}
    )
    assert old.provenance is None and old.by_id["a"] == Prediction(tube=(1, 3))
    # converted files say where they came from and keep the original record
    convert(path, tmp_path / "t.json", "tubedetr")
    convert(tmp_path / "t.json", tmp_path / "back.json", "stvg")
    back = json.loads((tmp_path / "back.json").read_text())["provenance"]
    assert back["converted_from"] == "tubedetr" and back["source"] == "t.json"
    assert back["original"] == data["provenance"]
    with pytest.raises(InputError) as info:
        parse_predictions({"format": "stvg-predictions/1", "provenance": [], "predictions": {}})
    assert info.value.field == "provenance"


def test_baseline_records_provenance(tmp_path):
    out = tmp_path / "center.json"
    result = cli("baseline", "--annotations", HCSTVG, "--out", out)
    assert result.exit_code == 0, result.output
    provenance = json.loads(out.read_text())["provenance"]
    assert provenance["baseline"] == "center" and provenance["annotations"] == "test.json"
