"""Scenes: actors planned around one query of a given kind, and the kind of any query in them.

The kinds (``easy``, ``static_ambiguous``, ``dynamic_ambiguous``) are defined in the package
docstring; :func:`classify` applies that definition and :func:`plan_scene` builds a scene in which
actor 0's fixed segment should be a query of the wanted kind (the caller checks and retries).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stvg.data.synth.config import ACTIONS, COLORS, CONFUSABLE, SHAPES, SynthConfig
from stvg.data.synth.script import Actor, Segment, actor_script, simulate


@dataclass
class Query:
    """A query: actor ``actor`` (index in the scene) doing ``segment``, of kind ``kind``."""

    actor: int
    segment: Segment
    kind: str


def classify(actors: list[Actor], index: int, seg: Segment, cfg: SynthConfig) -> str | None:
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


def plan_scene(
    rng: np.random.Generator, cfg: SynthConfig, kind: str
) -> tuple[list[Actor], Segment] | None:
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
        tuple[str, Segment | None, set[str], set[str]]
    ] = []  # color, fixed, never, not_during
    target = colors[0]
    specs.append((target, Segment(action, *window), {action}, set()))
    free = colors[1:]
    if kind == "static_ambiguous":
        contrast = [a for a in ACTIONS if a != action and frozenset((a, action)) not in CONFUSABLE]
        other = str(rng.choice(contrast))
        specs.append((target, Segment(other, *window), {action}, set()))
    elif kind == "dynamic_ambiguous":
        specs.append((free.pop(0), Segment(action, *window), {action}, set()))
    while len(specs) < n_actors:
        specs.append((free.pop(0), None, set(), {action}))

    actors = []
    query_segment = None
    for (color, fixed, never, not_during), lane in zip(specs, lanes, strict=True):
        actor = Actor(color=color, shape=shape_of[color], lane=lane)
        for _ in range(50):
            fixed_copy = None if fixed is None else Segment(fixed.action, fixed.start, fixed.end)
            segments = actor_script(rng, cfg, fixed_copy, never, (not_during, *window))
            if segments is None:
                continue
            actor.segments = segments
            if simulate(rng, actor, cfg, amplitude):
                break
        else:
            return None
        if not actors:
            query_segment = fixed_copy
        actors.append(actor)
    assert query_segment is not None
    return actors, query_segment


def build_scene(
    rng: np.random.Generator, cfg: SynthConfig, kind: str, video_id: str
) -> tuple[list[Actor], Segment]:
    """The scene of one video: :func:`plan_scene` drawn from ``rng`` until actor 0's segment
    is a query of ``kind`` (at most 500 draws; ``RuntimeError`` naming ``video_id`` after)."""
    for _ in range(500):
        planned = plan_scene(rng, cfg, kind)
        if planned is not None and classify(planned[0], 0, planned[1], cfg) == kind:
            return planned
    raise RuntimeError(f"could not build a {kind} scene for {video_id} with {cfg}")
