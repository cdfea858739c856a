"""``stvg bench probes``: where the synthetic ``static_ambiguous`` queries are won or lost.

In a ``static_ambiguous`` query a look-alike of the target (same color and shape) is on screen
during the whole tube, doing another action: only motion tells which one the sentence means.
The probes look at the GT frames of those queries where the look-alike is drawn (its boxes come
from :mod:`stvg.data.synth.replay`) and compare the target with the look-alike:

* ``input``: is the information in the cached features? A logistic probe, fitted on the train
  split, scores each of the two actors from its features pooled over its box (each cell weighted
  by the share of the box in it), with a weight vector per action of the caption
  (``[x (x) onehot(action), x]``, no bias; the pair is scored by the difference). Run on the
  ``motion`` features (the clip that holds the frame; grid over the padded square, as stage one
  pads) and, as a control, on the ``image`` features of the frame. ``same_motion_cell``: the
  share of frames where the two box centres fall in one motion cell (no cell-level feature can
  then tell them apart).
* ``model`` (with a trained CSDVL run; one pass of its ``num_frames`` frames per query, as
  training sees them):

  - ``static_attention``: per decoder layer, the share of the static cross-attention (over the
    visual cells) on the target's cells and on the look-alike's (cells the box overlaps), and
    where its peak (argmax cell) is: ``target``, ``lookalike`` or ``elsewhere``;
  - ``d2s_attention``: the same on the dynamic grid for each dynamic-to-static cross-attention;
  - ``boxes``: the predicted box's IoU with each actor and where it lands: ``target`` (IoU with
    the target > 0.3 and above the look-alike's), ``lookalike`` (the reverse), ``neither``; and
    ``between``, the share of ``neither`` frames whose centre lies within the two centres'
    bounding rectangle;
  - ``dynamic_features``: the input probe on the dynamic stream's features after each layer (no
    action one-hot: they have read the sentence), fitted on the train split's queries.

All numbers are shares of frames (or accuracies) over the evaluated split's probe frames.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from stvg.progress import bar_disabled

log = logging.getLogger(__name__)

KIND = "static_ambiguous"
HIT_IOU = 0.3


@dataclass
class ProbeFrame:
    """One GT frame of a ``static_ambiguous`` query with its look-alike drawn."""

    index: int  # query index in the dataset
    stored: int  # index into the entry's stored frames
    target: tuple[float, float, float, float]  # xyxy pixels
    lookalike: tuple[float, float, float, float]  # the look-alike nearest to the target
    action: str


def square_shares(
    box: tuple[float, ...], width: int, height: int, grid: tuple[int, int]
) -> np.ndarray:
    """The share of a pixel ``xyxy`` box in each cell of a ``grid`` laid over the frame padded
    at the right and bottom to a square of side ``max(width, height)`` (stage one's clip
    layout): [g_h, g_w], summing to 1."""
    from stvg.train.losses import box_cell_shares

    side = float(max(width, height))
    x1, y1, x2, y2 = (v / side for v in box)
    cxcywh = torch.tensor([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
    return box_cell_shares(cxcywh, *grid).numpy()


def frame_shares(
    box: tuple[float, ...], width: int, height: int, grid: tuple[int, int]
) -> np.ndarray:
    """The share of a pixel ``xyxy`` box in each cell of the static ``grid`` as the model's
    losses lay it (:func:`stvg.train.losses.box_cell_shares` of the normalized box)."""
    from stvg.train.losses import box_cell_shares

    x1, y1, x2, y2 = box
    cxcywh = torch.tensor(
        [(x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height]
    )
    return box_cell_shares(cxcywh, *grid).numpy()


def probe_frames(dataset: Any, data_dir: str | Path) -> list[ProbeFrame]:
    """Every stored GT frame of the dataset's ``static_ambiguous`` queries on which a look-alike
    is drawn (the look-alike whose centre is nearest the target's when there are several)."""
    from stvg.data.synth.replay import lookalike_boxes, read_config, replay_video

    cfg = read_config(data_dir)
    samples = list(dataset.samples)
    scenes: dict[str, Any] = {}
    out = []
    for index, sample in enumerate(samples):
        if sample.extra.get("kind") != KIND:
            continue
        if sample.video_id not in scenes:
            scenes[sample.video_id] = replay_video(cfg, sample.video_id, samples)
        alike = lookalike_boxes(scenes[sample.video_id], sample)
        for k, frame in enumerate(dataset.stored_frame_ids(index).tolist()):
            box = sample.boxes.get(int(frame))
            if box is None or int(frame) not in alike:
                continue
            centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
            nearest = min(
                alike[int(frame)],
                key=lambda b: float(np.hypot(*(centre - [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]))),
            )
            out.append(ProbeFrame(index, k, tuple(box), tuple(nearest), sample.extra["action"]))
    return out


# ----------------------------------------------------------------------------- linear probe
def fit_pair_probe(
    target: np.ndarray, other: np.ndarray, l2: float = 1e-2, steps: int = 25
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit ``w`` so that ``sigmoid(w . (x_target - x_other))`` says "the first is the target".

    ``target``, ``other`` [n, C]. Features are scaled by the train pairs' standard deviation;
    both orders of each pair are used, no bias; L2-regularized logistic regression
    (``mean log-loss + l2 * |w|^2``) by Newton steps. Returns ``(w, mean, std)``.
    """
    diff = target - other
    std = np.concatenate([target, other]).std(0) + 1e-6
    x = np.concatenate([diff, -diff]) / std
    y = np.concatenate([np.ones(len(diff)), np.zeros(len(diff))])
    n, c = x.shape
    w = np.zeros(c)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        grad = x.T @ (p - y) / n + 2 * l2 * w
        hess = (x.T * (p * (1 - p))) @ x / n + 2 * l2 * np.eye(c)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w, np.zeros_like(std), std


def pair_accuracy(w: np.ndarray, std: np.ndarray, target: np.ndarray, other: np.ndarray) -> float:
    """Share of pairs where the probe scores the target above the other actor."""
    if len(target) == 0:
        return float("nan")
    return float(((((target - other) / std) @ w) > 0).mean())


def with_action(x: np.ndarray, actions: list[str]) -> np.ndarray:
    """``[x (x) onehot(action), x]`` per row: a weight vector per action plus a shared one."""
    from stvg.data.synth import ACTIONS

    names = list(ACTIONS)
    onehot = np.zeros((len(actions), len(names)))
    onehot[np.arange(len(actions)), [names.index(a) for a in actions]] = 1.0
    return np.concatenate([(x[:, :, None] * onehot[:, None, :]).reshape(len(x), -1), x], 1)


# ----------------------------------------------------------------------------- input probe
def input_features(dataset: Any, frames: list[ProbeFrame]) -> dict[str, np.ndarray]:
    """Box-pooled ``motion`` and ``image`` features of each probe frame's two actors, and
    whether their centres share a motion cell: ``{motion_t, motion_l, image_t, image_l,
    same_cell}``."""
    from stvg.features.dataset import frame_clip_index

    out: dict[str, list] = defaultdict(list)
    by_query: dict[int, list[ProbeFrame]] = defaultdict(list)
    for f in frames:
        by_query[f.index].append(f)
    for index, group in by_query.items():
        sample = dataset.samples[index]
        whole = np.arange(len(dataset.stored_frame_ids(index)))
        item = dataset.item(index, frames=whole)
        motion, image = item["motion"].numpy(), item["image"].numpy()  # [Td,C,g,g] [S,C,h,w]
        clips = frame_clip_index(item["frame_ids"].numpy(), item["clip_spans"].numpy())
        grid, sgrid = motion.shape[2:], image.shape[2:]
        for f in group:
            m = motion[clips[f.stored]]
            for tag, box in (("t", f.target), ("l", f.lookalike)):
                q = square_shares(box, sample.width, sample.height, grid)
                out[f"motion_{tag}"].append((m * q[None]).sum((1, 2)))
                s = frame_shares(box, sample.width, sample.height, sgrid)
                out[f"image_{tag}"].append((image[f.stored] * s[None]).sum((1, 2)))
            side = max(sample.width, sample.height)
            cells = [
                tuple(int((box[i] + box[i + 2]) / 2 / side * grid[1 - i]) for i in (0, 1))
                for box in (f.target, f.lookalike)
            ]
            out["same_cell"].append(cells[0] == cells[1])
    return {k: np.asarray(v) for k, v in out.items()}


def input_probe(
    train: tuple[Any, list[ProbeFrame]], evals: dict[str, tuple[Any, list[ProbeFrame]]]
) -> dict[str, Any]:
    """The ``input`` probe: fitted on ``train`` (dataset, frames), scored on each of ``evals``."""
    fit = input_features(*train)
    actions = [f.action for f in train[1]]
    result: dict[str, Any] = {"train_frames": len(train[1])}
    probes = {}
    for name in ("motion", "image"):
        t, o = with_action(fit[f"{name}_t"], actions), with_action(fit[f"{name}_l"], actions)
        w, _, std = fit_pair_probe(t, o)
        probes[name] = (w, std)
        result[f"{name}_train_accuracy"] = pair_accuracy(w, std, t, o)
    for split, (dataset, frames) in evals.items():
        feats = input_features(dataset, frames)
        acts = [f.action for f in frames]
        row: dict[str, Any] = {"frames": len(frames)}
        for name, (w, std) in probes.items():
            t = with_action(feats[f"{name}_t"], acts)
            o = with_action(feats[f"{name}_l"], acts)
            row[f"{name}_accuracy"] = pair_accuracy(w, std, t, o)
        row["same_motion_cell"] = float(feats["same_cell"].mean()) if len(frames) else None
        result[split] = row
    return result


# ----------------------------------------------------------------------------- model probe
class _Recorder:
    """Forward hooks on a CSDVL: each dynamic layer's visual output and each d2s
    cross-attention's head-averaged weights over the dynamic cells."""

    def __init__(self, model: torch.nn.Module) -> None:
        from stvg.models.static_stream import scaled_attention_weights

        self.dynamic: list[torch.Tensor] = []
        self.d2s: list[torch.Tensor] = []
        self.handles = []
        for layer in model.dynamic.layers:
            self.handles.append(
                layer.register_forward_hook(lambda m, i, o: self.dynamic.append(o[0].detach()))
            )
        for block in model.collab:
            if getattr(block, "d2s", None) is None:
                continue

            def hook(module: Any, args: tuple, output: Any) -> None:
                q, k = args[0], args[1]
                self.d2s.append(scaled_attention_weights(module, q, k)[:, 0].detach())

            self.handles.append(block.d2s.cross_attn.register_forward_hook(hook))

    def clear(self) -> None:
        self.dynamic.clear()
        self.d2s.clear()

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _xyxy_iou(a: np.ndarray, b: tuple[float, ...]) -> float:
    from stvg.evaluate.boxes import box_iou_xyxy

    return box_iou_xyxy([float(v) for v in a], b)


def _place(weights: np.ndarray, q_t: np.ndarray, q_l: np.ndarray) -> tuple[float, float, str]:
    """Mass of ``weights`` (any grid) on the cells each box overlaps, and where its peak is."""
    on_t, on_l = q_t > 0, q_l > 0
    total = max(float(weights.sum()), 1e-12)
    peak = np.unravel_index(int(weights.argmax()), weights.shape)
    where = "target" if on_t[peak] else "lookalike" if on_l[peak] else "elsewhere"
    return float(weights[on_t].sum() / total), float(weights[on_l].sum() / total), where


@torch.no_grad()
def model_records(
    model: torch.nn.Module, dataset: Any, frames: list[ProbeFrame], progress: bool = True
) -> dict[str, Any]:
    """Run ``model`` on one uniform pass of every query that has probe frames; for the probe
    frames the pass holds, collect attention placement, box hits and dynamic features."""
    from stvg.features.dataset import collate, frame_clip_index, uniform_indices

    model.eval()
    rec = _Recorder(model)
    by_query: dict[int, dict[int, ProbeFrame]] = defaultdict(dict)
    for f in frames:
        by_query[f.index][f.stored] = f
    rows: dict[str, list] = defaultdict(list)
    try:
        for index in tqdm(sorted(by_query), desc="probe", disable=bar_disabled(progress)):
            sample = dataset.samples[index]
            stored = len(dataset.stored_frame_ids(index))
            idx = uniform_indices(stored, dataset.num_frames)
            item = dataset.item(index, frames=idx)
            rec.clear()
            out = model(collate([item]))
            attn = out["s2d_attention"][0].numpy()  # [N,Ts,h,w]
            boxes = out["pred_boxes"][0].numpy()  # [Ts,4] cxcywh
            clips = frame_clip_index(item["frame_ids"].numpy(), item["clip_spans"].numpy())
            grid = tuple(item["motion"].shape[2:])
            for k, s in enumerate(idx.tolist()):
                f = by_query[index].get(int(s))
                if f is None:
                    continue
                w, h = sample.width, sample.height
                q_t = frame_shares(f.target, w, h, attn.shape[2:])
                q_l = frame_shares(f.lookalike, w, h, attn.shape[2:])
                for layer in range(attn.shape[0]):
                    rows[f"static_{layer}"].append(_place(attn[layer, k], q_t, q_l))
                m_t = square_shares(f.target, w, h, grid)
                m_l = square_shares(f.lookalike, w, h, grid)
                for layer, weights in enumerate(rec.d2s):
                    rows[f"d2s_{layer}"].append(_place(weights[k].view(grid).numpy(), m_t, m_l))
                for layer, fv in enumerate(rec.dynamic):
                    cell = fv[0, clips[k]].view(*grid, -1).numpy()  # [g,g,d]
                    rows[f"dyn_{layer}_t"].append((cell * m_t[..., None]).sum((0, 1)))
                    rows[f"dyn_{layer}_l"].append((cell * m_l[..., None]).sum((0, 1)))
                cx, cy, bw, bh = boxes[k]
                xyxy = np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]) * [w, h, w, h]
                iou_t, iou_l = _xyxy_iou(xyxy, f.target), _xyxy_iou(xyxy, f.lookalike)
                where = (
                    "target"
                    if iou_t > HIT_IOU and iou_t >= iou_l
                    else "lookalike"
                    if iou_l > HIT_IOU
                    else "neither"
                )
                centres = np.array(
                    [[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2] for b in (f.target, f.lookalike)]
                )
                c = np.array([cx * w, cy * h])
                between = bool(((c >= centres.min(0) - 2) & (c <= centres.max(0) + 2)).all())
                rows["boxes"].append((iou_t, iou_l, where, between))
    finally:
        rec.close()
    return rows


