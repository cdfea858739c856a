"""The three published scoring protocols, per sample (docs/design.md section 5).

Every function here scores one annotated :class:`~stvg.data.sample.Sample` against one
:class:`~stvg.evaluate.predictions.Prediction` and returns a :class:`SampleScore` (tIoU, vIoU,
sIoU as fractions). Frame ids are the sample's (0-based native ids for every loader except
TubeDETR's preprocessed HC-STVG files, whose 1-based ids are used as given); GT spans are
half-open ``[ts, te)``, predicted spans ``[ps, pe)``. Box IoU is :func:`box_iou_xyxy` (0 for a
zero union). Ground-truth frames are the tube frames that carry a box; a frame missing from the
annotation's boxes is skipped (the published evaluators would crash on it).

``tubedetr``: TubeDETR's ``datasets/vidstg_eval.py`` and ``hcstvg_eval.py`` (the corrected
version, ``max_end = max(gt_end, pred_end)``), also used by CSDVL and CoSTA tables.

* Frames are sampled from the segment by :func:`sampled_frame_ids` (5 fps, at most 200). The
  segment is ``sample.extra["sampling_segment"]`` when present (HC-STVG loaders set it to
  ``[0, frame_count - 1)``, as TubeDETR samples HC-STVG), else ``sample.segment``; the fps is
  ``sample.fps`` (``frame_count / 20`` for HC-STVG, 20 s videos).
* tIoU = :func:`span_iou` of the native spans (not of the sampled frames).
* vIoU = sum of IoU over sampled GT-tube frames in ``[max(ts, ps), min(te, pe))`` divided by
  ``max(1, #sampled frames in [min(ts, ps), max(te, pe)))``.
* sIoU (TubeDETR's ``gt_viou``) = mean IoU over the sampled GT-tube frames, using the predicted
  box on each whatever the predicted span. A prediction must hold a box on every sampled
  GT-tube frame (TubeDETR refuses otherwise; so does stvg).

``hcstvg``: the official HC-STVG script (``eval_hcvg.py``, tzhhhh123/HC-STVG). It works on
inclusive ``[st_frame, ed_frame]`` and per-frame box dicts; in half-open terms:

* the predicted boxes count only inside the predicted span ``[ps, pe)``;
* ``ious`` = IoU on each GT frame that also has a predicted box (the script's ``iou2d``: 0 when
  the overlap is empty, else ``inter / (area1 + area2 - inter)``);
* ``denominator = max(ed_gt, ed_pred) - min(st_gt, st_pred) + 1 = max(te, pe) - min(ts, ps)``;
* vIoU = ``sum(ious) / denominator``, tIoU = ``len(ious) / denominator`` (so a predicted span
  without boxes has tIoU 0: the script measures time by boxed frames).
* sIoU is not in the script; stvg reports the mean IoU over all GT frames with the predicted box
  on each (whatever the span), 0 where the prediction has no box.

``stcat``: STCAT / CG-STVG (``datasets/evaluation/{vidstg,hcstvg}_eval.py``). Their GT bound is
inclusive ``[ts, g1]`` with ``g1 = te - 1`` (the last GT frame) while the predicted end
``pe`` is exclusive, and the formulas treat both ends alike:

* tIoU: ``inter = min(g1, pe) - max(ts, ps)`` (0 if not positive),
  ``union = (g1 - ts) + (pe - ps) - inter``;
* vIoU = sum of IoU over GT frames in ``[max(ts, ps), min(g1, pe))`` divided by
  ``max(1, max(g1, pe) - min(ts, ps))``;
* sIoU = mean IoU over all ``te - ts`` GT frames. A prediction needs a box on every GT frame
  (STCAT interpolates to every native frame before scoring; ``stvg predict`` does the same).

(STCAT's own VidSTG loader also reads ``temporal_gt.end_fid`` as inclusive and copies the last
box onto it; stvg's loaders do not, so the GT tube is the same for all three protocols.)

For all three, ``vIoU@R`` counts ``vIoU > R`` (strict); see :mod:`stvg.evaluate.score`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from stvg.data.sample import Box, Sample, Span
from stvg.data.sampling import sampled_frame_ids
from stvg.errors import InputError
from stvg.evaluate.boxes import box_iou_xyxy, span_iou
from stvg.evaluate.predictions import Prediction

PROTOCOLS: tuple[str, ...] = ("tubedetr", "hcstvg", "stcat")

DESCRIPTIONS: dict[str, str] = {
    "tubedetr": "TubeDETR evaluator: 5 fps frame grid over the segment, at most 200 frames",
    "hcstvg": "official HC-STVG script: every boxed frame, inclusive ends",
    "stcat": "STCAT / CG-STVG evaluator: every native frame, GT end inclusive",
}


@dataclass(frozen=True)
class SampleScore:
    """Metrics of one sample, as fractions in [0, 1].

    ``viou`` and ``siou`` are None when the annotations have no boxes (sentence-only mode).
    """

    tiou: float
    viou: float | None
    siou: float | None


def sampling_segment(sample: Sample) -> Span:
    """The half-open span the ``tubedetr`` grid covers.

    ``extra["sampling_segment"]`` when a loader set it (HC-STVG: ``[0, frame_count - 1)``;
    VidSTG tubes at the video's end, whose segment was extended by one frame to hold the tube:
    the original segment); else, for a raw VidSTG sample with ``extra["segment_extended"]``,
    its ``extra["used_segment"]``; else ``sample.segment``.
    """
    span = sample.extra.get("sampling_segment")
    if span is None and sample.extra.get("segment_extended"):
        span = sample.extra.get("used_segment")
    if span is None:
        return sample.segment
    return (int(span[0]), int(span[1]))


def sample_frame_ids(sample: Sample, target_fps: float = 5, max_frames: int = 200) -> list[int]:
    """:func:`sampled_frame_ids` for one sample (its sampling segment and native fps)."""
    start, end = sampling_segment(sample)
    return sampled_frame_ids(start, end, sample.fps, target_fps, max_frames)


def _gt_frames(sample: Sample, frames: list[int] | range) -> list[int]:
    """The frames of ``frames`` inside the GT tube that carry a GT box, in order."""
    ts, te = sample.tube
    return [f for f in frames if ts <= f < te and f in sample.boxes]


def _pred_box(sample: Sample, prediction: Prediction, frame: int, protocol: str) -> Box:
    box = prediction.boxes.get(frame)
    if box is None:
        raise InputError(
            f"no predicted box on ground-truth frame {frame}; the {protocol} protocol needs one "
            "on every ground-truth frame it scores",
            sample=sample.sample_id,
            field=f"boxes.{frame}",
            hint="Predict a box on every frame of the segment (stvg predict does), whatever the "
            "predicted span",
        )
    return box


def score_tubedetr(
    sample: Sample, prediction: Prediction, *, has_boxes: bool = True
) -> SampleScore:
    """One sample under the ``tubedetr`` protocol (see the module docstring)."""
    ts, te = sample.tube
    ps, pe = prediction.tube
    tiou = span_iou((ts, te), (ps, pe))
    if not has_boxes:
        return SampleScore(tiou, None, None)
    frame_ids = sample_frame_ids(sample)
    max_start, min_end = max(ts, ps), min(te, pe)
    min_start, max_end = min(ts, ps), max(te, pe)
    n_union = sum(1 for f in frame_ids if min_start <= f < max_end)
    viou = 0.0
    siou = 0.0
    gt_frames = _gt_frames(sample, frame_ids)
    for frame in gt_frames:
        iou = box_iou_xyxy(_pred_box(sample, prediction, frame, "tubedetr"), sample.boxes[frame])
        if max_start <= frame < min_end:
            viou += iou
        siou += iou
    return SampleScore(tiou, viou / max(n_union, 1), siou / max(len(gt_frames), 1))


def _iou2d(pred: Box, gt: Box) -> float:
    """The HC-STVG script's ``iou2d``: 0 for an empty overlap, else ``inter / (a1 + a2 - inter)``."""
    x1, y1 = max(pred[0], gt[0]), max(pred[1], gt[1])
    x2, y2 = min(pred[2], gt[2]), min(pred[3], gt[3])
    if x1 >= x2 or y1 >= y2:
        return 0.0
    area_sum = (pred[2] - pred[0]) * (pred[3] - pred[1]) + (gt[2] - gt[0]) * (gt[3] - gt[1])
    inter = (x2 - x1) * (y2 - y1)
    return float(inter / (area_sum - inter))


