"""Layout of the pictures: colors, margins and band heights (the package docstring states the
formulas), half-up rounding, tile sizes, the frames a strip shows, box and timeline coordinates,
and the box outline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from stvg.data.sample import Box

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


def round_half_up(v: float) -> int:
    """Half-up rounding (Python's ``round`` rounds halves to even)."""
    return int(math.floor(v + 0.5))


def tile_size(width: int, height: int, tile_width: int) -> tuple[int, int]:
    """``(tw, th)`` of one tile for frames of ``width x height`` pixels."""
    return tile_width, max(1, round_half_up(height * tile_width / width))


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
    k_in = min(t_len, max(math.ceil(n / 2), round_half_up(n * t_len / length)), n)
    outside = [f for f in range(s0, s1) if not t0 <= f < t1]
    k_out = min(n - k_in, len(outside))
    k_in = min(t_len, n - k_out)

    def spread(ids: Sequence[int], m: int) -> list[int]:
        return [ids[int((k + 0.5) * len(ids) / m)] for k in range(m)] if m else []

    return sorted(spread(range(t0, t1), k_in) + spread(outside, k_out))


def box_to_tile(box: Box, width: int, height: int, tw: int, th: int) -> tuple[int, int, int, int]:
    """Original-pixel ``xyxy`` -> tile pixel rectangle ``(X1, Y1, X2, Y2)``, end exclusive."""
    x1, y1 = round_half_up(box[0] * tw / width), round_half_up(box[1] * th / height)
    x2, y2 = round_half_up(box[2] * tw / width), round_half_up(box[3] * th / height)
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
