"""The static-to-dynamic attention picture (the paper's Figure 5, supplementary Figure S1): frames
on the first row, the attention maps as a heat map over them on the second.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stvg.data.sample import Sample
from stvg.errors import InputError
from stvg.evaluate.pictures.canvas import (
    boxed_tile,
    draw_title,
    in_span,
    load_font,
    resize_tile,
    sample_facts,
    warn_size_mismatch,
)
from stvg.evaluate.pictures.frames import read_strip_frames
from stvg.evaluate.pictures.layout import (
    BACKGROUND,
    COLORBAR_H,
    GAP,
    LABEL_H,
    MUTED_COLOR,
    PAD,
    TEXT_COLOR,
    TITLE_H,
    tile_size,
)


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
    warn_size_mismatch(frames, sample)
    tw, th = tile_size(sample.width, sample.height, tile_width)
    width = 2 * PAD + m * tw + (m - 1) * GAP
    height = PAD + TITLE_H + 2 * (th + LABEL_H) + GAP + COLORBAR_H + PAD
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = BACKGROUND
    top1 = PAD + TITLE_H
    top2 = top1 + th + LABEL_H + GAP
    for k, (p, frame_id, frame) in enumerate(zip(picks, ids, frames, strict=True)):
        left = PAD + k * (tw + GAP)
        tile = boxed_tile(frame, frame_id, sample, None, tw, th)
        canvas[top1 : top1 + th, left : left + tw] = tile
        canvas[top2 : top2 + th, left : left + tw] = attention_overlay(
            resize_tile(frame, tw, th), maps[p]
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
    facts = f"{sample_facts(sample)}  |  s2d attention, {which} (N={n_layers}), / max of {len(ids_all)} frames"
    draw_title(draw, sample, width, facts)
    font = load_font(12)
    for k, frame_id in enumerate(ids):
        left = PAD + k * (tw + GAP)
        color = (0, 120, 0) if in_span(frame_id, sample.tube) else TEXT_COLOR
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
