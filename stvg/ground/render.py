"""Pictures of a grounding: a PNG strip and an MP4 with the predicted box drawn inside the span.

Both show the *clip* ``[c0, c1)``: the predicted span with :data:`CONTEXT_SECONDS` before and
after it, cut to the video (the whole video when it is short). The strip is the tube strip of
:mod:`stvg.evaluate.pictures` without a ground truth: :func:`~stvg.evaluate.pictures.
strip_frame_ids` over the clip (about half the tiles inside the span), the predicted box in
yellow on the tiles inside the span, the sentence as the title, and a timeline of the **whole
video** with the span on it (on a long video, where the event is). The MP4 is the clip at the
video's frame rate, decoded and encoded a few frames at a time (memory stays that of a few
frames), with the predicted box outlined on every frame inside the span.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from stvg.data.sample import Sample
from stvg.evaluate.predictions import Prediction
from stvg.ground.predict import Grounding

CONTEXT_SECONDS = 5.0
STRIP_FRAMES = 8
TILE_WIDTH = 200
CHUNK = 64  # frames decoded at a time for the MP4


def clip_range(grounding: Grounding, context_seconds: float = CONTEXT_SECONDS) -> tuple[int, int]:
    """``[c0, c1)``: the span widened by ``round(context_seconds * fps)`` frames each side, cut
    to ``[0, frame_count)``."""
    pad = round(context_seconds * grounding.fps)
    return max(0, grounding.tube[0] - pad), min(grounding.frame_count, grounding.tube[1] + pad)


def _sample(grounding: Grounding, segment: tuple[int, int]) -> Sample:
    """A Sample to draw with: the clip as its segment, no ground-truth box."""
    return Sample(
        sample_id=grounding.pair.sample_id,
        video_id=grounding.pair.video.stem,
        video_path=str(grounding.pair.video),
        fps=grounding.fps,
        frame_count=grounding.frame_count,
        width=grounding.width,
        height=grounding.height,
        segment=segment,
        tube=grounding.tube,
        boxes={},
        caption=grounding.pair.sentence,
    )


def _prediction(grounding: Grounding) -> Prediction:
    return Prediction(
        tube=grounding.tube,
        boxes={f: (b[0], b[1], b[2], b[3]) for f, b in grounding.boxes.items()},
    )


def grounding_strip(grounding: Grounding, out_png: str | Path) -> Path:
    """The PNG strip of the module docstring."""
    from PIL import Image, ImageDraw

    from stvg.evaluate.pictures.canvas import boxed_tile, draw_title, load_font
    from stvg.evaluate.pictures.frames import read_strip_frames
    from stvg.evaluate.pictures.layout import (
        BACKGROUND,
        GAP,
        LABEL_H,
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

    clip = clip_range(grounding)
    sample, prediction = _sample(grounding, clip), _prediction(grounding)
    ids = strip_frame_ids(clip, grounding.tube, STRIP_FRAMES)
    frames = read_strip_frames(grounding.pair.video, ids, sample)
    tw, th = tile_size(grounding.width, grounding.height, TILE_WIDTH)
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
    s0, s1 = grounding.seconds
    facts = (
        f"{grounding.pair.video.name}  |  {grounding.fps:g} fps  |  {s0:.2f}-{s1:.2f} s  |  "
        f"score {grounding.score:.3f}"
    )
    draw_title(draw, sample, width, facts)
    font = load_font(12)
    for k, frame_id in enumerate(ids):
        inside = grounding.tube[0] <= frame_id < grounding.tube[1]
        draw.text(
            (PAD + k * (tw + GAP) + 2, top + th + 3),
            f"#{frame_id}  {frame_id / grounding.fps:.1f} s",
            fill=(120, 100, 0) if inside else TEXT_COLOR,
            font=font,
        )
    whole = (0, grounding.frame_count)
    y0, x0 = top + th + LABEL_H, PAD + TRACK_LABEL_W
    bw = width - PAD - x0
    draw.text((PAD, y0 + PRED_ROW_Y - 2), "pred", fill=TEXT_COLOR, font=font)
    draw.rectangle(
        [x0, y0 + PRED_ROW_Y, x0 + bw - 1, y0 + PRED_ROW_Y + ROW_H - 1], fill=TRACK_COLOR
    )
    xa = round_half_up(timeline_x(grounding.tube[0], whole, x0, bw))
    xb = max(xa + 1, round_half_up(timeline_x(grounding.tube[1], whole, x0, bw)))
    draw.rectangle([xa, y0 + PRED_ROW_Y, xb - 1, y0 + PRED_ROW_Y + ROW_H - 1], fill=PRED_COLOR)
    for f in ids:
        x = round_half_up(timeline_x(f + 0.5, whole, x0, bw))
        draw.line([x, y0 + TICK_Y, x, y0 + TICK_Y + 4], fill=TICK_COLOR)
    total = grounding.frame_count / grounding.fps
    draw.text(
        (x0, y0 + TICK_Y + 8),
        f"video 0-{total:.1f} s, span frames [{grounding.tube[0]}, {grounding.tube[1]})",
        fill=TEXT_COLOR,
        font=font,
    )
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    image.save(out_png, format="PNG")
    return out_png


def boxed_frames(grounding: Grounding, clip: tuple[int, int]) -> Iterator[np.ndarray]:
    """The clip's frames, each with the predicted box outlined inside the span, padded to even
    sizes (H.264 in yuv420p needs them)."""
    from stvg.data.video import open_video
    from stvg.evaluate.pictures.layout import PRED_COLOR, box_to_tile, draw_box

    w, h = grounding.width, grounding.height
    with open_video(grounding.pair.video) as video:
        for a in range(clip[0], clip[1], CHUNK):
            for frame_id, frame in zip(
                range(a, min(a + CHUNK, clip[1])),
                video.get(list(range(a, min(a + CHUNK, clip[1])))),
                strict=True,
            ):
                out = np.zeros(
                    (frame.shape[0] + frame.shape[0] % 2, frame.shape[1] + frame.shape[1] % 2, 3),
                    np.uint8,
                )
                out[: frame.shape[0], : frame.shape[1]] = frame
                box = grounding.boxes.get(frame_id)
                if box is not None and grounding.tube[0] <= frame_id < grounding.tube[1]:
                    fh, fw = frame.shape[:2]
                    draw_box(out[:fh, :fw], box_to_tile(tuple(box), w, h, fw, fh), PRED_COLOR)
                yield out


def grounding_mp4(grounding: Grounding, out_mp4: str | Path) -> Path:
    """The MP4 of the module docstring."""
    from stvg.data.mp4 import write_mp4

    out_mp4 = Path(out_mp4)
    out_mp4.parent.mkdir(parents=True, exist_ok=True)
    return write_mp4(out_mp4, boxed_frames(grounding, clip_range(grounding)), grounding.fps)


def render_grounding(grounding: Grounding, out: str | Path) -> list[Path]:
    """``OUT/<sample_id>.png`` and ``OUT/<sample_id>.mp4``."""
    from stvg.evaluate.pictures.visualize import _safe_name

    stem = Path(out) / _safe_name(grounding.pair.sample_id)
    return [
        grounding_strip(grounding, stem.with_suffix(".png")),
        grounding_mp4(grounding, stem.with_suffix(".mp4")),
    ]
