"""Ensembles of training runs: ``stvg predict --run A --run B ...`` (and ``stvg score``).

STVGFormer's challenge entry was "the 5-model-ensemble STVGFormer"; the report does not say how
the models were combined. Ours averages, pass by pass, what one run's prediction already
averages over its passes, so that an ensemble is read like a single run with more passes:

* every run predicts the same passes (the same stored frames, :func:`stvg.evaluate.predict.
  pass_indices` of one frame count);
* boxes: the mean over the runs of each frame's normalized ``(cx, cy, w, h)``
  (:func:`average_boxes`);
* temporal outputs (:func:`average_records`): for a 2D-map model (csdvl, stvgformer) the mean of
  the runs' proposal probabilities (the sigmoid of each score map), over the same valid
  proposals; for a start/end model (cgstvg, costa) the mean of the runs' start (and end)
  distributions (the softmax over the pass's frames), kept as its logarithm so that the span
  functions' own softmax gives the mean back. Probabilities, not logits, are averaged, as the
  passes of one run are.

The passes then join into one tube per query exactly as for one run (:mod:`stvg.models.zoo`).

The runs must agree on what the averaging needs (:func:`check_runs`): the model
(``model_name``), the frames per pass, and for 2D-map models the proposals of the map
(``model.pooling_counts``); each must also have been trained on the features of the store it
predicts from (checked run by run, as for one run). A disagreement is an
:class:`~stvg.errors.InputError` naming the run and the field. Sizes may differ (an ensemble of a
small and a large model of one kind is fine).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stvg.errors import InputError

Record = Mapping[str, Tensor]
COMBINED = (
    "per pass: mean of the normalized cxcywh boxes, of the 2D-map proposal probabilities "
    "(sigmoid) or of the start/end distributions (softmax)"
)


def check_runs(
    runs: Sequence[str | Path], infos: Sequence[Mapping[str, Any]], frames: Sequence[int]
) -> None:
    """Refuse runs that cannot be averaged: each run's ``info`` (:func:`stvg.evaluate.predict.
    load_run`) and the frames per pass it will predict with are compared with the first run's.

    Raises :class:`InputError` naming the first run that differs (``file``) and the field:
    ``model_name``, ``frames_per_pass`` or ``model.pooling_counts``.
    """
    first = _fields(infos[0], frames[0])
    for run, info, count in zip(runs[1:], infos[1:], frames[1:], strict=True):
        for key, value in _fields(info, count).items():
            if value != first[key]:
                raise InputError(
                    f"the runs of an ensemble must agree on {key}: {runs[0]} has "
                    f"{first[key]!r}, this run {value!r}",
                    file=run,
                    field=key,
                    hint="Ensemble runs of one model, predicted with one frame count",
                )


def _fields(info: Mapping[str, Any], frames: int) -> dict[str, Any]:
    name = info["config"].get("model_name", "csdvl")
    out: dict[str, Any] = {"model_name": name, "frames_per_pass": int(frames)}
    if "pooling_counts" in info["model_config"]:  # the 2D map's valid proposals
        out["model.pooling_counts"] = info["model_config"]["pooling_counts"]
    return out


def average_boxes(boxes: Sequence[Tensor]) -> Tensor:
    """The runs' ``pred_boxes`` [B, Ts, 4] (normalized cxcywh) -> their mean (float); one run's
    boxes are returned as they are."""
    if len(boxes) == 1:
        return boxes[0]
    return torch.stack([b.float() for b in boxes]).mean(0)


def average_records(per_run: Sequence[Sequence[Record]]) -> list[dict[str, Tensor]]:
    """The runs' pass records (``per_run[r][i]``: run ``r``'s record of batch item ``i``, as
    :func:`stvg.evaluate.predict.pass_records` makes them) -> one record per item, averaged
    over the runs as the module docstring says. One run's records are returned as they are.

    Raises :class:`ValueError` when the runs' records are of different kinds or their 2D maps
    have different valid proposals (:func:`check_runs` refuses such runs up front).
    """
    if len(per_run) == 1:
        return [dict(r) for r in per_run[0]]
    out = []
    for records in zip(*per_run, strict=True):
        keys = set(records[0])
        if any(set(r) != keys for r in records):
            raise ValueError("the runs' outputs are of different kinds (2D map vs start/end)")
        if "prob" in keys:
            mask = records[0]["map_mask"]
            if any(not torch.equal(r["map_mask"], mask) for r in records):
                raise ValueError("the runs' 2D maps have different valid proposals")
            prob = torch.stack([r["prob"] for r in records]).mean(0)
            out.append({"prob": prob, "map_mask": mask})
            if "presence" in keys:
                out[-1]["presence"] = torch.stack([r["presence"] for r in records]).mean(0)
            continue
        item = {}
        for key in ("start_logits", "end_logits"):
            mean = torch.stack([r[key].float().softmax(-1) for r in records]).mean(0)
            item[key] = mean.log()
        out.append(item)
    return out


def ensemble_provenance(runs: Sequence[str | Path]) -> dict[str, Any]:
    """The provenance fields of predictions from ``runs``: ``run`` (the run folders' names
    joined by ``+``) and, for more than one run, ``ensemble`` ``{runs, combined}``."""
    names = [Path(r).name for r in runs]
    if len(names) == 1:
        return {"run": names[0]}
    return {"run": "+".join(names), "ensemble": {"runs": names, "combined": COMBINED}}
