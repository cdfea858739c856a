"""The three protocols: hand-computed cases, and agreement with literal re-implementations of the
published evaluators run on the raw fixture JSON (TubeDETR's VidSTG and HC-STVG evaluators, the
official HC-STVG script, STCAT's evaluator)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sample_factory import make_sample as shared_make_sample

from stvg.data.sample import Annotations
from stvg.errors import InputError
from stvg.evaluate.predictions import Prediction
from stvg.evaluate.protocols import (
    sample_frame_ids,
    sampled_frame_ids,
    score_hcstvg,
    score_sample,
    score_stcat,
    score_tubedetr,
)
from stvg.evaluate.score import score

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BOX = (0.0, 0.0, 10.0, 10.0)
HALF = (5.0, 0.0, 15.0, 10.0)  # IoU with BOX: inter 5*10 = 50, union 100 + 100 - 50 -> 1/3


def make_sample(tube, frames=None, *, segment=(0, 10), fps=5.0, box=BOX, frame_count=None, **extra):
    return shared_make_sample(
        "s",
        tube,
        box=box,
        frames=frames,
        segment=segment,
        fps=fps,
        frame_count=frame_count or segment[1],
        extra=dict(extra),
    )


def pred(tube, frames, box=BOX, **overrides):
    boxes = {f: box for f in frames}
    boxes.update(overrides.get("boxes", {}))
    return Prediction(tube=tube, boxes=boxes)


# ---------------------------------------------------------------- the TubeDETR frame grid


def test_sampled_frame_ids_by_hand():
    # fps 10 -> r = 0.5: int(f * 0.5) steps every 2 frames -> 10, 12, ..., 48
    assert sampled_frame_ids(10, 50, 10) == list(range(10, 50, 2))
    # fps 25 -> r = 0.2: int(f / 5) steps every 5 frames
    assert sampled_frame_ids(0, 50, 25) == list(range(0, 50, 5))
    # 29.97 fps -> r = 0.16683: f = 5 gives 0.83, f = 6 gives 1.001 -> every 6th frame at first
    assert sampled_frame_ids(0, 31, 29.97) == [0, 6, 12, 18, 24, 30]


def test_fps_of_five_or_less_samples_every_frame():
    assert sampled_frame_ids(0, 7, 5) == [0, 1, 2, 3, 4, 5, 6]  # r = 1
    # r = 5/3: int(f * r) = 0, 1, 3, 5, 6 for f = 0..4: strictly increasing, every frame kept
    assert sampled_frame_ids(0, 5, 3) == [0, 1, 2, 3, 4]
    assert sampled_frame_ids(3, 9, 1) == [3, 4, 5, 6, 7, 8]


def test_more_than_200_sampled_frames_are_subsampled():
    ids = sampled_frame_ids(0, 260, 5)  # 260 frames kept, then ids[(j * 260) // 200]
    assert len(ids) == 200
    # j = 0..4: 0, 260//200 = 1, 520//200 = 2, 780//200 = 3, 1040//200 = 5
    assert ids[:5] == [0, 1, 2, 3, 5]
    # j = 193..199: floor(1.3 j) = 250, 252, 253, 254, 256, 257, 258
    assert ids[193:] == [250, 252, 253, 254, 256, 257, 258]
    assert sampled_frame_ids(0, 200, 5) == list(range(200))  # exactly 200: untouched


def test_sampling_segment_from_extra():
    sample = make_sample((95, 100), segment=(0, 100), sampling_segment=[0, 99])
    assert sample_frame_ids(sample) == list(range(99))  # frame 99 never sampled


# ---------------------------------------------------------------- tubedetr


def test_tubedetr_identical_disjoint_nested():
    sample = make_sample((2, 6))  # fps 5 segment [0, 10): every frame sampled
    s = score_tubedetr(sample, pred((2, 6), range(10)))
    assert (s.tiou, s.viou, s.siou) == (1.0, 1.0, 1.0)
    # disjoint: no common frame -> vIoU 0 / 8 frames in [2, 10); sIoU uses boxes on GT frames
    s = score_tubedetr(sample, pred((6, 10), range(10)))
    assert (s.tiou, s.viou, s.siou) == (0.0, 0.0, 1.0)
    # nested: GT [2, 8), pred [4, 6): tIoU 2/6; vIoU (1 + 1) / 6 frames in [2, 8)
    sample = make_sample((2, 8))
    s = score_tubedetr(sample, pred((4, 6), range(10)))
    assert s.tiou == pytest.approx(1 / 3, abs=1e-15)
    assert s.viou == pytest.approx(1 / 3, abs=1e-15)
    assert s.siou == 1.0


def test_tubedetr_uses_sampled_frames_only():
    # fps 10 segment [0, 20): sampled 0, 2, ..., 18. GT [3, 9): sampled GT frames 4, 6, 8.
    sample = make_sample((3, 9), segment=(0, 20), fps=10.0)
    # pred [5, 12); IoU 1 on 4 and 6, 1/3 on 8 (HALF)
    p = pred((5, 12), range(20), boxes={8: HALF})
    s = score_tubedetr(sample, p)
    assert s.tiou == pytest.approx(4 / 9, abs=1e-15)  # inter [5, 9) = 4; union 6 + 7 - 4 = 9
    # inter frames sampled in [5, 9): 6, 8 -> 1 + 1/3; union sampled in [3, 12): 4, 6, 8, 10
    assert s.viou == pytest.approx((1 + 1 / 3) / 4, abs=1e-15)
    assert s.siou == pytest.approx((1 + 1 + 1 / 3) / 3, abs=1e-15)


def test_tubedetr_gt_at_start_and_end_of_segment():
    # start: segment [10, 50) fps 10 (sampled 10, 12, ...), GT [10, 16): GT frames 10, 12, 14
    sample = make_sample((10, 16), segment=(10, 50), fps=10.0, frame_count=60)
    s = score_tubedetr(sample, pred((10, 14), range(10, 50)))
    assert s.tiou == pytest.approx(4 / 6, abs=1e-15)
    assert s.viou == pytest.approx(2 / 3, abs=1e-15)  # 10, 12 in [10, 14) / 10, 12, 14
    # end: segment [0, 260) fps 5 -> 200 of 260 kept; GT [250, 260) sampled at
    # 250, 252, 253, 254, 256, 257, 258 (7); pred [255, 260) covers 256, 257, 258
    sample = make_sample((250, 260), segment=(0, 260), frame_count=300)
    s = score_tubedetr(sample, pred((255, 260), range(260)))
    assert s.tiou == 0.5  # 5 / 10
    assert s.viou == pytest.approx(3 / 7, abs=1e-15)
    assert s.siou == 1.0


def test_tubedetr_hcstvg_last_frame_never_sampled():
    # HC-STVG: sampling over [0, frame_count - 1) = [0, 99); GT [95, 100): frames 95..98 count
    sample = make_sample((95, 100), segment=(0, 100), sampling_segment=[0, 99])
    s = score_tubedetr(sample, pred((95, 100), range(99), boxes={99: (50, 50, 60, 60)}))
    assert (s.tiou, s.viou, s.siou) == (1.0, 1.0, 1.0)


def test_tubedetr_zero_area_boxes_score_zero():
    point = (5.0, 5.0, 5.0, 5.0)
    sample = make_sample((0, 4), box=point)
    s = score_tubedetr(sample, pred((0, 4), range(10), box=point))
    assert (s.tiou, s.viou, s.siou) == (1.0, 0.0, 0.0)


def test_tubedetr_missing_box_on_sampled_gt_frame_is_refused():
    sample = make_sample((2, 6))
    with pytest.raises(InputError) as info:
        score_tubedetr(sample, pred((2, 6), [2, 3, 5]))
    assert info.value.field == "boxes.4" and info.value.sample == "s"


# ---------------------------------------------------------------- hcstvg (official script)


def test_hcstvg_by_hand():
    sample = make_sample((10, 14), segment=(0, 30))
    # identical
    s = score_hcstvg(sample, pred((10, 14), range(10, 14)))
    assert (s.tiou, s.viou, s.siou) == (1.0, 1.0, 1.0)
    # shifted: common boxed frames 12, 13; denominator max(14, 16) - min(10, 12) = 6
    # (the script: ed 1-based 14 vs 16, st 11 vs 13 -> 16 - 11 + 1 = 6)
    s = score_hcstvg(sample, pred((12, 16), range(12, 16)))
    assert s.tiou == pytest.approx(2 / 6, abs=1e-15)
    assert s.viou == pytest.approx(2 / 6, abs=1e-15)
    assert s.siou == pytest.approx(0.5, abs=1e-15)  # 10, 11 have no box -> (0 + 0 + 1 + 1) / 4
    # disjoint: no common frame; denominator 25 - 10 = 15
    s = score_hcstvg(sample, pred((20, 25), range(20, 25)))
    assert (s.tiou, s.viou) == (0.0, 0.0)


def test_hcstvg_boxes_outside_the_predicted_span_do_not_count():
    sample = make_sample((10, 14), segment=(0, 30))
    # span [12, 13): only frame 12 counts; denominator max(14, 13) - min(10, 12) = 4
    s = score_hcstvg(sample, pred((12, 13), range(8, 16), boxes={12: HALF}))
    assert s.tiou == 0.25
    assert s.viou == pytest.approx((1 / 3) / 4, abs=1e-15)
    assert s.siou == pytest.approx((1 + 1 + 1 / 3 + 1) / 4, abs=1e-15)  # sIoU ignores the span
    # a span without boxes: the script sees no predicted frame at all
    s = score_hcstvg(sample, Prediction(tube=(10, 14), boxes={}))
    assert (s.tiou, s.viou, s.siou) == (0.0, 0.0, 0.0)


def test_hcstvg_zero_area_boxes():
    sample = make_sample((0, 2), box=(3.0, 3.0, 3.0, 8.0))
    s = score_hcstvg(sample, pred((0, 2), [0, 1], box=(3.0, 3.0, 3.0, 8.0)))
    assert (s.tiou, s.viou) == (1.0, 0.0)  # iou2d: x1 >= x2 -> 0


# ---------------------------------------------------------------- stcat


def test_stcat_by_hand():
    sample = make_sample((10, 14), segment=(0, 30))  # g1 = 13
    # identical span: inter = min(13, 14) - 10 = 3, union = 3 + 4 - 3 = 4 -> 0.75 (their quirk)
    # vIoU: GT frames in [10, 13) = 3 / (max(13, 14) - 10 = 4)
    s = score_stcat(sample, pred((10, 14), range(10, 14)))
    assert (s.tiou, s.viou, s.siou) == (0.75, 0.75, 1.0)
    # prediction ending at g1: inter 3, union 3 + 3 - 3 -> 1.0; vIoU 3 / 3
    s = score_stcat(sample, pred((10, 13), range(10, 14)))
    assert (s.tiou, s.viou) == (1.0, 1.0)
    # shifted [12, 16): inter = 13 - 12 = 1, union = 3 + 4 - 1 = 6; vIoU frame 12 / (16 - 10)
    s = score_stcat(sample, pred((12, 16), range(10, 16), boxes={11: HALF}))
    assert s.tiou == pytest.approx(1 / 6, abs=1e-15)
    assert s.viou == pytest.approx(1 / 6, abs=1e-15)
    assert s.siou == pytest.approx((3 + 1 / 3) / 4, abs=1e-15)  # all 4 GT frames
    # disjoint
    s = score_stcat(sample, pred((20, 25), range(10, 25)))
    assert (s.tiou, s.viou, s.siou) == (0.0, 0.0, 1.0)


def test_stcat_needs_a_box_on_every_gt_frame():
    sample = make_sample((10, 14), segment=(0, 30))
    with pytest.raises(InputError) as info:
        score_stcat(sample, pred((10, 14), [10, 11, 12]))
    assert info.value.field == "boxes.13"


def test_viou_at_threshold_is_strict():
    # GT [0, 4), pred [0, 2) identical boxes, fps 5: vIoU = 2 / 4 = 0.5 exactly
    sample = make_sample((0, 4), segment=(0, 4))
    annotations = Annotations(samples=[sample])
    results = score(annotations, {"s": pred((0, 2), range(4))}, "tubedetr")
    assert results["all"]["m_vIoU"] == 0.5
    assert results["all"]["vIoU@0.5"] == 0.0  # 0.5 > 0.5 is false
    assert results["all"]["vIoU@0.3"] == 1.0


def test_unknown_protocol():
    with pytest.raises(InputError, match="unknown protocol"):
        score_sample(make_sample((0, 2)), pred((0, 2), [0, 1]), "vidstg")


# ---------------------------------------------------------------- literal reference evaluators
# Written from the published code's logic; they read the raw fixture JSON, not stvg's loaders.


def ref_np_box_iou(boxes1, boxes2):
    boxes1, boxes2 = np.array(boxes1), np.array(boxes2)
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    lt = np.maximum(boxes1[:, None, :2], boxes2[:, :2])
    rb = np.minimum(boxes1[:, None, 2:], boxes2[:, 2:])
    wh = (rb - lt).clip(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    return inter / (area1[:, None] + area2 - inter)


def ref_tubedetr_grid(start_frame, end_frame, video_fps, fps=5, video_max_len=200):
    sampling_rate = fps / video_fps
    frame_ids = [start_frame]
    for frame_id in range(start_frame, end_frame):
        if int(frame_ids[-1] * sampling_rate) < int(frame_id * sampling_rate):
            frame_ids.append(frame_id)
    if len(frame_ids) > video_max_len:
        frame_ids = [frame_ids[(j * len(frame_ids)) // video_max_len] for j in range(video_max_len)]
    return frame_ids


def ref_tubedetr_video_metrics(vid2imgids, vid2steds, img2box, video_predictions, predictions):
    """TubeDETR's ``evaluate`` loop (tmp_loc=True, corrected max_end)."""
    vid_metrics = {}
    for video_id, video_pred in video_predictions.items():
        gt_sted = vid2steds[video_id]
        pred_sted = video_pred["sted"]
        frame_ids, inter_frames = vid2imgids[video_id]
        max_start = max(gt_sted[0], pred_sted[0])
        min_end = min(gt_sted[1], pred_sted[1])
        min_start = min(gt_sted[0], pred_sted[0])
        max_end = max(gt_sted[1], pred_sted[1])
        if min_end <= max_start:
            tiou = 0
        else:
            intersection = min_end - max_start
            gt_span = gt_sted[1] - gt_sted[0]
            pred_span = pred_sted[1] - pred_sted[0]
            tiou = intersection / (gt_span + pred_span - intersection)
        union_predgt = [f for f in frame_ids if min_start <= f < max_end]
        inter_predgt = set(f for f in frame_ids if max_start <= f < min_end)
        viou = 0
        gt_viou = 0
        for image_id in inter_frames:
            iou = ref_np_box_iou(predictions[image_id]["boxes"], img2box[image_id])[0][0]
            if int(image_id.split("_")[1]) in inter_predgt:
                viou += iou
            gt_viou += iou
        viou = viou / max(len(union_predgt), 1)
        gt_viou = gt_viou / max(len(inter_frames), 1)
        vid_metrics[video_id] = {
            "tiou": tiou,
            "viou": viou,
            "viou@0.3": int(viou > 0.3),
            "viou@0.5": int(viou > 0.5),
            "gt_viou": gt_viou,
            "qtype": video_pred.get("qtype", "declarative"),
        }
    return vid_metrics