def _placement(rows: list[tuple[float, float, str]]) -> dict[str, float]:
    if not rows:
        return {}
    t, la, where = zip(*rows, strict=True)
    return {
        "mass_target": float(np.mean(t)),
        "mass_lookalike": float(np.mean(la)),
        **{
            f"peak_{k}": float(np.mean([w == k for w in where]))
            for k in ("target", "lookalike", "elsewhere")
        },
    }


def summarize_model(rows: dict[str, list], fitted: dict[str, tuple] | None) -> dict[str, Any]:
    """Shares and means of :func:`model_records`' rows; ``fitted``: the dynamic-feature probes
    fitted on the train split (``{layer: (w, std)}``) to score here."""
    out: dict[str, Any] = {"frames": len(rows.get("boxes", []))}
    out["static_attention"] = {
        k.split("_")[1]: _placement(v) for k, v in rows.items() if k.startswith("static_")
    }
    out["d2s_attention"] = {
        k.split("_")[1]: _placement(v) for k, v in rows.items() if k.startswith("d2s_")
    }
    if rows.get("boxes"):
        iou_t, iou_l, where, between = zip(*rows["boxes"], strict=True)
        neither = [b for w, b in zip(where, between, strict=True) if w == "neither"]
        out["boxes"] = {
            "iou_target": float(np.mean(iou_t)),
            "iou_lookalike": float(np.mean(iou_l)),
            **{
                k: float(np.mean([w == k for w in where]))
                for k in ("target", "lookalike", "neither")
            },
            "between": float(np.mean(neither)) if neither else 0.0,
        }
    if fitted:
        out["dynamic_features"] = {
            layer: pair_accuracy(
                w, std, np.asarray(rows[f"dyn_{layer}_t"]), np.asarray(rows[f"dyn_{layer}_l"])
            )
            for layer, (w, std) in fitted.items()
        }
    return out


