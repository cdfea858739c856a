"""The torch Dataset that serves stored features to the model, for training and prediction.

One item is one query. From its video entry it takes ``Ts`` of the stored static frames and all
``Td`` clips, plus the query's text states, and builds the targets in the model's units:

* ``frame_idx`` [Ts] long: which stored frames (indices into the entry's static grid) were taken,
  ``floor((k + 0.5) * S / Ts)`` for ``k < Ts`` (uniform, as the paper samples; frames repeat when
  the grid has fewer than ``Ts``), or the explicit ``frames`` of a prediction pass. With
  ``jitter`` (training augmentation, TSN-style segment sampling) frame ``k`` is instead
  ``floor((k + u_k) * S / Ts)`` with ``u_k`` uniform in ``[0, 1)`` drawn from a generator seeded
  by ``(seed, epoch, index)``: every stored frame gets seen over the epochs, and the draw is a
  function of the step alone, so a resumed run sees exactly what an uninterrupted one did.
  Items are then fetched with ``dataset[(index, epoch)]``;
* ``boxes`` [Ts, 4] normalized cxcywh of the GT box on each taken frame, ``box_mask`` [Ts] bool
  where there is one; ``frame_in_tube`` [Ts] bool; ``clip_in_tube`` [Td] bool (clip overlaps tube);
* ``frame_clip_index`` [Ts] long: the clip holding each taken frame (aligns the two streams);
* ``span`` [2] float: the GT tube as fractions of the segment, ``[(t0 - s0) / L, (t1 - s0) / L]``;
* ``frame_size`` [2] float: the video's ``(width, height)`` in pixels (boxes on the clips'
  square grid, :func:`stvg.train.losses.square_box_shares`).

Features come back as float32 tensors: ``image`` [Ts, C, h, w], ``motion`` [Td, C2, h2, w2],
``text`` [L, D] with ``text_mask`` [L]. :func:`collate` pads text to the batch's longest query
and static maps to its largest grid (videos of different aspect ratios), with ``image_mask``.

The store is opened lazily in each DataLoader worker (file handles are not shared across fork).
With ``in_memory=True`` every entry is read once up front (the baseline of ``stvg bench train``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from stvg.data.sample import Sample


def uniform_indices(available: int, count: int) -> np.ndarray:
    """``floor((k + 0.5) * available / count)`` for ``k < count``: evenly spread, int64."""
    k = np.arange(count, dtype=np.float64)
    return np.minimum(((k + 0.5) * available / count).astype(np.int64), available - 1)


def jittered_indices(available: int, count: int, key: tuple[int, ...]) -> np.ndarray:
    """``floor((k + u_k) * available / count)``, ``u_k ~ U[0, 1)`` from ``default_rng(key)``."""
    u = np.random.default_rng(list(key)).random(count)
    k = np.arange(count, dtype=np.float64)
    return np.minimum(((k + u) * available / count).astype(np.int64), available - 1)


def box_targets(sample: Sample, frame_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GT boxes (normalized cxcywh), their mask and the in-tube mask on ``frame_ids``."""
    boxes = np.zeros((len(frame_ids), 4), dtype=np.float32)
    mask = np.zeros(len(frame_ids), dtype=bool)
    t0, t1 = sample.tube
    in_tube = (frame_ids >= t0) & (frame_ids < t1)
    for k, f in enumerate(frame_ids.tolist()):
        box = sample.boxes.get(int(f))
        if box is None:
            continue
        x1, y1, x2, y2 = box
        boxes[k] = (
            (x1 + x2) / 2 / sample.width,
            (y1 + y2) / 2 / sample.height,
            (x2 - x1) / sample.width,
            (y2 - y1) / sample.height,
        )
        mask[k] = True
    return boxes, mask, in_tube


