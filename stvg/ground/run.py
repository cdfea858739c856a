"""``stvg ground``: a trained run on the user's own videos and sentences.

Per video: probe it, cut it into windows of the run's training length (:mod:`.windows`), extract
the windows the cache lacks (:mod:`.cache`) by decoding the video **once, front to back**
(:func:`read_windows`: a frame is kept only until the last window that reads it, so memory is
that of about two windows whatever the video's length), running the run's own encoders as stage
one does (:mod:`stvg.extract.runner`: same preprocessing, same padded batches, so the values
equal those ``stvg extract`` would store for a segment ``[a, b)``), encode each new sentence
once, then predict every window with :func:`stvg.evaluate.predict.predict_dataset` and keep the
best-scoring window's tube per sentence (:mod:`.predict`). Last, the predictions file and, unless
``draw`` is off, a picture and an MP4 per sentence (:mod:`.render`).
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from stvg.data.sample import Sample
from stvg.data.video import VideoError, VideoInfo, open_video
from stvg.errors import UndecodableVideo
from stvg.ground.cache import SPLIT, FeatureCache, cache_root, entry_id, query_id
from stvg.ground.inputs import Pair
from stvg.ground.predict import Grounding, best_window, window_presence_scores, write_groundings
from stvg.ground.settings import RunSettings, run_settings
from stvg.ground.windows import WindowPlan, last_use, plan_window, window_length, window_spans
from stvg.progress import bar_disabled

log = logging.getLogger(__name__)

PREDICTIONS = "predictions.json"


def undecodable(path: Path, error: VideoError) -> UndecodableVideo:
    return UndecodableVideo(
        f"cannot decode the video ({error.reason}: {error.message})", file=path, field="video"
    )


def probe_video(path: Path) -> VideoInfo:
    """The video's fps, frame count and size; :class:`UndecodableVideo` (exit 3) if it cannot
    be opened. Probed with PyAV, which says nothing on stderr about a bad file (decord's native
    code prints FFmpeg's complaints, which would bury the one-line message)."""
    try:
        with open_video(path, backend="pyav") as video:
            info = video.info
    except VideoError as error:
        raise undecodable(path, error) from None
    if not info.fps > 0:
        raise UndecodableVideo("the video stream has no frame rate", file=path, field="video")
    return info


def read_windows(
    path: Path, plans: list[WindowPlan]
) -> Iterator[tuple[WindowPlan, dict[int, np.ndarray]]]:
    """Each plan (in order of start) with its frames ``{native id: uint8 [H, W, 3]}``.

    The video is read once, front to back: before window ``k`` the frames up to its last one
    are decoded, and a frame is dropped after the last window that reads it
    (:func:`~stvg.ground.windows.last_use`). Raises :class:`UndecodableVideo`.
    """
    last = last_use(plans)
    order = sorted(last)
    buffer: dict[int, np.ndarray] = {}
    done = 0  # frames of ``order`` decoded so far
    try:
        with open_video(path) as video:
            for k, plan in enumerate(plans):
                needed = plan.needed()
                upto = bisect.bisect_right(order, needed[-1])
                if upto > done:
                    ids = order[done:upto]
                    buffer.update(zip(ids, video.get(ids), strict=True))
                    done = upto
                yield plan, {f: buffer[f] for f in needed}
                for f in needed:
                    if last[f] == k:
                        del buffer[f]
    except VideoError as error:
        raise undecodable(path, error) from None


def window_sample(pair: Pair, info: VideoInfo, fingerprint: str, span: tuple[int, int]) -> Sample:
    """The query record of one window and sentence (no ground truth: the tube is the window)."""
    return Sample(
        sample_id=query_id(fingerprint, span, pair.sentence),
        video_id=fingerprint,
        video_path=str(pair.video),
        fps=info.fps,
        frame_count=info.frame_count,
        width=info.width,
        height=info.height,
        segment=span,
        tube=span,
        boxes={},
        caption=pair.sentence,
    )


def extract_windows(
    cache: FeatureCache,
    video: Path,
    info: VideoInfo,
    fingerprint: str,
    spans: list[tuple[int, int]],
    pairs: list[Pair],
    progress: bool = True,
) -> int:
    """Write the windows and queries the cache lacks; returns how many windows were decoded."""
    from stvg.extract.plan import Entry
    from stvg.extract.runner import Decoded, encode_image, encode_motion, encode_texts

    config = cache.config
    todo = [s for s in spans if not cache.has_video(fingerprint, s)]
    queries = [
        (pair, s)
        for pair in pairs
        for s in spans
        if not cache.has_query(fingerprint, s, pair.sentence)
    ]
    if not todo and not queries:
        return 0
    encoders = cache.encoders()
    with cache.writer() as writer:
        if todo:
            clip_frames = encoders.video.clip_frames
            plans = [
                plan_window(
                    s, info.fps, config.target_fps, config.max_frames, config.td, clip_frames
                )
                for s in todo
            ]
            bar = tqdm(plans, desc="ground: windows", unit="window", disable=bar_disabled(progress))
            for plan, frames in read_windows(video, plans):
                a, b = plan.span
                entry = Entry(entry_id(fingerprint, plan.span), SPLIT, fingerprint, video,
                              info.fps, plan.span)  # fmt: skip
                static = np.stack([frames[f] for f in plan.static_ids])
                decoded = Decoded(
                    entry,
                    list(plan.static_ids),
                    static=encoders.image.preprocess(static, config.n_short),
                    spans=list(plan.clips),
                    clips=[
                        encoders.video.preprocess(np.stack([frames[f] for f in ids]))
                        for ids in plan.clip_ids
                    ],
                )
                writer.write_video(
                    entry.entry_id,
                    frame_ids=np.asarray(plan.static_ids, dtype=np.int32),
                    image=encode_image(decoded, config, encoders),
                    clip_spans=np.asarray(plan.clips, dtype=np.int32),
                    motion=encode_motion(decoded, config, encoders),
                    attrs={"fps": float(info.fps), "video_id": fingerprint},
                )
                bar.update(1)
            bar.close()
        texts: dict[str, tuple[Any, Any]] = {}
        for pair, span in queries:
            sample = window_sample(pair, info, fingerprint, span)
            if pair.sentence not in texts:  # one sentence, encoded alone, once
                _, states, mask = encode_texts([sample], config, encoders)[0]
                texts[pair.sentence] = (states, mask)
            writer.write_query(sample, *texts[pair.sentence], entry_id(fingerprint, span))
    cache.refresh()
    return len(todo)


@dataclasses.dataclass
class WindowScores:
    """One video's windows predicted for its sentences: ``windows`` and ``scores`` (the window
    score ``stvg ground`` ranks by: with a run that has a presence head, the presence of the
    described event over the window, each frame's presence averaged over every window that
    saw it, ``score_by="presence_window"`` (:func:`~stvg.ground.predict.window_presence_scores`);
    else the span's own score, ``"span"``) and
    ``span_scores`` (always the span's own score), each keyed by query id
    (:func:`~stvg.ground.cache.query_id`)."""

    info: VideoInfo
    fingerprint: str
    spans: list[tuple[int, int]]
    windows: dict[str, dict[str, Any]]
    scores: dict[str, float]
    span_scores: dict[str, float]
    score_by: str
    # per query id: the stored frame ids its window's passes saw and their presence
    # probabilities (runs with a presence head; empty otherwise)
    frame_presence: dict[str, tuple[Any, Any]] = dataclasses.field(default_factory=dict)

    def candidates(self, sentence: str) -> list[tuple[tuple[int, int], str]]:
        """``(window, query id)`` of every window for ``sentence``, in order of start."""
        return [(s, query_id(self.fingerprint, s, sentence)) for s in self.spans]


@dataclasses.dataclass
class Grounder:
    """A run ready to ground: its model, its settings and the cache under ``out``."""

    run: Path
    out: Path
    settings: RunSettings
    model: Any
    info: dict[str, Any]
    cache: FeatureCache
    device: str = "cpu"
    batch_size: int = 8
    progress: bool = True
    decoded_windows: int = 0

    @classmethod
    def load(
        cls,
        run: str | Path,
        out: str | Path,
        *,
        features: str | Path | None = None,
        device: str = "cpu",
        progress: bool = True,
    ) -> Grounder:
        from stvg.evaluate.predict import load_run
        from stvg.features.manifest import check_same_features

        run, out = Path(run), Path(out)
        settings = run_settings(run, features)
        config = dataclasses.replace(settings.extract, device=device)
        model, info = load_run(run, device)
        log.info("extraction settings from %s", settings.source)

        def check(manifest: Any) -> None:
            check_same_features(
                info["features"],
                manifest,
                run=run,
                store=cache_root(out, config),
                hint="The run's recorded extraction settings do not rebuild its encoders; "
                "pass --features STORE, the store the run was trained on",
            )

        cache = FeatureCache(cache_root(out, config), config, check)
        return cls(run, out, settings, model, info, cache, device, progress=progress)

    def score_windows(
        self, video: Path, pairs: list[Pair], info: VideoInfo | None = None
    ) -> WindowScores:
        """Every window of ``video`` (probed as ``info``) predicted for every sentence of
        ``pairs``: extracts what the cache lacks, then :func:`~stvg.evaluate.predict.
        predict_dataset` with the run's model."""
        from stvg.evaluate.predict import predict_dataset
        from stvg.features.dataset import FeatureDataset
        from stvg.ground.cache import video_fingerprint

        info = probe_video(video) if info is None else info
        fingerprint = video_fingerprint(video)
        spans = window_spans(
            info.frame_count, window_length(self.settings.segment_seconds, info.fps)
        )
        self.decoded_windows += extract_windows(
            self.cache, video, info, fingerprint, spans, pairs, self.progress
        )
        config = self.info["config"]
        ids = [query_id(fingerprint, s, p.sentence) for p in pairs for s in spans]
        dataset = FeatureDataset(self.cache.root, SPLIT, int(config["num_frames"]), sample_ids=ids)
        scores: dict[str, float] = {}
        span_scores: dict[str, float] = {}
        frame_presence: dict[str, tuple[Any, Any]] = {}
        windows = predict_dataset(
            self.model,
            dataset,
            device=self.device,
            batch_size=self.batch_size,
            progress=self.progress,
            frames_per_pass=config.get("frames_per_pass") or config["num_frames"],
            model_name=config.get("model_name", "csdvl"),
            scores=scores,
            span_scores=span_scores,
            frame_presence=frame_presence,
        )
        scored = WindowScores(info, fingerprint, spans, windows, scores, span_scores, "span")
        if frame_presence:
            # the event's presence over each window, each frame averaged over the (two)
            # windows that see it: ranks a 600 s video's event window first (BENCHMARKS.md)
            scored.frame_presence, scored.score_by = frame_presence, "presence_window"
            for pair in pairs:
                candidates = scored.candidates(pair.sentence)
                scores.update(window_presence_scores(candidates, frame_presence))
        return scored

    def ground_video(
        self, video: Path, pairs: list[Pair], info: VideoInfo | None = None
    ) -> list[Grounding]:
        """Every sentence of ``pairs`` (all on ``video``, probed as ``info``) grounded in it."""
        scored = self.score_windows(video, pairs, info)
        info, spans = scored.info, scored.spans
        out = []
        for pair in pairs:
            span, qid = best_window(scored.candidates(pair.sentence), scored.scores)
            found = scored.windows[qid]
            out.append(
                Grounding(
                    pair=pair,
                    fps=info.fps,
                    frame_count=info.frame_count,
                    width=info.width,
                    height=info.height,
                    tube=(int(found["tube"][0]), int(found["tube"][1])),
                    boxes={int(f): list(b) for f, b in found["boxes"].items()},
                    score=scored.scores[qid],
                    window=span,
                    windows=len(spans),
                    score_by=scored.score_by,
                )
            )
        return out


def ground(
    run: str | Path,
    pairs: list[Pair],
    out: str | Path,
    *,
    features: str | Path | None = None,
    device: str = "cpu",
    draw: bool = True,
    progress: bool = True,
) -> list[Grounding]:
    """Ground every pair with the run; writes ``OUT/predictions.json`` and, with ``draw``,
    ``OUT/<sample_id>.png`` and ``.mp4``. Returns the groundings in the order of ``pairs``.
    ``device`` is a ``--device`` value (:func:`stvg.device.resolve_device`), resolved after the
    videos are probed (a bad video is refused before torch is even imported)."""
    from stvg.device import resolve_device
    from stvg.ground.render import render_grounding

    by_video: dict[Path, list[Pair]] = {}
    for pair in pairs:
        by_video.setdefault(pair.video, []).append(pair)
    infos = {video: probe_video(video) for video in by_video}  # a bad video stops us first
    device = resolve_device(device)
    grounder = Grounder.load(run, out, features=features, device=device, progress=progress)
    found: dict[str, Grounding] = {}
    for video, video_pairs in by_video.items():
        for grounding in grounder.ground_video(video, video_pairs, infos[video]):
            found[grounding.pair.sample_id] = grounding
    groundings = [found[p.sample_id] for p in pairs]
    out = Path(out)
    write_groundings(out / PREDICTIONS, groundings, run)
    if draw:
        for grounding in groundings:
            grounding.pictures = [str(p) for p in render_grounding(grounding, out)]
    return groundings
