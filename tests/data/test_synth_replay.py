"""The replay of a synthetic set's scenes (every actor's boxes, for the look-alike probes)."""

from __future__ import annotations

import json

import pytest

from stvg.data.sample import read_normalized
from stvg.data.synth.replay import lookalike_boxes, read_config, replay_video
from stvg.errors import InputError


def test_replay_gives_back_the_annotated_boxes_and_the_lookalikes(tiny_data):
    cfg = read_config(tiny_data)
    assert cfg.size == (64, 48) and cfg.videos == 4
    path = tiny_data / "train.json"
    samples = read_normalized(json.loads(path.read_text()), file=path).samples
    for video in sorted({s.video_id for s in samples}):
        actors = replay_video(cfg, video, samples)  # raises if an annotated box differs
        for sample in (s for s in samples if s.video_id == video):
            me = actors[sample.extra["actor"]]
            assert (me.color, me.shape) == (sample.extra["color"], sample.extra["shape"])
            alike = lookalike_boxes(actors, sample)
            twins = [
                a for a in actors if a is not me and (a.color, a.shape) == (me.color, me.shape)
            ]
            assert bool(alike) == any(
                a.boxes[t] is not None for a in twins for t in range(*sample.tube)
            )
    # a box that the replay does not draw is refused, naming the sample
    sample = samples[0]
    frame = next(iter(sample.boxes))
    sample.boxes[frame] = (0.0, 0.0, 1.0, 1.0)
    with pytest.raises(InputError, match=sample.sample_id):
        replay_video(cfg, sample.video_id, samples)
