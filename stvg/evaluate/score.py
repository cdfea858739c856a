"""Score predictions against annotations with a named protocol; format the result as a table.

:func:`score` returns ``{group: {"m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5", "m_sIoU", "count"}}``
with one group per ``qtype`` present (sorted) plus ``"all"``; metric values are fractions in
[0, 1] (means over the group's samples; ``vIoU@R`` is the fraction with ``vIoU > R``, strict, as
every published evaluator does), ``count`` the number of samples. TubeDETR prints per-qtype
numbers only; ``"all"`` is the mean over every sample (for HC-STVG, where every query is
declarative, the two groups agree).

In sentence-only annotations (``Annotations.has_boxes`` False) only ``m_tIoU`` is computed; the
box metrics are None and :func:`format_table` says why.

Predictions for samples the annotations do not hold are refused. Samples without a prediction are
refused too (the error lists their ids), or, with ``missing="zero"``, scored 0 on every metric
(what the official HC-STVG script does with a missing video).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stvg.data.sample import Annotations
from stvg.errors import InputError
from stvg.evaluate.predictions import Prediction, Predictions, as_predictions, read_predictions
from stvg.evaluate.protocols import DESCRIPTIONS, SampleScore, check_protocol, score_sample

log = logging.getLogger(__name__)

THRESHOLDS: tuple[float, ...] = (0.3, 0.5)
METRICS: tuple[str, ...] = ("m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5", "m_sIoU", "count")
MISSING: tuple[str, ...] = ("error", "zero")
_SHOWN_IDS = 20

Results = dict[str, dict[str, Any]]


def _id_list(ids: list[str]) -> str:
    shown = ", ".join(ids[:_SHOWN_IDS])
    more = f" and {len(ids) - _SHOWN_IDS} more" if len(ids) > _SHOWN_IDS else ""
    return shown + more


def score_per_sample(
    annotations: Annotations,
    predictions: Predictions | Mapping[str, Prediction | Mapping[str, Any]],
    protocol: str = "tubedetr",
    missing: str = "error",
) -> dict[str, SampleScore]:
    """Per-sample :class:`SampleScore` in annotation order; see :func:`score` for the rules."""
    check_protocol(protocol)
    if missing not in MISSING:
        raise InputError(
            f"unknown choice {missing!r}; choose one of {', '.join(MISSING)}", field="--missing"
        )
    predictions = as_predictions(predictions)
    by_id, pred_file = predictions.by_id, predictions.path
    ann_file = annotations.path
    if not annotations.samples:
        raise InputError("the annotations hold no samples to score", file=ann_file)

    known = {s.sample_id for s in annotations.samples}
    unknown = [sid for sid in by_id if sid not in known]
    if unknown:
        raise InputError(
            f"{len(unknown)} predicted sample id(s) are not in the annotations"
            + (f" ({ann_file})" if ann_file else "")
            + f": {_id_list(unknown)}",
            file=pred_file,
            sample=unknown[0],
            field="predictions",
            hint="Prediction keys must be the annotations' sample_id (str(video_id) for TubeDETR "
            "files, the video file name for raw HC-STVG)",
        )
    absent = [s.sample_id for s in annotations.samples if s.sample_id not in by_id]
    if absent and missing == "error":
        raise InputError(
            f"{len(absent)} of {len(annotations.samples)} annotated samples have no prediction: "
            f"{_id_list(absent)}",
            file=pred_file,
            sample=absent[0],
            field="predictions",
            hint="Pass --missing zero to score them as 0",
        )
    if absent:
        log.warning("%d samples have no prediction; scored as 0", len(absent))

    has_boxes = annotations.has_boxes
    zero = SampleScore(0.0, 0.0 if has_boxes else None, 0.0 if has_boxes else None)
    results: dict[str, SampleScore] = {}
    for sample in annotations.samples:
        prediction = by_id.get(sample.sample_id)
        if prediction is None:
            results[sample.sample_id] = zero
            continue
        try:
            results[sample.sample_id] = score_sample(
                sample, prediction, protocol, has_boxes=has_boxes
            )
        except InputError as error:
            raise error.located(file=pred_file) from None
    return results


def _aggregate(scores: list[SampleScore]) -> dict[str, Any]:
    n = len(scores)
    out: dict[str, Any] = {"m_tIoU": sum(s.tiou for s in scores) / n}
    if any(s.viou is None for s in scores):
        out.update({"m_vIoU": None, **{f"vIoU@{t}": None for t in THRESHOLDS}, "m_sIoU": None})
    else:
        out["m_vIoU"] = sum(s.viou for s in scores) / n
        for t in THRESHOLDS:
            out[f"vIoU@{t}"] = sum(1 for s in scores if s.viou > t) / n
        out["m_sIoU"] = sum(s.siou for s in scores) / n
    out["count"] = n
    return {key: out[key] for key in METRICS}


def check_group_by(group_by: str) -> None:
    """Refuse a grouping other than ``qtype`` or ``extra.KEY`` (field ``--group-by``)."""
    if group_by != "qtype" and not group_by.startswith("extra."):
        raise InputError(
            f"unknown grouping {group_by!r}; give qtype or extra.KEY (e.g. extra.kind)",
            field="--group-by",
        )


def score(
    annotations: Annotations,
    predictions: Predictions | Mapping[str, Prediction | Mapping[str, Any]],
    protocol: str = "tubedetr",
    missing: str = "error",
    group_by: str = "qtype",
) -> Results:
    """Score ``predictions`` (keyed by ``sample_id``) against ``annotations`` with ``protocol``.

    ``predictions`` are :class:`Predictions`, or a mapping of sample id to :class:`Prediction` or
    to a JSON-style record ``{"tube": [s, e], "boxes": {frame: [x1, y1, x2, y2]}}``.

    ``protocol`` is ``"tubedetr"`` (default), ``"hcstvg"`` or ``"stcat"``
    (:mod:`stvg.evaluate.protocols`). ``missing="error"`` refuses samples without a prediction
    (the :class:`InputError` lists their ids: all, or the first 20 and a count);
    ``missing="zero"`` scores them 0. Returns ``{group: {metric: value}}``; see the module
    docstring.
    """
    check_group_by(group_by)
    per_sample = score_per_sample(annotations, predictions, protocol, missing)
    groups: dict[str, list[SampleScore]] = {}
    for sample in annotations.samples:
        if group_by == "qtype":
            key = sample.qtype
        else:
            key = str(sample.extra.get(group_by[len("extra.") :], "-"))
        groups.setdefault(key, []).append(per_sample[sample.sample_id])
    results = {qtype: _aggregate(groups[qtype]) for qtype in sorted(groups)}
    results["all"] = _aggregate(list(per_sample.values()))
    return results


def score_files(
    annotations_path: str | Path,
    predictions_path: str | Path,
    protocol: str = "tubedetr",
    *,
    format: str | None = None,
    boxes_dir: str | Path | None = None,
    missing: str = "error",
    group_by: str = "qtype",
) -> tuple[Results, Annotations]:
    """Load annotations (any format, see ``stvg.data.formats``) and predictions, then :func:`score`.

    Returns the results and the annotations (their ``has_boxes`` and source format are useful
    for reporting).
    """
    from stvg.data.formats import load_annotations

    check_protocol(protocol)
    annotations = load_annotations(annotations_path, format, boxes_dir=boxes_dir)
    predictions = read_predictions(predictions_path)
    return score(annotations, predictions, protocol, missing, group_by), annotations


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{100 * value:.2f}"


def format_table(results: Results, protocol: str) -> str:
    """A fixed-width text table of :func:`score`'s results, values in percent (2 decimals).

    The first line names the protocol; a note follows when the box metrics are missing
    (sentence-only annotations).
    """
    header = ["group", *METRICS]
    rows = [[group, *(_cell(results[group][m]) for m in METRICS)] for group in results]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest])

    out = [f"protocol: {protocol} ({DESCRIPTIONS.get(protocol, protocol)}); values in %"]
    out += [line(header), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    if any(results[g]["m_vIoU"] is None for g in results):
        out.append(
            "note: sentence-only annotations (no boxes): only m_tIoU can be computed; "
            "give the box annotations (e.g. --boxes-dir for VidSTG) for vIoU and sIoU."
        )
    return "\n".join(out)
