"""Everything a report shows, gathered before any HTML is written.

:func:`gather_report` loads the annotations and one or more prediction files ("runs"), scores
every run with every protocol through :mod:`stvg.evaluate.score` (the group tables are
:func:`~stvg.evaluate.score.score`'s results unchanged, so they equal ``stvg score``'s), scores
every sample (:func:`~stvg.evaluate.score.score_per_sample`) and writes a few frames of each
sample's video next to the page (:mod:`stvg.report.frames`). A missing or unreadable video does
not stop the report: that sample keeps its timeline and gets a note instead of frames.

Conventions are stvg's: 0-based native frame ids, half-open spans ``[start, end)``, boxes
``[x1, y1, x2, y2]`` in pixels of the original frame; scores are fractions in [0, 1].
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from stvg.data.sample import Annotations, Sample
from stvg.errors import InputError
from stvg.evaluate.predictions import Prediction, Predictions, read_predictions
from stvg.evaluate.protocols import SampleScore, check_protocol
from stvg.evaluate.score import Results, check_group_by, score, score_per_sample
from stvg.progress import bar_disabled
from stvg.report.frames import FRAMES_DIR, write_sample_frames

log = logging.getLogger(__name__)


@dataclass
class Run:
    """One predictions file: its label in the report, where it came from, its tubes."""

    label: str
    path: Path
    predictions: Predictions


@dataclass
class SampleView:
    """One sample as the report shows it.

    ``predictions[r]`` is run ``r``'s tube (None when the run has none for this sample: scored 0
    with ``--missing zero``); ``scores[r][protocol]`` its :class:`SampleScore`. ``frame_ids`` are
    the frames drawn and ``images`` their files relative to the report folder (empty when no
    frame could be read; ``note`` then says why).
    """

    index: int
    sample: Sample
    group: str
    predictions: list[Prediction | None]
    scores: list[dict[str, SampleScore]]
    frame_ids: list[int] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    note: str | None = None


@dataclass
class ReportData:
    """What :func:`stvg.report.html.render_report` turns into a page.

    ``tables[protocol][r]`` is :func:`~stvg.evaluate.score.score`'s ``{group: {metric: value}}``
    for run ``r``; the sample list is scored with ``protocols[0]``.
    """

    annotations_path: Path
    annotations: Annotations
    protocols: list[str]
    group_by: str
    runs: list[Run]
    tables: dict[str, list[Results]]
    samples: list[SampleView]


def group_of(sample: Sample, group_by: str) -> str:
    """The row of ``stvg score``'s table ``sample`` counts in (``qtype`` or ``extra.KEY``)."""
    if group_by == "qtype":
        return sample.qtype
    return str(sample.extra.get(group_by[len("extra.") :], "-"))


def run_labels(paths: Sequence[Path]) -> list[str]:
    """Short distinct labels for the prediction files: the file stem, or more of the path.

    Files with the same stem (``runs/a/predictions.json``, ``runs/b/predictions.json``) are
    named by as many trailing path parts as it takes (``a/predictions``, ``b/predictions``); an
    exact duplicate gets `` (2)``, `` (3)``...
    """
    parts = [list(Path(p).with_suffix("").parts) for p in paths]
    labels = []
    for i, own in enumerate(parts):
        depth = 1
        while depth < len(own) and any(
            j != i and other[-depth:] == own[-depth:] and other != own
            for j, other in enumerate(parts)
        ):
            depth += 1
        labels.append("/".join(own[-depth:]) or f"run {i + 1}")
    seen: dict[str, int] = {}
    for i, label in enumerate(labels):
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            labels[i] = f"{label} ({seen[label]})"
    return labels


