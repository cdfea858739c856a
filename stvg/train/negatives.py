"""Event-free training queries ("negatives"): a training segment paired with a sentence that
does not occur in it, so that a model learns to score the absence of the described event.

A grounding data set pairs every sentence with a segment that holds it: a model trained on it
alone never sees a segment without the event, and read in windows over a long video
(``stvg ground``) it cannot tell the window holding the event from an empty one. With the
``negatives`` setting (:class:`~stvg.train.config.TrainConfig`) each epoch adds
``round(negatives * n)`` queries to the ``n`` training ones. Negative ``k`` of epoch ``e`` is
drawn from ``default_rng([seed, e, k])``: an *anchor* query (whose segment, frames and clips are
used) and a *source* query of another video (whose sentence is used), kept only when no
annotation of the anchor's video carries that sentence (compared after lower-casing and
collapsing white space, :func:`caption_key`). That is all the annotations can tell: a sentence
describing something that happens in the video but was never annotated is not caught. Its
targets say "nowhere": no frame or clip in the tube, no box, a span of ``[0, 0)`` (the 2D map's
targets all 0).

With ``negatives_outside`` each epoch further adds ``round(negatives_outside * n)`` *outside*
negatives, harder ones: a query's own sentence on the part of its own segment that its tube
leaves free, the longer side (``[s0, t0)`` or ``[t1, s1)``, at least 30 % of the segment): the
described actor is on screen but not doing what the sentence says, as in most windows of a long
video. That side's stored frames and its clips that do not overlap the tube are spread over the
segment's ``Ts`` frame and ``Td`` clip slots (repeated when fewer), in order; each frame is
aligned to the first slot of the kept clip that holds it (else the nearest). Targets "nowhere", as above. Outside negative ``k`` of epoch
``e`` takes a random anchor from ``default_rng([seed, e, k, 1])`` among the queries with such a
side.

The draws are functions of ``(seed, epoch, k)`` only, so a resumed run sees the negatives an
uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from stvg.data.sample import Sample
from stvg.errors import InputError

_TRIES = 100


def caption_key(text: str) -> str:
    """The sentence lower-cased with its white space collapsed (how sentences are compared)."""
    return " ".join(text.lower().split())


def video_captions(samples: Sequence[Sample]) -> dict[str, set[str]]:
    """Every annotated sentence of each video (by ``video_id``), as :func:`caption_key`."""
    out: dict[str, set[str]] = {}
    for sample in samples:
        out.setdefault(sample.video_id, set()).add(caption_key(sample.caption))
    return out


def is_negative(
    samples: Sequence[Sample], captions: dict[str, set[str]], anchor: int, source: int
) -> bool:
    """True when the sentence of ``samples[source]`` is not annotated on the video of
    ``samples[anchor]`` (and the two are of different videos)."""
    a, b = samples[anchor], samples[source]
    return a.video_id != b.video_id and caption_key(b.caption) not in captions[a.video_id]


def draw_negative(
    samples: Sequence[Sample], captions: dict[str, set[str]], key: Sequence[int]
) -> tuple[int, int]:
    """``(anchor, source)`` query indices of one negative, drawn from ``default_rng(key)``:
    up to 100 random pairs, then the first valid source for a random anchor (scanning the
    anchors from it). :class:`InputError` when no pair is valid."""
    rng = np.random.default_rng(list(key))
    n = len(samples)
    for _ in range(_TRIES):
        anchor, source = (int(v) for v in rng.integers(n, size=2))
        if is_negative(samples, captions, anchor, source):
            return anchor, source
    start = int(rng.integers(n))
    for shift in range(n):
        anchor = (start + shift) % n
        for source in range(n):
            if is_negative(samples, captions, anchor, source):
                return anchor, source
    raise InputError(
        "no negative query: every training sentence is annotated on every training video",
        field="negatives",
    )


def make_negative(item: dict[str, Any], text: Any, text_mask: Any) -> dict[str, Any]:
    """A feature item (:class:`~stvg.features.dataset.FeatureDataset`) with the sentence
    ``text`` [L, D] / ``text_mask`` [L] and the targets of a segment that does not hold it."""
    out = dict(item)
    out["text"] = torch.as_tensor(np.asarray(text, dtype=np.float32))
    out["text_mask"] = torch.as_tensor(np.asarray(text_mask, dtype=bool))
    out["boxes"] = torch.zeros_like(item["boxes"])
    for key in ("box_mask", "frame_in_tube", "clip_in_tube"):
        out[key] = torch.zeros_like(item[key])
    out["span"] = torch.zeros_like(item["span"])
    return out


class WithNegatives(Dataset):
    """The training queries of ``base`` (indices ``0..n-1``, served as they are), then
    ``round(ratio * n)`` negatives with another video's sentence, then ``round(outside * n)``
    outside negatives (a query's own sentence on its segment outside its tube; module
    docstring). Items are fetched as ``dataset[(index, epoch)]`` like the base's; ``samples``
    are the base's (positives)."""

    def __init__(self, base: Any, ratio: float, seed: int = 0, outside: float = 0.0) -> None:
        self.base = base
        self.samples: list[Sample] = base.samples
        self.count = round(ratio * len(base.samples))
        self.outside_count = round(outside * len(base.samples))
        self.seed = seed
        self.captions = video_captions(self.samples)

    def __len__(self) -> int:
        return len(self.base) + self.count + self.outside_count

    def item(self, index: int, epoch: int | None = None) -> dict[str, Any]:
        """Item ``index`` (a negative past the base's queries) for ``epoch`` (default 0)."""
        return self[(index, 0 if epoch is None else epoch)]

    def pair(self, k: int, epoch: int) -> tuple[int, int]:
        """The ``(anchor, source)`` of negative ``k`` in ``epoch``."""
        return draw_negative(self.samples, self.captions, (self.seed, epoch, k))

    def outside(self, k: int, epoch: int) -> tuple[int, np.ndarray]:
        """The ``(anchor, frames)`` of outside negative ``k`` in ``epoch``, drawn from
        ``default_rng([seed, epoch, k, 1])`` (:func:`draw_outside`)."""
        return draw_outside(self.base, (self.seed, epoch, k, 1), OUTSIDE_MIN_SHARE)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        n = len(self.base)
        if index < n:
            return self.base[key]
        if index < n + self.count:
            anchor, source = self.pair(index - n, epoch)
            query = self.base.query_states(source)
            item = self.base.item(anchor, epoch=epoch)
            return make_negative(item, query["text"], query["text_mask"])
        anchor, frames = self.outside(index - n - self.count, epoch)
        return outside_negative(self.base, anchor, frames, self.base.num_frames)


