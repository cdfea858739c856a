"""Stage one: decode each video segment once, run the frozen backbones, write the store.

The loop, per shard: plan entries -> skip the complete ones (resume) -> for each remaining entry,
a thread pool decodes and preprocesses the next entries while the main thread runs the backbones
on the current one -> write the video entry, then its queries (each completion marker last).

Values never depend on how the work is split: every entry is computed in the same fixed-size
chunks (``batch_size`` frames or clips of that entry) whatever the shard, the worker count or an
interruption, so a store made by 2 shards, 2 dask workers or a resumed run equals a
single-process one.

A video that cannot be decoded (missing, empty, truncated, not a video, too short) is recorded
in the store's ``failures.jsonl`` with its reason and the run goes on; the summary counts it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from stvg.data.sampling import clip_frame_ids, clip_spans, sampled_frame_ids
from stvg.data.video import VideoError, open_video
from stvg.evaluate.protocols import sampling_segment
from stvg.extract.config import ExtractConfig
from stvg.extract.plan import Entry, shard_entries

log = logging.getLogger(__name__)


@dataclass
class Encoders:
    """The three frozen encoders of one process, built once."""

    image: Any
    text: Any
    video: Any

    def specs(self) -> dict[str, Any]:
        return {"image": self.image.spec, "text": self.text.spec, "video": self.video.spec}


def build_encoders(config: ExtractConfig) -> Encoders:
    from stvg.extract.backbones import (
        build_image_encoder,
        build_text_encoder,
        build_video_encoder,
    )

    common = {"weights": config.weights, "device": config.device, "amp": config.amp}
    cnn = {"channels_last": config.channels_last}
    return Encoders(
        image=build_image_encoder(
            name=config.image_backbone, layer=config.image_layer, **common, **cnn
        ),
        text=build_text_encoder(layers=config.text_layers, **common),
        video=build_video_encoder(
            name=config.video_backbone, size=config.clip_size, **common, **cnn
        ),
    )


@dataclass
class Decoded:
    """One entry's frames, read and preprocessed off the main thread."""

    entry: Entry
    frame_ids: list[int]
    static: torch.Tensor | None = None  # [Ts, 3, h, w] normalized
    spans: list[tuple[int, int]] = field(default_factory=list)
    clips: list[Any] = field(default_factory=list)  # per clip: the video encoder's input
    error: VideoError | None = None
    frames_read: int = 0


def decode_entry(entry: Entry, config: ExtractConfig, encoders: Encoders) -> Decoded:
    """Read the static grid and the clip frames of ``entry``; never raises VideoError."""
    start, end = entry.segment
    # The static grid is the one the tubedetr protocol scores on (its segment may differ from
    # the sample's by one frame: see evaluate.protocols.sampling_segment).
    g0, g1 = sampling_segment(entry.samples[0])
    out = Decoded(entry, sampled_frame_ids(g0, g1, entry.fps, config.target_fps, config.max_frames))
    try:
        with open_video(entry.video_path) as video:
            frames = video.get(out.frame_ids)  # [Ts, H, W, 3] uint8
            out.static = encoders.image.preprocess(frames, config.n_short)
            out.spans = clip_spans(start, end, config.td)
            for span in out.spans:
                clip = video.get(clip_frame_ids(span, encoders.video.clip_frames))
                out.clips.append(encoders.video.preprocess(clip))
                out.frames_read += len(clip)
            out.frames_read += len(frames)
    except VideoError as error:
        out.error = error
    return out


def _chunks(n: int, size: int) -> Iterator[slice]:
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))


def _stack_inputs(items: list[Any]) -> Any:
    """Batch a list of encoder inputs: tensors, or lists of tensors (SlowFast pathways)."""
    if isinstance(items[0], torch.Tensor):
        return torch.stack(items)
    return [torch.stack([item[p] for item in items]) for p in range(len(items[0]))]


def encode_entry(decoded: Decoded, config: ExtractConfig, encoders: Encoders) -> dict[str, Any]:
    """Run the backbones on one decoded entry, in fixed chunks of ``batch_size``."""
    assert decoded.static is not None
    image = [
        encoders.image(decoded.static[s]).float().cpu()
        for s in _chunks(len(decoded.static), config.batch_size)
    ]
    motion = [
        encoders.video(_stack_inputs(decoded.clips[s])).float().cpu()
        for s in _chunks(len(decoded.clips), config.batch_size)
    ]
    samples = decoded.entry.samples
    states, mask = encoders.text.encode(
        [s.caption for s in samples], max_length=config.max_text_len
    )
    texts = []
    for i, sample in enumerate(samples):
        n = int(mask[i].sum())
        texts.append((sample, states[i, :n].float().cpu().numpy(), np.ones(n, dtype=bool)))
    return {
        "frame_ids": np.asarray(decoded.frame_ids, dtype=np.int32),
        "image": torch.cat(image).numpy(),
        "clip_spans": np.asarray(decoded.spans, dtype=np.int32),
        "motion": torch.cat(motion).numpy(),
        "texts": texts,
    }


