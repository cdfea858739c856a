"""``stvg bench zoo``: the seed statistics and the verdict against hand computations, the plan of
trainings, and a tiny comparison end to end (2 models, 1 seed, 2 steps each, child processes)."""

from __future__ import annotations

import json
import math

import pytest
from PIL import Image
from typer.testing import CliRunner

from stvg.bench.seed_stats import (
    PAPER_ORDERING,
    cell,
    compare,
    long_table,
    mean_std,
    summarize,
    verdict,
    wide_table,
)
from stvg.bench.zoo import ZooConfig, ablation_arm, plan, run_zoo
from stvg.cli import app


def _scores(easy: float, hard: float, all_: float) -> dict:
    """A score JSON (fractions) with the three metrics equal within a group."""
    row = lambda v: {"m_vIoU": v, "m_tIoU": v, "m_sIoU": v, "count": 2}  # noqa: E731
    return {"easy": row(easy), "static_ambiguous": row(hard), "all": row(all_)}


def test_mean_std_by_hand():
    # 30, 40, 50: mean 40; squared deviations 100 + 0 + 100 over n - 1 = 2 -> std 10
    assert mean_std([30.0, 40.0, 50.0]) == (40.0, 10.0)
    mean, std = mean_std([1.0, 2.0])  # mean 1.5; (0.25 + 0.25) / 1 -> sqrt(0.5)
    assert mean == 1.5 and math.isclose(std, math.sqrt(0.5))
    assert mean_std([7.0]) == (7.0, None)
    with pytest.raises(ValueError):
        mean_std([])


def test_summarize_in_percent_per_arm_group_metric():
    runs = [
        ("a", _scores(0.30, 0.10, 0.20)),
        ("b", _scores(0.50, 0.50, 0.50)),
        ("a", _scores(0.40, 0.20, 0.30)),
        ("a", _scores(0.50, 0.30, 0.40)),
    ]
    runs[1][1]["easy"]["m_sIoU"] = None  # nothing to score: left out
    s = summarize(runs)
    assert list(s) == ["a", "b"] and list(s["a"]) == ["easy", "static_ambiguous", "all"]
    easy = s["a"]["easy"]["m_vIoU"]
    assert easy["n"] == 3 and math.isclose(easy["mean"], 40.0) and math.isclose(easy["std"], 10.0)
    assert [round(v, 9) for v in easy["values"]] == [30.0, 40.0, 50.0]
    assert math.isclose(s["a"]["all"]["m_tIoU"]["mean"], 30.0)
    assert s["b"]["easy"]["m_sIoU"] == {"mean": None, "std": None, "n": 0, "values": []}
    assert s["b"]["all"]["m_vIoU"]["std"] is None  # one seed
    assert cell(easy) == "40.0 ± 10.0" and cell(s["b"]["all"]["m_vIoU"]) == "50.0"
    assert cell(s["b"]["easy"]["m_sIoU"]) == "-"


def _stat(mean: float, std: float | None) -> dict:
    return {"mean": mean, "std": std, "n": 3, "values": []}


def test_compare_rule_sum_of_stds():
    assert compare(_stat(40, 1), _stat(37, 1))["outcome"] == "higher"  # 3 > 2
    assert compare(_stat(40, 1), _stat(38, 1))["outcome"] == "within"  # 2 is not > 2
    assert compare(_stat(35, 0.5), _stat(38, 2))["outcome"] == "lower"  # 3 > 2.5
    assert compare(_stat(40, None), _stat(30, 1))["outcome"] == "undetermined"
    result = compare(_stat(40, 1.5), _stat(38, 0.25))
    assert result["difference"] == 2 and result["spread"] == 1.75


def _ablation(full: float, s2d: float, d2s: float, none: float, std: float) -> tuple:
    summary = {
        ablation_arm(mode): {"all": {"m_vIoU": _stat(value, std)}}
        for mode, value in (("full", full), ("s2d", s2d), ("d2s", d2s), ("none", none))
    }
    return summary, {m: ablation_arm(m) for m in ("full", "s2d", "d2s", "none")}


def test_verdict_holds_contradicted_or_not_shown():
    summary, arms = _ablation(40, 35, 36, 30, std=1.0)  # every gap >= 4 > 2
    v = verdict(summary, arms)
    assert v["holds"] and not v["contradicted"]
    assert [(p["higher"], p["lower"]) for p in v["pairs"]] == list(PAPER_ORDERING)
    assert "holds beyond the seed spread" in v["text"]

    summary, arms = _ablation(38, 39, 38.5, 38, std=1.0)  # every gap within 2
    v = verdict(summary, arms)
    assert not v["holds"] and not v["contradicted"]
    assert "not shown" in v["text"] and "full - s2d = -1.0 (spread 2.0: within)" in v["text"]

    summary, arms = _ablation(30, 39, 36, 40, std=1.0)  # full - s2d = -9: lower
    v = verdict(summary, arms)
    assert v["contradicted"] and not v["holds"] and "contradicted" in v["text"]


