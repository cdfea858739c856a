"""Stage one: decode each video segment once, run the frozen backbones, write the store.

The loop, per shard: plan entries -> skip the complete ones (resume) -> a thread pool decodes and
preprocesses the next entries while the main thread runs the backbones -> write each video entry,
then its queries (each completion marker last).

Values never depend on how the work is split or batched. Every backbone forward takes exactly
``batch_size`` rows in one memory layout (NHWC frames, contiguous clips; a short batch is padded
with zero rows whose outputs are dropped), because both the batch size and the layout pick the
kernel: measured on CPU (oneDNN, one thread), a frame run alone differs from the same frame in a
batch of two or more (max |diff| 1.5e-5 for random ResNet18 ``layer3``, 0.12 on values near 1e5
for ResNet101 ``layer4``, 2e-7 for SlowFast), and an NCHW batch differs from the NHWC one. What a
row's output does not depend on (measured bitwise for those three and the frame-difference
encoder, fp32 and bf16 autocast, channels_last or not) is which rows share its batch and where
it sits in it. The thread count matters too: the text encoder's states differ in the last
float16 bit between one and two CPU threads (measured: 1-3 of an entry's 5-10 thousand values),
so texts are always encoded on one CPU thread (dask workers run single-threaded; the images and
clips measured bitwise equal across thread counts). So a store made by 2 shards, 2 dask workers
or a resumed run equals a single-process one, with or without packing.

Packing (``config.pack``, the default): short entries leave batches under-filled, so the frames
and clips of consecutive entries are queued together and a backbone runs whenever a queue holds
``batch_size`` rows, whichever entries they come from (static frames are queued per frame size:
frames of different sizes cannot share a batch). An entry is written as soon as all its rows are
encoded; partial batches run, padded, once ``batch_size`` entries are waiting (to bound memory)
and at the end. Texts are still encoded one entry at a time: their padding to the longest
caption of the batch would otherwise depend on the neighbours. A kill also loses the waiting
entries (at most ``batch_size``); the rerun recomputes them.

A video that cannot be decoded (missing, empty, truncated, not a video, too short) is recorded
in the store's ``failures.jsonl`` with its reason and the run goes on; the summary counts it.

Stale entries: every entry records its *source* (:mod:`stvg.extract.sources`). A rerun compares
it with what the annotations and the video files say now and re-extracts what changed: a video
entry (and its queries) when its video file or its fields changed; only the query, without
decoding the video, when only its Sample changed. The old entry is replaced with its completion
marker cleared first (a kill loses at most that entry; the next rerun writes it). A stale entry
held by a part of another sharding layout (another ``--shard N``) is removed from that part
under its lock first, then written into this shard's part; if that part's writer is running,
the run stops with a message saying so before it writes anything.
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
from stvg.device import torch_threads
from stvg.errors import InputError
from stvg.evaluate.protocols import sampling_segment
from stvg.extract.config import ExtractConfig
from stvg.extract.plan import Entry, shard_entries
from stvg.extract.sources import (
    SOURCE_ATTR,
    digest,
    kept_video_source,
    query_changes,
    query_source,
    source_json,
    stored_source,
    video_changes,
    video_source,
)
from stvg.progress import bar_disabled

log = logging.getLogger(__name__)

LOCK_WAIT = 60.0
"""Seconds a run waits for the lock of another layout's part holding entries it replaces."""


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
    from stvg.extract.backbones.image import IMAGE_BACKBONES, IMAGE_LAYERS
    from stvg.extract.backbones.video import VIDEO_BACKBONES

    for option, value, known in [
        ("--image-backbone", config.image_backbone, IMAGE_BACKBONES),
        ("--image-layer", config.image_layer, IMAGE_LAYERS),
        ("--video-backbone", config.video_backbone, VIDEO_BACKBONES),
    ]:
        if value not in known:
            raise InputError(f"unknown choice {value!r}; known: {', '.join(known)}", field=option)
    common = {"weights": config.weights, "device": config.device, "amp": config.amp}
    cnn = {"channels_last": config.channels_last}
    video_weights = config.weights
    if str(config.weights).startswith("mdetr:"):  # MDETR holds no video encoder
        video_weights = "pretrained"
    # The video encoder first: its build (random init, then the checkpoint read next to it) is
    # the highest memory peak, and it then comes before the text and image weights are held.
    video = build_video_encoder(
        name=config.video_backbone,
        size=config.clip_size,
        **{**common, "weights": video_weights},
        **cnn,
    )
    return Encoders(
        image=build_image_encoder(
            name=config.image_backbone, layer=config.image_layer, **common, **cnn
        ),
        text=build_text_encoder(layers=config.text_layers, **common),
        video=video,
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


def _full_batch(batch: torch.Tensor, size: int) -> torch.Tensor:
    """``batch`` ``[n, ...]`` then zero rows up to ``[size, ...]``, in one fixed memory layout.

    The layout picks the kernel as much as the batch size does (a padded batch built by
    ``torch.cat`` came out NCHW while whole chunks of frames are NHWC, and the values differed),
    so every batch gets the layout preprocessing gives: NHWC frames, contiguous clips.
    """
    if len(batch) < size:
        batch = torch.cat([batch, batch.new_zeros((size - len(batch), *batch.shape[1:]))])
    layout = torch.channels_last if batch.ndim == 4 else torch.contiguous_format
    return batch.contiguous(memory_format=layout)


def forward_padded(encoder: Any, batch: Any, batch_size: int) -> torch.Tensor:
    """One forward of exactly ``batch_size`` rows; returns the first ``n`` outputs, float32 CPU.

    ``batch``: ``[n, ...]`` with ``n <= batch_size`` (or a list of such, one per pathway). The
    zero rows only fix the batch size, which decides the kernel (see the module docstring).
    """
    if isinstance(batch, torch.Tensor):
        n, full = len(batch), _full_batch(batch, batch_size)
    else:
        n, full = len(batch[0]), [_full_batch(path, batch_size) for path in batch]
    return encoder(full)[:n].float().cpu()


def encode_motion(decoded: Decoded, config: ExtractConfig, encoders: Encoders) -> np.ndarray:
    """The video backbone over one decoded entry's clips: ``[Td, C, h, w]`` float32."""
    motion = [
        forward_padded(encoders.video, _stack_inputs(decoded.clips[s]), config.batch_size)
        for s in _chunks(len(decoded.clips), config.batch_size)
    ]
    return torch.cat(motion).numpy()


def encode_texts(
    samples: list[Any], config: ExtractConfig, encoders: Encoders
) -> list[tuple[Any, np.ndarray, np.ndarray]]:
    """Each query's ``(sample, states [L, 768] float32, mask [L] all true)``; the captions of
    one entry are one batch, padded to the longest (so a re-extracted query is encoded with all
    its entry's captions, as a clean run encodes it, and only the stale ones are written), on
    one CPU thread (module docstring: the states would depend on the thread count)."""
    with torch_threads(1):
        states, mask = encoders.text.encode(
            [s.caption for s in samples], max_length=config.max_text_len
        )
    texts = []
    for i, sample in enumerate(samples):
        n = int(mask[i].sum())
        texts.append((sample, states[i, :n].float().cpu().numpy(), np.ones(n, dtype=bool)))
    return texts


def entry_values(
    decoded: Decoded, image: np.ndarray, motion: np.ndarray, texts: list[Any]
) -> dict[str, Any]:
    """The writer's arrays for one entry (``image`` ``[Ts, C, h, w]``, ``motion`` ``[Td, ...]``)."""
    return {
        "frame_ids": np.asarray(decoded.frame_ids, dtype=np.int32),
        "image": image,
        "clip_spans": np.asarray(decoded.spans, dtype=np.int32),
        "motion": motion,
        "texts": texts,
    }


def encode_image(decoded: Decoded, config: ExtractConfig, encoders: Encoders) -> np.ndarray:
    """The image backbone over one decoded entry's static frames: ``[Ts, C, h, w]`` float32,
    in chunks of ``batch_size`` (the last one padded, as packed batches are)."""
    assert decoded.static is not None
    image = [
        forward_padded(encoders.image, decoded.static[s], config.batch_size)
        for s in _chunks(len(decoded.static), config.batch_size)
    ]
    return torch.cat(image).numpy()


def encode_entry(decoded: Decoded, config: ExtractConfig, encoders: Encoders) -> dict[str, Any]:
    """Run the backbones on one decoded entry alone (packing changes no value)."""
    image = encode_image(decoded, config, encoders)
    motion = encode_motion(decoded, config, encoders)
    texts = encode_texts(decoded.entry.samples, config, encoders)
    return entry_values(decoded, image, motion, texts)


@dataclass
class _Waiting:
    """An entry in the packer: its outputs so far (one per static frame and per clip)."""

    decoded: Decoded
    texts: list[Any]
    image: list[torch.Tensor | None]
    motion: list[torch.Tensor | None]
    missing: int

    def values(self) -> dict[str, Any]:
        image, motion = torch.stack(self.image).numpy(), torch.stack(self.motion).numpy()
        return entry_values(self.decoded, image, motion, self.texts)


def _shape_key(item: Any) -> tuple[Any, ...]:
    if isinstance(item, torch.Tensor):
        return tuple(item.shape)
    return tuple(tuple(path.shape) for path in item)


class Packer:
    """Batches the static frames and clips of several entries (see the module docstring).

    ``add`` queues a decoded entry's rows and runs every queue that reaches ``batch_size``;
    ``flush`` runs the partial queues (padded); ``finished`` hands back the complete entries.
    A queue holds ``(entry, "image" | "motion", index, row)``, keyed by stream and row shape.
    """

    def __init__(self, config: ExtractConfig, encoders: Encoders) -> None:
        self.config, self.encoders = config, encoders
        self.queues: dict[tuple[Any, ...], list[tuple[_Waiting, str, int, Any]]] = {}
        self.waiting: list[_Waiting] = []

    def add(self, decoded: Decoded) -> None:
        """Encode the entry's texts, queue its frames and clips, run the queues that fill up."""
        assert decoded.static is not None
        static, clips = decoded.static, decoded.clips
        entry = _Waiting(
            decoded,
            encode_texts(decoded.entry.samples, self.config, self.encoders),
            [None] * len(static),
            [None] * len(clips),
            len(static) + len(clips),
        )
        decoded.static, decoded.clips = None, []  # the queues hold the rows from now on
        self.waiting.append(entry)
        for i, frame in enumerate(static):
            self._push(("image", *frame.shape), (entry, "image", i, frame))
        for j, clip in enumerate(clips):
            self._push(("motion", *_shape_key(clip)), (entry, "motion", j, clip))
        # Frames left in a partial batch are views of the entry's whole [Ts, 3, h, w] tensor:
        # copy them so that tensor can be freed while the entry waits.
        for queue in self.queues.values():
            queue[:] = [
                (e, kind, i, row.clone() if e is entry and kind == "image" else row)
                for e, kind, i, row in queue
            ]

    def _push(self, key: tuple[Any, ...], item: tuple[_Waiting, str, int, Any]) -> None:
        queue = self.queues.setdefault(key, [])
        queue.append(item)
        if len(queue) == self.config.batch_size:
            self._run(key)

    def _run(self, key: tuple[Any, ...]) -> None:
        queue = self.queues.pop(key)
        encoder = self.encoders.image if key[0] == "image" else self.encoders.video
        batch = _stack_inputs([row for *_, row in queue])
        outputs = forward_padded(encoder, batch, self.config.batch_size)
        for (entry, kind, i, _), output in zip(queue, outputs, strict=True):
            getattr(entry, kind)[i] = output
            entry.missing -= 1

    def flush(self) -> None:
        """Run every partial queue now (padded to ``batch_size``)."""
        for key in list(self.queues):
            self._run(key)

    def finished(self) -> list[tuple[Decoded, dict[str, Any]]]:
        """Pop the entries whose rows are all encoded, in the order they were added."""
        done = [e for e in self.waiting if e.missing == 0]
        self.waiting = [e for e in self.waiting if e.missing > 0]
        return [(e.decoded, e.values()) for e in done]


@dataclass
class Summary:
    """What a run did; ``failed`` lists ``(entry_id, reason)``; ``changes`` counts the
    re-extracted entries by what changed (``{"caption": 1, "video file": 2}``)."""

    new_videos: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    queries: int = 0
    frames: int = 0
    seconds: float = 0.0
    reextracted: int = 0
    changes: dict[str, int] = field(default_factory=dict)
    legacy: int = 0

    def merge(self, other: Summary) -> Summary:
        changes = dict(self.changes)
        for name, n in other.changes.items():
            changes[name] = changes.get(name, 0) + n
        return Summary(
            self.new_videos + other.new_videos,
            self.skipped + other.skipped,
            self.failed + other.failed,
            self.queries + other.queries,
            self.frames + other.frames,
            max(self.seconds, other.seconds),
            self.reextracted + other.reextracted,
            changes,
            self.legacy + other.legacy,
        )

    def counts_line(self) -> str:
        """``"2 new videos, 1 re-extracted (changed: caption), 5 skipped (complete)"`` (the
        re-extracted count only when there are some)."""
        again = ""
        if self.reextracted:
            changed = ", ".join(f"{name}" for name in sorted(self.changes))
            again = f"{self.reextracted} re-extracted (changed: {changed}), "
        return f"{self.new_videos} new videos, {again}{self.skipped} skipped (complete)"

    def to_json(self) -> dict[str, Any]:
        return {
            "new_videos": self.new_videos,
            "reextracted": self.reextracted,
            "changes": dict(sorted(self.changes.items())),
            "skipped": self.skipped,
            "failed": len(self.failed),
            "failures": [{"entry_id": e, "reason": r} for e, r in self.failed],
            "queries": self.queries,
            "frames": self.frames,
            "seconds": round(self.seconds, 3),
            "legacy_entries": self.legacy,
        }


@dataclass
class Work:
    """What a run has to do for one entry: ``video`` is ``"new"``, ``"changed"`` or ``"keep"``;
    ``queries`` maps the sample ids to write to ``"new"`` or ``"changed"``; ``changes`` names
    what changed; ``video_source`` is the source record of the video entry the queries refer to
    (``None``: a kept entry of an older stvg, which has none).
    """

    entry: Entry
    video: str
    queries: dict[str, str]
    changes: list[str]
    video_source: dict[str, Any] | None
    legacy: int = 0
    text_batch: list[int] | None = None

    @property
    def needed(self) -> bool:
        return self.video != "keep" or bool(self.queries)

    def replaced(self) -> list[tuple[str, str]]:
        """``(kind, id)`` of the stale entries this work replaces."""
        out = [("videos", self.entry.entry_id)] if self.video == "changed" else []
        return out + [("queries", sid) for sid, why in self.queries.items() if why == "changed"]


def text_batch(entry: Entry, config: ExtractConfig, encoders: Encoders) -> list[int]:
    """``[B, L]``: the shape of the entry's text batch (its captions, padded to the longest)."""
    from stvg.extract.backbones.text import MAX_POSITIONS

    ids = encoders.text.tokenizer([s.caption for s in entry.samples])["input_ids"]
    longest = max(len(i) for i in ids)
    return [len(entry.samples), min(longest, config.max_text_len, MAX_POSITIONS)]


def assess(store: Any, entry: Entry, batch: list[int] | None = None) -> Work:
    """Compare an entry's stored sources with the current annotations and video file
    (``batch``: its :func:`text_batch`)."""
    split, current = entry.split, video_source(entry)
    changes: list[str] = []
    legacy = 0
    kept: dict[str, Any] | None = current
    if not store.has_video(entry.entry_id, split):
        video = "new"
    else:
        old = stored_source(store.attrs("videos", entry.entry_id, split))
        if old is None:
            video, kept, legacy = "keep", None, 1
        elif video_changes(old, current):
            video, changes = "changed", video_changes(old, current)
        else:
            video, kept = "keep", kept_video_source(old, current)
    video_hash = None if kept is None else digest(kept)
    queries: dict[str, str] = {}
    for sample in entry.samples:
        sid = sample.sample_id
        present = store.has_query(sid, split)
        if video != "keep" or not present:  # a (re)written video entry rewrites its queries
            queries[sid] = "changed" if present else "new"
            continue
        attrs = store.attrs("queries", sid, split)
        old = stored_source(attrs)
        if old is None:
            legacy += 1
            continue
        new = query_source(sample, video_hash, batch)
        if old != new:
            queries[sid] = "changed"
            changes += query_changes(old, new, attrs.get("sample"), sample)
    names = list(dict.fromkeys(changes))
    return Work(entry, video, queries, names, kept, legacy, batch)


def _writer_waiting(store: Any, split: str, part: tuple[int, int], wait: float) -> Any:
    """``store.writer(split, part)``, retrying for up to ``wait`` seconds while it is locked
    (shards of one run removing from the same old part take turns)."""
    from stvg.features.locking import PartLocked

    deadline = time.monotonic() + wait
    while True:
        try:
            return store.writer(split, part=part)
        except PartLocked:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


def remove_elsewhere(
    store: Any, works: list[Work], shard: tuple[int, int], wait: float = 60.0
) -> int:
    """Remove the stale entries ``works`` replace from parts other than this shard's own (each
    part under its lock, waited for up to ``wait`` seconds); returns how many were removed.
    Raises :class:`InputError` when such a part's writer is still running after that."""
    from stvg.features.locking import PartLocked

    todo: dict[tuple[str, tuple[int, int]], list[tuple[str, str]]] = {}
    for work in works:
        for kind, entry in work.replaced():
            for kn in store.holders(kind, entry, work.entry.split):
                if kn != tuple(shard):
                    todo.setdefault((work.entry.split, kn), []).append((kind, entry))
    removed = 0
    for (split, kn), items in sorted(todo.items()):
        try:
            with _writer_waiting(store, split, kn, wait) as writer:
                for kind, entry in items:
                    removed += writer.remove(kind, entry)
        except PartLocked as error:
            raise InputError(
                f"{len(items)} changed entries (e.g. {items[0][1]!r}) live in part "
                f"{kn[0]}-of-{kn[1]} of split {split!r} (written with --shard K/{kn[1]}), and "
                f"that part's writer is running now (waited {wait:g} s); nothing of this shard "
                "was written",
                file=error.file,
                hint="Rerun this shard once that writer has finished",
            ) from None
        log.info(
            "removed %d stale entries from %s/part-%d-of-%d (another sharding layout)",
            len(items),
            split,
            *kn,
        )
    store.refresh()
    return removed


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
    works: list[Work] = []
    for entry in mine:
        work = assess(store, entry, text_batch(entry, config, encoders))
        summary.legacy += work.legacy
        if not work.needed or entry.entry_id in failed_before:
            summary.skipped += 1
        else:
            works.append(work)
    if summary.legacy:
        log.warning(
            "%d entries were written by an older stvg without a source record: they are kept "
            "as they are (edits to their annotations or videos cannot be detected; extract into "
            "a new --out to redo them)",
            summary.legacy,
        )
    remove_elsewhere(store, [w for w in works if w.replaced()], shard, wait=LOCK_WAIT)
    for work in works:
        if work.changes:
            log.info(
                "re-extracting %s (%s): changed %s%s",
                work.entry.entry_id,
                work.entry.split,
                ", ".join(work.changes),
                "" if work.video != "keep" else " (queries only)",
            )
    by_entry = {(w.entry.split, w.entry.entry_id): w for w in works}
    todo = [w.entry for w in works if w.video != "keep"]
    texts_only = [w for w in works if w.video == "keep"]
    log.info(
        "%d entries to extract (%d of them text only), %d complete (shard %d/%d)",
        len(works),
        len(texts_only),
        summary.skipped,
        *shard,
    )

    writers: dict[str, Any] = {}
    bar = tqdm(
        total=len(works),
        desc=f"extract {shard[0]}/{shard[1]}",
        unit="video",
        disable=bar_disabled(progress),
    )

    def writer_for(split: str) -> Any:
        if split not in writers:
            writers[split] = store.writer(split, part=shard)
        return writers[split]

    def tick() -> None:
        bar.update(1)
        elapsed = max(time.perf_counter() - t0, 1e-9)
        bar.set_postfix(
            videos_s=f"{bar.n / elapsed:.2f}", frames_s=f"{summary.frames / elapsed:.1f}"
        )

    def count(work: Work) -> None:
        if work.changes:
            summary.reextracted += 1
            for name in work.changes:
                summary.changes[name] = summary.changes.get(name, 0) + 1
        else:
            summary.new_videos += 1

    def write_queries(work: Work, texts: list[Any]) -> None:
        writer = writer_for(work.entry.split)
        video_hash = None if work.video_source is None else digest(work.video_source)
        for sample, text, mask in texts:
            why = work.queries.get(sample.sample_id)
            if why is None:
                continue
            source = source_json(query_source(sample, video_hash, work.text_batch))
            writer.write_query(
                sample,
                text,
                mask,
                work.entry.entry_id,
                attrs={SOURCE_ATTR: source},
                replace=why == "changed",
            )
            summary.queries += 1

    def write(decoded: Decoded, values: dict[str, Any]) -> None:
        entry = decoded.entry
        work = by_entry[(entry.split, entry.entry_id)]
        writer = writer_for(entry.split)
        writer.write_video(
            entry.entry_id,
            frame_ids=values["frame_ids"],
            image=values["image"],
            clip_spans=values["clip_spans"],
            motion=values["motion"],
            attrs={
                "fps": float(entry.fps),
                "video_id": entry.video_id,
                SOURCE_ATTR: source_json(work.video_source or video_source(entry)),
            },
            replace=work.video == "changed",
        )
        # a kill between an entry's queries leaves some complete: only the others are written
        write_queries(work, values["texts"])
        count(work)
        summary.frames += decoded.frames_read
        tick()

    def record_failure(entry: Entry, err: VideoError) -> None:
        writer_for(entry.split)
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
        tick()

    packer = Packer(config, encoders) if config.pack else None
    try:
        for work in texts_only:  # the video entry stands: its queries need no decoding
            write_queries(work, encode_texts(work.entry.samples, config, encoders))
            count(work)
            tick()
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
                if decoded.error is not None:
                    record_failure(decoded.entry, decoded.error)
                elif packer is None:
                    write(decoded, encode_entry(decoded, config, encoders))
                else:
                    packer.add(decoded)
                if packer is not None:
                    # Partial batches wait for the next entries' rows, but for no more than
                    # batch_size entries (memory); when they run changes no value anyway.
                    if not pending or len(packer.waiting) >= config.batch_size:
                        packer.flush()
                    for done, values in packer.finished():
                        write(done, values)
    finally:
        bar.close()
        for writer in writers.values():
            writer.close()
    summary.seconds = time.perf_counter() - t0
    return summary