def _frames_of(
    view: SampleView,
    video_root: Path,
    out_dir: Path,
    num_frames: int,
    tile_width: int,
) -> None:
    sample = view.sample
    video = video_root / sample.video_path
    if not video.exists():
        view.note = f"Video not found: {sample.video_path} (under {video_root}). Timeline only."
        log.debug("sample %s: video %s not found; timeline only", sample.sample_id, video)
        return
    try:
        view.frame_ids, view.images = write_sample_frames(
            sample, video, out_dir, f"s{view.index:05d}", num_frames, tile_width
        )
    except InputError as error:
        view.note = f"Cannot read the video {sample.video_path}: {error.message}. Timeline only."
        log.debug("sample %s: %s; timeline only", sample.sample_id, error)


def gather_report(
    annotations: str | Path,
    predictions: Sequence[str | Path],
    out_dir: str | Path,
    *,
    protocols: Sequence[str] = ("tubedetr",),
    group_by: str = "qtype",
    missing: str = "error",
    format: str | None = None,
    boxes_dir: str | Path | None = None,
    video_root: str | Path | None = None,
    num_frames: int = 6,
    tile_width: int = 240,
    labels: Sequence[str] | None = None,
    progress: bool = True,
) -> ReportData:
    """Load, score and draw: everything :func:`stvg.report.html.render_report` needs.

    ``predictions`` holds one or more ``stvg-predictions/1`` files, each a column of the report
    (labelled ``labels`` or :func:`run_labels`). Frames of each sample (``num_frames`` spread
    over its segment, about half inside the GT tube; 0 for none) are written as JPEG files under
    ``out_dir/frames/``, at most ``tile_width`` px wide. Videos are ``video_root /
    sample.video_path`` (default root: the annotation file's folder).

    Raises :class:`InputError` for unusable annotations or predictions, an unknown protocol or
    grouping, or (``missing="error"``) a sample some run has no tube for.
    """
    from stvg.data.formats import load_annotations

    if not predictions:
        raise InputError("give at least one predictions file", field="--predictions")
    protocols = list(dict.fromkeys(protocols)) or ["tubedetr"]
    for protocol in protocols:
        check_protocol(protocol)
    check_group_by(group_by)
    if num_frames < 0:
        raise InputError(f"--frames must be 0 or more, got {num_frames}", field="--frames")
    if labels is not None and len(labels) != len(predictions):
        raise InputError(
            f"{len(labels)} labels for {len(predictions)} predictions files",
            field="--label",
        )
    annotations = Path(annotations)
    loaded = load_annotations(annotations, format, boxes_dir=boxes_dir)
    paths = [Path(p) for p in predictions]
    names = list(labels) if labels is not None else run_labels(paths)
    runs = [Run(n, p, read_predictions(p)) for n, p in zip(names, paths, strict=True)]

    tables = {
        protocol: [
            score(loaded, run.predictions, protocol, missing=missing, group_by=group_by)
            for run in runs
        ]
        for protocol in protocols
    }
    per_sample = {
        protocol: [score_per_sample(loaded, run.predictions, protocol, missing) for run in runs]
        for protocol in protocols
    }
    views = [
        SampleView(
            index=i,
            sample=sample,
            group=group_of(sample, group_by),
            predictions=[run.predictions.by_id.get(sample.sample_id) for run in runs],
            scores=[
                {p: per_sample[p][r][sample.sample_id] for p in protocols} for r in range(len(runs))
            ],
        )
        for i, sample in enumerate(loaded.samples)
    ]
    out_dir = Path(out_dir)
    if num_frames > 0:
        root = Path(video_root) if video_root is not None else annotations.parent
        for view in tqdm(
            views, desc="report frames", unit="sample", disable=bar_disabled(progress)
        ):
            _frames_of(view, root, out_dir, num_frames, tile_width)
        without = [v for v in views if v.note]
        if without:
            log.warning(
                "%d of %d samples have no frames (first: %s: %s); their timelines are shown",
                len(without),
                len(views),
                without[0].sample.sample_id,
                without[0].note,
            )
        log.info("frames of %d samples under %s", len(views) - len(without), out_dir / FRAMES_DIR)
    return ReportData(
        annotations_path=annotations,
        annotations=loaded,
        protocols=protocols,
        group_by=group_by,
        runs=runs,
        tables=tables,
        samples=views,
    )
