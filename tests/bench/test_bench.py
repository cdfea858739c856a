"""The benchmarks' shared pieces (one clock, one output), ``stvg bench train`` timing the
trainer's own step, ``bench e2e``'s ratios and ``bench memory``'s child processes."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import stvg.bench.train as bench_train_module
import stvg.train.trainer as trainer
from stvg.bench.memory import bench_memory
from stvg.bench.report import report
from stvg.bench.timer import Timer, timed
from stvg.cli import app
from stvg.memory import _glibc


def test_timer_wall_and_cpu_time():
    start = time.perf_counter()
    with Timer() as sleeping:
        time.sleep(0.2)
    outside = time.perf_counter() - start
    assert 0.2 <= sleeping.seconds <= outside
    assert sleeping.cpu_seconds < 0.1  # sleeping costs no CPU

    with Timer() as busy:
        deadline = time.process_time() + 0.2
        while time.process_time() < deadline:
            pass
    assert busy.cpu_seconds >= 0.2 and busy.seconds >= 0.2 * 0.5

    seconds, value = timed(sum, [1, 2, 3])
    assert value == 6 and seconds >= 0


def test_report_prints_one_line_and_saves_the_same(tmp_path):
    result = {"ratio": 0.5, "nested": {"a": [1, 2]}, "quick": True}
    path = tmp_path / "sub" / "bench.json"
    line = report(result, path)
    assert "\n" not in line and json.loads(line) == result
    assert json.loads(path.read_text()) == result
    assert path.read_text().endswith("\n") and [p.name for p in path.parent.iterdir()] == [
        "bench.json"
    ]  # written in place, no temporary left
    assert report(result) == line  # no file: just the line


@pytest.mark.slow  # a tiny store, 6 steps and 2 DataLoader workers: ~10-30 s on a shared CPU
def test_bench_train_times_the_trainers_step(monkeypatch, tmp_path):
    """Every timed step is a call of stvg.train.trainer.train_step on one setup() state."""
    monkeypatch.setitem(bench_train_module.SIZES, "quick", (2, 1, 2))  # 2 videos, 1 block of 2
    monkeypatch.setattr(bench_train_module, "WARMUP_STEPS", 1)
    calls: list[tuple[object, int]] = []
    real_step = trainer.train_step

    def counting(state, batch):
        calls.append((state, int(batch["text"].shape[0])))
        return real_step(state, batch)

    monkeypatch.setattr(trainer, "train_step", counting)
    out = tmp_path / "train.json"
    threads = torch.get_num_threads()
    result = CliRunner().invoke(app, ["bench", "train", "--quick", "--json-out", str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert [json.loads(line) for line in result.stdout.splitlines()] == [saved], result.output
    assert torch.get_num_threads() == threads  # put back

    # 1 warm-up + 1 block of 2 steps, on each of the two paths: 6 trainer steps on one state
    assert len(calls) == 2 * (1 + 2)
    state = calls[0][0]
    assert all(s is state for s, _ in calls) and state.step == 6
    # 2 videos x 2 queries in the store, batch 8: every step sees the 4 queries
    assert [size for _, size in calls] == [4] * 6
    assert saved["timed_steps_each"] == 2 and saved["videos"] == 2
    # the synthetic preset as `stvg train` builds it: d 64, 2 layers, store channels 192 / 27
    assert state.model_config["d_model"] == 64 and state.model_config["n_layers"] == 2
    assert state.model_config["image_channels"] == 192
    assert state.model_config["motion_channels"] == 27
    ratio = saved["step_ms_ram"] / saved["step_ms_store"]
    assert saved["ratio_store_vs_ram"] == pytest.approx(ratio, rel=1e-9)


@pytest.mark.parametrize("seeds", ["0,a", ",", "-1"])
def test_bench_long_refuses_a_malformed_seed_list(tmp_path, seeds):
    result = CliRunner().invoke(app, ["bench", "long", "--run", str(tmp_path), "--seeds", seeds])
    assert result.exit_code == 2
    assert "--seeds" in result.output and "Traceback" not in result.output


def test_e2e_model_ratios_by_hand():
    """Two models on the same backbones: ratio, FLOP ratio and their quotient per model."""
    from stvg.bench.e2e import model_ratios

    per = {
        "decode": 1.0,
        "video": 5.0,
        "tune": 10.0,
        "forward": 4.0,
        "heads:a": 2.0,
        "heads:b": 4.0,
    }
    cached = {"a": 2.5, "b": 4.0}
    flops = {
        "video_backbone": 300, "image_backbone": 600, "text_backbone": 100,
        "heads:a": 100, "heads:b": 250,
    }  # fmt: skip
    got = model_ratios(per, cached, flops, ["a", "b"])
    assert got["a"]["ratio_end_to_end_vs_cached"] == pytest.approx(18.0 / 2.5)  # 1+5+10+2
    assert got["a"]["flop_ratio_end_to_end_vs_cached"] == pytest.approx(1100 / 100)
    assert got["a"]["efficiency"] == pytest.approx((18.0 / 2.5) / 11.0)
    assert got["a"]["ratio_frozen_backbones_vs_cached"] == pytest.approx(7.0 / 2.5)  # 1+4+2
    assert got["b"]["ratio_end_to_end_vs_cached"] == pytest.approx(20.0 / 4.0)
    assert got["b"]["flop_ratio_end_to_end_vs_cached"] == pytest.approx(1250 / 250)
    assert got["b"]["efficiency"] == pytest.approx(1.0)
    assert got["b"]["heads_gflop_per_s"] == pytest.approx(250 / 1e9 / 4.0)


@pytest.mark.parametrize("command", ["e2e", "memory"])
@pytest.mark.parametrize("models", ["csdvl,nope", ","])
def test_bench_refuses_an_unknown_model(command, models):
    result = CliRunner().invoke(app, ["bench", command, "--quick", "--models", models])
    assert result.exit_code == 2
    assert "--models" in result.output and "Traceback" not in result.output


def test_bench_e2e_refuses_an_unknown_amp():
    result = CliRunner().invoke(app, ["bench", "e2e", "--quick", "--amp", "fp8"])
    assert result.exit_code == 2
    assert "--amp fp8" in result.output and "Traceback" not in result.output


@pytest.mark.slow
@pytest.mark.skipif(_glibc() is None, reason="the C library is not glibc")
def test_bench_memory_runs_each_setting_in_its_own_process():
    """Quick shapes, one timed step: the 'system' child left glibc's defaults and the 'kept'
    child set the thresholds; speed-up and RSS ratio are the children's figures divided."""
    got = bench_memory(["costa"], quick=True, reps=1, threads=1)["models"]["costa"]
    assert got["system"]["kept"] is False and got["kept"]["kept"] is True
    for setting in ("system", "kept"):
        assert len(got[setting]["seconds"]) == 1
        assert got[setting]["median_s"] == got[setting]["seconds"][0] > 0
        assert got[setting]["peak_rss_gb"] > 0.1  # a 37M-parameter model with AdamW state
    assert got["speedup"] == got["system"]["median_s"] / got["kept"]["median_s"]
    assert got["rss_ratio"] == got["kept"]["peak_rss_gb"] / got["system"]["peak_rss_gb"]