def run_probes(
    data_dir: str | Path,
    features: str | Path,
    run: str | Path | None = None,
    splits: tuple[str, ...] = ("val", "test"),
    progress: bool = True,
) -> dict[str, Any]:
    """All probes: ``input`` on the store, ``model`` when ``run`` is given; fitted on the train
    split, reported for each of ``splits``."""
    from stvg.features.dataset import FeatureDataset

    num_frames = 8
    model = None
    if run is not None:
        from stvg.evaluate.predict import load_run

        model, info = load_run(run)
        num_frames = int(info["config"]["num_frames"])
    sets = {}
    for split in ("train", *splits):
        dataset = FeatureDataset(features, split, num_frames, in_memory=True)
        sets[split] = (dataset, probe_frames(dataset, data_dir))
    result: dict[str, Any] = {"input": input_probe(sets["train"], {s: sets[s] for s in splits})}
    if model is None:
        return result
    train_rows = model_records(model, *sets["train"], progress=progress)
    fitted = {}
    layers = sorted({k.split("_")[1] for k in train_rows if k.startswith("dyn_")})
    for layer in layers:
        t, o = np.asarray(train_rows[f"dyn_{layer}_t"]), np.asarray(train_rows[f"dyn_{layer}_l"])
        w, _, std = fit_pair_probe(t, o)
        fitted[layer] = (w, std)
    result["model"] = {"train": summarize_model(train_rows, fitted)}
    for split in splits:
        rows = model_records(model, *sets[split], progress=progress)
        result["model"][split] = summarize_model(rows, fitted)
    return result


