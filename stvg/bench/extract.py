"""``stvg bench extract``: stage one's frames/s through the real runner over the bare backbones.

See :func:`bench_extract`; full mode adds the speed knobs (:func:`bench_knobs`) and the store
figures of :mod:`stvg.bench.store`.
"""

from __future__ import annotations

import copy
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stvg.bench.store import bench_random_read, bench_store_bytes
from stvg.bench.timer import Timer, timed

log = logging.getLogger(__name__)


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

    Random ResNet101 C5 overflows float16 (docs/design.md section 6) and the store refuses such values;
    the benchmark only needs values in range, and speed does not depend on them. ``body`` is put
    back in eval mode.
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
        decode_s, decoded = timed(lambda: [decode_entry(e, config, encoders) for e in entries])
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

        with Timer() as timer:
            bare()
        backbone_s, backbone_cpu = timer.seconds, timer.cpu_seconds
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

        write_s, _ = timed(write, work / "write-only", values)
        del values

        def runner(k: int) -> float:
            store = create_store(work / f"runner-{k}", make_manifest(config, encoders.specs()))
            summary = extract_entries(store, entries, config, encoders, progress=False)
            if summary.failed or summary.frames != frames:
                raise RuntimeError(f"benchmark extraction went wrong: {summary.to_json()}")
            return summary.seconds

        with Timer() as timer:
            runner_s = runner(0)
        runner_cpu = timer.cpu_seconds
        for k in range(1, 1 if quick else 2):  # the second round, interleaved
            with Timer() as timer:
                bare()
            backbone_s = min(backbone_s, timer.seconds)
            backbone_cpu = min(backbone_cpu, timer.cpu_seconds)
            with Timer() as timer:
                seconds = runner(k)
            runner_s, runner_cpu = min(runner_s, seconds), min(runner_cpu, timer.cpu_seconds)
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
    best = min(timed(encoder, x)[0] for _ in range(2))
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
    one_by_one = [timed(_one_at_a_time, encoders.image, static)[0] for _ in range(2)]
    out["image_ms_batch1"] = 1000.0 * min(one_by_one) / len(static)
    out[f"image_ms_batch{len(static)}"] = _per_frame_ms(encoders.image, static, len(static))
    return out


def _one_at_a_time(encoder: Any, x: torch.Tensor) -> None:
    for i in range(len(x)):
        encoder(x[i : i + 1])