def test_scores_by_action_by_hand():
    """Windows of 10 frames; the target spins on [0, 8), jumps on [8, 12), stops on [12, 30).
    A quarter of a window is 2.5 frames: spin holds in (0,10) (8 frames) and (5,15) (3); jump
    in (5,15) (4; 2 in (0,10) and in (10,20) are too few); stop in (5,15) (3), (10,20) (8) and
    (20,30) (10)."""
    from stvg.bench.long import scores_by_action

    candidates = [((0, 10), "a"), ((5, 15), "b"), ((10, 20), "c"), ((20, 30), "d")]
    scores = {"a": 0.8, "b": 0.6, "c": 0.2, "d": 0.1}
    actions = [["spin", 0, 8], ["jump", 8, 12], ["stop", 12, 30]]
    got = scores_by_action(candidates, scores, actions)
    assert got["spin"] == {"windows": 2, "mean_score": 0.7}
    assert got["jump"] == {"windows": 1, "mean_score": 0.6}
    assert got["stop"] == {"windows": 3, "mean_score": round((0.6 + 0.2 + 0.1) / 3, 4)}
    assert scores_by_action(candidates, scores, [["walk_left", 0, 1]]) == {}


def test_span_presence_scores_by_hand():
    """The earlier window score, kept in the bench to compare: window a sees frames 0, 10 and
    b frames 10, 20; frame 10 averages (0.6 + 0.2) / 2 = 0.4. a's span [0, 15) holds frames 0
    and 10: (0.2 + 0.4) / 2; b's span [25, 28) holds none: its highest frame, 0.9; b's span
    [10, 11): the averaged 0.4, not its own 0.2."""
    from stvg.bench.long import span_presence_scores

    candidates = [((0, 20), "a"), ((10, 30), "b")]
    presence = {
        "a": (np.array([0, 10]), np.array([0.2, 0.6])),
        "b": (np.array([10, 20]), np.array([0.2, 0.9])),
    }
    got = span_presence_scores(candidates, presence, {"a": (0, 15), "b": (25, 28)})
    assert got == pytest.approx({"a": 0.3, "b": 0.9})
    got = span_presence_scores(candidates, presence, {"a": (0, 1), "b": (10, 11)})
    assert got == pytest.approx({"a": 0.2, "b": 0.4})


def test_a_long_video_records_its_targets_whole_script(tmp_path):
    from stvg.data.synth.long import synthesize_long

    sample = synthesize_long(
        tmp_path, seconds=5.0, event_seconds=1.0, event_at=3.1, actors=2, size=(64, 48)
    )
    script = sample.extra["target_actions"]
    assert script[0][1] == 0 and script[-1][2] == sample.frame_count
    assert all(a[2] == b[1] for a, b in zip(script[:-1], script[1:], strict=True))  # back to back
    assert [a for a in script if a[0] == "jump"] == [["jump", *sample.tube]]
    saved = json.loads((tmp_path / "long.json").read_text())
    assert json.dumps(saved).count("target_actions") == 1
