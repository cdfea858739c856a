"""From the windows' predictions to one tube per sentence, and the predictions file.

Each window of a video is predicted as a segment of its own (:func:`stvg.evaluate.predict.
predict_dataset`: every stored frame seen, the span and its score from the model's entry of
:mod:`stvg.models.zoo`, boxes on every native frame of the window). A sentence's tube is that of
the window that scores highest (the earliest on a tie): its span, already in native frame ids of
the whole video, and its boxes, which cover that window only.

A window's score is, when the run has a presence head (``model.presence_head``: trained with
BCE, and with event-free negatives, comparable across windows), the presence of the described
event over the whole window (:func:`window_presence_scores`): the mean over the window's stored
frames of each frame's presence probability averaged over every window that saw it (windows
overlap by half, so most frames are seen twice). All windows have the training length, so this
is the amount of the event a window holds: a window holding most of a 5 s event beats one where
a similar action lifts the presence for a second or two. (The mean inside the window's own span
ranked such short bursts first, their spans being a few frames long: BENCHMARKS.md, "Window
score".) Without a presence head it is the span's own score (the model's measure of its span,
which a run trained only on segments holding the event does not calibrate across segments).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stvg.ground.inputs import Pair
from stvg.ground.windows import Span, seconds


@dataclass
class Grounding:
    """One sentence grounded in one video: the tube, its score, the window it came from."""

    pair: Pair
    fps: float
    frame_count: int
    width: int
    height: int
    tube: Span
    boxes: dict[int, list[float]]
    score: float
    window: Span
    windows: int
    # "presence_window" (the run's presence head over the window) or "span" (the span's own)
    score_by: str = "span"
    pictures: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> tuple[float, float]:
        """The tube in seconds, ``[start / fps, end / fps)``."""
        return seconds(self.tube[0], self.fps), seconds(self.tube[1], self.fps)

    def to_json(self) -> dict[str, Any]:
        """What ``--json`` prints for this pair."""
        return {
            "sample_id": self.pair.sample_id,
            "video": str(self.pair.video),
            "sentence": self.pair.sentence,
            "tube": list(self.tube),
            "seconds": [round(v, 3) for v in self.seconds],
            "score": round(self.score, 6),
            "score_by": self.score_by,
            "window": list(self.window),
            "windows": self.windows,
            "fps": self.fps,
            "frame_count": self.frame_count,
            "pictures": self.pictures,
        }

    def line(self) -> str:
        """``video.mp4 "sentence": 1.20-4.50 s, frames [12, 45) (score 0.83)``."""
        s0, s1 = self.seconds
        return (
            f'{self.pair.video.name} "{self.pair.sentence}": {s0:.2f}-{s1:.2f} s, frames '
            f"[{self.tube[0]}, {self.tube[1]}) of {self.frame_count} (score {self.score:.3f}"
            + (f", best of {self.windows} windows)" if self.windows > 1 else ")")
        )


def best_window(candidates: list[tuple[Span, str]], scores: dict[str, float]) -> tuple[Span, str]:
    """The ``(window, query id)`` whose score in ``scores`` (by query id) is highest; the
    earliest window on a tie."""
    best = candidates[0]
    for candidate in candidates[1:]:
        if scores[candidate[1]] > scores[best[1]]:
            best = candidate
    return best


def presence_track(
    candidates: list[tuple[Span, str]], frame_presence: dict[str, tuple[Any, Any]]
) -> dict[int, float]:
    """Each stored frame's presence probability averaged over every window of ``candidates``
    ``(window, query id)`` that saw it (``frame_presence[query id]``: the ids of the stored
    frames the window saw and their probabilities; windows overlap, most frames are seen
    twice)."""
    import numpy as np

    total: dict[int, float] = {}
    seen: dict[int, int] = {}
    for _, qid in candidates:
        ids, prob = frame_presence[qid]
        for f, p in zip(np.asarray(ids).tolist(), np.asarray(prob).tolist(), strict=True):
            total[f] = total.get(f, 0.0) + p
            seen[f] = seen.get(f, 0) + 1
    return {f: total[f] / seen[f] for f in total}


def window_presence_scores(
    candidates: list[tuple[Span, str]], frame_presence: dict[str, tuple[Any, Any]]
) -> dict[str, float]:
    """Per query id of ``candidates``: the mean of :func:`presence_track` over the stored
    frames its window saw."""
    import numpy as np

    track = presence_track(candidates, frame_presence)
    return {
        qid: float(np.mean([track[f] for f in np.asarray(frame_presence[qid][0]).tolist()]))
        for _, qid in candidates
    }


def write_groundings(path: str | Path, groundings: list[Grounding], run: str | Path) -> Path:
    """The tubes as ``stvg-predictions/1`` keyed by sample id; each record's ``extra`` holds
    the video, the sentence, the score and the window."""
    from stvg.evaluate.predictions import Prediction, make_provenance, write_predictions

    predictions = {
        g.pair.sample_id: Prediction(
            tube=g.tube,
            boxes={f: (b[0], b[1], b[2], b[3]) for f, b in g.boxes.items()},
            extra={
                "video": str(g.pair.video),
                "sentence": g.pair.sentence,
                "score": g.score,
                "score_by": g.score_by,
                "window": list(g.window),
            },
        )
        for g in groundings
    }
    provenance = make_provenance(
        run=Path(run).name,
        frames="every native frame of the best-scoring window",
        boxes="linear between the stored frames' boxes, held at the first and last",
    )
    write_predictions(path, predictions, provenance)
    return Path(path)
