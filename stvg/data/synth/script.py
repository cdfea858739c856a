"""Actor scripts: the segments (one action each) covering a video, and their motion.

:func:`actor_script` draws an actor's segments around an optional fixed one (the query's);
:func:`simulate` turns segments into per-frame position, lift and angle, or refuses a script that
cannot be played inside the frame at the allowed speeds (the caller then draws again).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stvg.data.synth.config import SynthConfig

_FILL_ACTIONS = ("walk_left", "walk_right", "jump", "stop", "spin")
_WALK_SPEED = (0.12, 0.45)  # frame widths per second
_HOP_SECONDS = 0.8
_SPIN_TURNS_PER_SECOND = 0.75
_EDGE_P = 0.3  # chance that a free actor enters first / leaves last


@dataclass
class Segment:
    """One action over the frames ``[start, end)`` (0-based, half-open)."""

    action: str  # an ACTIONS key, or "absent"
    start: int
    end: int


@dataclass
class Actor:
    """One shape on its lane: its script (``segments``), its motion once simulated (one value
    per frame) and, once rendered, its box per frame."""

    color: str
    shape: str
    lane: int
    segments: list[Segment] = field(default_factory=list)
    x: np.ndarray | None = None  # [T] left edge of the s x s square, px (nan: absent)
    lift: np.ndarray | None = None  # [T] height above the floor, px
    angle: np.ndarray | None = None  # [T] rotation, degrees
    boxes: list[tuple[float, float, float, float] | None] = field(default_factory=list)

    def action_at(self, t: int) -> str:
        """The action of frame ``t`` ("absent" when the actor is out of the video)."""
        return next(seg.action for seg in self.segments if seg.start <= t < seg.end)


def _split_lengths(rng: np.random.Generator, total: int, low: int, high: int) -> list[int]:
    lengths: list[int] = []
    left = total
    while left > 0:
        if left <= high:
            piece = left
        else:
            piece = int(rng.integers(low, high + 1))
            if left - piece < low:
                piece = left - low if left - low >= low else left
        lengths.append(piece)
        left -= piece
    return lengths


def _fill(
    rng: np.random.Generator,
    start: int,
    end: int,
    cfg: SynthConfig,
    forbidden: Any,
    before: str | None,
    after: str | None,
    may_enter: bool,
    may_leave: bool,
) -> list[Segment] | None:
    """Random segments covering ``[start, end)``; ``forbidden(s, e)`` -> actions not allowed."""
    if end <= start:
        return []
    lengths = _split_lengths(rng, end - start, cfg.min_segment, cfg.max_segment)
    segments: list[Segment] = []
    t = start
    prev = before
    for i, length in enumerate(lengths):
        seg_end = t + length
        banned = set(forbidden(t, seg_end)) | {prev}
        if i == len(lengths) - 1 and after is not None:
            banned.add(after)
        first, last = i == 0, i == len(lengths) - 1
        if first and may_enter and length >= 3 and "enter" not in banned and rng.random() < _EDGE_P:
            gap = int(rng.integers(0, max(1, length - cfg.min_segment + 1)))
            if gap:
                segments.append(Segment("absent", t, t + gap))
            segments.append(Segment("enter", t + gap, seg_end))
            prev = "enter"
        elif (
            last and may_leave and length >= 3 and "leave" not in banned and rng.random() < _EDGE_P
        ):
            gap = int(rng.integers(0, max(1, length - cfg.min_segment + 1)))
            segments.append(Segment("leave", t, seg_end - gap))
            if gap:
                segments.append(Segment("absent", seg_end - gap, seg_end))
            prev = "leave"
        else:
            choices = [a for a in _FILL_ACTIONS if a not in banned]
            if not choices:
                return None
            prev = str(rng.choice(choices))
            segments.append(Segment(prev, t, seg_end))
        t = seg_end
    return segments


def actor_script(
    rng: np.random.Generator,
    cfg: SynthConfig,
    fixed: Segment | None,
    never: set[str],
    not_during: tuple[set[str], int, int],
) -> list[Segment] | None:
    """One actor's segments over ``[0, T)``: ``fixed`` kept as is, the rest random.

    ``never``: actions the random part may not use; ``not_during = (actions, t0, t1)``: actions
    not allowed in a random segment overlapping ``[t0, t1)``.
    """
    total = cfg.frame_count
    banned_during, w0, w1 = not_during

    def forbidden(s: int, e: int) -> set[str]:
        return never | (banned_during if s < w1 and w0 < e else set())

    if fixed is None:
        return _fill(rng, 0, total, cfg, forbidden, None, None, True, True)
    if fixed.action == "enter":
        pre = [Segment("absent", 0, fixed.start)] if fixed.start > 0 else []
    else:
        pre = _fill(rng, 0, fixed.start, cfg, forbidden, None, fixed.action, True, False)
    if fixed.action == "leave":
        post = [Segment("absent", fixed.end, total)] if fixed.end < total else []
    else:
        post = _fill(rng, fixed.end, total, cfg, forbidden, fixed.action, None, False, True)
    if pre is None or post is None:
        return None
    return pre + [fixed] + post


def simulate(
    rng: np.random.Generator,
    actor: Actor,
    cfg: SynthConfig,
    amplitude: float,
    start: float | None = None,
) -> bool:
    """Fill ``actor.x / lift / angle`` from its segments; False if the script cannot be played
    inside the frame at the allowed speeds. ``start``: the left edge on the first frame (default:
    drawn at random; a long video is simulated piece by piece, each from the last one's end)."""
    total = cfg.frame_count
    width = cfg.size[0]
    s = cfg.actor_size
    vmin, vmax = (v * width / cfg.fps for v in _WALK_SPEED)
    edge = max(2, round(0.3 * s))
    x = np.full(total, np.nan)
    lift = np.zeros(total)
    angle = np.zeros(total)
    pos: float | None = start
    for seg in actor.segments:
        n = seg.end - seg.start
        u = np.arange(n, dtype=float)
        if seg.action == "absent":
            pos = None
            continue
        if pos is None and seg.action != "enter":
            pos = float(rng.integers(0, width - s + 1))
        if seg.action in ("stop", "jump", "spin"):
            xs = np.full(n, pos)
            if seg.action == "jump":
                hops = max(1, round(n / max(4.0, _HOP_SECONDS * cfg.fps)))
                phase = ((u + 0.5) / (n / hops)) % 1.0
                lift[seg.start : seg.end] = amplitude * 4 * phase * (1 - phase)
            elif seg.action == "spin":
                step = 360.0 * _SPIN_TURNS_PER_SECOND / cfg.fps  # degrees per frame
                angle[seg.start : seg.end] = step * (u + 1)
        elif seg.action in ("walk_left", "walk_right"):
            sign = 1.0 if seg.action == "walk_right" else -1.0
            room = (width - s - pos) if sign > 0 else pos
            top = min(vmax, room / n)
            if top < vmin:
                return False
            v = float(rng.uniform(vmin, top))
            xs = pos + sign * v * u
            pos = pos + sign * v * n
        elif seg.action == "enter":
            if pos is not None or n < 2:
                return False
            # from the left: x(u) = -s + edge + v u, inside (0 <= x <= W - s) after n frames
            low, high = max(vmin, (s - edge) / n), min(vmax, (width - edge) / n)
            if high < low:
                return False
            v = float(rng.uniform(low, high))
            if rng.random() < 0.5:
                xs = -s + edge + v * u
            else:
                xs = width - edge - v * u
            pos = float(xs[-1] + (xs[-1] - xs[-2]))
        else:  # leave: edge px still visible on the last frame
            if n < 2:
                return False
            options = []
            v_left = (pos - (-s + edge)) / (n - 1)
            v_right = ((width - edge) - pos) / (n - 1)
            if vmin <= v_left <= vmax:
                options.append(-v_left)
            if vmin <= v_right <= vmax:
                options.append(v_right)
            if not options:
                return False
            v = float(options[int(rng.integers(len(options)))])
            xs = pos + v * u
            pos = None
        x[seg.start : seg.end] = xs
    actor.x, actor.lift, actor.angle = x, lift, angle
    return True
