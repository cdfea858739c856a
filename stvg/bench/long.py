"""``stvg bench long``: ``stvg ground`` on a long video, against a short one.

Synthetic videos of the same scene settings, each holding one event
(:mod:`stvg.data.synth.long`): a long one (600 s by default) and a short one (20 s) where the
event is the only one of its action, and the long one again with distractors (other actors do
the action at other times). Each is grounded by ``stvg ground`` with the given run in a fresh
process (nothing cached, nothing shared), whose peak resident memory is read from the kernel's
accounting of that child (``os.wait4``'s ``ru_maxrss``). Reported: the ratio of the long and
short peaks (goal <= 1.5: windows keep memory bounded), the wall time of each, and each video's
tIoU against its ground truth (goal >= 0.3 on the long one with a fully trained demo run) and
the share of the event's frames inside the best-scoring window (0: a wrong window won).

With ``seeds`` the long video (no distractors) is also drawn with each of those generator seeds
(other scenes, other colors and shapes; the event at the same time) and grounded in this process
(:meth:`~stvg.ground.run.Grounder.score_windows`; no memory measured): per seed the tIoU and the
rank, among all windows, of the *event window* (the one holding most of the event) by the score
``stvg ground`` ranks by (``score_by``: the presence of the described event over the window for a
run with a presence head, else the span's own score), by the span's own score and, with a
presence head, by the presence inside the window's span alone (:func:`span_presence_scores`,
the rule ``stvg ground`` used before: kept to compare), 1 = chosen; and per
action of the target, the mean score of the windows where it does that action for at least a
quarter of the window (:func:`scores_by_action`: which of its actions the scores follow).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

LONG_SECONDS = 600.0
SHORT_SECONDS = 20.0
QUICK_LONG_SECONDS = 120.0


def span_share(event: tuple[int, int], window: tuple[int, int]) -> float:
    """The fraction of the half-open ``event``'s frames inside ``window``."""
    inside = max(0, min(event[1], window[1]) - max(event[0], window[0]))
    return inside / max(1, event[1] - event[0])


def event_window_rank(
    event: tuple[int, int], candidates: list[tuple[tuple[int, int], str]], scores: dict[str, float]
) -> tuple[tuple[int, int], int]:
    """The window holding most of the half-open ``event`` (the earliest on a tie) and its rank
    by ``scores`` (by query id) among ``candidates`` ``(window, query id)``: 1 + the number of
    windows scoring strictly higher."""
    window, qid = max(candidates, key=lambda c: (span_share(event, c[0]), -c[0][0]))
    return window, 1 + sum(scores[q] > scores[qid] for _, q in candidates)


def scores_by_action(
    candidates: list[tuple[tuple[int, int], str]],
    scores: dict[str, float],
    actions: list[list[Any]],
    share: float = 0.25,
) -> dict[str, dict[str, float]]:
    """Per action of the target's script ``actions`` (``[action, start, end)`` native frames):
    the number of windows in which the target does it for at least ``share`` of the window's
    frames, and those windows' mean score (``scores`` by query id); actions no window holds
    that long are left out. Tells which action the window scores follow."""
    out: dict[str, dict[str, float]] = {}
    for action in sorted({str(a[0]) for a in actions}):
        kept = []
        for (w0, w1), qid in candidates:
            frames = sum(
                max(0, min(end, w1) - max(start, w0))
                for name, start, end in actions
                if name == action
            )
            if frames >= share * (w1 - w0):
                kept.append(scores[qid])
        if kept:
            out[action] = {"windows": len(kept), "mean_score": round(sum(kept) / len(kept), 4)}
    return out


def span_presence_scores(
    candidates: list[tuple[tuple[int, int], str]],
    frame_presence: dict[str, tuple[Any, Any]],
    tubes: dict[str, tuple[int, int]],
) -> dict[str, float]:
    """Per query id: the mean of :func:`~stvg.ground.predict.presence_track` over the stored
    frames of its window inside its span ``tubes[query id]``, or their maximum over the window
    when none falls inside."""
    import numpy as np

    from stvg.ground.predict import presence_track

    track = presence_track(candidates, frame_presence)
    out = {}
    for _, qid in candidates:
        ids = np.asarray(frame_presence[qid][0]).tolist()
        seen = [track[f] for f in ids]
        t0, t1 = tubes[qid]
        inside = [track[f] for f in ids if t0 <= f < t1]
        out[qid] = sum(inside) / len(inside) if inside else max(seen)
    return out


