"""A long synthetic video holding one event, with its ground truth: the test of ``stvg ground``
on videos much longer than the run's training segments (``stvg bench long``).

The scene is that of the synthetic benchmark (package docstring): ``actors`` shapes of distinct
colors on their lanes, each following a script of actions. The target (actor 0) does the
event's ``action`` exactly once, for ``event_seconds`` from ``event_at``, and never otherwise;
no other actor does it during the event (the benchmark's ``easy`` kind); the actors stay on
screen (no ``enter`` / ``leave``). By default no other actor does that action at any time
either, so the event is the only one of its kind in the video; with ``distractors`` the others
may do it outside the event (as in the benchmark's short videos, where only color then tells
the target's action from theirs).

A script over minutes cannot be drawn in one piece (a random walk leaves the frame sooner or
later, and :func:`~stvg.data.synth.script.simulate` refuses it), so each actor's script is drawn
in pieces of about ``piece_seconds`` (the event in a piece of its own, with 2.5 s before and
after it), each piece simulated from where the previous one ended. Frames are rendered and
encoded one at a time (:func:`~stvg.data.mp4.write_mp4` takes a generator), so memory does not
grow with the length. Files: ``OUT/videos/<name>.mp4`` and ``OUT/<name>.json``
(``stvg-annotations/1``, one sample, split ``long``; its ``extra`` holds the target's whole
script as ``target_actions``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from stvg.data.mp4 import write_mp4
from stvg.data.sample import Annotations, Sample, write_normalized
from stvg.data.synth.config import ACTIONS, CAPTION_TEMPLATE, COLORS, SHAPES, SynthConfig
from stvg.data.synth.render import render
from stvg.data.synth.script import Actor, Segment, actor_script, simulate
from stvg.errors import InputError

_EDGES = {"enter", "leave"}
_MARGIN_SECONDS = 2.5  # of the event's own piece, before and after the event
_TRIES = 200


def _pieces(total: int, event: tuple[int, int], piece: int, margin: int) -> list[tuple[int, int]]:
    """Consecutive spans covering ``[0, total)``: the event's piece ``[e0 - margin, e1 +
    margin)`` (cut to the video) and pieces of at most ``piece`` frames around it."""
    e0, e1 = max(0, event[0] - margin), min(total, event[1] + margin)

    def cut(a: int, b: int) -> list[tuple[int, int]]:
        n = max(1, -(-(b - a) // piece)) if b > a else 0
        return [(a + (k * (b - a)) // n, a + ((k + 1) * (b - a)) // n) for k in range(n)]

    return cut(0, e0) + [(e0, e1)] + cut(e1, total)


def _actor_over(
    rng: np.random.Generator,
    actor: Actor,
    cfg: SynthConfig,
    pieces: list[tuple[int, int]],
    event: tuple[int, int],
    action: str,
    target: bool,
    amplitude: float,
    distractors: bool,
) -> None:
    """Script and simulate ``actor`` over the whole video, piece by piece (module docstring)."""
    segments: list[Segment] = []
    xs, lifts, angles = [], [], []
    start: float | None = None
    for a, b in pieces:
        piece_cfg = replace(cfg, seconds=(b - a) / cfg.fps)
        has_event = a <= event[0] and event[1] <= b
        fixed = Segment(action, event[0] - a, event[1] - a) if target and has_event else None
        never = _EDGES | ({action} if target or not distractors else set())
        during = (
            ({action}, event[0] - a, event[1] - a) if has_event and not target else (set(), 0, 0)
        )
        part = Actor(actor.color, actor.shape, actor.lane)
        for _ in range(_TRIES):
            fixed_copy = None if fixed is None else replace(fixed)
            script = actor_script(rng, piece_cfg, fixed_copy, never, during)
            if script is None:
                continue
            part.segments = script
            if simulate(rng, part, piece_cfg, amplitude, start=start):
                break
        else:
            raise RuntimeError(f"could not script actor {actor.color} over frames [{a}, {b})")
        assert part.x is not None and part.lift is not None and part.angle is not None
        segments += [Segment(s.action, s.start + a, s.end + a) for s in part.segments]
        xs.append(part.x)
        lifts.append(part.lift)
        angles.append(part.angle)
        start = float(part.x[-1])
    actor.segments = segments
    actor.x, actor.lift, actor.angle = (
        np.concatenate(xs),
        np.concatenate(lifts),
        np.concatenate(angles),
    )


def synthesize_long(
    out_dir: str | Path,
    *,
    name: str = "long",
    seconds: float = 600.0,
    event_seconds: float = 5.0,
    event_at: float | None = None,
    action: str = "jump",
    actors: int = 3,
    fps: float = SynthConfig.fps,
    size: tuple[int, int] = SynthConfig.size,
    seed: int = 0,
    piece_seconds: float = 10.0,
    distractors: bool = False,
) -> Sample:
    """Write the long video and its one-sample annotation file; returns the sample.

    ``event_at`` (seconds) defaults to 60 % of the video plus 1.3 s (not on a window edge of a
    6 s run, nor on a keyframe). Raises :class:`InputError` for knobs that cannot be honored.
    """
    cfg = SynthConfig(
        videos=3, seed=seed, seconds=seconds, fps=fps, size=size, actors=(actors, actors)
    )
    cfg.check()
    if action not in ACTIONS or action in _EDGES:
        known = ", ".join(a for a in ACTIONS if a not in _EDGES)
        raise InputError(f"action {action!r}: expected one of {known}", field="action")
    total = cfg.frame_count
    length = round(event_seconds * fps)
    start = round((0.6 * seconds + 1.3 if event_at is None else event_at) * fps)
    if not (1 <= length and 0 <= start and start + length <= total):
        raise InputError(
            f"the event [{start}, {start + length}) does not fit in the video's {total} frames",
            field="event_at",
        )
    event = (start, start + length)
    rng = np.random.default_rng([seed, 17])
    colors = [str(c) for c in rng.permutation(list(COLORS))][:actors]
    lanes = [int(v) for v in rng.permutation(actors)]
    lane_h = size[1] // actors
    amplitude = float(min(lane_h - cfg.actor_size - 2, 2 * cfg.actor_size))
    pieces = _pieces(total, event, round(piece_seconds * fps), round(_MARGIN_SECONDS * fps))
    scene = []
    for k, (color, lane) in enumerate(zip(colors, lanes, strict=True)):
        actor = Actor(color, str(rng.choice(SHAPES)), lane)
        _actor_over(rng, actor, cfg, pieces, event, action, k == 0, amplitude, distractors)
        scene.append(actor)
    out = Path(out_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    grey = int(rng.integers(60, 111))
    write_mp4(out / "videos" / f"{name}.mp4", render(scene, cfg, grey), fps, b_frames=0)
    target = scene[0]
    boxes = {t: target.boxes[t] for t in range(*event)}
    if any(box is None for box in boxes.values()):
        raise RuntimeError("the target is not drawn on every frame of the event")
    sample = Sample(
        sample_id=f"{name}_q0",
        video_id=name,
        video_path=f"videos/{name}.mp4",
        fps=fps,
        frame_count=total,
        width=size[0],
        height=size[1],
        segment=(0, total),
        tube=event,
        boxes=boxes,  # type: ignore[arg-type]
        caption=CAPTION_TEMPLATE.format(
            color=target.color, shape=target.shape, action=ACTIONS[action]
        ),
        extra={
            "kind": "easy",
            "action": action,
            "color": target.color,
            "shape": target.shape,
            "distractors": distractors,
            # the target's script, [action, first frame, end frame) in order (stvg bench long)
            "target_actions": [[str(s.action), int(s.start), int(s.end)] for s in target.segments],
        },
    )
    sample.validate(file=out / f"{name}.json")
    annotations = Annotations(samples=[sample], dataset="synthetic", split="long")
    write_normalized(annotations, out / f"{name}.json")
    return sample
