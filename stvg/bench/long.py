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
) -> dict[str, Any]:
    """Make the two videos, ground each in a fresh process, compare (module docstring)."""
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
    }
