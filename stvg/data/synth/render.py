"""Rendering: flat-colored shapes rasterized at pixel centers on a grey background, with the
exact box of the drawn pixels of every actor on every frame (box convention: package docstring).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from stvg.data.synth.config import COLORS, SynthConfig
from stvg.data.synth.script import Actor

# Unit shapes, upright box [-0.5, 0.5]^2, y down; the cross is the union of two bars (convex
# pieces). Each turns about its centroid (_PIVOTS), so a spin does not wobble.
_PIVOTS: dict[str, tuple[float, float]] = {
    "square": (0.0, 0.0),
    "triangle": (0.0, 1 / 6),
    "cross": (0.0, 0.0),
}
_POLYGONS: dict[str, list[np.ndarray]] = {
    "square": [np.array([(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)])],
    "triangle": [np.array([(0.0, -0.5), (0.5, 0.5), (-0.5, 0.5)])],
    "cross": [
        np.array([(-0.5, -1 / 6), (0.5, -1 / 6), (0.5, 1 / 6), (-0.5, 1 / 6)]),
        np.array([(-1 / 6, -0.5), (1 / 6, -0.5), (1 / 6, 0.5), (-1 / 6, 0.5)]),
    ],
}


def _shape_mask(
    shape: str, s: int, cx: float, cy: float, degrees: float, width: int, height: int
) -> tuple[np.ndarray, int, int] | None:
    """Pixels whose centers fall inside the shape drawn with its upright box centered at
    ``(cx, cy)`` and turned by ``degrees`` about its centroid: (bool mask [h, w], x0, y0)."""
    r = 0.75 * s + 2
    x0, x1 = max(0, math.floor(cx - r)), min(width, math.ceil(cx + r))
    y0, y1 = max(0, math.floor(cy - r)), min(height, math.ceil(cy + r))
    if x0 >= x1 or y0 >= y1:
        return None
    px, py = _PIVOTS[shape]
    dx, dy = np.meshgrid(
        (np.arange(x0, x1) + 0.5 - cx) / s - px, (np.arange(y0, y1) + 0.5 - cy) / s - py
    )
    theta = math.radians(degrees)
    lx = math.cos(theta) * dx + math.sin(theta) * dy + px
    ly = -math.sin(theta) * dx + math.cos(theta) * dy + py
    mask = np.zeros(dx.shape, bool)
    for poly in _POLYGONS[shape]:
        a, b = poly, np.roll(poly, -1, axis=0)
        cross = [
            (bx - ax) * (ly - ay) - (by - ay) * (lx - ax)
            for (ax, ay), (bx, by) in zip(a, b, strict=True)
        ]
        inside_pos = np.logical_and.reduce([c >= -1e-9 for c in cross])
        inside_neg = np.logical_and.reduce([c <= 1e-9 for c in cross])
        mask |= inside_pos | inside_neg
    return mask, x0, y0


def render(actors: list[Actor], cfg: SynthConfig, grey: int) -> Iterator[np.ndarray]:
    """Yield RGB frames ``uint8 [H, W, 3]``; fills each actor's ``boxes`` (None: not drawn)."""
    width, height = cfg.size
    s = cfg.actor_size
    lane_h = height // len(actors)
    for actor in actors:
        actor.boxes = []
    for t in range(cfg.frame_count):
        frame = np.full((height, width, 3), grey, np.uint8)
        for actor in actors:
            assert actor.x is not None and actor.lift is not None and actor.angle is not None
            if actor.action_at(t) == "absent":
                actor.boxes.append(None)
                continue
            left = math.floor(actor.x[t] + 0.5)
            floor_y = (actor.lane + 1) * lane_h - 1
            top = floor_y - s - math.floor(actor.lift[t] + 0.5)
            drawn = _shape_mask(
                actor.shape, s, left + s / 2, top + s / 2, float(actor.angle[t]), width, height
            )
            box = None
            if drawn is not None and drawn[0].any():
                mask, x0, y0 = drawn
                region = frame[y0 : y0 + mask.shape[0], x0 : x0 + mask.shape[1]]
                region[mask] = COLORS[actor.color]
                cols, rows = np.flatnonzero(mask.any(0)), np.flatnonzero(mask.any(1))
                box = (
                    float(x0 + cols[0]),
                    float(y0 + rows[0]),
                    float(x0 + cols[-1] + 1),
                    float(y0 + rows[-1] + 1),
                )
            actor.boxes.append(box)
        yield frame
