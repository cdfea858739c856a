"""``stvg bench train``: a training step fed from RAM over the same step fed lazily from the store.

The step is the trainer's own (:func:`stvg.train.trainer.train_step` on a
:func:`stvg.train.state.setup` state), so the benchmark times exactly what ``stvg train`` runs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from stvg.bench.timer import Timer
from stvg.progress import bar_disabled

log = logging.getLogger(__name__)

# (videos, timed blocks, steps per block) of the store-vs-RAM comparison
SIZES = {"quick": (8, 4, 4), "full": (32, 8, 8)}
WARMUP_STEPS = 3


def _write_random_store(
    root: Path,
    videos: int,
    frames: int,
    seed: int = 0,
    image: tuple[int, int, int] = (192, 8, 10),
    motion: tuple[int, int, int] = (27, 7, 7),
) -> None:
    """A store of random features (fp16) in the ``train`` split; values do not matter for speed.

    Per video: ``frames`` static maps of shape ``image`` (by default the synthetic demo's
    ``pixels`` encoder: 16-px cells of 120x160 frames), 16 clips of shape ``motion`` (default
    ``pixelflow``), two queries of 10-14 tokens [768].
    """
    from stvg.data.sample import Sample
    from stvg.features.manifest import Manifest
    from stvg.features.store import create_store

    rng = np.random.default_rng(seed)
    store = create_store(root, Manifest(dataset="synthetic", backbones={}))
    length = frames * 2
    with store.writer("train", part=(0, 1)) as writer:
        for v in range(videos):
            entry = f"v{v:04d}@0-{length}"
            spans = np.array([[(j * length) // 16, ((j + 1) * length) // 16] for j in range(16)])
            writer.write_video(
                entry,
                np.arange(0, length, 2),
                rng.random((frames, *image), dtype=np.float32),
                spans,
                rng.random((16, *motion), dtype=np.float32),
            )
            for q in range(2):
                tokens = int(rng.integers(10, 15))
                sample = Sample(
                    sample_id=f"v{v:04d}_q{q}",
                    video_id=f"v{v:04d}",
                    video_path=f"videos/v{v:04d}.mp4",
                    fps=10.0,
                    frame_count=length,
                    width=160,
                    height=120,
                    segment=(0, length),
                    tube=(length // 4, length // 2),
                    boxes={f: [10.0, 10.0, 50.0, 40.0] for f in range(length // 4, length // 2)},
                    caption="the red square walks left",
                )
                text = rng.random((tokens, 768), dtype=np.float32)
                writer.write_query(sample, text, np.ones(tokens, dtype=bool), entry)


def bench_train(quick: bool) -> dict[str, Any]:
    """Training step time with features in RAM / the same step reading the store lazily.

    Same model and optimizer (the ``synthetic`` presets: d=64, N=2, Ts=8, batch 8, built by
    :func:`stvg.train.state.setup` as ``stvg train`` builds them), same batches (the trainer's
    :class:`~stvg.train.batches.RankBatches` order) and same step
    (:func:`stvg.train.trainer.train_step`: forward, the weighted losses, backward, clip, AdamW,
    LR schedule, EMA). The RAM path is ``FeatureDataset(in_memory=True)`` read in the main
    process; the store path is the trainer's: ``FeatureDataset`` reading zarr lazily in
    ``num_workers`` DataLoader workers that prefetch ahead of the step. Both paths advance the
    one training state, in alternating blocks of steps (so a change in the machine's load hits
    both) after warm-up; each figure is the total time of its timed steps. torch runs
    ``cores - num_workers`` intra-op threads (at least 1) for both paths, leaving the workers
    their cores (on a shared 2-core machine two threads plus workers oversubscribe it badly).
    Returns ``ratio_store_vs_ram`` (goal >= 0.95) plus both step times in ms and the settings.
    """
    from stvg.train.batches import RankBatches, batch_loader
    from stvg.train.config import resolve
    from stvg.train.state import setup, train_dataset
    from stvg.train.trainer import train_step

    config = resolve("synthetic", ["num_workers=2"])
    videos, blocks, block_steps = SIZES["quick" if quick else "full"]
    total = WARMUP_STEPS + blocks * block_steps
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) - config.num_workers))
    with tempfile.TemporaryDirectory(prefix="stvg-bench-train-") as tmp:
        root = Path(tmp) / "features"
        _write_random_store(root, videos=videos, frames=30)
        state = setup(root, Path(tmp) / "run", config)  # the preset reads the split into RAM
        lazy = train_dataset(root, dataclasses.replace(config, in_memory=False))

        def loader(dataset: Any, workers: int) -> Any:
            batches = RankBatches(len(dataset), state.batch_size, config.seed, 1, 0, 0, total)
            return iter(batch_loader(dataset, batches, workers))

        def timed_steps(batches: Any, n: int) -> float:
            with Timer() as timer:
                for _ in range(n):
                    train_step(state, next(batches))
            return timer.seconds

        from_ram, from_store = loader(state.train_set, 0), loader(lazy, config.num_workers)
        timed_steps(from_ram, WARMUP_STEPS)
        timed_steps(from_store, WARMUP_STEPS)  # also waits for the workers to start
        seconds = {"ram": 0.0, "store": 0.0}
        for _ in tqdm(range(blocks), desc="bench train", unit="block", disable=bar_disabled()):
            seconds["ram"] += timed_steps(from_ram, block_steps)
            seconds["store"] += timed_steps(from_store, block_steps)
        del from_store  # stops the workers
        reads = _read_ms(lazy)
    steps = blocks * block_steps
    used_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    return {
        "ratio_store_vs_ram": seconds["ram"] / seconds["store"],
        "step_ms_ram": 1000 * seconds["ram"] / steps,
        "step_ms_store": 1000 * seconds["store"] / steps,
        "item_read_ms": reads,
        "timed_steps_each": steps,
        "batch_size": config.batch_size,
        "num_frames": config.num_frames,
        "num_workers": config.num_workers,
        "videos": videos,
        "torch_threads": used_threads,
        "quick": quick,
    }


def _read_ms(dataset: Any, count: int = 16) -> float:
    """Mean time to read one item lazily in this process (what one worker pays per query)."""
    with Timer() as timer:
        for i in range(count):
            dataset[i % len(dataset)]
    return 1000 * timer.seconds / count
