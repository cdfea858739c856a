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

The draw is a function of ``(seed, epoch, k)`` only, so a resumed run sees the negatives an
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
    """The training queries of ``base`` (indices ``0..n-1``, served as they are) followed by
    ``round(ratio * n)`` negatives (module docstring). Items are fetched as
    ``dataset[(index, epoch)]`` like the base's; ``samples`` are the base's (positives)."""

    def __init__(self, base: Any, ratio: float, seed: int = 0) -> None:
        self.base = base
        self.samples: list[Sample] = base.samples
        self.count = round(ratio * len(base.samples))
        self.seed = seed
        self.captions = video_captions(self.samples)

    def __len__(self) -> int:
        return len(self.base) + self.count

    def item(self, index: int, epoch: int | None = None) -> dict[str, Any]:
        """Item ``index`` (a negative past the base's queries) for ``epoch`` (default 0)."""
        return self[(index, 0 if epoch is None else epoch)]

    def pair(self, k: int, epoch: int) -> tuple[int, int]:
        """The ``(anchor, source)`` of negative ``k`` in ``epoch``."""
        return draw_negative(self.samples, self.captions, (self.seed, epoch, k))

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        n = len(self.base)
        if index < n:
            return self.base[key]
        anchor, source = self.pair(index - n, epoch)
        query = self.base.query_states(source)
        return make_negative(self.base.item(anchor, epoch=epoch), query["text"], query["text_mask"])