def frame_clip_index(frame_ids: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """For each frame id, the clip whose half-open span holds it (the nearest clip otherwise)."""
    starts = spans[:, 0]
    index = np.searchsorted(starts, frame_ids, side="right") - 1
    return np.clip(index, 0, len(spans) - 1).astype(np.int64)


class FeatureDataset(Dataset):
    """Queries of one split of a feature store; see the module docstring for the item layout."""

    def __init__(
        self,
        root: str | Path,
        split: str,
        num_frames: int,
        in_memory: bool = False,
        sample_ids: list[str] | None = None,
        jitter: bool = False,
        seed: int = 0,
    ) -> None:
        from stvg.features.store import open_store

        self.root = str(root)
        self.split = split
        self.num_frames = num_frames
        self.jitter, self.seed = jitter, seed
        store = open_store(self.root)
        samples = store.samples(split)
        if sample_ids is not None:
            wanted = set(sample_ids)
            samples = [s for s in samples if s.sample_id in wanted]
        self.samples: list[Sample] = samples
        self.entry_ids = [store.entry_of(s.sample_id, split) for s in samples]
        self.manifest = store.manifest
        self._store: Any = None
        self._videos: dict[str, dict[str, np.ndarray]] | None = None
        self._queries: dict[str, dict[str, Any]] = {}
        self._frame_ids: dict[str, np.ndarray] = {}
        self._last_entry: tuple[str, dict[str, np.ndarray]] | None = None  # for pass_items
        if in_memory:
            self._store = store
            self._videos = {e: store.video(e, split) for e in sorted(set(self.entry_ids))}
            self._queries = {s.sample_id: store.query(s.sample_id, split) for s in samples}

    def __len__(self) -> int:
        return len(self.samples)

    def _open(self) -> Any:
        if self._store is None:
            from stvg.features.store import open_store

            self._store = open_store(self.root)
        return self._store

    def _query(self, index: int) -> dict[str, Any]:
        sid = self.samples[index].sample_id
        if sid not in self._queries:
            query = self._open().query(sid, self.split)
            if self._videos is None:
                return query
            self._queries[sid] = query
        return self._queries[sid]

    def query_states(self, index: int) -> dict[str, Any]:
        """Query ``index``'s stored text: ``text`` [L, D] and ``text_mask`` [L] arrays."""
        return self._query(index)

    def stored_frame_ids(self, index: int) -> np.ndarray:
        """All static frame ids stored for this query's entry (native ids, [S])."""
        entry = self.entry_ids[index]
        if self._videos is not None:
            return np.asarray(self._videos[entry]["frame_ids"])
        if entry not in self._frame_ids:
            self._frame_ids[entry] = self._open().frame_ids(entry, self.split)
        return self._frame_ids[entry]

    def _video(self, index: int, idx: np.ndarray) -> dict[str, np.ndarray]:
        """The entry's arrays with only the static frames ``idx`` (lazy read from the store)."""
        entry = self.entry_ids[index]
        if self._videos is not None:
            video = self._videos[entry]
            return {**video, "image": video["image"][idx], "frame_ids": video["frame_ids"][idx]}
        return self._open().video(entry, self.split, frames=idx)

    def item(
        self, index: int, frames: np.ndarray | None = None, epoch: int | None = None
    ) -> dict[str, Any]:
        """The item of query ``index``; ``frames`` picks stored frame indices (prediction passes);
        ``epoch`` (with ``jitter``) keys the training draw of frames."""
        stored = self.stored_frame_ids(index)
        if frames is not None:
            idx = np.asarray(frames)
        elif self.jitter and epoch is not None:
            idx = jittered_indices(len(stored), self.num_frames, (self.seed, epoch, index))
        else:
            idx = uniform_indices(len(stored), self.num_frames)
        return self._assemble(index, idx, self._video(index, idx), self._query(index))

    def pass_items(self, index: int, passes: list[np.ndarray]) -> list[dict[str, Any]]:
        """The items of query ``index`` for each of ``passes`` (stored-frame indices), from one
        read of its entry (kept until a query of another entry asks: queries of one video are
        neighbours in a split) and one of its text."""
        entry = self.entry_ids[index]
        if self._last_entry is None or self._last_entry[0] != entry:
            whole = np.arange(len(self.stored_frame_ids(index)))
            self._last_entry = (entry, self._video(index, whole))
        video, query = self._last_entry[1], self._query(index)
        return [
            self._assemble(index, idx, {**video, "image": video["image"][idx]}, query)
            for idx in passes
        ]

    def _assemble(
        self, index: int, idx: np.ndarray, video: dict[str, np.ndarray], query: dict[str, Any]
    ) -> dict[str, Any]:
        """The item of query ``index`` on stored frames ``idx`` (``video["image"]`` holds them)."""
        sample = self.samples[index]
        frame_ids = self.stored_frame_ids(index)[idx]
        boxes, box_mask, in_tube = box_targets(sample, frame_ids)
        spans = np.asarray(video["clip_spans"])
        t0, t1 = sample.tube
        s0, s1 = sample.segment
        length = s1 - s0
        return {
            "index": index,
            "image": torch.from_numpy(np.ascontiguousarray(video["image"], dtype=np.float32)),
            "motion": torch.from_numpy(np.asarray(video["motion"], dtype=np.float32)),
            "text": torch.from_numpy(np.asarray(query["text"], dtype=np.float32)),
            "text_mask": torch.from_numpy(np.asarray(query["text_mask"], dtype=bool)),
            "frame_idx": torch.from_numpy(idx.astype(np.int64)),
            "frame_ids": torch.from_numpy(frame_ids.astype(np.int64)),
            "clip_spans": torch.from_numpy(spans.astype(np.int64)),
            "boxes": torch.from_numpy(boxes),
            "box_mask": torch.from_numpy(box_mask),
            "frame_in_tube": torch.from_numpy(in_tube),
            "clip_in_tube": torch.from_numpy((spans[:, 1] > t0) & (spans[:, 0] < t1)),
            "frame_clip_index": torch.from_numpy(frame_clip_index(frame_ids, spans)),
            "span": torch.tensor([(t0 - s0) / length, (t1 - s0) / length], dtype=torch.float32),
            "frame_size": torch.tensor([sample.width, sample.height], dtype=torch.float32),
        }

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        if isinstance(key, tuple):
            index, epoch = key
            return self.item(index, epoch=epoch)
        return self.item(key)


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch items of one ``Ts`` and one clip layout (``Td``, motion grid).

    Text is right-padded to the longest query with ``text_mask`` False. Static maps of videos of
    different aspect ratios have different grids: each ``image`` [Ts, C, h_b, w_b] is zero-padded
    at the bottom and right to the batch's largest ``h x w`` and ``image_mask`` [B, h, w] is True
    on its own ``h_b x w_b`` cells (the model ignores the rest). Raises ``ValueError`` naming the
    key when items disagree on anything else.
    """
    out: dict[str, Any] = {}
    length = max(int(it["text"].shape[0]) for it in items)
    dim = int(items[0]["text"].shape[1])
    text = torch.zeros(len(items), length, dim)
    mask = torch.zeros(len(items), length, dtype=torch.bool)
    for b, it in enumerate(items):
        n = it["text"].shape[0]
        text[b, :n] = it["text"]
        mask[b, :n] = it["text_mask"]
    out["text"], out["text_mask"] = text, mask
    if "image" in items[0]:
        out["image"], out["image_mask"] = pad_images([it["image"] for it in items])
    for key in items[0]:
        if key in ("text", "text_mask", "image"):
            continue
        if key == "index":
            out[key] = torch.tensor([it[key] for it in items])
            continue
        shapes = {tuple(it[key].shape) for it in items}
        if len(shapes) > 1:
            raise ValueError(f"cannot batch '{key}' of shapes {sorted(shapes)}")
        out[key] = torch.stack([it[key] for it in items])
    return out


def pad_images(images: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad static maps [Ts, C, h_b, w_b] to the largest ``h x w``, top-left aligned.

    Returns the batch [B, Ts, C, h, w] and its ``image_mask`` [B, h, w] bool (True = real cell).
    """
    ts, channels = images[0].shape[:2]
    if any(tuple(x.shape[:2]) != (ts, channels) for x in images):
        shapes = sorted({tuple(x.shape[:2]) for x in images})
        raise ValueError(f"cannot batch 'image' of (frames, channels) {shapes}")
    h = max(int(x.shape[2]) for x in images)
    w = max(int(x.shape[3]) for x in images)
    if all(tuple(x.shape[2:]) == (h, w) for x in images):
        return torch.stack(images), torch.ones(len(images), h, w, dtype=torch.bool)
    image = images[0].new_zeros(len(images), ts, channels, h, w)
    mask = torch.zeros(len(images), h, w, dtype=torch.bool)
    for b, x in enumerate(images):
        hb, wb = x.shape[2:]
        image[b, :, :, :hb, :wb] = x
        mask[b, :hb, :wb] = True
    return image, mask