def format_probes(result: dict[str, Any]) -> str:
    """A plain-text table of :func:`run_probes`' result, one line per measured quantity and
    a column per split."""
    splits = [k for k in result["input"] if isinstance(result["input"][k], dict)]
    lines = [f"{'probe':<44}" + "".join(f"{s:>10}" for s in splits)]

    def row(name: str, values: list[Any]) -> None:
        cells = "".join(f"{'-' if v is None else f'{100 * v:.1f}':>10}" for v in values)
        lines.append(f"{name:<44}{cells}")

    inp = result["input"]
    row("input: motion probe picks the target (%)", [inp[s]["motion_accuracy"] for s in splits])
    row("input: image probe picks the target (%)", [inp[s]["image_accuracy"] for s in splits])
    row("input: both centres in one motion cell (%)", [inp[s]["same_motion_cell"] for s in splits])
    model = result.get("model")
    if model:
        first = model[splits[0]]
        for kind in ("static_attention", "d2s_attention"):
            for layer in first.get(kind, {}):
                for key in ("mass_target", "mass_lookalike", "peak_target", "peak_lookalike"):
                    values = [model[s][kind][layer].get(key) for s in splits]
                    row(f"{kind} {layer}: {key} (%)", values)
        for key in ("iou_target", "iou_lookalike", "target", "lookalike", "neither", "between"):
            row(f"boxes: {key} (%)", [model[s].get("boxes", {}).get(key) for s in splits])
        for layer in first.get("dynamic_features", {}):
            values = [model[s]["dynamic_features"][layer] for s in splits]
            row(f"dynamic features {layer}: probe picks target (%)", values)
    return "\n".join(lines)