def score_hcstvg(sample: Sample, prediction: Prediction, *, has_boxes: bool = True) -> SampleScore:
    """One sample under the official HC-STVG script's rules (see the module docstring).

    Without boxes (sentence-only) only tIoU is defined: stvg then takes every frame of the
    predicted span as "predicted" and every GT-tube frame as "annotated", i.e. the common frames
    over ``max(te, pe) - min(ts, ps)``.
    """
    ts, te = sample.tube
    ps, pe = prediction.tube
    denominator = max(te, pe) - min(ts, ps)
    if not has_boxes:
        common = max(min(te, pe) - max(ts, ps), 0)
        return SampleScore(common / denominator, None, None)
    gt_frames = _gt_frames(sample, sorted(sample.boxes))
    ious = [
        _iou2d(prediction.boxes[f], sample.boxes[f])
        for f in gt_frames
        if ps <= f < pe and f in prediction.boxes
    ]
    siou = sum(
        _iou2d(prediction.boxes[f], sample.boxes[f]) if f in prediction.boxes else 0.0
        for f in gt_frames
    ) / max(len(gt_frames), 1)
    return SampleScore(len(ious) / denominator, sum(ious) / denominator, siou)


def score_stcat(sample: Sample, prediction: Prediction, *, has_boxes: bool = True) -> SampleScore:
    """One sample under STCAT's rules (GT end inclusive, predicted end exclusive)."""
    ts, te = sample.tube
    ps, pe = prediction.tube
    g1 = te - 1
    max_start, min_end = max(ts, ps), min(g1, pe)
    min_start, max_end = min(ts, ps), max(g1, pe)
    if min_end <= max_start:
        tiou = 0.0
    else:
        inter = min_end - max_start
        tiou = inter / ((g1 - ts) + (pe - ps) - inter)
    if not has_boxes:
        return SampleScore(tiou, None, None)
    viou = 0.0
    siou = 0.0
    gt_frames = _gt_frames(sample, range(ts, te))
    for frame in gt_frames:
        iou = box_iou_xyxy(_pred_box(sample, prediction, frame, "stcat"), sample.boxes[frame])
        if max_start <= frame < min_end:
            viou += iou
        siou += iou
    n_union = max(max_end - min_start, 0)
    return SampleScore(tiou, viou / max(n_union, 1), siou / max(len(gt_frames), 1))


_SCORERS: Mapping[str, Callable[..., SampleScore]] = {
    "tubedetr": score_tubedetr,
    "hcstvg": score_hcstvg,
    "stcat": score_stcat,
}


def check_protocol(protocol: str) -> None:
    """Refuse an unknown protocol name with :class:`InputError` (field ``--protocol``)."""
    if protocol not in PROTOCOLS:
        raise InputError(
            f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}",
            field="--protocol",
        )


def score_sample(
    sample: Sample, prediction: Prediction, protocol: str = "tubedetr", *, has_boxes: bool = True
) -> SampleScore:
    """tIoU, vIoU and sIoU of one sample under ``protocol`` (``tubedetr``, ``hcstvg``, ``stcat``).

    Raises :class:`InputError` (with the sample id and ``boxes.<frame>``) when the protocol needs a
    predicted box the prediction does not have.
    """
    check_protocol(protocol)
    return _SCORERS[protocol](sample, prediction, has_boxes=has_boxes)
