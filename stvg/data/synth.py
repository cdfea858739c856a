"""The synthetic benchmark (DESIGN section 9): small rendered videos with exact tubes.

Scene. A plain grey background (one grey level per video, 60-110) split into horizontal lanes,
one per actor (2-4 actors). An actor is a flat-colored shape of ``s x s`` pixels (``s`` fixed per
config, ``min(H // (2 * max_actors), W // 8)``) standing on its lane's floor; lanes keep actors
from ever overlapping, so every box is fully visible. Each actor follows a script: consecutive
segments of one action each, covering the whole video:

===============  ===================================================================
action           what is drawn
===============  ===================================================================
``walk_left``    steady horizontal motion to the left, 0.12-0.45 frame widths per second
``walk_right``   the same to the right
``jump``         in place; whole hops of ~0.8 s, apex ``min(lane - s - 2, 2 s)`` px; the
                 actor is off the floor on every frame of the segment
``stop``         in place, upright, still ("stands still")
``spin``         in place, turning about its centroid at 0.75 turn per second
``enter``        comes in from the left or right edge; ``max(2, 0.3 s)`` px of it are
                 visible on the first frame, it is fully inside on the frame after
``leave``        walks out through an edge; ``max(2, 0.3 s)`` px are visible on its last
                 frame and the actor is gone (not drawn) afterwards
===============  ===================================================================

Vocabulary (captions are ``CAPTION_TEMPLATE`` filled from these, e.g. "the red square jumps"):
colors red, green, blue, yellow; shapes square, triangle, cross; actions as in :data:`ACTIONS`.
Captions lean on color and motion, not shape (DESIGN section 6: random-weight backbones keep
color and motion but barely shape): inside one video each color has one shape, so two actors
either look alike (same color and shape) or differ in color.

Queries. Each query names one actor by appearance and one of its actions; the tube is that
action segment ``[start, end)`` (0-based frame ids, half-open) and the segment the whole video
``[0, frame_count)``. A query is only kept if it is unambiguous: the actor does that action
in no other segment and no look-alike ever does it. ``extra`` records ``kind``, ``action``,
``color``, ``shape``, ``actor`` (the actor's index) and ``actors`` (how many are in the video):

* ``easy``: no look-alike in the video and no other actor does the action at any time of the
  tube;
* ``static_ambiguous``: a look-alike is visible during the whole tube doing clearly different
  actions (never walk vs. enter/leave or stop vs. spin), so only motion tells them apart;
* ``dynamic_ambiguous``: no look-alike, and a differently colored actor does the same action over
  the whole tube (the same segment), so only appearance tells them apart.

Each video is built around a first query of the kind that is rarest so far in its split (so
shares stay near 1/3 each); further queries (``queries_per_video``) are picked among the video's
other unambiguous actions of at least the minimum tube length, again rarest kind first.

Boxes are exact: the renderer rasterizes each shape by testing pixel centers, and a box is the
bounding box of the drawn pixels, ``[x1, y1, x2, y2]`` with pixel ``(i, j)`` covering
``[i, i + 1) x [j, j + 1)`` (a shape drawn on columns 10..24 has ``x1 = 10, x2 = 25``). An actor
partly outside the frame (entering, leaving) is boxed by its visible pixels only, i.e. clipped
to the frame. A spinning shape's box follows its rotation.

Files. ``out_dir/videos/<video_id>.mp4`` (H.264 via PyAV/libx264, yuv420p, crf 12, one keyframe
per second, no B-frames, one encoder thread: the same seed gives the same bytes),
``out_dir/{train,val,test}.json`` (``stvg-annotations/1``, ``video_path`` relative to
``out_dir``) and ``out_dir/synth.json`` (every knob, the seed and the split of each video),
written last. Splits are by video, 70/15/15 (at least one video each), from a seeded permutation.

Defaults: 240 videos of 6 s at 10 fps, 160x120, 2 queries per video (320 train / 67 val / 70
test queries with seed 0), generated in about half a minute; with the weight-free encoders of
the synthetic extract preset, extraction and training on a 2-core CPU take minutes. (60 videos
were the default before: the model then memorized its 84 training queries.)
"""

from __future__ import annotations

import logging
import math
import re
import shutil
from collections import Counter
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from stvg.atomic import atomic_path, write_json_atomic
from stvg.data.sample import Annotations, Sample, write_normalized
from stvg.errors import InputError