def ref_summarize(vid_metrics):
    """Mean of each metric per qtype, as TubeDETR's ``summarize``."""
    out = {}
    for qtype in set(x["qtype"] for x in vid_metrics.values()):
        rows = [x for x in vid_metrics.values() if x["qtype"] == qtype]
        out[qtype] = {
            k: sum(r[k] for r in rows) / len(rows)
            for k in ("tiou", "viou", "viou@0.3", "viou@0.5", "gt_viou")
        }
    return out


def ref_tubedetr_vidstg(anns, video_predictions, predictions):
    vid2imgids, vid2steds, img2box = {}, {}, {}
    for video in anns["videos"]:
        video_id = video["video_id"]
        frame_ids = ref_tubedetr_grid(video["start_frame"], video["end_frame"], video["fps"])
        inter_frames = []
        vid2steds[video_id] = [video["tube_start_frame"], video["tube_end_frame"]]
        for frame_id in frame_ids:
            if video["tube_start_frame"] <= frame_id < video["tube_end_frame"]:
                traj = anns["trajectories"][video["original_video_id"]][str(video["target_id"])]
                x1, y1, w, h = traj[str(frame_id)]["bbox"]
                img2box[f"{video_id}_{frame_id}"] = [[x1, y1, x1 + w, y1 + h]]
                inter_frames.append(f"{video_id}_{frame_id}")
        vid2imgids[video_id] = [frame_ids, inter_frames]
    metrics = ref_tubedetr_video_metrics(
        vid2imgids, vid2steds, img2box, video_predictions, predictions
    )
    return ref_summarize(metrics)


