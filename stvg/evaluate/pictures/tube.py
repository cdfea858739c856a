"""Tube pictures: :func:`tube_strip` (a PNG strip of frames with the GT and predicted boxes, the
caption and a timeline of both spans) and :func:`tube_gif` (an animated GIF of the segment).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stvg.data.sample import Sample
from stvg.evaluate.boxes import box_iou_xyxy, span_iou
from stvg.evaluate.pictures.canvas import (
    boxed_tile,
    draw_title,
    in_span,
    load_font,
    sample_facts,
    warn_size_mismatch,
)
from stvg.evaluate.pictures.frames import read_strip_frames
from stvg.evaluate.pictures.layout import (
    BACKGROUND,
    GAP,
    GIF_TIMELINE_H,
    GT_COLOR,
    GT_ROW_Y,
    LABEL_H,
    MUTED_COLOR,
    PAD,
    PRED_COLOR,
    PRED_ROW_Y,
    ROW_H,
    TEXT_COLOR,
    TICK_COLOR,
    TICK_Y,
    TIMELINE_H,
    TITLE_H,
    TRACK_COLOR,
    TRACK_LABEL_W,
    round_half_up,
    strip_frame_ids,
    tile_size,
    timeline_x,
)
from stvg.evaluate.predictions import Prediction


def _frame_iou(sample: Sample, prediction: Prediction | None, frame: int) -> float | None:
    """Box IoU on ``frame`` when both boxes are drawn there (the prediction's inside its span)."""
    gt = sample.boxes.get(frame)
    if prediction is None or gt is None or not in_span(frame, prediction.tube):
        return None
    pred = prediction.boxes.get(frame)
    return None if pred is None else box_iou_xyxy(gt, pred)


def _mean_box_iou(sample: Sample, prediction: Prediction | None) -> float | None:
    """Mean IoU over the GT frames that have a predicted box, whatever the span (m_sIoU-like)."""
    if prediction is None:
        return None
    ious = [
        box_iou_xyxy(b, prediction.boxes[f])
        for f, b in sample.boxes.items()
        if f in prediction.boxes
    ]
    return float(np.mean(ious)) if ious else None


def _draw_timeline(
    draw: Any,
    top: int,
    width: int,
    sample: Sample,
    prediction: Prediction | None,
    shown: Sequence[int],
) -> None:
    """The timeline band at ``top``: GT and predicted spans, ticks of the shown frames, facts."""
    font = load_font(12)
    x0 = PAD + TRACK_LABEL_W
    bw = width - PAD - x0
    seg = sample.segment

    def row(y: int, span: Sequence[int] | None, color: tuple[int, int, int], name: str) -> None:
        draw.text((PAD, top + y - 2), name, fill=TEXT_COLOR, font=font)
        draw.rectangle([x0, top + y, x0 + bw - 1, top + y + ROW_H - 1], fill=TRACK_COLOR)
        if span is None:
            return
        a, b = max(span[0], seg[0]), min(span[1], seg[1])
        xa, xb = (
            round_half_up(timeline_x(a, seg, x0, bw)),
            round_half_up(timeline_x(b, seg, x0, bw)),
        )
        if b > a and xb > xa:
            draw.rectangle([xa, top + y, xb - 1, top + y + ROW_H - 1], fill=color)

    row(GT_ROW_Y, sample.tube, GT_COLOR, "GT")
    row(PRED_ROW_Y, None if prediction is None else prediction.tube, PRED_COLOR, "pred")
    for f in shown:
        x = round_half_up(timeline_x(f + 0.5, seg, x0, bw))
        draw.line([x, top + TICK_Y, x, top + TICK_Y + 4], fill=TICK_COLOR)
    parts = [f"segment [{seg[0]}, {seg[1]})", f"GT [{sample.tube[0]}, {sample.tube[1]})"]
    if prediction is not None:
        p = prediction.tube
        parts += [f"pred [{p[0]}, {p[1]})", f"tIoU {span_iou(sample.tube, p):.3f}"]
        miou = _mean_box_iou(sample, prediction)
        if miou is not None:
            parts.append(f"mean box IoU on GT frames {miou:.3f}")
    draw.text((x0, top + TICK_Y + 8), "   ".join(parts), fill=TEXT_COLOR, font=font)


def tube_strip(
    sample: Sample,
    prediction: Prediction | None,
    frames_dir_or_video: str | Path,
    out_png: str | Path,
    num_frames: int = 8,
    gif: str | Path | None = None,
    *,
    tile_width: int = 200,
    gif_step: int | None = None,
) -> list[Path]:
    """Draw ``sample``'s tube (and ``prediction``'s, if given) on a strip of frames.

    Frames: :func:`strip_frame_ids` (``num_frames`` spread over the segment, about half in the
    GT tube). Layout and colors: see the package docstring. With ``gif``, also writes an animated
    GIF of every ``gif_step``-th frame of the segment (default: at most 60 frames) at the video's
    pace, each frame with its boxes, its id and a small timeline cursor.

    Returns ``[out_png]`` or ``[out_png, gif]``. Raises :class:`InputError` for a missing or
    unreadable video.
    """
    from PIL import Image, ImageDraw

    ids = strip_frame_ids(sample.segment, sample.tube, num_frames)
    frames = read_strip_frames(frames_dir_or_video, ids, sample)
    warn_size_mismatch(frames, sample)
    tw, th = tile_size(sample.width, sample.height, tile_width)
    n = len(ids)
    width = 2 * PAD + n * tw + (n - 1) * GAP
    height = PAD + TITLE_H + th + LABEL_H + TIMELINE_H + PAD
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = BACKGROUND
    top = PAD + TITLE_H
    for k, (frame_id, frame) in enumerate(zip(ids, frames, strict=True)):
        left = PAD + k * (tw + GAP)
        canvas[top : top + th, left : left + tw] = boxed_tile(
            frame, frame_id, sample, prediction, tw, th
        )
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    draw_title(draw, sample, width, sample_facts(sample))
    font = load_font(12)
    for k, frame_id in enumerate(ids):
        left = PAD + k * (tw + GAP)
        in_tube = in_span(frame_id, sample.tube)
        color = (0, 120, 0) if in_tube else TEXT_COLOR
        draw.text((left + 2, top + th + 3), f"#{frame_id}", fill=color, font=font)
        iou = _frame_iou(sample, prediction, frame_id)
        if iou is not None:
            label = f"IoU {iou:.2f}"
            draw.text(
                (left + tw - 2 - draw.textlength(label, font=font), top + th + 3),
                label,
                fill=MUTED_COLOR,
                font=font,
            )
    _draw_timeline(draw, top + th + LABEL_H, width, sample, prediction, ids)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    image.save(out_png, format="PNG")
    written = [out_png]
    if gif is not None:
        written.append(
            tube_gif(
                sample, prediction, frames_dir_or_video, gif, tile_width=tile_width, step=gif_step
            )
        )
    return written


def gif_frame_ids(
    segment: Sequence[int], step: int | None = None, max_frames: int = 60
) -> list[int]:
    """Every ``step``-th frame of ``segment`` (default ``step = ceil(L / max_frames)``)."""
    length = segment[1] - segment[0]
    step = step or max(1, math.ceil(length / max_frames))
    return list(range(segment[0], segment[1], step))


def tube_gif(
    sample: Sample,
    prediction: Prediction | None,
    frames_dir_or_video: str | Path,
    out_gif: str | Path,
    *,
    tile_width: int = 200,
    step: int | None = None,
) -> Path:
    """An animated GIF of :func:`gif_frame_ids` with boxes, frame id and a timeline cursor.

    Each GIF frame is ``tw x (th + LABEL_H + GIF_TIMELINE_H)``, shown for ``1000 * step / fps``
    ms; the GIF loops.
    """
    from PIL import Image, ImageDraw

    ids = gif_frame_ids(sample.segment, step)
    step = ids[1] - ids[0] if len(ids) > 1 else 1
    frames = read_strip_frames(frames_dir_or_video, ids, sample)
    tw, th = tile_size(sample.width, sample.height, tile_width)
    seg, font = sample.segment, load_font(12)
    pictures = []
    for frame_id, frame in zip(ids, frames, strict=True):
        canvas = np.empty((th + LABEL_H + GIF_TIMELINE_H, tw, 3), np.uint8)
        canvas[:] = BACKGROUND
        canvas[:th] = boxed_tile(frame, frame_id, sample, prediction, tw, th)
        image = Image.fromarray(canvas)
        draw = ImageDraw.Draw(image)
        draw.text((3, th + 3), f"#{frame_id}", fill=TEXT_COLOR, font=font)
        top = th + LABEL_H
        draw.rectangle([0, top, tw - 1, top + GIF_TIMELINE_H - 1], fill=TRACK_COLOR)
        spans = [(sample.tube, GT_COLOR, 0)]
        if prediction is not None:
            spans.append((prediction.tube, PRED_COLOR, GIF_TIMELINE_H // 2))
        for span, color, dy in spans:
            xa, xb = (round_half_up(timeline_x(v, seg, 0, tw)) for v in (span[0], span[1]))
            if xb > xa:
                draw.rectangle(
                    [xa, top + dy, xb - 1, top + dy + GIF_TIMELINE_H // 2 - 2], fill=color
                )
        x = round_half_up(timeline_x(frame_id + 0.5, seg, 0, tw))
        draw.line([x, top, x, top + GIF_TIMELINE_H - 1], fill=(255, 255, 255), width=2)
        pictures.append(image)
    out_gif = Path(out_gif)
    out_gif.parent.mkdir(parents=True, exist_ok=True)
    duration = max(20, round_half_up(1000 * step / sample.fps))
    pictures[0].save(
        out_gif, format="GIF", save_all=True, append_images=pictures[1:], duration=duration, loop=0
    )
    return out_gif