log = logging.getLogger(__name__)

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 70),
    "blue": (50, 90, 240),
    "yellow": (240, 220, 40),
}
SHAPES = ("square", "triangle", "cross")
ACTIONS: dict[str, str] = {
    "walk_left": "walks left",
    "walk_right": "walks right",
    "jump": "jumps",
    "stop": "stands still",
    "spin": "spins",
    "enter": "enters",
    "leave": "leaves",
}
CAPTION_TEMPLATE = "the {color} {shape} {action}"
KINDS = ("easy", "static_ambiguous", "dynamic_ambiguous")
SPLITS: dict[str, float] = {"train": 0.70, "val": 0.15, "test": 0.15}

# Pairs of actions too alike to tell a look-alike apart by (static_ambiguous excludes them).
CONFUSABLE = frozenset(
    frozenset(pair)
    for pair in [
        ("walk_left", "enter"),
        ("walk_right", "enter"),
        ("walk_left", "leave"),
        ("walk_right", "leave"),
        ("enter", "leave"),
        ("stop", "spin"),
    ]
)
FORMAT = "stvg-synth/1"

_FILL_ACTIONS = ("walk_left", "walk_right", "jump", "stop", "spin")
_WALK_SPEED = (0.12, 0.45)  # frame widths per second
_HOP_SECONDS = 0.8
_SPIN_TURNS_PER_SECOND = 0.75
_EDGE_P = 0.3  # chance that a free actor enters first / leaves last
_CRF = 12

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


