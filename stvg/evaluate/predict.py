"""Stage three, first half: model outputs -> tubes in native frame ids and original pixels.

For each query, the static grid stored for its entry has ``S`` frames and the model sees ``F``
at a time (``frames_per_pass``; training's ``num_frames`` by default), so prediction runs
``P = ceil(S / F)`` passes (STVGFormer's multi-pass inference, "until all frames are sampled at
least once"). Each pass is laid out as training draws its frames, ``F`` frames evenly spread over
the whole segment: pass ``p`` takes stored frames ``floor((k + (p + 0.5) / P) * S / F)`` for
``k < F`` (:func:`pass_indices`), i.e. the passes interleave the ``P * F`` evenly spread points
``floor((j + 0.5) * S / (P * F))``. Since their spacing ``S / (P * F)`` is at most one frame,
every stored frame is in at least one pass; when ``P * F > S``, ``P * F - S`` slots see a frame
again, and a frame seen more than once gets the mean of its boxes (normalized cxcywh). With
``S = P * F`` every frame is seen exactly once; with ``P = 1`` the pass is training's
``uniform_indices``. The span comes from the model's entry of :mod:`stvg.models.zoo`: for CSDVL
the passes' 2D score maps are averaged (after the sigmoid) and the best valid proposal
``(i, j)`` (clips ``i`` to ``j`` inclusive) gives ``[clip_spans[i].start, clip_spans[j].end)``;
for CG-STVG and CoSTA their ``stored_frame_span`` joins the passes' start/end logits into a span
of stored frames, read in native frames by :func:`stvg.models.zoo.native_span`.

Boxes are converted from normalized cxcywh to ``[x1, y1, x2, y2]`` pixels of the original frame
and linearly interpolated from the stored frames to every native frame of the segment (held
constant before the first and after the last stored frame), as STCAT does before scoring, so
every protocol finds a box on every GT frame.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stvg.data.sample import Sample
from stvg.progress import bar_disabled


def load_run(
    run: str | Path, device: str | torch.device = "cpu", weights: str = "best"
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The EMA weights of a training run as a ready model (eval mode) and the run's config.

    The model is the run's ``model_name`` (:data:`stvg.models.zoo.MODELS`; csdvl for runs
    that predate the setting), built from the checkpoint's ``model_config``.

    ``weights="best"`` reads ``RUN/best.pt`` (best validation m_vIoU), ``"last"`` the EMA of
    ``RUN/checkpoint.pt``. Raises :class:`~stvg.errors.InputError` when the run has neither.
    """
    from stvg.errors import InputError
    from stvg.models.zoo import model_entry

    run = Path(run)
    path = run / ("best.pt" if weights == "best" else "checkpoint.pt")
    if weights == "best" and not path.exists():
        path = run / "checkpoint.pt"
    if not path.exists():
        raise InputError(
            "no best.pt or checkpoint.pt: not a (finished) training run",
            file=run,
            hint="Train first with `stvg train --features DIR --out RUN`",
        )
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = model_entry(state["config"].get("model_name", "csdvl")).build(state["model_config"])
    model.load_state_dict(state["ema"])
    model.to(device).eval()
    return model, {
        "config": state["config"],
        "model_config": state["model_config"],
        "step": state.get("step"),
        "features": state.get("features"),
    }


def run_frames_per_pass(config: Mapping[str, Any], model_config: Mapping[str, Any]) -> int:
    """Frames per prediction pass of a run (its ``config.json`` and ``model_config``): the
    ``frames_per_pass`` setting, else training's ``num_frames`` times the model's
    ``test_frames_scale`` (STVGFormer's 2: 48 frames in training, 96 in testing; 1 for a model
    without the field)."""
    scale = int(model_config.get("test_frames_scale", 1))
    return int(config.get("frames_per_pass") or config["num_frames"] * scale)


def pass_indices(stored: int, per_pass: int) -> list[np.ndarray]:
    """Stored-frame indices [F] of each of the ``ceil(S / F)`` passes (see the module docstring).

    Pass ``p`` of ``P`` takes ``floor((k + (p + 0.5) / P) * S / F)`` for ``k < F``: increasing,
    spread over the whole segment; every stored frame is in at least one pass.
    """
    from stvg.features.dataset import uniform_indices

    passes = max(1, math.ceil(stored / per_pass))
    points = uniform_indices(stored, passes * per_pass)  # floor((j + 0.5) * S / (P * F))
    return [points[p::passes] for p in range(passes)]