def test_tables_have_one_row_per_arm_and_group():
    s = summarize([("a", _scores(0.3, 0.1, 0.2)), ("a", _scores(0.5, 0.3, 0.4))])
    long = long_table(s).splitlines()
    assert long[0] == "| model | kind | m_vIoU | m_tIoU | m_sIoU | seeds |"
    # easy: 30, 50 -> mean 40, std sqrt(200) = 14.14
    assert long[2] == "| a | easy | 40.0 ± 14.1 | 40.0 ± 14.1 | 40.0 ± 14.1 | 2 |"
    assert len(long) == 2 + 3
    wide = wide_table(s).splitlines()
    assert wide[0] == "| model (m_vIoU, %) | easy | static_ambiguous | all |"
    assert wide[2] == "| a | 40.0 ± 14.1 | 20.0 ± 14.1 | 30.0 ± 14.1 |"


def test_plan_shares_the_full_arm_and_is_seed_major():
    trainings = plan(["csdvl", "costa"], seeds=2, collab=["none", "s2d", "d2s", "full"])
    assert [t.name for t in trainings[:5]] == [
        "csdvl-seed0", "costa-seed0", "csdvl-collab-none-seed0", "csdvl-collab-s2d-seed0",
        "csdvl-collab-d2s-seed0",
    ]  # fmt: skip
    assert len(trainings) == 2 * (2 + 3)  # models x seeds + 3 extra ablation arms x seeds
    none = trainings[2]
    assert none.arm == "csdvl collab=none" and none.overrides == ("model.collab=none",)
    assert {t.arm for t in trainings} == {
        "csdvl", "costa", "csdvl collab=none", "csdvl collab=s2d", "csdvl collab=d2s",
    }  # fmt: skip
    assert len(plan(["costa"], seeds=3, collab=["none"])) == 3  # no csdvl: no ablation


def test_a_tiny_comparison_end_to_end(tiny_features, tmp_path):
    """2 models, 1 seed, 2 steps each, both children at once; scored on the tiny val split."""
    out = tmp_path / "zoo"
    cfg = ZooConfig(
        out=out, models=("csdvl", "costa"), seeds=1, collab=(), features=tiny_features,
        split="val", jobs=2, train=("max_steps=2", "num_frames=4", "batch_size=2"),
        progress=False,
    )  # fmt: skip
    report = run_zoo(cfg)
    assert report["trainings"] == 2 and report["missing"] == []
    assert list(report["summary"]) == ["csdvl", "costa"]
    for result in report["results"]:
        assert result["train"]["steps"] == 2 and result["cpu_seconds"] > 0
        scores = result["scores"]
        # one seed: the mean is the run's own score, in %, and there is no spread
        stat = report["summary"][result["arm"]]["all"]["m_vIoU"]
        assert stat["mean"] == pytest.approx(100 * scores["all"]["m_vIoU"]) and stat["std"] is None
        assert set(scores) == set(report["summary"][result["arm"]])
    table = (out / "zoo.md").read_text()
    groups = len(report["summary"]["csdvl"])
    assert table.count("| csdvl |") == 1 + groups and table.count("| costa |") == 1 + groups
    assert Image.open(out / "zoo.png").size == (1000, 960)
    assert json.loads((out / "zoo.json").read_text())["summary"] == report["summary"]
    # a rerun skips both trainings (their results are there with the same settings)
    again = run_zoo(cfg)
    assert [r["wall_seconds"] for r in again["results"]] == [
        r["wall_seconds"] for r in report["results"]
    ]


@pytest.mark.parametrize(
    "args, named",
    [(["--models", "csdvl,nosuch"], "nosuch"), (["--set", "bogus=1"], "bogus"),
     (["--collab", "none,half"], "half")],
)  # fmt: skip
def test_cli_refuses_bad_input_before_any_work(tmp_path, args, named):
    result = CliRunner().invoke(app, ["bench", "zoo", "--out", str(tmp_path / "zoo"), *args])
    assert result.exit_code == 2 and named in result.output
    assert not (tmp_path / "zoo").exists()  # no store synthesized