@dataclass(frozen=True)
class SynthConfig:
    """Every knob of the generator (recorded in ``synth.json``). Times in seconds, sizes in px."""

    videos: int = 240
    seed: int = 0
    seconds: float = 6.0
    fps: float = 10.0
    size: tuple[int, int] = (160, 120)  # (W, H)
    queries_per_video: int = 2
    actors: tuple[int, int] = (2, 4)  # min, max per video

    @property
    def frame_count(self) -> int:
        return int(round(self.seconds * self.fps))

    @property
    def actor_size(self) -> int:
        width, height = self.size
        return min(height // (2 * self.actors[1]), width // 8)

    @property
    def min_segment(self) -> int:
        """Shortest filler segment, frames."""
        return max(3, round(0.5 * self.fps))

    @property
    def max_segment(self) -> int:
        return max(self.min_segment + 1, round(2.5 * self.fps))

    @property
    def tube_range(self) -> tuple[int, int]:
        """Shortest and longest query tube, frames (20% and 60% of the video)."""
        n = self.frame_count
        low = max(self.min_segment, round(0.2 * n))
        return low, max(low, round(0.6 * n))

    def check(self) -> None:
        """Refuse knobs the generator cannot honor, as :class:`InputError`."""
        width, height = self.size
        if self.videos < 3:
            raise InputError(
                f"need at least 3 videos (one per split), got {self.videos}", field="videos"
            )
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise InputError(f"fps must be positive, got {self.fps}", field="fps")
        if self.frame_count < 10:
            raise InputError(
                f"seconds x fps gives {self.frame_count} frames; at least 10 are needed",
                field="seconds",
            )
        if width % 2 or height % 2 or width < 32 or height < 32:
            raise InputError(
                f"size {width}x{height}: width and height must be even (yuv420p) and >= 32",
                field="size",
            )
        if not (2 <= self.actors[0] <= self.actors[1] <= len(COLORS)):
            raise InputError(
                f"actors must satisfy 2 <= min <= max <= {len(COLORS)}", field="actors"
            )
        if self.actor_size < 6:
            raise InputError(
                f"size {width}x{height} is too small for {self.actors[1]} actors "
                f"(actors would be {self.actor_size} px; need >= 6)",
                field="size",
            )
        if self.queries_per_video < 1:
            raise InputError("queries_per_video must be >= 1", field="queries_per_video")


def parse_size(text: str) -> tuple[int, int]:
    """``"160x120"`` -> ``(160, 120)`` (width, height); raises :class:`InputError`."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise InputError(f"expected WIDTHxHEIGHT such as 160x120, got {text!r}", field="size")
    return int(match.group(1)), int(match.group(2))


# --------------------------------------------------------------------------- scripts


@dataclass
class _Segment:
    action: str  # an ACTIONS key, or "absent"
    start: int
    end: int


@dataclass
class _Actor:
    color: str
    shape: str
    lane: int
    segments: list[_Segment] = field(default_factory=list)
    x: np.ndarray | None = None  # [T] left edge of the s x s square, px (nan: absent)
    lift: np.ndarray | None = None  # [T] height above the floor, px
    angle: np.ndarray | None = None  # [T] rotation, degrees
    boxes: list[tuple[float, float, float, float] | None] = field(default_factory=list)

    def action_at(self, t: int) -> str:
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
) -> list[_Segment] | None:
    """Random segments covering ``[start, end)``; ``forbidden(s, e)`` -> actions not allowed."""
    if end <= start:
        return []
    lengths = _split_lengths(rng, end - start, cfg.min_segment, cfg.max_segment)
    segments: list[_Segment] = []
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
                segments.append(_Segment("absent", t, t + gap))
            segments.append(_Segment("enter", t + gap, seg_end))
            prev = "enter"
        elif (
            last and may_leave and length >= 3 and "leave" not in banned and rng.random() < _EDGE_P
        ):
            gap = int(rng.integers(0, max(1, length - cfg.min_segment + 1)))
            segments.append(_Segment("leave", t, seg_end - gap))
            if gap:
                segments.append(_Segment("absent", seg_end - gap, seg_end))
            prev = "leave"
        else:
            choices = [a for a in _FILL_ACTIONS if a not in banned]
            if not choices:
                return None
            prev = str(rng.choice(choices))
            segments.append(_Segment(prev, t, seg_end))
        t = seg_end
    return segments


def _script(
    rng: np.random.Generator,
    cfg: SynthConfig,
    fixed: _Segment | None,
    never: set[str],
    not_during: tuple[set[str], int, int],
) -> list[_Segment] | None:
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
        pre = [_Segment("absent", 0, fixed.start)] if fixed.start > 0 else []
    else:
        pre = _fill(rng, 0, fixed.start, cfg, forbidden, None, fixed.action, True, False)
    if fixed.action == "leave":
        post = [_Segment("absent", fixed.end, total)] if fixed.end < total else []
    else:
        post = _fill(rng, fixed.end, total, cfg, forbidden, fixed.action, None, False, True)
    if pre is None or post is None:
        return None
    return pre + [fixed] + post


def _simulate(rng: np.random.Generator, actor: _Actor, cfg: SynthConfig, amplitude: float) -> bool:
    """Fill ``actor.x / lift / angle`` from its segments; False if the script cannot be played
    inside the frame at the allowed speeds."""
    total = cfg.frame_count
    width = cfg.size[0]
    s = cfg.actor_size
    vmin, vmax = (v * width / cfg.fps for v in _WALK_SPEED)
    edge = max(2, round(0.3 * s))
    x = np.full(total, np.nan)
    lift = np.zeros(total)
    angle = np.zeros(total)
    pos: float | None = None
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


# --------------------------------------------------------------------------- scenes


@dataclass
class _Query:
    actor: int
    segment: _Segment
    kind: str


def _classify(actors: list[_Actor], index: int, seg: _Segment, cfg: SynthConfig) -> str | None:
    """The kind of the query (actor ``index``, segment ``seg``), or None if it is ambiguous,
    too short, or mixes the two ambiguities."""
    if seg.action == "absent" or seg.end - seg.start < cfg.tube_range[0]:
        return None
    me = actors[index]
    if any(s.action == seg.action and s is not seg for s in me.segments):
        return None
    look = [
        a for i, a in enumerate(actors) if i != index and (a.color, a.shape) == (me.color, me.shape)
    ]
    if any(s.action == seg.action for a in look for s in a.segments):
        return None
    window = range(seg.start, seg.end)
    others = [a for i, a in enumerate(actors) if i != index and a.color != me.color]
    same_action_over = [
        s
        for a in others
        for s in a.segments
        if s.action == seg.action and s.start < seg.end and seg.start < s.end
    ]
    covering = any(s.start <= seg.start and seg.end <= s.end for s in same_action_over)
    if look:
        visible_all = any(all(a.action_at(t) != "absent" for t in window) for a in look)
        distinct = all(
            frozenset((a.action_at(t), seg.action)) not in CONFUSABLE for a in look for t in window
        )
        if visible_all and distinct and not same_action_over:
            return "static_ambiguous"
        return None
    if covering:
        return "dynamic_ambiguous"
    if not same_action_over:
        return "easy"
    return None


def _plan(
    rng: np.random.Generator, cfg: SynthConfig, kind: str
) -> tuple[list[_Actor], _Segment] | None:
    """Actors built so that actor 0's segment (returned) is a query of ``kind``; None: retry."""
    total = cfg.frame_count
    width, height = cfg.size
    s = cfg.actor_size
    n_actors = int(rng.integers(cfg.actors[0], cfg.actors[1] + 1))
    lane_h = height // n_actors
    amplitude = float(min(lane_h - s - 2, 2 * s))
    low, high = cfg.tube_range
    length = int(rng.integers(low, high + 1))
    t0 = int(rng.integers(0, total - length + 1))
    window = (t0, t0 + length)
    action = str(rng.choice(list(ACTIONS)))
    colors = [str(c) for c in rng.permutation(list(COLORS))]
    shape_of = {c: str(rng.choice(SHAPES)) for c in colors}  # one shape per color per video
    lanes = [int(v) for v in rng.permutation(n_actors)]

    specs: list[
        tuple[str, _Segment | None, set[str], set[str]]
    ] = []  # color, fixed, never, not_during
    target = colors[0]
    specs.append((target, _Segment(action, *window), {action}, set()))
    free = colors[1:]
    if kind == "static_ambiguous":
        contrast = [a for a in ACTIONS if a != action and frozenset((a, action)) not in CONFUSABLE]
        other = str(rng.choice(contrast))
        specs.append((target, _Segment(other, *window), {action}, set()))
    elif kind == "dynamic_ambiguous":
        specs.append((free.pop(0), _Segment(action, *window), {action}, set()))
    while len(specs) < n_actors:
        specs.append((free.pop(0), None, set(), {action}))

    actors = []
    query_segment = None
    for (color, fixed, never, not_during), lane in zip(specs, lanes, strict=True):
        actor = _Actor(color=color, shape=shape_of[color], lane=lane)
        for _ in range(50):
            fixed_copy = None if fixed is None else _Segment(fixed.action, fixed.start, fixed.end)
            segments = _script(rng, cfg, fixed_copy, never, (not_during, *window))
            if segments is None:
                continue
            actor.segments = segments
            if _simulate(rng, actor, cfg, amplitude):
                break
        else:
            return None
        if not actors:
            query_segment = fixed_copy
        actors.append(actor)
    assert query_segment is not None
    return actors, query_segment


# --------------------------------------------------------------------------- rendering


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


def _render(actors: list[_Actor], cfg: SynthConfig, grey: int):
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


def _encode(frames: Any, path: Path, cfg: SynthConfig) -> None:
    """Write frames as H.264 mp4, deterministically, through a temporary file."""
    import av

    width, height = cfg.size
    with atomic_path(path, fsync=False) as tmp, av.open(str(tmp), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(cfg.fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = {
            "crf": str(_CRF),
            "preset": "medium",
            "g": str(max(1, round(cfg.fps))),
            "bf": "0",
            "threads": "1",
        }
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


# --------------------------------------------------------------------------- driver


def _split_of(cfg: SynthConfig) -> list[str]:
    """The split of each video index: a seeded permutation cut 70/15/15 (>= 1 each)."""
    n = cfg.videos
    n_val = max(1, round(SPLITS["val"] * n))
    n_test = max(1, round(SPLITS["test"] * n))
    n_train = n - n_val - n_test
    order = np.random.default_rng([cfg.seed, 7]).permutation(n)
    split = [""] * n
    for rank, index in enumerate(order):
        split[int(index)] = (
            "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
        )
    return split


def _prepare_out_dir(out_dir: Path) -> None:
    """Refuse to write into a non-empty folder that is not an earlier synth output; clear the
    videos of an earlier output so no stale file survives."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("the output path exists and is not a folder", file=out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not (out_dir / "synth.json").is_file():
            raise InputError(
                "the output folder is not empty and holds no synth.json; refusing to write into it",
                file=out_dir,
                hint="choose a new or empty folder",
            )
        log.info("replacing the synthetic set in %s", out_dir)
        (out_dir / "synth.json").unlink()
        if (out_dir / "videos").is_dir():
            shutil.rmtree(out_dir / "videos")
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)


def synthesize(
    out_dir: str | Path,
    *,
    videos: int = SynthConfig.videos,
    seed: int = SynthConfig.seed,
    seconds: float = SynthConfig.seconds,
    fps: float = SynthConfig.fps,
    size: tuple[int, int] = SynthConfig.size,
    queries_per_video: int = SynthConfig.queries_per_video,
    actors: tuple[int, int] = SynthConfig.actors,
    progress: bool = True,
) -> dict[str, Annotations]:
    """Generate the synthetic benchmark into ``out_dir``; returns ``{split: Annotations}``.

    See the module docstring for the scene, the kinds, the box convention and the files.
    ``size`` is ``(width, height)`` in pixels (even numbers); ``seconds`` and ``fps`` give
    ``round(seconds * fps)`` frames per video. Raises :class:`InputError` for unusable knobs or
    a non-empty ``out_dir`` that is not an earlier synth output (which is replaced).
    """
    cfg = SynthConfig(
        videos=int(videos),
        seed=int(seed),
        seconds=float(seconds),
        fps=float(fps),
        size=(int(size[0]), int(size[1])),
        queries_per_video=int(queries_per_video),
        actors=(int(actors[0]), int(actors[1])),
    )
    cfg.check()
    out = Path(out_dir)
    _prepare_out_dir(out)
    splits = _split_of(cfg)
    counts: dict[str, Counter[str]] = {name: Counter() for name in SPLITS}
    overall: Counter[str] = Counter()

    def rarity(kind: str) -> tuple[int, int, int]:
        return (count[kind], overall[kind], KINDS.index(kind))

    samples: dict[str, list[Sample]] = {name: [] for name in SPLITS}
    width, height = cfg.size

    for index in tqdm(range(cfg.videos), desc="synth", unit="video", disable=not progress):
        split = splits[index]
        rng = np.random.default_rng([cfg.seed, index])
        video_id = f"v{index:04d}"
        count = counts[split]
        kind = min(KINDS, key=rarity)
        for _ in range(500):
            planned = _plan(rng, cfg, kind)
            if planned is not None and _classify(planned[0], 0, planned[1], cfg) == kind:
                scene, target = planned
                break
        else:
            raise RuntimeError(f"could not build a {kind} scene for {video_id} with {cfg}")
        grey = int(rng.integers(60, 111))
        _encode(_render(scene, cfg, grey), out / "videos" / f"{video_id}.mp4", cfg)

        primary = _Query(0, target, kind)
        candidates = [
            _Query(i, seg, k)
            for i, actor in enumerate(scene)
            for seg in actor.segments
            if seg is not primary.segment and (k := _classify(scene, i, seg, cfg)) is not None
        ]
        chosen = [primary]
        count[kind] += 1
        overall[kind] += 1
        while len(chosen) < cfg.queries_per_video and candidates:
            rarest = min(rarity(q.kind) for q in candidates)
            pool = [q for q in candidates if rarity(q.kind) == rarest]
            pick = pool[int(rng.integers(len(pool)))]
            candidates.remove(pick)
            chosen.append(pick)
            count[pick.kind] += 1
            overall[pick.kind] += 1

        for k, query in enumerate(chosen):
            actor = scene[query.actor]
            seg = query.segment
            boxes = {}
            for t in range(seg.start, seg.end):
                box = actor.boxes[t]
                if box is None:
                    raise RuntimeError(f"{video_id}: actor {query.actor} not drawn on frame {t}")
                boxes[t] = box
            samples[split].append(
                Sample(
                    sample_id=f"{video_id}_q{k}",
                    video_id=video_id,
                    video_path=f"videos/{video_id}.mp4",
                    fps=cfg.fps,
                    frame_count=cfg.frame_count,
                    width=width,
                    height=height,
                    segment=(0, cfg.frame_count),
                    tube=(seg.start, seg.end),
                    boxes=boxes,
                    caption=CAPTION_TEMPLATE.format(
                        color=actor.color, shape=actor.shape, action=ACTIONS[seg.action]
                    ),
                    qtype="declarative",
                    extra={
                        "kind": query.kind,
                        "action": seg.action,
                        "color": actor.color,
                        "shape": actor.shape,
                        "actor": query.actor,
                        "actors": len(scene),
                    },
                )
            )

    result = {}
    for name in SPLITS:
        annotations = Annotations(
            samples=samples[name], dataset="synthetic", split=name, source_format="normalized"
        )
        for sample in annotations.samples:
            sample.validate(file=out / f"{name}.json")
        write_normalized(annotations, out / f"{name}.json")
        annotations.path = str(out / f"{name}.json")
        result[name] = annotations
    record = {
        "format": FORMAT,
        **{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "frame_count": cfg.frame_count,
        "actor_size": cfg.actor_size,
        "tube_range": list(cfg.tube_range),
        "encoder": {"codec": "libx264", "pix_fmt": "yuv420p", "crf": _CRF, "preset": "medium"},
        "vocabulary": {
            "colors": list(COLORS),
            "shapes": list(SHAPES),
            "actions": ACTIONS,
            "template": CAPTION_TEMPLATE,
        },
        "splits": {
            name: [f"v{i:04d}" for i in range(cfg.videos) if splits[i] == name] for name in SPLITS
        },
        "queries": {name: dict(sorted(counts[name].items())) for name in SPLITS},
    }
    write_json_atomic(out / "synth.json", record, indent=1)
    return result
