"""Pictures of tubes and of the static-to-dynamic attention (training curves: ``curves``).

Two plain functions, each returning the path(s) it wrote:

* :func:`tube_strip`: a PNG strip of frames with the ground-truth box (GREEN ``(0, 255, 0)``)
  and the predicted box (YELLOW ``(255, 255, 0)``), the caption as a title and a timeline of the
  segment with both spans and their tIoU; optionally an animated GIF (Pillow);
* :func:`attention_strip`: the paper's Figure 5 / supplementary Figure S1: frames on the first
  row, the static-to-dynamic attention maps ``A_i`` upsampled and overlaid as a heat map on the
  second, normalized by the maximum over all frames of the sample.

Strip layout (pixels; the tests map annotation coordinates through these formulas). With ``n``
frames, the frame size ``W0 x H0`` of the sample and ``tile_width = tw``:

* tile height ``th = round(H0 * tw / W0)``; the image is ``2 * PAD + n * tw + (n - 1) * GAP``
  wide; tile ``k`` has its top-left corner at ``(PAD + k * (tw + GAP), PAD + TITLE_H)``;
* a box ``[x1, y1, x2, y2]`` (original pixels, pixel ``(i, j)`` covering ``[i, i+1) x [j, j+1)``)
  becomes the tile columns ``X1 = round(x1 * tw / W0) .. X2 - 1`` with ``X2 = round(x2 * tw /
  W0)`` (rows alike with ``th / H0``); its outline is ``BOX_WIDTH`` pixels thick, drawn inside
  that rectangle (clipped to the tile), with a 1 px black halo just outside it. The GT box is
  drawn over the predicted one;
* under the tiles: a ``LABEL_H`` band of frame ids (and the per-frame box IoU), then the
  timeline band of ``TIMELINE_H``: frame ``f`` of the segment ``[s0, s1)`` sits at
  ``x(f) = X0 + (f - s0) * BW / (s1 - s0)`` with ``X0 = PAD + TRACK_LABEL_W`` and ``BW = width -
  PAD - X0``; a span ``[a, b)`` fills the columns ``round(x(a)) .. round(x(b)) - 1`` of its row,
  the GT row at ``y = TIMELINE_TOP + GT_ROW_Y`` and the predicted row at ``... + PRED_ROW_Y``,
  each ``ROW_H`` tall, where ``TIMELINE_TOP = PAD + TITLE_H + th + LABEL_H``;
* total height ``PAD + TITLE_H + th + LABEL_H + TIMELINE_H + PAD``.

Rounding is half-up (``floor(v + 0.5)``). The predicted box is drawn on frames inside the
predicted span only (the boxes vIoU uses); the GT box on frames that have one. Frame sources are
a video file (decoded by :mod:`stvg.data.video`) or a folder of images whose file name ends in
the 0-based frame id (``000012.jpg``, ``img_12.png``). Drawing is pure numpy + Pillow with
Pillow's default font, so the same inputs give the same pixels.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stvg.data.sample import Box, Sample
from stvg.errors import InputError
from stvg.evaluate.boxes import box_iou_xyxy, span_iou
from stvg.evaluate.predictions import Prediction

log = logging.getLogger(__name__)

GT_COLOR = (0, 255, 0)
PRED_COLOR = (255, 255, 0)
BACKGROUND = (255, 255, 255)
TEXT_COLOR = (30, 30, 30)
MUTED_COLOR = (110, 110, 110)
TRACK_COLOR = (70, 70, 70)
TICK_COLOR = (140, 140, 140)
HALO_COLOR = (0, 0, 0)

PAD = 8  # outer margin
GAP = 4  # between tiles
TITLE_H = 62  # two caption lines and one line of facts
LABEL_H = 20  # frame ids under the tiles
TIMELINE_H = 64
TRACK_LABEL_W = 44  # "GT" / "pred" before the timeline rows
GT_ROW_Y = 6
PRED_ROW_Y = 22
ROW_H = 10
TICK_Y = 36  # ticks of the shown frames, 5 px tall
BOX_WIDTH = 2
COLORBAR_H = 34  # attention strip: the color scale under the maps
GIF_TIMELINE_H = 12


# ----------------------------------------------------------------------------- geometry


def _round(v: float) -> int:
    """Half-up rounding (Python's ``round`` rounds halves to even)."""
    return int(math.floor(v + 0.5))


def tile_size(width: int, height: int, tile_width: int) -> tuple[int, int]:
    """``(tw, th)`` of one tile for frames of ``width x height`` pixels."""
    return tile_width, max(1, _round(height * tile_width / width))


def strip_frame_ids(segment: Sequence[int], tube: Sequence[int], num_frames: int) -> list[int]:
    """``num_frames`` sorted frame ids spread over ``segment``, about half of them in ``tube``.

    ``k_in = min(T, max(ceil(n / 2), round(n * T / L)))`` frames evenly inside the tube (``T``
    frames long) and the rest evenly over the segment outside it (``L`` frames long), so a short
    tube still shows its boxes; fewer ids when the segment is shorter than ``num_frames``. Evenly
    means ``floor((k + 0.5) * M / m)`` for ``k < m`` over the ``M`` candidate frames.
    """
    s0, s1 = int(segment[0]), int(segment[1])
    t0, t1 = max(int(tube[0]), s0), min(int(tube[1]), s1)
    n, length, t_len = int(num_frames), s1 - s0, max(t1 - t0, 0)
    if n <= 0 or length <= 0:
        return []
    k_in = min(t_len, max(math.ceil(n / 2), _round(n * t_len / length)), n)
    outside = [f for f in range(s0, s1) if not t0 <= f < t1]
    k_out = min(n - k_in, len(outside))
    k_in = min(t_len, n - k_out)

    def spread(ids: Sequence[int], m: int) -> list[int]:
        return [ids[int((k + 0.5) * len(ids) / m)] for k in range(m)] if m else []

    return sorted(spread(range(t0, t1), k_in) + spread(outside, k_out))


def box_to_tile(box: Box, width: int, height: int, tw: int, th: int) -> tuple[int, int, int, int]:
    """Original-pixel ``xyxy`` -> tile pixel rectangle ``(X1, Y1, X2, Y2)``, end exclusive."""
    x1, y1 = _round(box[0] * tw / width), _round(box[1] * th / height)
    x2, y2 = _round(box[2] * tw / width), _round(box[3] * th / height)
    return x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)


