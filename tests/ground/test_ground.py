"""`stvg ground` end to end on the shared tiny store: one tiny run trained once for the module."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_settings import TINY_TRAIN
from typer.testing import CliRunner

from stvg.cli import app
from stvg.errors import InputError

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_run(tiny_train_features: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CSDVL run of one step on the tiny train split (its weights do not matter here)."""
    from stvg.train import run as train
    from stvg.train.config import resolve

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("ground-run") / "run"
    config = resolve("synthetic", [*TINY_TRAIN, "validate=false", "max_steps=1", "num_workers=0"])
    train(tiny_train_features, out, config, progress=False)
    torch.set_num_threads(threads)
    return out


def test_the_run_records_its_extraction_settings(tiny_run, tiny_train_features):
    recorded = json.loads((tiny_run / "config.json").read_text())["features"]
    manifest = json.loads((tiny_train_features / "manifest.json").read_text())
    assert recorded["extract"] == manifest["extract"]
    assert manifest["extract"]["td"] == 4 and manifest["extract"]["image_backbone"] == "pixels"
    assert recorded["train_segment_seconds"] == 2.0  # the tiny videos: 20 frames at 10 fps


def test_cli_end_to_end(tiny_run, tiny_data, tmp_path):
    from stvg.data.video import probe
    from stvg.evaluate.predictions import read_predictions

    video = tiny_data / "videos" / "v0001.mp4"
    out = tmp_path / "grounded"
    args = ["ground", "--run", str(tiny_run), str(video), "the red square jumps", "--out", str(out)]
    result = runner.invoke(app, [*args, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("v0001.mp4"))
    match = re.search(r"(\d+\.\d\d)-(\d+\.\d\d) s, frames \[(\d+), (\d+)\) of 20", line)
    assert match, line
    s0, s1, f0, f1 = float(match[1]), float(match[2]), int(match[3]), int(match[4])
    assert 0 <= f0 < f1 <= 20 and (s0, s1) == (f0 / 10, f1 / 10)  # 10 fps
    predictions = read_predictions(out / "predictions.json")
    record = predictions.by_id["v0001_q0"]
    assert record.tube == (f0, f1)
    assert record.extra["sentence"] == "the red square jumps" and record.extra["window"] == [0, 20]
    assert sorted(record.boxes) == list(range(20))  # a short video is one window: every frame
    assert (out / "v0001_q0.png").stat().st_size > 0
    clip = probe(out / "v0001_q0.mp4")  # the span and 5 s around it: the whole 2 s video
    assert (clip.frame_count, clip.width, clip.height) == (20, 64, 48)


def test_a_second_sentence_does_not_decode_the_video(tiny_run, tiny_data, tmp_path, monkeypatch):
    from stvg.features.store import open_store
    from stvg.ground import run as ground_module
    from stvg.ground.cache import SPLIT
    from stvg.ground.inputs import gather_pairs

    calls = []
    reader = ground_module.read_windows

    def counting(path, plans):
        calls.append(len(plans))
        return reader(path, plans)

    monkeypatch.setattr(ground_module, "read_windows", counting)
    video = tiny_data / "videos" / "v0002.mp4"
    first = ground_module.ground(
        tiny_run, gather_pairs(video, ["the blue cross spins"]), tmp_path, draw=False
    )
    assert calls == [1]  # one window, decoded once
    again = ground_module.ground(
        tiny_run, gather_pairs(video, ["the green square jumps", "the blue cross spins"]),
        tmp_path, draw=False,
    )  # fmt: skip
    assert calls == [1]  # features and the known sentence from the cache: nothing decoded
    assert again[1].tube == first[0].tube and again[1].score == first[0].score
    (cache,) = (tmp_path / "cache").iterdir()
    assert len(open_store(cache).samples(SPLIT)) == 2  # one window x two sentences


def test_long_video_windows_hold_what_extract_stores(tiny_run, tmp_path):
    """A 5 s video with a run trained on 2 s: 4 windows of 20 frames every 10; each window's
    cached features equal those `stvg extract` stores for that segment; the tube lies in the
    best window, in the video's own frame ids."""
    from stvg.data.sample import Annotations, write_normalized
    from stvg.data.synth.long import synthesize_long
    from stvg.extract import load_splits, make_manifest
    from stvg.extract.plan import plan_entries
    from stvg.extract.runner import extract_entries
    from stvg.features.store import create_store, open_store
    from stvg.ground.cache import SPLIT, built_encoders, entry_id, video_fingerprint
    from stvg.ground.inputs import gather_pairs
    from stvg.ground.run import ground
    from stvg.ground.settings import run_settings

    sample = synthesize_long(
        tmp_path / "data", seconds=5.0, event_seconds=1.0, event_at=3.1, actors=2, size=(64, 48)
    )
    assert sample.tube == (31, 41) and sample.frame_count == 50
    video = tmp_path / "data" / sample.video_path
    (found,) = ground(tiny_run, gather_pairs(video, [sample.caption]), tmp_path / "g", draw=False)
    assert found.windows == 4 and found.window in [(0, 20), (10, 30), (20, 40), (30, 50)]
    assert found.window[0] <= found.tube[0] < found.tube[1] <= found.window[1]
    assert sorted(found.boxes) == list(range(*found.window))

    segment = dataclasses.replace(sample, segment=(10, 30), tube=(10, 30), boxes={})
    write_normalized(Annotations([segment], split="long"), tmp_path / "data" / "seg.json")
    config = run_settings(tiny_run).extract
    encoders = built_encoders(config)  # the ones ground used (built once per process)
    splits = load_splits(
        "synthetic", tmp_path / "data", ["long"], str(tmp_path / "data" / "seg.json")
    )
    store = create_store(tmp_path / "store", make_manifest(config, encoders.specs()))
    extract_entries(
        store, plan_entries(splits, tmp_path / "data"), config, encoders, progress=False
    )
    stored = open_store(tmp_path / "store").video("long@10-30", "long")
    cache = next((tmp_path / "g" / "cache").iterdir())
    cached = open_store(cache).video(entry_id(video_fingerprint(video), (10, 30)), SPLIT)
    for name in ("frame_ids", "clip_spans", "image", "motion"):
        np.testing.assert_array_equal(cached[name], stored[name], err_msg=name)


def test_settings_of_an_older_run(tiny_run, tiny_train_features, tmp_path):
    """A run made before runs recorded `extract` and the segment length: the settings come from
    its store (--features, or ../features as `stvg pipeline` lays it out), or are refused with a
    line saying to pass --features; the rebuilt config equals the recorded one."""
    from stvg.ground.settings import rebuild_extract, run_settings

    recorded = run_settings(tiny_run)
    old = tmp_path / "pipeline" / "run"
    old.mkdir(parents=True)
    config = json.loads((tiny_run / "config.json").read_text())
    record = config["features"]
    config["features"] = {
        k: v for k, v in record.items() if k not in ("extract", "train_segment_seconds")
    }
    (old / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="Pass --features STORE"):
        run_settings(old)
    from_store = run_settings(old, tiny_train_features)
    assert from_store.extract == recorded.extract and from_store.segment_seconds == 2.0
    shutil.copytree(tiny_train_features, tmp_path / "pipeline" / "features")
    beside = run_settings(old)
    assert beside.extract == recorded.extract and "pipeline/features" in beside.source
    rebuilt = rebuild_extract(record["dataset"], record["backbones"], record["sampling"])
    assert rebuilt == recorded.extract


def test_extract_like_takes_the_runs_settings(tiny_run, tiny_data, tmp_path):
    from stvg.ground.settings import config_like, run_settings

    like = config_like(tiny_run, batch_size=3)
    assert like.values_json() == run_settings(tiny_run).extract.values_json()
    assert like.batch_size == 3
    args = ["extract", "--like", str(tiny_run), "--data-root", str(tiny_data), "--out",
            str(tmp_path / "f"), "--td", "3"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "--like takes every feature setting from the run; drop --td" in result.output


def test_a_presence_run_ranks_windows_by_presence_over_their_overlap(tiny_train_features, tmp_path):
    """A run with a presence head (trained one step with both kinds of negatives): each window
    scores the mean, over the stored frames of its tube, of every frame's presence averaged
    over all the windows that saw it; the best of those is the tube given."""
    from stvg.data.synth.long import synthesize_long
    from stvg.ground.inputs import gather_pairs
    from stvg.ground.run import Grounder
    from stvg.train import run as train
    from stvg.train.config import resolve

    settings = [*TINY_TRAIN, "validate=false", "max_steps=1", "num_workers=0"]
    settings += ["model.presence_head=true", "loss_presence=1", "negatives=0.5"]
    settings += ["negatives_outside=0.5"]
    train(tiny_train_features, tmp_path / "run", resolve("synthetic", settings), progress=False)
    sample = synthesize_long(
        tmp_path / "data", seconds=5.0, event_seconds=1.0, event_at=3.1, actors=2, size=(64, 48)
    )
    (pair,) = gather_pairs(tmp_path / "data" / sample.video_path, [sample.caption])
    grounder = Grounder.load(tmp_path / "run", tmp_path / "g", progress=False)
    scored = grounder.score_windows(pair.video, [pair])
    assert scored.score_by == "presence_window"
    candidates = scored.candidates(pair.sentence)
    assert len(candidates) == 4
    seen: dict[int, list[float]] = {}
    for _, qid in candidates:
        for f, p in zip(*scored.frame_presence[qid], strict=True):
            seen.setdefault(int(f), []).append(float(p))
    assert max(len(v) for v in seen.values()) == 2  # windows overlap by half
    for _, qid in candidates:
        want = np.mean([np.mean(seen[int(f)]) for f in scored.frame_presence[qid][0]])
        assert scored.scores[qid] == pytest.approx(want)
    (found,) = grounder.ground_video(pair.video, [pair])
    best = max(candidates, key=lambda c: (scored.scores[c[1]], -c[0][0]))
    assert found.window == best[0] and found.score_by == "presence_window"
