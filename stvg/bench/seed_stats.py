"""Scores over seeds: mean +- std per arm, group and metric, and the verdict on an ordering.

Pure functions of the score JSON (:func:`stvg.evaluate.score.score`: ``{group: {metric:
fraction}}``), used by ``stvg bench zoo`` (:mod:`stvg.bench.zoo`). Summaries are in percent.

* The **spread** of an arm is the sample standard deviation of its seeds' values (``n - 1`` in
  the denominator); with one seed it is undefined (``None``).
* **The rule** "A beats B beyond the seed spread": ``mean(A) - mean(B) > std(A) + std(B)``.
  "Below" is the mirror; anything else is "within" the spread, and a pair without a spread (one
  seed) is "undetermined". Why this rule: it needs no distribution, reads off the table, and with
  3 seeds per arm it is about as strict as a one-sided Welch t-test at the 5-10 % level (a
  difference of ``s_A + s_B`` is a Welch t of ``sqrt(3) (s_A + s_B) / sqrt(s_A^2 + s_B^2)``,
  between 1.7 and 2.4, on 2 to 4 degrees of freedom).
* **An ordering holds** when every one of its pairs is "higher"; it is **contradicted** when a
  pair is "lower"; otherwise it is not shown beyond the spread.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

METRICS = ("m_vIoU", "m_tIoU", "m_sIoU")
# The paper's collaboration ordering (CSDVL table 3): full > each single direction > none.
PAPER_ORDERING = (("full", "s2d"), ("full", "d2s"), ("s2d", "none"), ("d2s", "none"))
RULE = "mean(A) - mean(B) > std(A) + std(B) (sample std over seeds)"

Stat = dict[str, Any]  # {"mean", "std", "n", "values"}, in %
Summary = dict[str, dict[str, dict[str, Stat]]]  # arm -> group -> metric -> Stat


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """``(mean, sample std)`` of ``values`` (std ``None`` for a single value)."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_std of no values")
    mean = sum(values) / n
    if n == 1:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def summarize(
    runs: Iterable[tuple[str, Mapping[str, Mapping[str, Any]]]],
    metrics: Sequence[str] = METRICS,
) -> Summary:
    """``{arm: {group: {metric: {"mean", "std", "n", "values"}}}}`` in percent, from
    ``(arm, scores)`` pairs (one per seed; ``scores`` as :func:`stvg.evaluate.score.score`
    returns them, in fractions). Arms and groups keep their first-seen order, ``all`` last; a
    metric that is ``None`` in a run (nothing to score) is left out of its values."""
    values: dict[str, dict[str, dict[str, list[float]]]] = {}
    for arm, scores in runs:
        groups = values.setdefault(arm, {})
        for group, row in scores.items():
            per_metric = groups.setdefault(group, {m: [] for m in metrics})
            for metric in metrics:
                if row.get(metric) is not None:
                    per_metric[metric].append(100.0 * float(row[metric]))
    summary: Summary = {}
    for arm, groups in values.items():
        ordered = [g for g in groups if g != "all"] + (["all"] if "all" in groups else [])
        summary[arm] = {}
        for group in ordered:
            summary[arm][group] = {}
            for metric, vals in groups[group].items():
                mean, std = mean_std(vals) if vals else (None, None)
                summary[arm][group][metric] = {
                    "mean": mean, "std": std, "n": len(vals), "values": vals,
                }  # fmt: skip
    return summary


def compare(a: Stat, b: Stat) -> dict[str, Any]:
    """Arm A against arm B on one metric by :data:`RULE`: ``{"difference": mean_A - mean_B,
    "spread": std_A + std_B, "outcome": "higher" | "lower" | "within" | "undetermined"}``."""
    if a["mean"] is None or b["mean"] is None:
        return {"difference": None, "spread": None, "outcome": "undetermined"}
    difference = a["mean"] - b["mean"]
    if a["std"] is None or b["std"] is None:
        return {"difference": difference, "spread": None, "outcome": "undetermined"}
    spread = a["std"] + b["std"]
    outcome = "higher" if difference > spread else "lower" if -difference > spread else "within"
    return {"difference": difference, "spread": spread, "outcome": outcome}


