"""A hand-made data set for the report tests, with every score computed by hand.

One plain grey video (10 frames, 64x48, 10 fps) and three samples, segment [0, 10) each:

* ``q1`` (kind ``easy``): tube [2, 8), GT box [10, 10, 30, 30]; its caption is hostile HTML;
* ``q2`` (kind ``hard``): tube [0, 4), GT box [0, 0, 32, 24];
* ``q3`` (kind ``hard``): as q2, but its video file does not exist.

Two runs, boxes on every frame of the segment. The ``tubedetr`` grid is frames 0, 2, 4, 6, 8.

=====  ==================================  =========================================
       run A                               run B
=====  ==================================  =========================================
q1     [4, 10), GT's box: t 1/2, v 2/4,    [2, 8), [20, 10, 40, 30] (IoU 1/3): t 1,
       s 1                                 v 1/3, s 1/3
q2     [6, 10), GT's box: t 0, v 0, s 1    [0, 4), [0, 0, 16, 24] (IoU 1/2): t 1,
                                           v 1/2, s 1/2
q3     [0, 4), GT's box: t 1, v 1, s 1     [2, 4), GT's box: t 1/2, v 1/2, s 1
=====  ==================================  =========================================
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sample_factory import make_sample

from stvg.data.mp4 import write_mp4
from stvg.report import build_report

W0, H0, GREY = 64, 48, 100
HOSTILE = (
    'the <script>window.__xss = 1</script> "red" & <b>bold</b> thing '
    '<img src="x" onerror="window.__xss = 2">'
)
GT_Q1 = [10.0, 10.0, 30.0, 30.0]
GT_Q2 = [0.0, 0.0, 32.0, 24.0]


def write_grey_video(path: Path, frames: int = 10) -> None:
    write_mp4(path, [np.full((H0, W0, 3), GREY, np.uint8)] * frames, fps=10)


def _sample(sid: str, video: str, tube: list[int], box: list[float], caption: str, kind: str):
    return make_sample(
        sid,
        tuple(tube),
        box=box,
        video_id=Path(video).stem,
        video_path=video,
        width=W0,
        height=H0,
        caption=caption,
        extra={"kind": kind},
    ).to_json()


def _run(tubes: dict[str, tuple[list[int], list[float]]]) -> dict:
    predictions = {
        sid: {"tube": tube, "boxes": {str(f): box for f in range(10)}}
        for sid, (tube, box) in tubes.items()
    }
    return {"format": "stvg-predictions/1", "predictions": predictions}


@pytest.fixture(scope="session")
def hand_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report_data")
    write_grey_video(root / "videos" / "v1.mp4")
    samples = [
        _sample("q1", "videos/v1.mp4", [2, 8], GT_Q1, HOSTILE, "easy"),
        _sample("q2", "videos/v1.mp4", [0, 4], GT_Q2, "a plain one", "hard"),
        _sample("q3", "videos/missing.mp4", [0, 4], GT_Q2, "the missing video", "hard"),
    ]
    doc = {"format": "stvg-annotations/1", "dataset": "custom", "split": "test"}
    (root / "annotations.json").write_text(json.dumps({**doc, "samples": samples}))
    run_a = {"q1": ([4, 10], GT_Q1), "q2": ([6, 10], GT_Q2), "q3": ([0, 4], GT_Q2)}
    run_b = {
        "q1": ([2, 8], [20.0, 10.0, 40.0, 30.0]),
        "q2": ([0, 4], [0.0, 0.0, 16.0, 24.0]),
        "q3": ([2, 4], GT_Q2),
    }
    (root / "A.json").write_text(json.dumps(_run(run_a)))
    (root / "B.json").write_text(json.dumps(_run(run_b)))
    return root


@pytest.fixture(scope="session")
def hand_report(hand_data, tmp_path_factory) -> Path:
    """``index.html`` of A and B, grouped by ``extra.kind``, 4 frames per sample."""
    out = tmp_path_factory.mktemp("report") / "out"
    return build_report(
        hand_data / "annotations.json",
        [hand_data / "A.json", hand_data / "B.json"],
        out,
        protocols=["tubedetr", "stcat"],
        group_by="extra.kind",
        num_frames=4,
        progress=False,
    )
