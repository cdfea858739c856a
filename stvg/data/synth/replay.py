"""Every actor of a synthetic video, replayed from the set's ``synth.json``.

The annotations hold the boxes of the queried actor only; a probe of the ``static_ambiguous``
kind also needs the look-alike's. The generator draws video ``i``'s scene from
``default_rng([seed, i])`` around its first query's kind (``<video>_q0``'s ``extra.kind``), so
the same draws (:func:`~stvg.data.synth.scene.build_scene`, then the background grey and the
rendering, which fills the boxes) give back every actor and every box without writing a video.
:func:`replay_video` checks the replay against the annotated boxes of the queried actors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from stvg.data.sample import Sample
from stvg.data.synth.config import FORMAT, SynthConfig
from stvg.data.synth.render import render
from stvg.data.synth.scene import build_scene
from stvg.data.synth.script import Actor
from stvg.errors import InputError

Box = tuple[float, float, float, float]


def read_config(data_dir: str | Path) -> SynthConfig:
    """The :class:`SynthConfig` recorded in ``data_dir/synth.json``; :class:`InputError` when the
    file is missing or is not a ``stvg-synth/1`` record."""
    path = Path(data_dir) / "synth.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"cannot read the synthetic set's record: {error}", file=path) from None
    if record.get("format") != FORMAT:
        raise InputError(f"not a {FORMAT} record", file=path, field="format")
    knobs = {k: record[k] for k in SynthConfig.__dataclass_fields__}
    return SynthConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in knobs.items()})


def replay_video(cfg: SynthConfig, video_id: str, samples: list[Sample]) -> list[Actor]:
    """The actors of ``video_id`` (``"v0007"``) with their ``boxes`` (pixels ``x1, y1, x2,
    y2`` per frame, None where not drawn). ``samples`` must hold the video's first query
    ``<video_id>_q0`` (its kind decides the scene); every one of them that belongs to the video
    is checked against the replay (:class:`InputError` naming the sample when a box differs:
    the set was made by another generator)."""
    own = {s.sample_id: s for s in samples if s.video_id == video_id}
    first = own.get(f"{video_id}_q0")
    if first is None:
        raise InputError(f"no annotation of {video_id}_q0 to replay {video_id} from")
    rng = np.random.default_rng([cfg.seed, int(video_id.lstrip("v"))])
    scene, _ = build_scene(rng, cfg, str(first.extra["kind"]), video_id)
    for _ in render(scene, cfg, int(rng.integers(60, 111))):
        pass
    for sample in own.values():
        actor = scene[int(sample.extra["actor"])]
        for frame, box in sample.boxes.items():
            if actor.boxes[frame] is None or not np.allclose(actor.boxes[frame], box):
                raise InputError(
                    f"frame {frame}: the replayed box {actor.boxes[frame]} is not the "
                    f"annotated {list(box)}",
                    sample=sample.sample_id,
                    field="boxes",
                )
    return scene


def lookalike_boxes(actors: list[Actor], sample: Sample) -> dict[int, list[Box]]:
    """Per frame of ``sample``'s tube, the boxes of the actors that look like its target (same
    color and shape, another actor): ``{frame: [box, ...]}``, frames where none is drawn left
    out."""
    me = actors[int(sample.extra["actor"])]
    alike = [
        a
        for i, a in enumerate(actors)
        if i != int(sample.extra["actor"]) and (a.color, a.shape) == (me.color, me.shape)
    ]
    out: dict[int, list[Box]] = {}
    for frame in range(*sample.tube):
        boxes = [a.boxes[frame] for a in alike if a.boxes[frame] is not None]
        if boxes:
            out[frame] = boxes
    return out
