"""Mismatches refused with a message that says what differs and how to proceed (issue 6 item 4):
a store of another layout version, extracting into a store made with other backbone weights or
another image layer, predicting / scoring / resuming a run on a store with other features than
it was trained on, and resuming with a conflicting config.

One tiny store (4 synthetic videos, random weights) and one 2-step run are shared; the other
stores are copies whose manifest says they were made another way (the arrays do not matter:
every refusal must come before any is read or written).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from reliability_helpers import (
    EXTRACT,
    EXTRACT_ARGS,
    SYNTH,
    TRAIN_ARGS,
    edit_manifest,
    listing,
)
from typer.testing import CliRunner

from stvg.cli import app
from stvg.data.synth import synthesize
from stvg.extract import run as extract_run
from stvg.extract.config import preset

runner = CliRunner()
# Backbones with weights (the synthetic preset's own encoders have none), so that stores made
# with other weights can be told apart.
NETS = {"image_backbone": "resnet18", "video_backbone": "framediff_resnet18"}
NETS_ARGS = ["--image-backbone", "resnet18", "--video-backbone", "framediff_resnet18"]


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mismatch")
    data, features, run = root / "data", root / "features", root / "run"
    synthesize(data, videos=4, progress=False, **SYNTH)
    extract_run(
        preset("synthetic", **EXTRACT, **NETS),
        data,
        features,
        ["train", "val", "test"],
        progress=False,
    )
    result = runner.invoke(
        app, ["train", "--features", str(features), "--out", str(run), "--preset", "synthetic",
              "--max-steps", "2", *TRAIN_ARGS],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return {"root": root, "data": data, "features": features, "run": run}


def copy_store(made: dict[str, Path], name: str, **changes) -> Path:
    target = made["root"] / name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(made["features"], target)
    edit_manifest(target, **changes)
    return target


def refusal(result) -> str:
    """The one "Bad input:" paragraph of an exit-2 result."""
    assert result.exit_code == 2, result.output
    lines = [x for x in result.stderr.splitlines() if x.startswith("Bad input:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def extract(made: dict[str, Path], out: Path, *extra: str):
    args = ["extract", "--dataset", "synthetic", "--data-root", str(made["data"])]
    return runner.invoke(app, [*args, "--out", str(out), *EXTRACT_ARGS, *NETS_ARGS, *extra])


def test_run_records_the_features_it_was_trained_on(made):
    manifest = json.loads((made["features"] / "manifest.json").read_text())
    config = json.loads((made["run"] / "config.json").read_text())
    assert config["features"]["backbones"] == manifest["backbones"]
    assert config["features"]["sampling"] == manifest["sampling"]
    assert manifest["backbones"]["image"]["weights"] == "random:seed0"


def test_store_of_another_layout_version(made):
    old = copy_store(made, "old-layout", layout="stvg-features/0")
    before = listing(old)
    for result in (
        extract(made, old),
        runner.invoke(app, ["train", "--features", str(old), "--out", str(made["root"] / "r2")]),
        runner.invoke(app, ["predict", "--run", str(made["run"]), "--features", str(old),
                            "--out", str(made["root"] / "p.json")]),
    ):  # fmt: skip
        message = refusal(result)
        assert "manifest.json" in message and "field 'layout'" in message
        assert "'stvg-features/0'" in message and "stvg-features/1" in message
        assert "--out" in message or "stvg version" in message  # how to proceed
    assert listing(old) == before
    assert not (made["root"] / "r2").exists() and not (made["root"] / "p.json").exists()


@pytest.mark.parametrize(
    "extra, field, stored, asked",
    [
        (["--image-layer", "layer2"], "backbones.image.layer", "'layer3'", "'layer2'"),
        (["--image-backbone", "resnet101"], "backbones.image.name", "'resnet18'", "'resnet101'"),
    ],
)
def test_extracting_with_another_backbone_into_a_store(made, extra, field, stored, asked):
    store = copy_store(made, "same")
    before = listing(store)
    message = refusal(extract(made, store, *extra))
    assert f"field '{field}'" in message
    assert f"{field}: store has {stored}, this run asks for {asked}" in message
    assert "another --out" in message
    assert listing(store) == before


def test_extracting_random_weights_into_a_pretrained_store(made):
    store = copy_store(
        made,
        "pretrained",
        backbones__image__weights="pretrained",
        backbones__video__weights="pretrained",
        backbones__text__weights="pretrained",
    )
    before = listing(store)
    message = refusal(extract(made, store, "--weights", "random"))
    for role in ("image", "video", "text"):
        assert (
            f"backbones.{role}.weights: store has 'pretrained', this run asks for 'random:seed0'"
            in (message)
        )
    assert listing(store) == before


def test_predict_score_and_resume_on_other_features(made):
    other = copy_store(made, "other-weights", backbones__image__weights="pretrained")
    want = (
        "backbones.image.weights: the run was trained on 'random:seed0', the store has 'pretrained'"
    )
    out = made["root"] / "predictions.json"
    result = runner.invoke(
        app, ["predict", "--run", str(made["run"]), "--features", str(other), "--out", str(out)]
    )
    message = refusal(result)
    assert want in message and "field 'backbones.image.weights'" in message
    assert "train a run on this store" in message  # how to proceed
    assert not out.exists()

    result = runner.invoke(
        app, ["score", "--run", str(made["run"]), "--features", str(other), "--split", "test"]
    )
    assert want in refusal(result)

    before = listing(made["run"])
    result = runner.invoke(
        app, ["train", "--features", str(other), "--out", str(made["run"]), "--resume",
              "--preset", "synthetic", "--max-steps", "3", *TRAIN_ARGS],
    )  # fmt: skip
    message = refusal(result)
    assert want in message and "--force" in message
    assert listing(made["run"]) == before

    sampling = copy_store(made, "other-sampling", sampling__td=8)
    result = runner.invoke(
        app, ["predict", "--run", str(made["run"]), "--features", str(sampling), "--out", str(out)]
    )
    assert "sampling.td: the run was trained on 4, the store has 8" in refusal(result)

    # the store it was trained on is accepted
    result = runner.invoke(
        app, ["predict", "--run", str(made["run"]), "--features", str(made["features"]),
              "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    provenance = json.loads(out.read_text())["provenance"]
    assert provenance["run"] == made["run"].name and provenance["split"] == "test"


def test_resume_with_a_conflicting_config(made):
    before = listing(made["run"])
    result = runner.invoke(
        app, ["train", "--features", str(made["features"]), "--out", str(made["run"]), "--resume",
              "--preset", "synthetic", *TRAIN_ARGS, "--set", "lr=0.5"],
    )  # fmt: skip
    message = refusal(result)
    assert "field 'lr'" in message and "lr: run has 0.001, now 0.5" in message
    assert "--force" in message
    assert listing(made["run"]) == before
