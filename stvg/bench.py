"""``stvg bench``: the measured ratios of docs/design.md section 10, quoted in BENCHMARKS.md.

Each figure is one plain function returning a JSON-able dict; every ratio compares two
measurements taken in the same run on the same inputs (absolute times on a shared CPU mean
little, ratios do).

- :func:`bench_extract`: stage one's throughput (frames/s through the real runner: decode,
  preprocess, backbones, store write) over the bare backbone forward on the same preprocessed
  tensors with the same batch sizes; plus, in full mode, the speed knobs (bf16 autocast,
  channels_last, batch size), store bytes per video-second at HC-STVG sizes (float16 vs int8)
  and zarr vs HDF5 random-read speed.
- :func:`bench_train`: a training step with features in RAM over the same step reading the
  store lazily through DataLoader workers, as the trainer does.
- :func:`bench_e2e` (in :mod:`stvg.bench_e2e`): cost per training sample decoding the video and
  running the backbones plus the heads, over the heads fed from the store.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from stvg.progress import bar_disabled

log = logging.getLogger(__name__)

# HC-STVG-sized entries (docs/design.md sections 6-7): 20 s videos, 5 fps static grid ->
# 100 frames of 1080x1920 resized to 320x568 -> C5 10x18 (stride 32); Td 16 SlowFast clips
# at 256 -> 16x16 (stride 16, dilated res5); a 20-token query of RoBERTa-base states.
HCSTVG_SECONDS = 20.0
HCSTVG_IMAGE = (100, 2048, 10, 18)
HCSTVG_MOTION = (16, 2304, 16, 16)
HCSTVG_TEXT = (20, 768)


def _native_bf16() -> bool:
    """bf16 autocast pays on CUDA and on CPUs with AVX-512 (BF16/AMX); on AVX2 it is emulated."""
    return torch.cuda.is_available() or "AVX512" in torch.backends.cpu.get_cpu_capability()


def _full_config() -> dict[str, Any]:
    """The realistic-but-small setting: the paper's backbones, HC-STVG's Nshort, random weights;
    bf16 autocast where the hardware has it."""
    return {
        "image_backbone": "resnet101",
        "image_layer": "layer4",
        "n_short": 320,
        "video_backbone": "slowfast_r50_detection",
        "td": 4,
        "clip_size": 256,
        "text_layers": 12,
        "max_text_len": 32,
        "weights": "random",
        "batch_size": 8,
        "amp": _native_bf16(),
    }


def _quick_config() -> dict[str, Any]:
    """Seconds, not minutes: the light random-weight networks at tiny sizes (the synthetic
    preset's own encoders have no network to measure)."""
    return {
        "image_backbone": "resnet18",
        "image_layer": "layer3",
        "video_backbone": "framediff_resnet18",
        "td": 4,
        "clip_size": 32,
        "n_short": 48,
        "text_layers": 1,
        "batch_size": 8,
    }


@torch.no_grad()
def recalibrate_batchnorm(body: nn.Module, x: Any) -> None:
    """AdaBN on a random network: BatchNorm running statistics from one pass over ``x``.

    Random ResNet101 C5 overflows float16 (docs/design.md section 6) and the store refuses such
    values; the benchmark only needs values in range, and speed does not depend on them.
    ``body`` is put back in eval mode.
    """
    norms = [m for m in body.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over this one pass
        m.train()
    body(x)
    for m in norms:
        m.eval()


def _make_videos(root: Path, quick: bool) -> Path:
    from stvg.data.synth import synthesize

    if quick:
        synthesize(root, videos=3, seconds=2.0, fps=10.0, size=(64, 48), progress=False)
    else:
        synthesize(root, videos=3, seconds=3.0, fps=10.0, size=(320, 240), progress=False)
    return root


def _timed(fn: Any, *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def bench_extract(quick: bool = False, work_dir: str | Path | None = None) -> dict[str, Any]:
    """Extraction frames/s through the real runner over the bare backbone forward, in one run.

    Both sides see the same entries (synthetic videos; every split), the same preprocessed
    tensors and the same backbone batches (the runner's own :class:`Packer`, or
    :func:`encode_entry` per entry with ``pack=False``): the ratio is what decoding,
    preprocessing, the store write and the pipeline cost on top of the three backbones. Frames count every decoded frame (static grid plus clip frames). Each side
    is timed after a warm-up forward. Full mode alternates bare and runner passes (bare, runner,
    bare, runner: other tenants' load then hits both alike) and keeps the best of each; it also
    gives the ratio of process CPU times (``ratio_cpu_time``), which other processes on the
    machine do not disturb.

    ``quick``: ResNet18 layer3 and framediff on 3 tiny videos (seconds). Full: ResNet101
    C5 (BatchNorm recalibrated, see :func:`recalibrate_batchnorm`), SlowFast R50 (AVA
    architecture), RoBERTa-base, all random, Nshort 320, bf16 autocast, batch 8, on 4 synthetic
    320x240 videos of 4 s; plus the speed knobs, the HC-STVG store bytes and the random-read
    figures (several minutes on 2 CPU cores).

    Returns ``{"ratio_vs_backbone", "extract_frames_per_s", "backbone_frames_per_s", "frames",
    "videos", "breakdown_s": {...}, "config": {...}, "quick", ...}``.
    """
    from stvg.extract import load_splits, make_manifest
    from stvg.extract.config import preset
    from stvg.extract.plan import plan_entries
    from stvg.extract.runner import (
        Packer,
        build_encoders,
        decode_entry,
        encode_entry,
        extract_entries,
    )
    from stvg.features.store import create_store

    overrides = _quick_config() if quick else _full_config()
    config = preset("synthetic", **overrides)
    parent = Path(work_dir) if work_dir is not None else None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-extract-", dir=parent))
    try:
        data = _make_videos(work / "data", quick)
        splits = ["train", "val", "test"]
        entries = plan_entries(load_splits("synthetic", data, splits), data)
        encoders = build_encoders(config)

        # Decode and preprocess once, serially: the bare side's inputs, and the decode cost.
        decode_s, decoded = _timed(lambda: [decode_entry(e, config, encoders) for e in entries])
        frames = sum(d.frames_read for d in decoded)
        if not quick:
            recalibrate_batchnorm(encoders.image.body, torch.cat([d.static for d in decoded]))
        encode_entry(decoded[0], config, encoders)  # warm-up (oneDNN primitives, allocator)

        def bare() -> None:
            # The runner's own batches: with packing, the Packer over the decoded entries (no
            # decoding, no store); without, each entry alone. A first version always ran
            # entries alone, so with packing the bare side padded every entry's last chunk and
            # did more backbone work than the runner (e.g. 4 clips padded to 8). Outputs are
            # dropped as they complete, as the runner drops them once written: keeping them all
            # alive measured the bare pass 1.7-3x slower (memory growth, not backbone time).
            if not config.pack:
                for d in decoded:
                    encode_entry(d, config, encoders)
                return
            packer = Packer(config, encoders)
            for d in decoded:
                packer.add(copy.copy(d))  # add() hands the rows to its queues: keep ours
                packer.finished()
            packer.flush()
            packer.finished()

        cpu0 = time.process_time()
        backbone_s, _ = _timed(bare)
        backbone_cpu = time.process_time() - cpu0
        values = [encode_entry(d, config, encoders) for d in decoded]  # for the write timing

        def write(root: Path, values: list[dict[str, Any]]) -> None:
            store = create_store(root, make_manifest(config, encoders.specs()))
            writers: dict[str, Any] = {}
            for d, v in zip(decoded, values, strict=True):
                split = d.entry.split
                if split not in writers:
                    writers[split] = store.writer(split)
                w = writers[split]
                w.write_video(d.entry.entry_id, v["frame_ids"], v["image"], v["clip_spans"],
                              v["motion"])  # fmt: skip
                for sample, text, mask in v["texts"]:
                    w.write_query(sample, text, mask, d.entry.entry_id)
            for w in writers.values():
                w.close()

        write_s, _ = _timed(write, work / "write-only", values)
        del values

        def runner(k: int) -> float:
            store = create_store(work / f"runner-{k}", make_manifest(config, encoders.specs()))
            summary = extract_entries(store, entries, config, encoders, progress=False)
            if summary.failed or summary.frames != frames:
                raise RuntimeError(f"benchmark extraction went wrong: {summary.to_json()}")
            return summary.seconds

        cpu0 = time.process_time()
        runner_s = runner(0)
        runner_cpu = time.process_time() - cpu0
        for k in range(1, 1 if quick else 2):  # the second round, interleaved
            cpu0 = time.process_time()
            seconds, _ = _timed(bare)
            backbone_s, backbone_cpu = (
                min(backbone_s, seconds),
                min(backbone_cpu, time.process_time() - cpu0),
            )
            cpu0 = time.process_time()
            seconds = runner(k)
            runner_s, runner_cpu = (
                min(runner_s, seconds),
                min(runner_cpu, time.process_time() - cpu0),
            )
        result: dict[str, Any] = {
            "ratio_vs_backbone": backbone_s / runner_s,
            "ratio_cpu_time": backbone_cpu / runner_cpu,
            "extract_frames_per_s": frames / runner_s,
            "backbone_frames_per_s": frames / backbone_s,
            "frames": frames,
            "videos": len(entries),
            "breakdown_s": {
                "runner": runner_s,
                "backbones": backbone_s,
                "decode_preprocess_serial": decode_s,
                "store_write": write_s,
                "serial_sum": decode_s + backbone_s + write_s,
            },
            "torch_threads": torch.get_num_threads(),
            "config": {k: getattr(config, k) for k in sorted(overrides)}
            | {"image": encoders.image.spec["name"], "video": encoders.video.spec["name"]},
            "quick": quick,
        }
        if not quick:
            result["knobs"] = bench_knobs(decoded, config, encoders)
        result["store_bytes"] = bench_store_bytes(work / "bytes", quick=quick)
        result["random_read"] = bench_random_read(work / "reads", quick=quick)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _per_frame_ms(encoder: Any, x: Any, n: int) -> float:
    encoder(x)  # warm-up with this exact setting
    best = min(_timed(encoder, x)[0] for _ in range(2))
    return 1000.0 * best / n


def bench_knobs(decoded: list[Any], config: Any, encoders: Any) -> dict[str, Any]:
    """ms per frame (image) and per clip (video) for bf16 autocast (where the hardware has it)
    x channels_last, and batch size 1 vs ``config.batch_size``, on the same preprocessed inputs;
    best of two."""
    static = torch.cat([d.static for d in decoded])[: config.batch_size]
    clips = [c for d in decoded for c in d.clips][:2]
    clip_batch = torch.stack(clips)  # [B, 3, T, S, S]
    out: dict[str, Any] = {"image_frames": len(static), "video_clips": len(clips)}
    saved = {
        "image": (encoders.image.amp, encoders.image.channels_last),
        "video": (encoders.video.amp, encoders.video.channels_last),
    }
    for name, encoder, x, n in (
        ("image", encoders.image, static, len(static)),
        ("video", encoders.video, clip_batch, len(clips)),
    ):
        fmt = torch.channels_last if name == "image" else torch.channels_last_3d
        for amp in (False, True) if _native_bf16() else (False,):  # emulated bf16: minutes
            for channels_last in (False, True):
                encoder.body.to(memory_format=fmt if channels_last else torch.contiguous_format)
                encoder.amp, encoder.channels_last = amp, channels_last
                if hasattr(encoder.body, "channels_last"):
                    encoder.body.channels_last = channels_last
                key = f"{name}_ms_{'bf16' if amp else 'fp32'}{'_cl' if channels_last else ''}"
                out[key] = _per_frame_ms(encoder, x, n)
        amp, channels_last = saved[name]
        encoder.body.to(memory_format=fmt if channels_last else torch.contiguous_format)
        encoder.amp, encoder.channels_last = amp, channels_last
    # batch 1 vs batch B, image encoder at the run's own setting
    one_by_one = [_timed(_one_at_a_time, encoders.image, static)[0] for _ in range(2)]
    out["image_ms_batch1"] = 1000.0 * min(one_by_one) / len(static)
    out[f"image_ms_batch{len(static)}"] = _per_frame_ms(encoders.image, static, len(static))
    return out


def _one_at_a_time(encoder: Any, x: torch.Tensor) -> None:
    for i in range(len(x)):
        encoder(x[i : i + 1])


def bench_store_bytes(root: str | Path, quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Store bytes per video-second for one HC-STVG-sized entry (20 s), float16 vs int8.

    ReLU-like random maps (``max(0, N(-0.3, 1))``, about 38 % zeros, as C5 and SlowFast maps
    are after their last ReLU) of the shapes in :data:`HCSTVG_IMAGE` / :data:`HCSTVG_MOTION`
    and text states ``N(0, 1)`` ``[20, 768]``, written to a zarr store of each dtype. ``quick``
    uses a tenth of the frames and clips (bytes still per video-second of the shorter entry).
    """
    from stvg.data.sample import Sample
    from stvg.features.manifest import Manifest
    from stvg.features.store import create_store

    rng = np.random.default_rng(seed)
    image_shape, motion_shape, seconds = HCSTVG_IMAGE, HCSTVG_MOTION, HCSTVG_SECONDS
    if quick:
        image_shape = (10, *HCSTVG_IMAGE[1:])
        motion_shape = (2, *HCSTVG_MOTION[1:])
        seconds = HCSTVG_SECONDS / 10
    image = np.maximum(0.0, rng.normal(-0.3, 1.0, image_shape)).astype(np.float32)
    motion = np.maximum(0.0, rng.normal(-0.3, 1.0, motion_shape)).astype(np.float32)
    text = rng.normal(0.0, 1.0, HCSTVG_TEXT).astype(np.float32)
    frame_ids = np.arange(image_shape[0]) * 5
    end = int(seconds * 25)
    bounds = np.linspace(0, end, motion_shape[0] + 1).astype(int)
    spans = np.stack([bounds[:-1], bounds[1:]], axis=1)
    sample = Sample("q0", "v0", "v0.mp4", 25.0, end, 1920, 1080, (0, end), (0, end), {}, "a man")
    out: dict[str, Any] = {
        "seconds": seconds,
        "image_shape": list(image_shape),
        "motion_shape": list(motion_shape),
        "text_shape": list(HCSTVG_TEXT),
    }
    for dtype in ("float16", "int8"):
        manifest = Manifest(dataset="bench", backbones={}, dtype=dtype, backend="zarr")
        store = create_store(Path(root) / dtype, manifest)
        with store.writer("test") as writer:
            writer.write_video("v0@0-500", frame_ids, image, spans, motion)
            writer.write_query(sample, text, np.ones(len(text), bool), "v0@0-500")
        total = store.info()["bytes"]
        store.close()
        out[dtype] = {"bytes": total, "bytes_per_video_second": total / seconds}
    raw = 2 * (image.size + motion.size + text.size)
    out["raw_float16_bytes"] = raw
    out["int8_over_float16"] = out["int8"]["bytes"] / out["float16"]["bytes"]
    return out


def bench_random_read(root: str | Path, quick: bool = False) -> dict[str, Any]:
    """zarr vs HDF5 single-frame random reads (:func:`stvg.features.bench.random_read_speed`)
    on C5-like maps ``[32, 2048, 10, 18]``, float16; ``quick``: small maps, few reads."""
    from stvg.features.bench import random_read_speed

    if quick:
        return random_read_speed(root, videos=2, frames=8, channels=64, reads=50)
    return random_read_speed(root, videos=8, frames=32, channels=2048, size=(10, 18), reads=400)


# ----------------------------------------------------------------------------- bench train
def _write_random_store(root: Path, videos: int, frames: int, seed: int = 0) -> None:
    """A store with the shapes of the synthetic demo's features, random values (fp16).

    Per video: ``frames`` static maps [192, 8, 10] (the ``pixels`` encoder's 16-px cells of
    120x160 frames), 16 clips [27, 7, 7] (``pixelflow``), two queries of 10-14 tokens [768].
    Values do not matter for speed.
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
                rng.random((frames, 192, 8, 10), dtype=np.float32),
                spans,
                rng.random((16, 27, 7, 7), dtype=np.float32),
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

    Same model (the ``synthetic`` presets: d=64, N=2, Ts=8, batch 8), same batches (the
    trainer's :class:`~stvg.train.trainer.RankBatches` order) and same step (forward, the four
    losses, backward, clip, AdamW, EMA). The RAM path is ``FeatureDataset(in_memory=True)`` read in
    the main process; the store path is the trainer's: ``FeatureDataset`` reading zarr lazily in
    ``num_workers`` DataLoader workers that prefetch ahead of the step. The two paths run in
    alternating blocks of steps (so a change in the machine's load hits both) after warm-up;
    each figure is the total time of its timed steps. torch runs ``cores - num_workers``
    intra-op threads (at least 1) for both paths, leaving the workers their cores (on a shared
    2-core machine two threads plus workers oversubscribe it badly). Returns
    ``ratio_store_vs_ram`` (goal >= 0.95) plus both step times in ms and the settings.
    """
    from stvg.features.dataset import FeatureDataset, collate
    from stvg.models import CSDVLConfig, build_model
    from stvg.train.config import resolve
    from stvg.train.losses import compute_losses
    from stvg.train.trainer import EMA, RankBatches

    config = resolve("synthetic", ["num_workers=2"])
    videos, blocks, block_steps = (8, 4, 4) if quick else (32, 8, 8)
    warmup = 3
    total = warmup + blocks * block_steps
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) - config.num_workers))
    weights = config.loss_weights()
    with tempfile.TemporaryDirectory(prefix="stvg-bench-train-") as tmp:
        root = Path(tmp) / "features"
        _write_random_store(root, videos=videos, frames=30)
        ram = FeatureDataset(root, "train", config.num_frames, in_memory=True)
        lazy = FeatureDataset(root, "train", config.num_frames)
        torch.manual_seed(0)
        model_cfg = CSDVLConfig.from_preset("synthetic")  # 192 / 27 channels, as the store
        model = build_model(model_cfg)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
        ema = EMA(model, config.ema_decay)

        def loader(dataset: Any, workers: int) -> Any:
            batches = RankBatches(len(dataset), config.batch_size, config.seed, 1, 0, 0, total)
            return iter(
                torch.utils.data.DataLoader(
                    dataset,
                    batch_sampler=batches,
                    collate_fn=collate,
                    num_workers=workers,
                    prefetch_factor=4 if workers else None,
                )
            )

        def step(batch: dict[str, Any]) -> None:
            model.train()
            terms = compute_losses(model(batch), batch, attention=config.loss_att > 0)
            loss = sum(weights[k] * terms[k] for k in weights if k in terms)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            ema.update(model)

        def timed(batches: Any, n: int) -> float:
            start = time.perf_counter()
            for _ in range(n):
                step(next(batches))
            return time.perf_counter() - start

        from_ram, from_store = loader(ram, 0), loader(lazy, config.num_workers)
        timed(from_ram, warmup)
        timed(from_store, warmup)  # also waits for the workers to start
        seconds = {"ram": 0.0, "store": 0.0}
        for _ in tqdm(range(blocks), desc="bench train", unit="block", disable=bar_disabled()):
            seconds["ram"] += timed(from_ram, block_steps)
            seconds["store"] += timed(from_store, block_steps)
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
    start = time.perf_counter()
    for i in range(count):
        dataset[i % len(dataset)]
    return 1000 * (time.perf_counter() - start) / count
