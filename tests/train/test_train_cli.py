"""`stvg train` through the CLI: refusals (exit 2), --set parsing, resume with a changed config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_settings import TINY_TRAIN
from typer.testing import CliRunner

from stvg.cli import app
from stvg.errors import InputError
from stvg.train.config import resolve

TINY_SETS = [*TINY_TRAIN, "validate=false"]

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def features(tiny_train_features: Path) -> Path:
    """The shared tiny store (tests/conftest.py): the train split of 4 videos. Read-only."""
    return tiny_train_features


def _train(features: Path, out: Path, *extra: str, sets: list[str] = TINY_SETS):
    args = ["train", "--features", str(features), "--out", str(out), "--preset", "synthetic"]
    for item in sets:
        args += ["--set", item]
    return runner.invoke(app, [*args, *extra])


def _steps(out: Path) -> list[int]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["step"] for line in lines if "loss" in json.loads(line)]


def test_set_values_are_parsed_as_json_else_strings():
    config = resolve(
        "synthetic",
        ["lr=1e-3", "batch_size=3", "validate=false", "val_split=test", "model.collab=none"],
    )
    assert config.lr == 0.001 and isinstance(config.lr, float)
    assert config.batch_size == 3 and config.validate is False
    assert config.val_split == "test"
    assert config.model == {"collab": "none"}
    # everything else is the synthetic preset's
    assert (config.num_frames, config.ema_decay, config.warmup_steps) == (8, 0.98, 50)
    # values may contain '='
    assert resolve("synthetic", ["val_split=a=b"]).val_split == "a=b"


@pytest.mark.parametrize(
    "item, words",
    [("no_such_key=1", "unknown setting 'no_such_key'"), ("lr", "expected key=value")],
)
def test_bad_set_refused(item, words):
    with pytest.raises(InputError, match=words):
        resolve("synthetic", [item])


def test_unknown_key_and_unknown_model_key_exit_2(features, tmp_path):
    result = _train(features, tmp_path / "a", sets=["bogus=3"])
    assert result.exit_code == 2
    assert "unknown setting 'bogus'" in result.output and "Traceback" not in result.output
    result = _train(features, tmp_path / "b", "--max-steps", "1", sets=["model.bogus=3"])
    assert result.exit_code == 2 and "bogus" in result.output
    result = runner.invoke(
        app, ["train", "--features", str(features), "--out", str(tmp_path / "c"), "--preset", "x"]
    )
    assert result.exit_code == 2 and "'--preset'" in result.output and "'x'" in result.output
    assert "Traceback" not in result.output


def test_fp16_on_the_cpu_is_one_line_and_writes_nothing(features, tmp_path):
    result = _train(features, tmp_path / "run", "--device", "cpu", sets=[*TINY_SETS, "amp=fp16"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "amp='fp16': needs a CUDA device, not cpu" in result.output
    assert not (tmp_path / "run").exists()


def test_non_empty_folder_refused_without_resume(features, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = _train(features, out, "--max-steps", "1")
    assert result.exit_code == 2
    assert "not empty" in result.output and "--resume" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # untouched

    # --resume on a folder that is not a run is refused too
    result = _train(features, out, "--max-steps", "1", "--resume")
    assert result.exit_code == 2 and "not an stvg run" in result.output


def test_finished_run_refused_then_resumed_and_extended(features, tmp_path):
    out = tmp_path / "run"
    first = _train(features, out, "--max-steps", "2", "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout.strip().splitlines()[-1])["steps"] == 2
    before = (out / "checkpoint.pt").read_bytes()

    again = _train(features, out, "--max-steps", "2")
    assert again.exit_code == 2 and "not empty" in again.output
    assert (out / "checkpoint.pt").read_bytes() == before  # never silently overwritten

    # max_steps may change on resume; the run continues from step 2
    more = _train(features, out, "--max-steps", "3", "--resume")
    assert more.exit_code == 0, more.output
    assert _steps(out) == [1, 2, 3]


def test_resume_with_conflicting_config_refused_unless_force(features, tmp_path):
    out = tmp_path / "run"
    assert _train(features, out, "--max-steps", "2").exit_code == 0
    changed = [*TINY_SETS, "lr=0.01"]
    refused = _train(features, out, "--max-steps", "3", "--resume", sets=changed)
    assert refused.exit_code == 2
    # the message says which setting differs and both values
    assert "lr: run has 0.001, now 0.01" in refused.output
    assert "--force" in refused.output and "Traceback" not in refused.output
    assert _steps(out) == [1, 2]

    forced = _train(features, out, "--max-steps", "3", "--resume", "--force", sets=changed)
    assert forced.exit_code == 0, forced.output
    assert _steps(out) == [1, 2, 3]
    checkpoint = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert checkpoint["step"] == 3 and checkpoint["config"]["lr"] == 0.01
    assert json.loads((out / "config.json").read_text())["lr"] == 0.01