def draw_box(
    tile: np.ndarray, rect: tuple[int, int, int, int], color: tuple[int, int, int]
) -> None:
    """Draw the outline of ``rect`` (end exclusive) ``BOX_WIDTH`` px thick, inside it, in place.

    A 1 px dark halo just outside the outline keeps it visible on objects of the same color.
    """
    th, tw = tile.shape[:2]
    x1, y1, x2, y2 = rect
    hx1, hy1, hx2, hy2 = max(x1 - 1, 0), max(y1 - 1, 0), min(x2 + 1, tw), min(y2 + 1, th)
    if hx1 < hx2 and hy1 < hy2:
        for ys, xs in (
            (slice(hy1, hy1 + 1), slice(hx1, hx2)),
            (slice(hy2 - 1, hy2), slice(hx1, hx2)),
            (slice(hy1, hy2), slice(hx1, hx1 + 1)),
            (slice(hy1, hy2), slice(hx2 - 1, hx2)),
        ):
            tile[ys, xs] = HALO_COLOR
    x1, x2 = max(x1, 0), min(x2, tw)
    y1, y2 = max(y1, 0), min(y2, th)
    if x1 >= x2 or y1 >= y2:
        return
    t = BOX_WIDTH
    tile[y1 : min(y1 + t, y2), x1:x2] = color
    tile[max(y2 - t, y1) : y2, x1:x2] = color
    tile[y1:y2, x1 : min(x1 + t, x2)] = color
    tile[y1:y2, max(x2 - t, x1) : x2] = color


def timeline_x(frame: float, segment: Sequence[int], x0: int, bar_width: int) -> float:
    """x pixel of ``frame`` on a timeline of ``segment`` starting at ``x0``, ``bar_width`` wide."""
    return x0 + (frame - segment[0]) * bar_width / (segment[1] - segment[0])