@dataclass
class Summary:
    """What a run did; ``failed`` lists ``(entry_id, reason)``."""

    new_videos: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    queries: int = 0
    frames: int = 0
    seconds: float = 0.0

    def merge(self, other: Summary) -> Summary:
        return Summary(
            self.new_videos + other.new_videos,
            self.skipped + other.skipped,
            self.failed + other.failed,
            self.queries + other.queries,
            self.frames + other.frames,
            max(self.seconds, other.seconds),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "new_videos": self.new_videos,
            "skipped": self.skipped,
            "failed": len(self.failed),
            "failures": [{"entry_id": e, "reason": r} for e, r in self.failed],
            "queries": self.queries,
            "frames": self.frames,
            "seconds": round(self.seconds, 3),
        }


def extract_entries(
    store: Any,
    entries: list[Entry],
    config: ExtractConfig,
    encoders: Encoders,
    shard: tuple[int, int] = (0, 1),
    skip_failed: bool = False,
    progress: bool = True,
) -> Summary:
    """Extract this shard's entries into its own parts of ``store``; see the module docstring."""
    t0 = time.perf_counter()
    summary = Summary()
    mine = shard_entries(entries, shard)
    failed_before = {f.get("entry_id") for f in store.failures()} if skip_failed else set()
    todo = []
    for entry in mine:
        done = store.has_video(entry.entry_id, entry.split) and all(
            store.has_query(s.sample_id, entry.split) for s in entry.samples
        )
        if done or entry.entry_id in failed_before:
            summary.skipped += 1
        else:
            todo.append(entry)
    log.info(
        "%d new videos, %d already complete or skipped (shard %d/%d)",
        len(todo),
        summary.skipped,
        *shard,
    )

    writers: dict[str, Any] = {}
    bar = tqdm(
        total=len(todo), desc=f"extract {shard[0]}/{shard[1]}", unit="video", disable=not progress
    )
    try:
        with ThreadPoolExecutor(max_workers=max(1, config.decode_threads)) as pool:
            pending: list[Future[Decoded]] = []
            queue = iter(todo)

            def refill() -> None:
                while len(pending) < max(2, config.decode_threads * 2):
                    entry = next(queue, None)
                    if entry is None:
                        return
                    pending.append(pool.submit(decode_entry, entry, config, encoders))

            refill()
            while pending:
                decoded = pending.pop(0).result()
                refill()
                entry = decoded.entry
                if entry.split not in writers:
                    writers[entry.split] = store.writer(entry.split, part=shard)
                writer = writers[entry.split]
                if decoded.error is not None:
                    err = decoded.error
                    store.record_failure(
                        entry.split,
                        {
                            "entry_id": entry.entry_id,
                            "video_id": entry.video_id,
                            "video_path": str(entry.video_path),
                            "reason": err.reason,
                            "message": str(err),
                            "samples": [s.sample_id for s in entry.samples],
                        },
                    )
                    log.warning("skipping %s: %s", entry.entry_id, err)
                    summary.failed.append((entry.entry_id, err.reason))
                else:
                    values = encode_entry(decoded, config, encoders)
                    if not writer.has_video(entry.entry_id):
                        writer.write_video(
                            entry.entry_id,
                            frame_ids=values["frame_ids"],
                            image=values["image"],
                            clip_spans=values["clip_spans"],
                            motion=values["motion"],
                        )
                    for sample, text, mask in values["texts"]:
                        writer.write_query(sample, text, mask, entry.entry_id)
                    summary.new_videos += 1
                    summary.queries += len(values["texts"])
                    summary.frames += decoded.frames_read
                bar.update(1)
                elapsed = max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix(
                    videos_s=f"{bar.n / elapsed:.2f}", frames_s=f"{summary.frames / elapsed:.1f}"
                )
    finally:
        bar.close()
        for writer in writers.values():
            writer.close()
    summary.seconds = time.perf_counter() - t0
    return summary