def verdict(
    summary: Summary,
    arms: Mapping[str, str],
    ordering: Sequence[tuple[str, str]] = PAPER_ORDERING,
    group: str = "all",
    metric: str = "m_vIoU",
) -> dict[str, Any]:
    """Does ``ordering`` (pairs ``(higher, lower)`` of names in ``arms``: name -> arm of
    ``summary``) hold beyond the seed spread on ``metric`` of ``group``? Returns the pairs (with
    :func:`compare`'s fields), ``"holds"`` (every pair "higher"), ``"contradicted"`` (some pair
    "lower") and a one-sentence ``"text"``."""
    pairs = []
    for high, low in ordering:
        result = compare(summary[arms[high]][group][metric], summary[arms[low]][group][metric])
        pairs.append({"higher": high, "lower": low, **result})
    holds = all(p["outcome"] == "higher" for p in pairs)
    contradicted = [p for p in pairs if p["outcome"] == "lower"]
    order = ", ".join(f"{p['higher']} > {p['lower']}" for p in pairs)

    def detail(p: dict[str, Any]) -> str:
        diff = "n/a" if p["difference"] is None else f"{p['difference']:+.1f}"
        spread = "n/a" if p["spread"] is None else f"{p['spread']:.1f}"
        return f"{p['higher']} - {p['lower']} = {diff} (spread {spread}: {p['outcome']})"

    where = f"{metric} of {group}"
    if holds:
        text = f"The ordering {order} holds beyond the seed spread on {where}."
    elif contradicted:
        text = (
            f"The ordering {order} is contradicted beyond the seed spread on {where}: "
            + "; ".join(detail(p) for p in pairs)
            + "."
        )
    else:
        text = (
            f"The ordering {order} is not shown beyond the seed spread on {where}: "
            + "; ".join(detail(p) for p in pairs)
            + "."
        )
    return {
        "group": group, "metric": metric, "rule": RULE, "pairs": pairs, "holds": holds,
        "contradicted": bool(contradicted), "text": text,
    }  # fmt: skip


def cell(stat: Stat | None) -> str:
    """``"38.4 ± 1.2"`` (one seed: ``"38.4"``; nothing scored: ``"-"``)."""
    if stat is None or stat["mean"] is None:
        return "-"
    if stat["std"] is None:
        return f"{stat['mean']:.1f}"
    return f"{stat['mean']:.1f} ± {stat['std']:.1f}"


def long_table(summary: Summary, metrics: Sequence[str] = METRICS) -> str:
    """Markdown: one row per arm and group, one ``mean ± std`` column per metric, and the
    number of seeds."""
    lines = [
        "| model | kind | " + " | ".join(metrics) + " | seeds |",
        "|---|---|" + "---|" * len(metrics) + "---|",
    ]
    for arm, groups in summary.items():
        for group, row in groups.items():
            seeds = max(row[m]["n"] for m in metrics)
            cells = " | ".join(cell(row.get(m)) for m in metrics)
            lines.append(f"| {arm} | {group} | {cells} | {seeds} |")
    return "\n".join(lines)


def wide_table(summary: Summary, metric: str = "m_vIoU") -> str:
    """Markdown: one row per arm, one ``mean ± std`` column of ``metric`` per group."""
    groups: list[str] = []
    for arm_groups in summary.values():
        groups += [g for g in arm_groups if g not in groups]
    groups = [g for g in groups if g != "all"] + (["all"] if "all" in groups else [])
    lines = [
        f"| model ({metric}, %) | " + " | ".join(groups) + " |",
        "|---|" + "---|" * len(groups),
    ]
    for arm, arm_groups in summary.items():
        row = " | ".join(cell(arm_groups.get(g, {}).get(metric)) for g in groups)
        lines.append(f"| {arm} | {row} |")
    return "\n".join(lines)
