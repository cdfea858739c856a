"""``stvg bench video``: the video Swin backbone (``swin3d_t``) against the default SlowFast
(``slowfast_r50_detection``) on the same clips.

See :func:`bench_video`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from stvg.bench.timer import Timer
from stvg.device import torch_threads

BASELINE, CANDIDATE = "slowfast_r50_detection", "swin3d_t"
NAMES = (BASELINE, CANDIDATE)


def _flops(encoder: Any, x: torch.Tensor) -> int:
    """Floating-point operations of one forward of ``x`` (``torch.utils.flop_counter``: matmuls
    and convolutions, a multiply-add counted as 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        encoder(x)
    return counter.get_total_flops()


def bench_video(
    clip_size: int = 256,
    clips: int = 2,
    repeats: int = 3,
    threads: int = 1,
    height: int = 240,
    width: int = 320,
) -> dict[str, Any]:
    """Seconds and GFLOPs per clip of ``swin3d_t`` and ``slowfast_r50_detection``, in one run.

    Both encoders (random weights: speed does not depend on them) get the same ``clips`` random
    ``height x width`` RGB clips of 32 frames (both take 32, sampled alike), each preprocessed by its own
    ``preprocess`` (pad to square, resize to ``clip_size``), in one batch. After a warm-up
    forward each, the forwards alternate (SlowFast, Swin, SlowFast, ...) ``repeats`` times so
    that other tenants' load hits both alike; the best of each is kept. CPU time is this
    process's (``process_time``: every thread, undisturbed by other processes); with
    ``threads`` > 1 it counts the work of all of them, wall time counts their overlap.

    Returns ``{"ratio_cpu_time", "ratio_wall", "ratio_gflops"}`` (Swin over SlowFast) and, per
    backbone, ``cpu_s_per_clip``, ``wall_s_per_clip``, ``gflops_per_clip`` and its map shape.
    """
    from stvg.extract.backbones import build_video_encoder

    with torch_threads(threads):
        encoders = {n: build_video_encoder(n, "random", size=clip_size) for n in NAMES}
        (frames_per_clip,) = {e.clip_frames for e in encoders.values()}
        frames = np.random.default_rng(0).integers(
            0, 256, (clips, frames_per_clip, height, width, 3), dtype=np.uint8
        )
        inputs, per = {}, {}
        for name, encoder in encoders.items():
            inputs[name] = torch.stack([encoder.preprocess(clip) for clip in frames])
            shape = tuple(encoder(inputs[name]).shape[1:])  # the warm-up forward
            per[name] = {
                "gflops_per_clip": _flops(encoder, inputs[name]) / clips / 1e9,
                "map": list(shape),
                "cpu_s_per_clip": float("inf"),
                "wall_s_per_clip": float("inf"),
            }
        for _ in range(repeats):
            for name, encoder in encoders.items():
                with Timer() as timer:
                    encoder(inputs[name])
                best = per[name]
                best["cpu_s_per_clip"] = min(best["cpu_s_per_clip"], timer.cpu_seconds / clips)
                best["wall_s_per_clip"] = min(best["wall_s_per_clip"], timer.seconds / clips)
    swin, slowfast = per[CANDIDATE], per[BASELINE]
    return {
        "ratio_cpu_time": swin["cpu_s_per_clip"] / slowfast["cpu_s_per_clip"],
        "ratio_wall": swin["wall_s_per_clip"] / slowfast["wall_s_per_clip"],
        "ratio_gflops": swin["gflops_per_clip"] / slowfast["gflops_per_clip"],
        "backbones": per,
        "config": {
            "clip_size": clip_size,
            "clip_frames": frames_per_clip,
            "clips": clips,
            "frame": [height, width],
            "repeats": repeats,
            "threads": threads,
            "weights": "random",
        },
    }