def judge_seeds(
    run: Path,
    seeds: list[int],
    *,
    seconds: float = LONG_SECONDS,
    features: str | Path | None = None,
    root: Path,
) -> dict[str, dict[str, Any]]:
    """Per seed (as a string): the long video of that seed grounded in this process, its tIoU
    and the event window's ranks (module docstring). Files go under ``root``."""
    from stvg.data.synth.long import synthesize_long
    from stvg.evaluate.boxes import span_iou
    from stvg.ground.inputs import Pair
    from stvg.ground.predict import best_window
    from stvg.ground.run import Grounder

    grounder = Grounder.load(run, root / "ground", features=features, progress=False)
    out = {}
    for seed in seeds:
        name = f"long_seed{seed}"
        sample = synthesize_long(root / "data", name=name, seconds=seconds, seed=seed)
        pair = Pair(name, root / "data" / sample.video_path, sample.caption)
        scored = grounder.score_windows(pair.video, [pair])
        candidates = scored.candidates(pair.sentence)
        window, qid = best_window(candidates, scored.scores)
        event_window, rank = event_window_rank(sample.tube, candidates, scored.scores)
        span_rank = event_window_rank(sample.tube, candidates, scored.span_scores)[1]
        tube = tuple(scored.windows[qid]["tube"])
        if scored.frame_presence:
            tubes = {q: tuple(scored.windows[q]["tube"]) for _, q in candidates}
            by_span = span_presence_scores(candidates, scored.frame_presence, tubes)
            ranks = {
                "event_window_rank_by_span_presence": event_window_rank(
                    sample.tube, candidates, by_span
                )[1]
            }
        else:
            ranks = {}
        out[str(seed)] = {
            "caption": sample.caption,
            "gt": list(sample.tube),
            "pred": list(tube),
            "tIoU": round(span_iou(sample.tube, tube), 4),
            "chosen_window": list(window),
            "event_window": list(event_window),
            "event_window_rank": rank,
            "event_window_rank_by_span_score": span_rank,
            **ranks,
            "windows": len(candidates),
            "score_by": scored.score_by,
            "mean_score_by_target_action": scores_by_action(
                candidates, scored.scores, sample.extra["target_actions"]
            ),
        }
    return out


def ground_in_child(run: Path, video: Path, caption: str, out: Path, extra: list[str]) -> dict:
    """``stvg ground`` in a fresh process: its JSON result, wall seconds and peak RSS (MiB,
    from ``os.wait4``: that child alone)."""
    command = [sys.executable, "-m", "stvg", "-q", "ground", "--run", str(run), str(video),
               caption, "--out", str(out), "--json", "--device", "cpu", *extra]  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "stdout.json", "w") as stdout, open(out / "stderr.log", "w") as stderr:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
    child.returncode = code = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    if code != 0:
        log = (out / "stderr.log").read_text()[-2000:]
        raise RuntimeError(f"stvg ground exited with {code}: {log}")
    result = json.loads((out / "stdout.json").read_text())[0]
    return {"result": result, "seconds": seconds, "peak_rss_mib": usage.ru_maxrss / 1024}


def bench_long(
    run: str | Path,
    *,
    features: str | Path | None = None,
    quick: bool = False,
    workdir: str | Path | None = None,
    draw: bool = True,
    seeds: list[int] | None = None,
) -> dict[str, Any]:
    """Make the two videos, ground each in a fresh process, compare; with ``seeds``, judge
    the long video of each seed too (module docstring)."""
    from stvg.data.synth.long import synthesize_long
    from stvg.evaluate.boxes import span_iou

    run = Path(run)
    extra = ([] if draw else ["--no-draw"]) + (
        [] if features is None else ["--features", str(features)]
    )
    long_seconds = QUICK_LONG_SECONDS if quick else LONG_SECONDS
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        root = Path(tmp)
        made = {
            "short": synthesize_long(root / "data", name="short", seconds=SHORT_SECONDS),
            "long": synthesize_long(root / "data", name="long", seconds=long_seconds),
            "long_distractors": synthesize_long(
                root / "data", name="long_distractors", seconds=long_seconds, distractors=True
            ),
        }
        runs = {
            name: ground_in_child(
                run, root / "data" / sample.video_path, sample.caption, root / f"out-{name}", extra
            )
            for name, sample in made.items()
        }
        by_seed = (
            judge_seeds(run, seeds, seconds=long_seconds, features=features, root=root / "seeds")
            if seeds
            else None
        )
    found = {name: runs[name]["result"] for name in made}
    return {
        "rss_ratio_long_vs_short": round(
            runs["long"]["peak_rss_mib"] / runs["short"]["peak_rss_mib"], 3
        ),
        "goal_rss_ratio": "<= 1.5",
        "long_tIoU": round(span_iou(made["long"].tube, tuple(found["long"]["tube"])), 4),
        "goal_long_tIoU": ">= 0.3 (fully trained demo run)",
        "tIoU": {k: round(span_iou(made[k].tube, tuple(f["tube"])), 4) for k, f in found.items()},
        "event_share_in_best_window": {
            k: round(span_share(made[k].tube, tuple(f["window"])), 3) for k, f in found.items()
        },
        "gt": {k: list(sample.tube) for k, sample in made.items()},
        "pred": {k: f["tube"] for k, f in found.items()},
        "windows": {k: f["windows"] for k, f in found.items()},
        "caption": made["long"].caption,
        "video_seconds": {"long": long_seconds, "short": SHORT_SECONDS},
        "peak_rss_mib": {k: round(v["peak_rss_mib"], 1) for k, v in runs.items()},
        "wall_seconds": {k: round(v["seconds"], 1) for k, v in runs.items()},
        "draw": draw,
        **({} if by_seed is None else {"seeds": by_seed, "seeds_summary": seeds_summary(by_seed)}),
    }


def seeds_summary(by_seed: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The mean tIoU over the seeds, how many reach 0.3, and the event window's ranks."""
    values = list(by_seed.values())
    return {
        "mean_tIoU": round(sum(v["tIoU"] for v in values) / len(values), 4),
        "seeds_tIoU_ge_0.3": sum(v["tIoU"] >= 0.3 for v in values),
        "event_window_ranks": [v["event_window_rank"] for v in values],
        "event_window_ranks_by_span_score": [v["event_window_rank_by_span_score"] for v in values],
        **(
            {
                "event_window_ranks_by_span_presence": [
                    v["event_window_rank_by_span_presence"] for v in values
                ]
            }
            if all("event_window_rank_by_span_presence" in v for v in values)
            else {}
        ),
    }