# ----------------------------------------------------------------------------- frames


def _frame_files(folder: Path) -> dict[int, Path]:
    files: dict[int, Path] = {}
    for path in folder.iterdir():
        match = re.search(r"(\d+)$", path.stem)
        if match and path.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".webp"):
            files.setdefault(int(match.group(1)), path)
    return files


def read_strip_frames(source: str | Path, frame_ids: Sequence[int], sample: Sample) -> np.ndarray:
    """Frames ``uint8 [N, H, W, 3]`` RGB from a video file or a folder of numbered images.

    Raises :class:`InputError` naming the source, the sample and ``video_path`` when the source
    is missing or cannot be decoded.
    """
    from PIL import Image

    from stvg.data.video import VideoError, open_video

    source = Path(source)
    where = {"file": source, "sample": sample.sample_id, "field": "video_path"}
    if not source.exists():
        raise InputError("the video (or frame folder) does not exist", **where)
    if source.is_dir():
        files = _frame_files(source)
        missing = [f for f in frame_ids if f not in files]
        if missing:
            raise InputError(
                f"the frame folder has no image for frame(s) {missing[:5]} (file names must end "
                "in the 0-based frame id)",
                **where,
            )
        return np.stack([np.asarray(Image.open(files[f]).convert("RGB")) for f in frame_ids])
    try:
        with open_video(source) as video:
            return video.get(list(frame_ids))
    except VideoError as error:
        raise InputError(
            f"cannot read the video: {error.reason}: {error.message}", **where
        ) from None


# ----------------------------------------------------------------------------- text and canvas