def interpolate_boxes(
    frame_ids: np.ndarray, boxes: np.ndarray, start: int, end: int
) -> dict[int, list[float]]:
    """Boxes on every native frame of ``[start, end)`` from boxes on sorted ``frame_ids``."""
    order = np.argsort(frame_ids, kind="stable")
    ids, vals = frame_ids[order].astype(np.float64), boxes[order].astype(np.float64)
    ids, first = np.unique(ids, return_index=True)
    vals = vals[first]
    frames = np.arange(start, end, dtype=np.float64)
    cols = [np.interp(frames, ids, vals[:, c]) for c in range(4)]
    return {int(f): [float(c[k]) for c in cols] for k, f in enumerate(frames)}


def cxcywh_to_pixels(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Normalized cxcywh [N, 4] -> xyxy pixels [N, 4], clipped to the frame."""
    cx, cy, w, h = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    xyxy = np.clip(xyxy, 0.0, 1.0)
    return xyxy * np.array([width, height, width, height], dtype=np.float64)


def tube_from_outputs(
    sample: Sample,
    stored_ids: np.ndarray,
    clip_spans: np.ndarray,
    pass_frames: list[np.ndarray],
    pass_boxes: list[np.ndarray],
    score_prob: torch.Tensor | None = None,
    map_mask: torch.Tensor | None = None,
    *,
    span: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """One query's prediction (``stvg-predictions/1`` entry) from its passes' outputs.

    ``pass_frames[p]`` are stored-frame indices and ``pass_boxes[p]`` the [Ts, 4] normalized
    cxcywh boxes of pass ``p`` (a frame in several passes, or twice in one, gets the mean of its
    boxes; every stored frame must be in one). The span is ``span`` (native frames, half-open,
    as a model's span of :mod:`stvg.models.zoo` gives it) or, without it, CSDVL's from
    ``score_prob``, the averaged [Td, Td] probability map, over the proposals ``map_mask``.
    """
    from stvg.models.zoo import csdvl_span

    if span is None:
        record = {"prob": score_prob, "map_mask": map_mask}
        span = csdvl_span([record], pass_frames, stored_ids, clip_spans, sample.segment)
    boxes = np.zeros((len(stored_ids), 4))
    seen = np.zeros(len(stored_ids))
    for idx, b in zip(pass_frames, pass_boxes, strict=True):
        np.add.at(boxes, idx, b)  # a frame seen more than once: the mean of its boxes
        np.add.at(seen, idx, 1)
    if not seen.all():
        raise ValueError(f"stored frames {np.flatnonzero(seen == 0).tolist()} are in no pass")
    boxes /= seen[:, None]
    pixels = cxcywh_to_pixels(boxes, sample.width, sample.height)
    per_frame = interpolate_boxes(stored_ids, pixels, *sample.segment)
    return {"tube": list(span), "boxes": {str(f): b for f, b in per_frame.items()}}


def pass_records(outputs: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """A batch's outputs -> one record per item, as :mod:`stvg.models.zoo` spans read them:
    ``start_logits`` / ``end_logits`` [Ts] when the model has them, else ``prob`` [Td, Td]
    (the sigmoid of ``score_map``, taken on the whole batch) and ``map_mask`` [Td, Td], plus
    ``presence`` [Ts] (the sigmoid of ``presence_logits``) when the model has a presence head."""
    if "start_logits" in outputs:
        starts = outputs["start_logits"].float().cpu()
        ends = outputs["end_logits"].float().cpu()
        return [{"start_logits": s, "end_logits": e} for s, e in zip(starts, ends, strict=True)]
    map_mask = outputs["map_mask"].bool().cpu()
    prob = torch.sigmoid(outputs["score_map"].float()).cpu()
    records = [{"prob": p, "map_mask": map_mask} for p in prob]
    if "presence_logits" in outputs:
        presence = torch.sigmoid(outputs["presence_logits"].float()).cpu()
        for record, p in zip(records, presence, strict=True):
            record["presence"] = p
    return records


@torch.no_grad()
def predict_dataset(
    model: torch.nn.Module | Sequence[torch.nn.Module],
    dataset: Any,
    device: str | torch.device = "cpu",
    batch_size: int = 8,
    progress: bool = True,
    frames_per_pass: int | None = None,
    model_name: str | None = None,
    scores: dict[str, float] | None = None,
    span_scores: dict[str, float] | None = None,
    frame_presence: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Predict every query of a :class:`~stvg.features.dataset.FeatureDataset`.

    ``scores``, when given, receives each query's score by sample id (``stvg ground`` keeps
    the best window): the presence of the described event in the chosen span when the model
    has a presence head (:func:`stvg.models.zoo.presence_score`), else the model's own measure
    of the chosen span (:mod:`stvg.models.zoo`). ``span_scores``, when given, receives the
    latter in any case. ``frame_presence``, when given and the model has a presence head,
    receives per sample id the stored frame ids its passes saw and each one's presence
    probability (mean over the passes that saw it).

    ``model_name`` (a key of :data:`stvg.models.zoo.MODELS`; default: that of ``model``'s
    class) decides how the passes' outputs give the span (:mod:`stvg.models.zoo`). ``model``
    may be a list of models of one kind (an ensemble): each pass's outputs are then averaged
    over them (:mod:`stvg.evaluate.ensemble`) before the passes are joined.

    Each pass shows the model ``frames_per_pass`` frames (default: the dataset's
    ``num_frames``) laid out by :func:`pass_indices`. The passes of all queries form one stream
    cut into batches of ``batch_size`` (a batch may hold passes of several queries, of videos
    with different grids); a query's tube is built once its last pass has run.
    Returns ``{sample_id: {"tube": [s, e], "boxes": {frame: xyxy}}}``.
    """
    from tqdm import tqdm

    from stvg.errors import InputError
    from stvg.evaluate.ensemble import average_boxes, average_records
    from stvg.features.dataset import collate
    from stvg.models.zoo import model_entry, name_of, presence_by_frame, presence_score

    models = [model] if isinstance(model, torch.nn.Module) else list(model)
    if model_name is None:
        names = sorted({name_of(m) for m in models})
        if len(names) > 1:
            raise InputError(f"an ensemble of different models: {', '.join(names)}", field="model")
        model_name = names[0]
    entry = model_entry(model_name)
    for m in models:
        m.eval()
    out: dict[str, dict[str, Any]] = {}
    passes: dict[int, list[np.ndarray]] = {}
    boxes: dict[int, list[np.ndarray]] = {}
    records: dict[int, list[dict[str, torch.Tensor]]] = {}
    bar = tqdm(total=len(dataset), desc="predict", unit="query", disable=bar_disabled(progress))

    def run(batch: list[dict[str, Any]]) -> None:
        inputs = {k: v.to(device) if torch.is_tensor(v) else v for k, v in collate(batch).items()}
        outputs = [m(inputs) for m in models]
        pred_boxes = average_boxes([o["pred_boxes"] for o in outputs]).float().cpu().numpy()
        pass_outputs = average_records([pass_records(o) for o in outputs])
        for item, b, r in zip(batch, pred_boxes, pass_outputs, strict=True):
            index = int(item["index"])
            boxes[index].append(b)
            records[index].append(r)
            if len(boxes[index]) < len(passes[index]):
                continue
            sample, stored = dataset.samples[index], dataset.stored_frame_ids(index)
            clip_spans = item["clip_spans"].numpy()
            query_records = records.pop(index)
            if frame_presence is not None and "presence" in query_records[0]:
                frame_presence[sample.sample_id] = presence_by_frame(
                    query_records, passes[index], stored
                )
            span = entry.span(
                query_records, passes[index], stored, clip_spans, tuple(sample.segment),
                with_score=scores is not None or span_scores is not None,
            )  # fmt: skip
            if len(span) == 3:
                own = span[2]
                span = span[:2]
                if span_scores is not None:
                    span_scores[sample.sample_id] = own
                if scores is not None:
                    presence = presence_score(query_records, passes[index], stored, span)
                    scores[sample.sample_id] = own if presence is None else presence
            out[sample.sample_id] = tube_from_outputs(
                sample, stored, clip_spans, passes.pop(index), boxes.pop(index), span=span
            )
            bar.update(1)

    per_pass = dataset.num_frames if frames_per_pass is None else int(frames_per_pass)
    if per_pass < 1:
        raise InputError(f"frames_per_pass must be >= 1, got {per_pass}", field="frames_per_pass")
    pending: list[dict[str, Any]] = []
    for index in range(len(dataset)):
        passes[index] = pass_indices(len(dataset.stored_frame_ids(index)), per_pass)
        boxes[index], records[index] = [], []
        pending += dataset.pass_items(index, passes[index])
        while len(pending) >= batch_size:
            run(pending[:batch_size])
            pending = pending[batch_size:]
    if pending:
        run(pending)
    bar.close()
    return out


def predict_split(
    run: str | Path | Sequence[str | Path],
    features: str | Path,
    split: str,
    device: str = "cpu",
    batch_size: int = 8,
    progress: bool = True,
    frames_per_pass: int | None = None,
) -> tuple[dict[str, dict[str, Any]], Any]:
    """Predict every complete query of ``split`` in the store with the run's EMA weights
    (with several runs, ``[A, B, ...]``, their ensemble: :mod:`stvg.evaluate.ensemble`).

    ``frames_per_pass`` (frames the model sees per pass) defaults to the run's own
    (:func:`run_frames_per_pass`).

    Returns ``(predictions, annotations)``: the ``stvg-predictions/1`` entries and the split's
    own annotations (the Sample records stored with the features), ready for ``score``.
    Raises :class:`~stvg.errors.InputError` when the store's backbones or sampling differ from
    those a run was trained on, or when the runs of an ensemble cannot be averaged
    (:func:`stvg.evaluate.ensemble.check_runs`).
    """
    from stvg.data.sample import Annotations
    from stvg.errors import InputError
    from stvg.evaluate.ensemble import check_runs
    from stvg.features.dataset import FeatureDataset
    from stvg.features.manifest import check_same_features
    from stvg.features.store import open_store

    runs = [run] if isinstance(run, (str, Path)) else list(run)
    loaded = [load_run(r, device) for r in runs]
    store = open_store(features)
    for r, (_, info) in zip(runs, loaded, strict=True):
        check_same_features(
            info["features"],
            store.manifest,
            run=r,
            store=features,
            hint="Predict on a store extracted with the run's settings (RUN/config.json, "
            "'features'), or train a run on this store",
        )
    if split not in store.splits():
        raise InputError(
            f"the store has no split '{split}' (it has: {', '.join(store.splits()) or 'none'})",
            file=features,
            field="--split",
        )
    frames = [
        run_frames_per_pass(info["config"], info["model_config"])
        if frames_per_pass is None
        else int(frames_per_pass)
        for _, info in loaded
    ]
    check_runs(runs, [info for _, info in loaded], frames)
    config = loaded[0][1]["config"]
    dataset = FeatureDataset(features, split, int(config["num_frames"]))
    predictions = predict_dataset(
        [model for model, _ in loaded],
        dataset,
        device=device,
        batch_size=batch_size,
        progress=progress,
        frames_per_pass=frames[0],
        model_name=config.get("model_name", "csdvl"),
    )
    annotations = Annotations(
        samples=list(dataset.samples), dataset=store.manifest.dataset, split=split
    )
    return predictions, annotations


def prediction_provenance(run: str | Path | Sequence[str | Path], split: str) -> dict[str, Any]:
    """The ``provenance`` recorded in a predictions file written from ``run`` (or the ensemble
    of several runs: :func:`stvg.evaluate.ensemble.ensemble_provenance`) on ``split``."""
    from stvg.evaluate.ensemble import ensemble_provenance
    from stvg.evaluate.predictions import make_provenance

    runs = [run] if isinstance(run, (str, Path)) else list(run)
    return make_provenance(
        **ensemble_provenance(runs),
        split=split,
        frames="every native frame of the segment",
        boxes="linear between the stored frames' boxes, held at the first and last",
    )
