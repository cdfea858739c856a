"""The pipeline end to end on a tiny synthetic set: runs, skips, reruns what changed."""

from __future__ import annotations

import json

import pytest
from tiny_settings import TINY_EXTRACT, TINY_TRAIN
from typer.testing import CliRunner

from stvg.cli import app
from stvg.pipelines.chain import PipelineConfig, format_report, run_pipeline

pytestmark = pytest.mark.slow

TINY_SYNTH = {"videos": 4, "seconds": 2.0, "fps": 10.0, "size": (64, 48)}
PIPELINE_TRAIN = ["max_steps=3", *TINY_TRAIN]


def tiny(out, train=PIPELINE_TRAIN) -> PipelineConfig:
    return PipelineConfig(
        out=out, synth=TINY_SYNTH, extract=TINY_EXTRACT, train=list(train), progress=False
    )


def ran(results) -> dict[str, bool]:
    return {r.name: r.ran for r in results}


def test_pipeline_runs_skips_and_reruns_what_changed(tmp_path):
    out = tmp_path / "p"
    results, report = run_pipeline(tiny(out))
    assert ran(results) == dict.fromkeys(["synth", "extract", "train", "predict", "score"], True)
    for name in ("data", "features", "run", "predictions.json", "metrics.json", "report.json"):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["all"]) == {"m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5", "m_sIoU", "count"}
    test_queries = len(json.loads((out / "data" / "test.json").read_text())["samples"])
    assert metrics["all"]["count"] == test_queries
    assert set(report) >= {"model", "center", "mean"}
    provenance = json.loads((out / "predictions.json").read_text())["provenance"]
    assert provenance["run"] == "run" and provenance["split"] == "test"
    assert "center" in format_report(report)
    first = {p: (out / p).stat().st_mtime_ns for p in ("predictions.json", "metrics.json")}

    # Nothing changed: every step is skipped, outputs untouched.
    results, _ = run_pipeline(tiny(out))
    assert not any(ran(results).values())
    assert {p: (out / p).stat().st_mtime_ns for p in first} == first

    # A training setting changed: train, predict and score run again; synth and extract do not.
    results, _ = run_pipeline(tiny(out, [*TINY_TRAIN, "max_steps=4"]))
    assert ran(results) == {
        "synth": False,
        "extract": False,
        "train": True,
        "predict": True,
        "score": True,
    }
    lines = (out / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines if "loss" in x] == [1, 2, 3, 4]

    # --from predict reruns predict and score only.
    results, _ = run_pipeline(tiny(out, [*TINY_TRAIN, "max_steps=4"]), start="predict")
    assert [r.name for r in results if r.ran] == ["predict", "score"]

    # Another model: train (from scratch), predict and score run again with it.
    costa = ["model_name=costa", "max_steps=2", "num_frames=4", "batch_size=2"] + [
        f"model.{k}=1" for k in ("n_encoder_layers", "n_temporal_layers", "n_spatial_layers")
    ]
    costa += ["model.d_model=32", "model.n_heads=4", "model.dim_feedforward=32"]
    results, report = run_pipeline(tiny(out, costa))
    assert [r.name for r in results if r.ran] == ["train", "predict", "score"]
    assert json.loads((out / "run" / "config.json").read_text())["model_name"] == "costa"
    lines = (out / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines if "loss" in x] == [1, 2]
    assert json.loads((out / "metrics.json").read_text())["all"]["count"] == test_queries


def test_pipeline_cli_unknown_step_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(app, ["pipeline", "--out", str(tmp_path / "p"), "--from", "bogus"])
    assert result.exit_code == 2
    assert "'--from'" in result.output and "'bogus' is not one of" in result.output
    assert "Traceback" not in result.output


def test_an_edited_annotation_reruns_extract_train_predict(tmp_path):
    out = tmp_path / "p"
    run_pipeline(tiny(out))
    path = out / "data" / "test.json"
    doc = json.loads(path.read_text())
    doc["samples"][0]["caption"] = "the purple hexagon dances in circles"
    path.write_text(json.dumps(doc))
    kept = next((out / "features" / "train").glob("part-*/videos/*/zarr.json"))
    kept_time = kept.stat().st_mtime_ns

    results, _ = run_pipeline(tiny(out))
    assert ran(results) == {
        "synth": False,
        "extract": True,
        "train": True,
        "predict": True,
        "score": True,
    }
    extract = next(r for r in results if r.name == "extract").summary
    assert (extract["new_videos"], extract["reextracted"]) == (0, 1)
    assert extract["changes"]["caption"] == 1  # (and "text batch" if it lengthened it)
    assert kept.stat().st_mtime_ns == kept_time  # the store was updated, not rebuilt

    results, _ = run_pipeline(tiny(out))
    assert not any(ran(results).values())