def _font(size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _fit(draw: Any, text: str, font: Any, width: int, max_lines: int) -> list[str]:
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


def _title(draw: Any, sample: Sample, width: int, facts: str) -> None:
    caption_font, facts_font = _font(15), _font(12)
    lines = _fit(draw, f'"{sample.caption}"', caption_font, width - 2 * PAD, 2)
    for i, line in enumerate(lines):
        draw.text((PAD, PAD + 2 + 19 * i), line, fill=TEXT_COLOR, font=caption_font)
    draw.text((PAD, PAD + 42), facts, fill=MUTED_COLOR, font=facts_font)


def _sample_facts(sample: Sample) -> str:
    kind = sample.extra.get("kind") if isinstance(sample.extra, dict) else None
    parts = [f"sample {sample.sample_id}", f"video {sample.video_id}", f"{sample.fps:g} fps"]
    return "  |  ".join(parts + ([str(kind)] if kind else []))


def _tile(frame: np.ndarray, tw: int, th: int) -> np.ndarray:
    from PIL import Image

    return np.array(Image.fromarray(frame).resize((tw, th), Image.Resampling.BILINEAR))


def _in_span(frame: int, span: Sequence[int]) -> bool:
    return span[0] <= frame < span[1]


def _boxed_tile(
    frame: np.ndarray,
    frame_id: int,
    sample: Sample,
    prediction: Prediction | None,
    tw: int,
    th: int,
) -> np.ndarray:
    """One tile with the predicted (yellow) then the GT (green) outline."""
    tile = _tile(frame, tw, th)
    if prediction is not None and _in_span(frame_id, prediction.tube):
        box = prediction.boxes.get(frame_id)
        if box is not None:
            draw_box(tile, box_to_tile(box, sample.width, sample.height, tw, th), PRED_COLOR)
    box = sample.boxes.get(frame_id)
    if box is not None:
        draw_box(tile, box_to_tile(box, sample.width, sample.height, tw, th), GT_COLOR)
    return tile


def _check_size(frames: np.ndarray, sample: Sample) -> None:
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


def _frame_iou(sample: Sample, prediction: Prediction | None, frame: int) -> float | None:
    gt = sample.boxes.get(frame)
    if prediction is None or gt is None or not _in_span(frame, prediction.tube):
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


# ----------------------------------------------------------------------------- tube strip


def _draw_timeline(
    draw: Any,
    top: int,
    width: int,
    sample: Sample,
    prediction: Prediction | None,
    shown: Sequence[int],
) -> None:
    font = _font(12)
    x0 = PAD + TRACK_LABEL_W
    bw = width - PAD - x0
    seg = sample.segment

    def row(y: int, span: Sequence[int] | None, color: tuple[int, int, int], name: str) -> None:
        draw.text((PAD, top + y - 2), name, fill=TEXT_COLOR, font=font)
        draw.rectangle([x0, top + y, x0 + bw - 1, top + y + ROW_H - 1], fill=TRACK_COLOR)
        if span is None:
            return
        a, b = max(span[0], seg[0]), min(span[1], seg[1])
        xa, xb = _round(timeline_x(a, seg, x0, bw)), _round(timeline_x(b, seg, x0, bw))
        if b > a and xb > xa:
            draw.rectangle([xa, top + y, xb - 1, top + y + ROW_H - 1], fill=color)

    row(GT_ROW_Y, sample.tube, GT_COLOR, "GT")
    row(PRED_ROW_Y, None if prediction is None else prediction.tube, PRED_COLOR, "pred")
    for f in shown:
        x = _round(timeline_x(f + 0.5, seg, x0, bw))
        draw.line([x, top + TICK_Y, x, top + TICK_Y + 4], fill=TICK_COLOR)
    parts = [f"segment [{seg[0]}, {seg[1]})", f"GT [{sample.tube[0]}, {sample.tube[1]})"]
    if prediction is not None:
        p = prediction.tube
        parts += [f"pred [{p[0]}, {p[1]})", f"tIoU {span_iou(sample.tube, p):.3f}"]
        miou = _mean_box_iou(sample, prediction)
        if miou is not None:
            parts.append(f"mean box IoU on GT frames {miou:.3f}")
    draw.text((x0, top + TICK_Y + 8), "   ".join(parts), fill=TEXT_COLOR, font=font)


def _safe_name(sample_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", sample_id).strip("._") or "sample"


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
    GT tube). Layout and colors: see the module docstring. With ``gif``, also writes an animated
    GIF of every ``gif_step``-th frame of the segment (default: at most 60 frames) at the video's
    pace, each frame with its boxes, its id and a small timeline cursor.

    Returns ``[out_png]`` or ``[out_png, gif]``. Raises :class:`InputError` for a missing or
    unreadable video.
    """
    from PIL import Image, ImageDraw

    ids = strip_frame_ids(sample.segment, sample.tube, num_frames)
    frames = read_strip_frames(frames_dir_or_video, ids, sample)
    _check_size(frames, sample)
    tw, th = tile_size(sample.width, sample.height, tile_width)
    n = len(ids)
    width = 2 * PAD + n * tw + (n - 1) * GAP
    height = PAD + TITLE_H + th + LABEL_H + TIMELINE_H + PAD
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = BACKGROUND
    top = PAD + TITLE_H
    for k, (frame_id, frame) in enumerate(zip(ids, frames, strict=True)):
        left = PAD + k * (tw + GAP)
        canvas[top : top + th, left : left + tw] = _boxed_tile(
            frame, frame_id, sample, prediction, tw, th
        )
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    _title(draw, sample, width, _sample_facts(sample))
    font = _font(12)
    for k, frame_id in enumerate(ids):
        left = PAD + k * (tw + GAP)
        in_tube = _in_span(frame_id, sample.tube)
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
    seg, font = sample.segment, _font(12)
    pictures = []
    for frame_id, frame in zip(ids, frames, strict=True):
        canvas = np.empty((th + LABEL_H + GIF_TIMELINE_H, tw, 3), np.uint8)
        canvas[:] = BACKGROUND
        canvas[:th] = _boxed_tile(frame, frame_id, sample, prediction, tw, th)
        image = Image.fromarray(canvas)
        draw = ImageDraw.Draw(image)
        draw.text((3, th + 3), f"#{frame_id}", fill=TEXT_COLOR, font=font)
        top = th + LABEL_H
        draw.rectangle([0, top, tw - 1, top + GIF_TIMELINE_H - 1], fill=TRACK_COLOR)
        spans = [(sample.tube, GT_COLOR, 0)]
        if prediction is not None:
            spans.append((prediction.tube, PRED_COLOR, GIF_TIMELINE_H // 2))
        for span, color, dy in spans:
            xa, xb = (_round(timeline_x(v, seg, 0, tw)) for v in (span[0], span[1]))
            if xb > xa:
                draw.rectangle(
                    [xa, top + dy, xb - 1, top + dy + GIF_TIMELINE_H // 2 - 2], fill=color
                )
        x = _round(timeline_x(frame_id + 0.5, seg, 0, tw))
        draw.line([x, top, x, top + GIF_TIMELINE_H - 1], fill=(255, 255, 255), width=2)
        pictures.append(image)
    out_gif = Path(out_gif)
    out_gif.parent.mkdir(parents=True, exist_ok=True)
    duration = max(20, _round(1000 * step / sample.fps))
    pictures[0].save(
        out_gif, format="GIF", save_all=True, append_images=pictures[1:], duration=duration, loop=0
    )
    return out_gif


# ----------------------------------------------------------------------------- attention


def heat_colors(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to ``uint8`` RGB with matplotlib's ``jet`` (blue low, red high)."""
    from matplotlib import colormaps

    lut = (colormaps["jet"](np.linspace(0.0, 1.0, 256))[:, :3] * 255 + 0.5).astype(np.uint8)
    return lut[np.clip(np.rint(values * 255), 0, 255).astype(np.int64)]


def attention_overlay(frame: np.ndarray, attention: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Blend ``heat_colors(attention)`` over ``frame``.

    ``frame`` is ``uint8 [H, W, 3]``, ``attention`` a normalized ``[h, w]`` map in [0, 1] on the
    feature grid; it is upsampled bilinearly (cell centers, as ``align_corners=False``) to
    ``H x W``, the grid covering the whole frame. Returns ``uint8 [H, W, 3]``.
    """
    from PIL import Image

    height, width = frame.shape[:2]
    grid = Image.fromarray(np.ascontiguousarray(attention, dtype=np.float32), mode="F")
    up = np.asarray(grid.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)
    heat = heat_colors(np.clip(up, 0.0, 1.0)).astype(np.float32)
    out = (1.0 - alpha) * frame.astype(np.float32) + alpha * heat
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def select_attention(attention: np.ndarray, layer: int | None = None) -> np.ndarray:
    """``[N, Ts, h, w]`` maps -> ``[Ts, h, w]`` of one ``layer`` (0-based, negative from the
    end) or the mean over layers (``None``), divided by its maximum over all frames."""
    attention = np.asarray(attention, dtype=np.float32)
    if attention.ndim != 4:
        raise ValueError(f"expected attention [N, Ts, h, w], got shape {attention.shape}")
    if layer is None:
        maps = attention.mean(0)
    else:
        if not -attention.shape[0] <= layer < attention.shape[0]:
            raise InputError(
                f"layer {layer} does not exist (the model has {attention.shape[0]} layers, "
                "0-based)",
                field="--layer",
            )
        maps = attention[layer]
    peak = float(maps.max()) if maps.size else 0.0
    return maps / peak if peak > 0 else np.zeros_like(maps)


def attention_strip(
    sample: Sample,
    attention: np.ndarray,
    frame_ids: Sequence[int],
    frames_dir_or_video: str | Path,
    out_png: str | Path,
    *,
    layer: int | None = None,
    num_frames: int = 8,
    tile_width: int = 200,
) -> Path:
    """Figure 5 of the paper for one sample: frames above, attention heat maps below.

    ``attention`` is the model's ``s2d_attention`` of this sample, ``[N, Ts, h, w]`` (the
    alpha-scaled decoder attention over the image feature grid, one map per layer and frame),
    and ``frame_ids`` the ``Ts`` native frame ids it was computed on. The maps of ``layer`` (or
    the mean over layers) are normalized by their maximum over all ``Ts`` frames (supplementary
    Figure S1), then ``num_frames`` of the ``Ts`` frames, evenly spread, are drawn: tile layout
    as :func:`tube_strip` (GT box in green on the top row), the overlays on a second row
    ``GAP + LABEL_H`` below, and a color scale (0 to the maximum) at the bottom. Image height:
    ``PAD + TITLE_H + 2 * (th + LABEL_H) + GAP + COLORBAR_H + PAD``.
    """
    from PIL import Image, ImageDraw

    maps = select_attention(attention, layer)
    ids_all = [int(f) for f in frame_ids]
    if len(ids_all) != maps.shape[0]:
        raise ValueError(f"{len(ids_all)} frame ids for {maps.shape[0]} attention frames")
    m = min(num_frames, len(ids_all))
    picks = [int((k + 0.5) * len(ids_all) / m) for k in range(m)]
    ids = [ids_all[p] for p in picks]
    frames = read_strip_frames(frames_dir_or_video, ids, sample)
    _check_size(frames, sample)
    tw, th = tile_size(sample.width, sample.height, tile_width)
    width = 2 * PAD + m * tw + (m - 1) * GAP
    height = PAD + TITLE_H + 2 * (th + LABEL_H) + GAP + COLORBAR_H + PAD
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = BACKGROUND
    top1 = PAD + TITLE_H
    top2 = top1 + th + LABEL_H + GAP
    for k, (p, frame_id, frame) in enumerate(zip(picks, ids, frames, strict=True)):
        left = PAD + k * (tw + GAP)
        tile = _boxed_tile(frame, frame_id, sample, None, tw, th)
        canvas[top1 : top1 + th, left : left + tw] = tile
        canvas[top2 : top2 + th, left : left + tw] = attention_overlay(
            _tile(frame, tw, th), maps[p]
        )
    bar_top = top2 + th + LABEL_H + 4
    bar_x0, bar_w = PAD + 40, min(240, width - 2 * PAD - 80)
    if bar_w > 0:
        ramp = heat_colors(np.linspace(0.0, 1.0, bar_w))
        canvas[bar_top : bar_top + 10, bar_x0 : bar_x0 + bar_w] = ramp[None]
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    which = "mean over layers" if layer is None else f"layer {layer}"
    n_layers = np.asarray(attention).shape[0]
    facts = f"{_sample_facts(sample)}  |  s2d attention, {which} (N={n_layers}), / max of {len(ids_all)} frames"
    _title(draw, sample, width, facts)
    font = _font(12)
    for k, frame_id in enumerate(ids):
        left = PAD + k * (tw + GAP)
        color = (0, 120, 0) if _in_span(frame_id, sample.tube) else TEXT_COLOR
        draw.text((left + 2, top1 + th + 3), f"#{frame_id}", fill=color, font=font)
        peak = float(maps[picks[k]].max())
        draw.text((left + 2, top2 + th + 3), f"max {peak:.2f}", fill=MUTED_COLOR, font=font)
    if bar_w > 0:
        draw.text((PAD, bar_top - 2), "0", fill=TEXT_COLOR, font=font)
        draw.text((bar_x0 + bar_w + 6, bar_top - 2), "max", fill=TEXT_COLOR, font=font)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    image.save(out_png, format="PNG")
    return out_png


def attention_from_model(model: Any, batch: dict[str, Any], device: Any = "cpu") -> np.ndarray:
    """The ``s2d_attention`` of the first query of a collated ``batch``: ``float32 [N, Ts, h, w]``."""
    import torch

    model.eval()
    moved = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    with torch.no_grad():
        out = model(moved)
    return out["s2d_attention"][0].float().cpu().numpy()


def sample_attention(
    run: str | Path, features: str | Path, split: str, sample_id: str, device: str = "cpu"
) -> tuple[Sample, np.ndarray, np.ndarray]:
    """Run the EMA weights of ``run`` on one stored query; ``(sample, attention, frame_ids)``.

    The query takes the run's ``num_frames`` stored frames, evenly spread (as in training);
    ``attention`` is ``[N, Ts, h, w]``, ``frame_ids`` ``[Ts]`` native ids.
    """
    from stvg.evaluate.predict import load_run
    from stvg.features.dataset import FeatureDataset, collate
    from stvg.features.store import open_store

    model, info = load_run(run, device)
    store = open_store(features)
    if split not in store.splits():
        raise InputError(
            f"the store has no split '{split}' (it has: {', '.join(store.splits()) or 'none'})",
            file=features,
            field="--split",
        )
    dataset = FeatureDataset(
        features, split, int(info["config"]["num_frames"]), sample_ids=[sample_id]
    )
    if not dataset.samples:
        raise InputError(
            f"the store's split '{split}' has no query with this id",
            file=features,
            sample=sample_id,
            field="--sample",
        )
    item = dataset.item(0)
    attention = attention_from_model(model, collate([item]), device)
    return dataset.samples[0], attention, item["frame_ids"].numpy()


# ----------------------------------------------------------------------------- one sample, all pictures


def visualize_sample(
    annotations: str | Path,
    sample_id: str,
    out_dir: str | Path,
    *,
    predictions: str | Path | None = None,
    num_frames: int = 8,
    gif: bool = False,
    video_root: str | Path | None = None,
    format: str | None = None,
    boxes_dir: str | Path | None = None,
    attention_run: str | Path | None = None,
    features: str | Path | None = None,
    split: str = "test",
    layer: int | None = None,
    device: str = "cpu",
) -> list[Path]:
    """``stvg visualize``: the pictures of one sample of an annotation file, in ``out_dir``.

    Writes ``<id>.png`` (:func:`tube_strip`), with ``gif`` also ``<id>.gif``, and with
    ``attention_run`` (and ``features``) ``<id>-attention.png`` (:func:`attention_strip`);
    ``<id>`` is the sample id with characters other than letters, digits, ``.``, ``_`` and ``-``
    replaced by ``_``. The video is ``video_root / sample.video_path`` (default root: the
    annotation file's folder). Returns the written paths; raises :class:`InputError` for an
    unknown sample id, a sample missing from the predictions, a missing or unreadable video.
    """
    from stvg.data.formats import load_annotations
    from stvg.evaluate.predictions import read_predictions

    annotations = Path(annotations)
    loaded = load_annotations(annotations, format, boxes_dir=boxes_dir)
    by_id = loaded.by_id()
    if sample_id not in by_id:
        known = ", ".join(list(by_id)[:5]) + (", ..." if len(by_id) > 5 else "")
        raise InputError(
            f"no sample with this id in the annotations (they hold {len(by_id)}: {known})",
            file=annotations,
            sample=sample_id,
            field="--sample",
        )
    sample = by_id[sample_id]
    prediction = None
    if predictions is not None:
        preds = read_predictions(predictions)
        if sample_id not in preds.by_id:
            raise InputError(
                "the predictions hold no tube for this sample", file=predictions, sample=sample_id
            )
        prediction = preds.by_id[sample_id]
    root = Path(video_root) if video_root is not None else annotations.parent
    video = root / sample.video_path
    if not video.exists():
        raise InputError(
            f"the video {video} does not exist",
            file=annotations,
            sample=sample_id,
            field="video_path",
            hint="Pass --video-root DIR, the folder the annotation's video paths are relative to",
        )
    out_dir = Path(out_dir)
    name = _safe_name(sample_id)
    written = tube_strip(
        sample,
        prediction,
        video,
        out_dir / f"{name}.png",
        num_frames=num_frames,
        gif=out_dir / f"{name}.gif" if gif else None,
    )
    if attention_run is not None:
        if features is None:
            raise InputError(
                "--attention needs --features DIR (the store the run was trained on)",
                field="--features",
            )
        _, attention, frame_ids = sample_attention(
            attention_run, features, split, sample_id, device
        )
        written.append(
            attention_strip(
                sample,
                attention,
                frame_ids,
                video,
                out_dir / f"{name}-attention.png",
                layer=layer,
                num_frames=num_frames,
            )
        )
    return written


__all__ = [
    "attention_from_model",
    "attention_overlay",
    "attention_strip",
    "sample_attention",
    "strip_frame_ids",
    "tube_gif",
    "tube_strip",
    "visualize_sample",
]