# ----------------------------------------------------------------------------- outside the tube

OUTSIDE_MIN_SHARE = 0.3  # of the segment: the shortest event-free side an outside negative takes


def outside_side(sample: Sample) -> tuple[int, int]:
    """The longer event-free side of the query's segment, ``[s0, t0)`` or ``[t1, s1)`` in native
    frames (the one before the tube on a tie)."""
    (s0, s1), (t0, t1) = sample.segment, sample.tube
    return (s0, t0) if t0 - s0 >= s1 - t1 else (t1, s1)


def stretch(indices: np.ndarray, count: int) -> np.ndarray:
    """``count`` entries of ``indices`` spread evenly over it, in order (repeats when it is
    shorter): ``indices[floor((k + 0.5) * n / count)]``."""
    from stvg.features.dataset import uniform_indices

    return np.asarray(indices)[uniform_indices(len(indices), count)]


def outside_frames(sample: Sample, stored: np.ndarray, min_share: float) -> np.ndarray | None:
    """Indices into ``stored`` (the entry's static frame ids) of the frames on
    :func:`outside_side`, or None when that side is shorter than ``min_share`` of the segment or
    holds fewer than two stored frames."""
    a, b = outside_side(sample)
    s0, s1 = sample.segment
    if b - a < min_share * (s1 - s0):
        return None
    found = np.flatnonzero((stored >= a) & (stored < b))
    return found if len(found) >= 2 else None


def nearest_clips(frame_ids: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """For each frame id, the index of the first clip of ``spans`` [Td, 2] (half-open) that
    holds it, else of the first one whose center is nearest."""
    f = np.asarray(frame_ids, dtype=np.float64)[:, None]
    start, end = spans[None, :, 0], spans[None, :, 1]
    distance = np.where((f >= start) & (f < end), -1.0, np.abs(2 * f - start - end))
    return distance.argmin(axis=1).astype(np.int64)


def outside_negative(base: Any, anchor: int, frames: np.ndarray, num_frames: int) -> dict[str, Any]:
    """Query ``anchor``'s own sentence on its segment's event-free side (``frames``: its stored
    frames there, :func:`outside_frames`), stretched to the segment's layout: ``num_frames`` of
    those frames and the side's clips (those that do not overlap the tube) spread over the
    ``Td`` slots, each frame aligned to the first slot of its clip (:func:`nearest_clips`);
    targets "nowhere"."""
    item = base.item(anchor, frames=stretch(frames, num_frames))
    sample = base.samples[anchor]
    spans = item["clip_spans"].numpy()
    a, b = outside_side(sample)
    t0, t1 = sample.tube
    inside = (spans[:, 0] >= a) & (spans[:, 1] <= b) & ((spans[:, 1] <= t0) | (spans[:, 0] >= t1))
    kept = np.flatnonzero(inside)
    if len(kept) == 0:  # clips longer than the side: the one nearest to its middle
        kept = nearest_clips(np.array([(a + b) / 2.0]), spans)
    clips = stretch(kept, len(spans))
    out = dict(item)
    out["motion"] = item["motion"][torch.from_numpy(clips)]
    out["clip_spans"] = item["clip_spans"][torch.from_numpy(clips)]
    out["frame_clip_index"] = torch.from_numpy(
        nearest_clips(item["frame_ids"].numpy(), spans[clips])
    )
    return make_negative(out, item["text"], item["text_mask"])


def draw_outside(base: Any, key: Sequence[int], min_share: float) -> tuple[int, np.ndarray]:
    """``(anchor, frames)`` of one outside negative drawn from ``default_rng(key)``: up to 100
    random anchors, then a scan from a random one. :class:`InputError` when no training query
    leaves ``min_share`` of its segment free of its tube."""
    rng = np.random.default_rng(list(key))
    n = len(base.samples)
    tries = [int(v) for v in rng.integers(n, size=_TRIES)]
    start = int(rng.integers(n))
    for anchor in tries + [(start + shift) % n for shift in range(n)]:
        frames = outside_frames(base.samples[anchor], base.stored_frame_ids(anchor), min_share)
        if frames is not None:
            return anchor, frames
    raise InputError(
        f"no outside negative: no training query leaves {min_share:.0%} of its segment "
        "(and two stored frames) outside its tube",
        field="negatives_outside",
    )
