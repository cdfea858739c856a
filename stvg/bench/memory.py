"""``stvg bench memory``: the heads' training step with glibc's malloc defaults and with freed
memory kept (:mod:`stvg.memory`), each model in both settings.

The setting is process-wide, so every (model, setting) pair runs in a child process of its own
(``python -m stvg.bench.memory``), the two settings of a model one after the other. A child
builds the model's paper-size heads as ``stvg bench e2e`` does (:func:`stvg.bench.e2e.heads_config`,
the paper's optimization settings), writes one video of random features with the full-size
shapes of ``bench e2e`` into a store (Ts 48 static maps [2048, 10, 18]: ResNet101 C5 of
568x320 frames; 16 clips [2304, 16, 16]: SlowFast at 256; quick: Ts 8 maps [2048, 4, 5] and
clips [2304, 8, 8]), reads its sample back as the trainer does and times the trainer's own
:func:`stvg.train.trainer.train_step` on it: one warm-up step, then ``reps`` timed steps. It
reports the median step and its peak RSS.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from stvg.memory import MALLOC_ENV, keep_freed_memory
from stvg.progress import bar_disabled

# (Ts, static map [C, h, w], clip map [C, h, w]) of bench e2e's full and quick settings
SHAPES = {
    "full": (48, (2048, 10, 18), (2304, 16, 16)),
    "quick": (8, (2048, 4, 5), (2304, 8, 8)),
}
SETTINGS = ("system", "kept")  # glibc's defaults, then stvg's (STVG_MALLOC unset)


def time_heads_step(model: str, quick: bool, reps: int) -> dict[str, Any]:
    """In this process: ``reps`` timed training steps of ``model``'s paper-size heads on one
    sample of the ``SHAPES`` (after one warm-up step). Returns the step seconds, their median
    and this process's peak RSS in GB."""
    import torch

    from stvg.bench.e2e import heads_config
    from stvg.bench.train import _write_random_store
    from stvg.features.dataset import FeatureDataset, collate
    from stvg.train.config import TrainConfig
    from stvg.train.distributed import Distributed
    from stvg.train.state import new_state
    from stvg.train.trainer import train_step

    ts, image, motion = SHAPES["quick" if quick else "full"]
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="stvg-bench-memory-") as tmp:
        _write_random_store(Path(tmp) / "features", 1, ts, image=image, motion=motion)
        batch = collate([FeatureDataset(Path(tmp) / "features", "train", ts, in_memory=True)[0]])
        config = TrainConfig(model_name=model)
        state = new_state(config, heads_config(model), Path(tmp) / "run", Distributed("cpu"), 1, 1)
        train_step(state, batch)  # warm-up
        seconds = []
        for _ in range(reps):
            start = time.perf_counter()
            train_step(state, batch)
            seconds.append(time.perf_counter() - start)
    return {
        "seconds": seconds,
        "median_s": statistics.median(seconds),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,  # KiB on Linux
    }


def bench_memory(
    models: list[str], quick: bool, reps: int = 3, threads: int | None = None
) -> dict[str, Any]:
    """Each model's heads step under both :data:`SETTINGS`, each in its own child process.
    Returns per model the two results of :func:`time_heads_step` and ``speedup`` (median step
    with glibc's defaults / with freed memory kept) and ``rss_ratio`` (peak RSS kept / defaults)."""
    out: dict[str, Any] = {}
    runs = [(m, s) for m in models for s in SETTINGS]
    for model, setting in tqdm(runs, desc="bench memory", unit="run", disable=bar_disabled()):
        env = {k: v for k, v in os.environ.items() if k != MALLOC_ENV}
        if setting == "system":
            env[MALLOC_ENV] = "system"
        args = [model, "quick" if quick else "full", str(reps), str(threads or 0)]
        done = subprocess.run(
            [sys.executable, "-m", "stvg.bench.memory", *args],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"bench memory: {model} ({setting}) failed:\n{done.stderr[-2000:]}")
        out.setdefault(model, {})[setting] = json.loads(done.stdout.strip().splitlines()[-1])
    for result in out.values():
        result["speedup"] = result["system"]["median_s"] / result["kept"]["median_s"]
        result["rss_ratio"] = result["kept"]["peak_rss_gb"] / result["system"]["peak_rss_gb"]
    return {
        "models": out,
        "settings": {"shapes": "quick" if quick else "full", "reps": reps, "threads": threads},
    }


def _child(argv: list[str]) -> None:
    """``python -m stvg.bench.memory MODEL quick|full REPS THREADS``: one child of
    :func:`bench_memory` (honours ``STVG_MALLOC``); prints one JSON line."""
    model, size, reps, threads = argv
    kept = keep_freed_memory()
    import torch

    if int(threads):
        torch.set_num_threads(int(threads))
    result = time_heads_step(model, size == "quick", int(reps))
    print(json.dumps({**result, "kept": kept}))


if __name__ == "__main__":
    _child(sys.argv[1:])
