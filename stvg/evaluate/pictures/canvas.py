"""What the tube and attention strips share: the font, the caption title, resized tiles with
their boxes drawn, and the check of the decoded frame size against the annotation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from stvg.data.sample import Sample
from stvg.evaluate.pictures.layout import (
    GT_COLOR,
    MUTED_COLOR,
    PAD,
    PRED_COLOR,
    TEXT_COLOR,
    box_to_tile,
    draw_box,
)
from stvg.evaluate.predictions import Prediction

log = logging.getLogger(__name__)


def load_font(size: int) -> Any:
    """Pillow's default font at ``size`` px (the same on every machine)."""
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def wrap_lines(draw: Any, text: str, font: Any, width: int, max_lines: int) -> list[str]:
    """Greedy word wrap into at most ``max_lines`` lines; the last one ends in "..." if cut."""
    lines: list[str] = []
    words = text.split()
    while words and len(lines) < max_lines:
        line = words.pop(0)
        while words and draw.textlength(line + " " + words[0], font=font) <= width:
            line += " " + words.pop(0)
        lines.append(line)
    if words and lines:
        last = lines[-1]
        while last and draw.textlength(last + " ...", font=font) > width:
            last = last[:-1]
        lines[-1] = last.rstrip() + " ..."
    return lines


def draw_title(draw: Any, sample: Sample, width: int, facts: str) -> None:
    """The quoted caption (at most two lines) and one muted line of ``facts`` at the top."""
    caption_font, facts_font = load_font(15), load_font(12)
    lines = wrap_lines(draw, f'"{sample.caption}"', caption_font, width - 2 * PAD, 2)
    for i, line in enumerate(lines):
        draw.text((PAD, PAD + 2 + 19 * i), line, fill=TEXT_COLOR, font=caption_font)
    draw.text((PAD, PAD + 42), facts, fill=MUTED_COLOR, font=facts_font)


def sample_facts(sample: Sample) -> str:
    """``sample <id> | video <id> | <fps> fps`` and the synthetic kind, if any."""
    kind = sample.extra.get("kind") if isinstance(sample.extra, dict) else None
    parts = [f"sample {sample.sample_id}", f"video {sample.video_id}", f"{sample.fps:g} fps"]
    return "  |  ".join(parts + ([str(kind)] if kind else []))


def resize_tile(frame: np.ndarray, tw: int, th: int) -> np.ndarray:
    """``frame`` resized bilinearly to ``uint8 [th, tw, 3]``."""
    from PIL import Image

    return np.array(Image.fromarray(frame).resize((tw, th), Image.Resampling.BILINEAR))


def in_span(frame: int, span: Sequence[int]) -> bool:
    """Whether ``frame`` lies in the half-open ``span``."""
    return span[0] <= frame < span[1]


def boxed_tile(
    frame: np.ndarray,
    frame_id: int,
    sample: Sample,
    prediction: Prediction | None,
    tw: int,
    th: int,
) -> np.ndarray:
    """One tile with the predicted (yellow) then the GT (green) outline."""
    tile = resize_tile(frame, tw, th)
    if prediction is not None and in_span(frame_id, prediction.tube):
        box = prediction.boxes.get(frame_id)
        if box is not None:
            draw_box(tile, box_to_tile(box, sample.width, sample.height, tw, th), PRED_COLOR)
    box = sample.boxes.get(frame_id)
    if box is not None:
        draw_box(tile, box_to_tile(box, sample.width, sample.height, tw, th), GT_COLOR)
    return tile


def warn_size_mismatch(frames: np.ndarray, sample: Sample) -> None:
    """Log a warning when the decoded frames are not the annotation's ``width x height``."""
    h, w = frames.shape[1:3]
    if (w, h) != (sample.width, sample.height):
        log.warning(
            "sample %s: decoded frames are %dx%d but the annotation says %dx%d; boxes are "
            "scaled from the annotation's size",
            sample.sample_id,
            w,
            h,
            sample.width,
            sample.height,
        )