def ref_tubedetr_hcstvg(anns, video_predictions, predictions):
    vid2imgids, vid2steds, img2box = {}, {}, {}
    for video in anns:
        video_id = video["video_id"]
        video_fps = video["frame_count"] / 20
        frame_ids = ref_tubedetr_grid(0, video["frame_count"] - 1, video_fps)
        inter_frames = []
        vid2steds[video_id] = [video["tube_start_frame"], video["tube_end_frame"]]
        for frame_id in frame_ids:
            if video["tube_start_frame"] <= frame_id < video["tube_end_frame"]:
                x1, y1, w, h = video["trajectory"][frame_id - video["tube_start_frame"]]
                img2box[f"{video_id}_{frame_id}"] = [[x1, y1, x1 + w, y1 + h]]
                inter_frames.append(f"{video_id}_{frame_id}")
        vid2imgids[video_id] = [frame_ids, inter_frames]
    metrics = ref_tubedetr_video_metrics(
        vid2imgids, vid2steds, img2box, video_predictions, predictions
    )
    return ref_summarize(metrics)["declarative"]


def ref_iou2d(box1, box2):
    area1 = (box1[2] - box1[0]) * (box1[3] - box1[1])
    area2 = (box2[2] - box2[0]) * (box2[3] - box2[1])
    area_sum = area1 + area2
    x1, y1 = max(box1[0], box2[0]), max(box1[1], box2[1])
    x2, y2 = min(box1[2], box2[2]), min(box1[3], box2[3])
    if x1 >= x2 or y1 >= y2:
        return 0
    inter_area = (x2 - x1) * (y2 - y1)
    return inter_area / (area_sum - inter_area)


