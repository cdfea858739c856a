"""The driver: :func:`synthesize` writes the videos, the split annotation files and
``synth.json`` (see the package docstring for the scene, the kinds and the files)."""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from stvg.atomic import write_json_atomic
from stvg.data.mp4 import write_mp4
from stvg.data.sample import Annotations, Sample, write_normalized
from stvg.data.synth.config import (
    ACTIONS,
    CAPTION_TEMPLATE,
    COLORS,
    FORMAT,
    KINDS,
    SHAPES,
    SPLITS,
    SynthConfig,
)
from stvg.data.synth.render import render
from stvg.data.synth.scene import Query, build_scene, classify
from stvg.errors import InputError
from stvg.progress import bar_disabled

log = logging.getLogger(__name__)

_CRF = 12
_PRESET = "medium"


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

    See the package docstring for the scene, the kinds, the box convention and the files.
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

    for index in tqdm(
        range(cfg.videos), desc="synth", unit="video", disable=bar_disabled(progress)
    ):
        split = splits[index]
        rng = np.random.default_rng([cfg.seed, index])
        video_id = f"v{index:04d}"
        count = counts[split]
        kind = min(KINDS, key=rarity)
        scene, target = build_scene(rng, cfg, kind, video_id)
        grey = int(rng.integers(60, 111))
        write_mp4(
            out / "videos" / f"{video_id}.mp4",
            render(scene, cfg, grey),
            cfg.fps,
            crf=_CRF,
            preset=_PRESET,
            keyframe_interval=max(1, round(cfg.fps)),
            b_frames=0,
        )

        primary = Query(0, target, kind)
        candidates = [
            Query(i, seg, k)
            for i, actor in enumerate(scene)
            for seg in actor.segments
            if seg is not primary.segment and (k := classify(scene, i, seg, cfg)) is not None
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
        "encoder": {"codec": "libx264", "pix_fmt": "yuv420p", "crf": _CRF, "preset": _PRESET},
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