def ref_hcstvg_official(raw, pred):
    """The official script's ``hcvg_eval`` on GT made from the raw file (1-based, inclusive)."""
    gt = {}
    for video, a in raw.items():
        gt[video] = {
            "st_frame": a["st_frame"],
            "ed_frame": a["st_frame"] + len(a["bbox"]) - 1,
            "bbox": {
                str(a["st_frame"] + i): [x, y, x + w, y + h]
                for i, (x, y, w, h) in enumerate(a["bbox"])
            },
        }
    vious, tious = [], []
    for video in gt:
        if video not in pred:
            viou = tiou = 0
        else:
            gt_v, pred_v = gt[video], pred[video]
            ious = [
                ref_iou2d(pred_v["bbox"][f], gt_v["bbox"][f])
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


def ref_stcat(gt_items, video_predictions, predictions):
    """STCAT's ``evaluate``: ``gt_temp_bound`` inclusive, ``sted`` end exclusive; mean over videos."""
    rows = []
    for item in gt_items:
        video_id = item["item_id"]
        gt_sted = item["gt_temp_bound"]
        pred_sted = video_predictions[video_id]["sted"]
        max_start = max(gt_sted[0], pred_sted[0])
        min_end = min(gt_sted[1], pred_sted[1])
        min_start = min(gt_sted[0], pred_sted[0])
        max_end = max(gt_sted[1], pred_sted[1])
        if min_end <= max_start:
            tiou = 0
        else:
            intersection = min_end - max_start
            union = (gt_sted[1] - gt_sted[0]) + (pred_sted[1] - pred_sted[0]) - intersection
            tiou = intersection / union
        union_predgt = set(range(min_start, max_end))
        inter_predgt = set(range(max_start, min_end))
        viou = gt_viou = 0
        for fid, gt_box in item["bboxs"].items():
            iou = ref_np_box_iou([predictions[video_id][fid]], [gt_box])[0][0]
            if fid in inter_predgt:
                viou += iou
            gt_viou += iou
        viou = viou / max(len(union_predgt), 1)
        rows.append(
            (tiou, viou, int(viou > 0.3), int(viou > 0.5), gt_viou / max(len(item["bboxs"]), 1))
        )
    return [sum(col) / len(rows) for col in zip(*rows, strict=True)]


# ---------------------------------------------------------------- random predictions


def jitter(rng, box, scale=0.3):
    """A random box near ``box`` (IoU spread over [0, 1]); now and then a zero-area one."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    if rng.random() < 0.05:
        x = float(round(x1 + rng.uniform(0, w), 2))
        return [x, y1, x, y2]
    dx, dy = rng.normal(0, scale * w), rng.normal(0, scale * h)
    sw, sh = rng.uniform(1 - scale, 1 + scale), rng.uniform(1 - scale, 1 + scale)
    nx1, ny1 = round(x1 + dx, 2), round(y1 + dy, 2)
    return [float(nx1), float(ny1), float(round(nx1 + w * sw, 2)), float(round(ny1 + h * sh, 2))]


def random_span(rng, lo, hi, near=None):
    """A span inside ``[lo, hi]``: mostly ``near`` moved by a few frames, else anywhere."""
    if near is not None and rng.random() < 0.7:
        a = min(max(near[0] + int(rng.integers(-3, 4)), lo), hi)
        b = min(max(near[1] + int(rng.integers(-3, 4)), a), hi)
        return [a, b]
    a, b = sorted(int(v) for v in rng.integers(lo, hi + 1, size=2))
    return [a, b if b > a or rng.random() < 0.1 else a + 1]


def check_close(stvg_group, ref):
    got = [stvg_group[k] for k in ("m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5", "m_sIoU")]
    want = [ref[k] for k in ("tiou", "viou", "viou@0.3", "viou@0.5", "gt_viou")]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def load(path):
    from stvg.data.formats import load_annotations

    return load_annotations(path)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_tubedetr_vidstg_agrees_with_reference(seed):
    path = FIXTURES / "tubedetr" / "vidstg_test.json"
    raw = json.loads(path.read_text())
    rng = np.random.default_rng(seed)
    ours, video_predictions, predictions = {}, {}, {}
    for video in raw["videos"]:
        vid = video["video_id"]
        traj = raw["trajectories"][video["original_video_id"]][str(video["target_id"])]
        tube = (video["tube_start_frame"], video["tube_end_frame"])
        sted = random_span(rng, video["start_frame"], video["end_frame"] + 1, tube)
        scale = rng.choice([0.05, 0.15, 0.3])
        boxes = {}
        for f in range(video["start_frame"], video["end_frame"] + 1):
            x, y, w, h = traj.get(str(f), {"bbox": [20, 20, 50, 50]})["bbox"]
            boxes[f] = jitter(rng, [x, y, x + w, y + h], scale)
            predictions[f"{vid}_{f}"] = {"boxes": [boxes[f]]}
        video_predictions[vid] = {"sted": sted, "qtype": video["qtype"]}
        ours[str(vid)] = Prediction(tube=tuple(sted), boxes={f: tuple(b) for f, b in boxes.items()})
    ref = ref_tubedetr_vidstg(raw, video_predictions, predictions)
    results = score(load(path), ours, "tubedetr")
    assert set(results) == {"declarative", "interrogative", "all"}
    for qtype in ("declarative", "interrogative"):
        check_close(results[qtype], ref[qtype])


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_tubedetr_hcstvg_agrees_with_reference(seed):
    path = FIXTURES / "tubedetr" / "hcstvg_test_proc.json"
    raw = json.loads(path.read_text())
    rng = np.random.default_rng(seed)
    ours, video_predictions, predictions = {}, {}, {}
    for video in raw:
        vid, t0 = video["video_id"], video["tube_start_frame"]
        sted = random_span(rng, 0, video["frame_count"], (t0, video["tube_end_frame"]))
        scale = rng.choice([0.05, 0.15, 0.3])
        boxes = {}
        for f in range(video["frame_count"]):
            i = min(max(f - t0, 0), len(video["trajectory"]) - 1)
            x, y, w, h = video["trajectory"][i]
            boxes[f] = jitter(rng, [x, y, x + w, y + h], scale)
            predictions[f"{vid}_{f}"] = {"boxes": [boxes[f]]}
        video_predictions[vid] = {"sted": sted}
        ours[str(vid)] = Prediction(tube=tuple(sted), boxes={f: tuple(b) for f, b in boxes.items()})
    ref = ref_tubedetr_hcstvg(raw, video_predictions, predictions)
    results = score(load(path), ours, "tubedetr")
    check_close(results["all"], ref)
    check_close(results["declarative"], ref)


def random_hcstvg_predictions(rng, raw, drop=()):
    """stvg predictions (0-based) and the official script's (1-based, inclusive, in-span boxes)."""
    ours, official = {}, {}
    for video, a in raw.items():
        if video in drop:
            continue
        st0 = a["st_frame"] - 1
        ps, pe = random_span(rng, 0, a["img_num"], (st0, st0 + len(a["bbox"])))
        scale = rng.choice([0.05, 0.15, 0.3])
        boxes = {}
        for f in range(a["img_num"]):
            if rng.random() < 0.15:
                continue  # some frames without a predicted box
            i = min(max(f - st0, 0), len(a["bbox"]) - 1)
            x, y, w, h = a["bbox"][i]
            boxes[f] = jitter(rng, [x, y, x + w, y + h], scale)
        ours[video] = Prediction(tube=(ps, pe), boxes={f: tuple(b) for f, b in boxes.items()})
        official[video] = {
            "st_frame": ps + 1,
            "ed_frame": pe,  # last predicted frame pe - 1, 1-based
            "bbox": {str(f + 1): b for f, b in boxes.items() if ps <= f < pe},
        }
    return ours, official


@pytest.mark.parametrize("name", ["test.json", "valv2.json"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_hcstvg_agrees_with_official_script(seed, name):
    path = FIXTURES / "hcstvg" / name
    raw = json.loads(path.read_text())
    rng = np.random.default_rng(seed)
    ours, official = random_hcstvg_predictions(rng, raw)
    m_viou, m_tiou, viou3, viou5 = ref_hcstvg_official(raw, official)
    got = score(load(path), ours, "hcstvg")["all"]
    np.testing.assert_allclose(
        [got["m_vIoU"], got["m_tIoU"], got["vIoU@0.3"], got["vIoU@0.5"]],
        [m_viou, m_tiou, viou3, viou5],
        rtol=0,
        atol=1e-12,
    )


def test_hcstvg_missing_video_scores_zero_like_the_official_script():
    path = FIXTURES / "hcstvg" / "test.json"
    raw = json.loads(path.read_text())
    ours, official = random_hcstvg_predictions(
        np.random.default_rng(7), raw, drop={"7_bbbbbbbbbbb.mkv"}
    )
    m_viou, m_tiou, *_ = ref_hcstvg_official(raw, official)
    got = score(load(path), ours, "hcstvg", missing="zero")["all"]
    assert got["count"] == 3
    np.testing.assert_allclose([got["m_vIoU"], got["m_tIoU"]], [m_viou, m_tiou], rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stcat_agrees_with_reference(seed):
    path = FIXTURES / "hcstvg" / "test.json"
    raw = json.loads(path.read_text())
    rng = np.random.default_rng(seed)
    gt_items, video_predictions, predictions, ours = [], {}, {}, {}
    for video, a in raw.items():
        st0 = a["st_frame"] - 1
        last = st0 + len(a["bbox"]) - 1
        bboxs = {st0 + i: [x, y, x + w, y + h] for i, (x, y, w, h) in enumerate(a["bbox"])}
        gt_items.append({"item_id": video, "gt_temp_bound": [st0, last], "bboxs": bboxs})
        sted = random_span(rng, 0, a["img_num"], (st0, last + 1))
        scale = rng.choice([0.05, 0.15, 0.3])
        boxes = {f: jitter(rng, b, scale) for f, b in bboxs.items()}
        video_predictions[video] = {"sted": sted}
        predictions[video] = boxes
        ours[video] = Prediction(tube=tuple(sted), boxes={f: tuple(b) for f, b in boxes.items()})
    want = ref_stcat(gt_items, video_predictions, predictions)
    got = score(load(path), ours, "stcat")["all"]
    np.testing.assert_allclose(
        [got[k] for k in ("m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5", "m_sIoU")],
        want,
        rtol=0,
        atol=1e-12,
    )


def test_raw_vidstg_extended_segment_samples_the_used_segment():
    # 29.97 fps: int(96 * 5 / 29.97) = 16 > int(90 * 5 / 29.97) = 15, so frame 96 is on the grid
    # of [0, 97) but not of TubeDETR's [0, 96)
    assert 96 in sampled_frame_ids(0, 97, 29.97002997002997)
    sample = make_sample(
        (90, 97),
        segment=(0, 97),
        fps=29.97002997002997,
        segment_extended=True,
        used_segment=[0, 96],
    )
    assert sample_frame_ids(sample)[-1] == 90
