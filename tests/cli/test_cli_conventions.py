"""The CLI's shared conventions, through ``typer.testing.CliRunner``: every command answers
``-h``; bad words and missing files end with exit code 2 and one last line naming the option
or the key (never a traceback); ``--json`` prints, ``--json-out`` writes; ``--device auto``;
flags without a meaningless negative; ``data synth`` will not silently replace another set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from stvg import __version__
from stvg.cli import app
from stvg.device import resolve_device
from stvg.errors import InputError
from stvg.progress import bar_disabled

runner = CliRunner()
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HCSTVG = FIXTURES / "hcstvg" / "test.json"


def commands(group=None, path=()):
    """Every command path of the app, e.g. ("data", "synth")."""
    group = group or typer.main.get_command(app)
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            yield from commands(cmd, (*path, name))
        else:
            yield (*path, name)


def assert_refused(result, *names: str) -> None:
    """Exit 2, no traceback, and the last line of stderr names every one of ``names``."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    last = result.stderr.strip().splitlines()[-1]
    for name in names:
        assert name in last, (name, last)


def test_version_and_both_help_options():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"stvg {__version__}"
    paths = list(commands())
    assert ("data", "synth") in paths and ("bench", "e2e") in paths and ("train",) in paths
    for path in paths:
        for flag in ("-h", "--help"):
            result = runner.invoke(app, [*path, flag])
            assert result.exit_code == 0, (path, result.output)
            assert result.stdout.startswith("Usage:"), path


def test_help_texts_are_whole_sentences():
    """No summary cut with '...', and every command and option help ends a sentence."""
    root = typer.main.get_command(app)
    for path in commands():
        cmd = root
        for name in path:
            cmd = cmd.commands[name]
        short = cmd.get_short_help_str(limit=63)  # what `stvg -h` has room for
        assert not short.endswith("..."), (path, short)
        assert (cmd.help or "").rstrip().endswith((".", ")")), path
        for param in cmd.params:
            text = (getattr(param, "help", None) or "").rstrip()
            assert text.endswith((".", ")")), (path, param.name, text)
    for name in ("data", "bench", "features"):
        short = root.commands[name].get_short_help_str(limit=63)
        assert not short.endswith("..."), (name, short)


def test_flags_have_no_meaningless_negative_and_choices_are_listed():
    train = runner.invoke(app, ["train", "-h"]).stdout
    assert "--resume" in train and "--no-resume" not in train and "--no-force" not in train
    assert "<vidstg|hcstvg-v1|hcstvg-v2|synthetic>" in train and "--seed" in train
    extract = runner.invoke(app, ["extract", "-h"]).stdout
    assert "--pack / --no-pack" in extract and "--no-amp" not in extract
    assert "<zarr|hdf5>" in extract and "<float16|int8>" in extract
    score = runner.invoke(app, ["score", "-h"]).stdout
    assert "<tubedetr|hcstvg|stcat>" in score and "<error|zero>" in score
    assert "<center|mean>" in runner.invoke(app, ["baseline", "-h"]).stdout
    pipeline = runner.invoke(app, ["pipeline", "-h"]).stdout
    assert "<synth|extract|train|predict|score>" in pipeline


def test_choice_lists_in_the_cli_match_the_library():
    from typing import get_args

    from stvg.cli.predictions import PeerFormat
    from stvg.cli.score import Protocol
    from stvg.evaluate.peer_formats import FORMATS
    from stvg.evaluate.protocols import PROTOCOLS

    assert get_args(PeerFormat) == FORMATS and get_args(Protocol) == PROTOCOLS


@pytest.mark.parametrize(
    "args, names",
    [
        (["extract", "--dataset", "foo", "--data-root", ".", "--out", "x"], ["'--dataset'", "foo"]),
        (["pipeline", "--dataset", "foo"], ["'--dataset'", "foo"]),
        (["pipeline", "--from", "nowhere"], ["'--from'", "nowhere"]),
        (["score", "--protocol", "vidstg"], ["'--protocol'", "vidstg"]),
        (["score", "--missing", "skip"], ["'--missing'", "skip"]),
        (["baseline", "--annotations", "a", "--out", "b", "--kind", "best"], ["'--kind'"]),
        (["data", "stats", "--annotations", "a", "--format", "coco"], ["'--format'", "coco"]),
        (["train", "--features", ".", "--out", "x", "--preset", "kinetics"], ["'--preset'"]),
        (["train", "--features", ".", "--out", "x", "--seed", "-1"], ["'--seed'"]),
        (["extract", "--dataset", "synthetic", "--data-root", ".", "--out", "x",
          "--batch-size", "0"], ["'--batch-size'"]),
    ],
)  # fmt: skip
def test_words_not_offered_are_refused_by_option(args, names):
    result = runner.invoke(app, args)
    assert_refused(result, *names)
    # one line in the form of every other input error, pointing at the command's help
    assert result.stderr.strip().startswith("Bad input: Invalid value for")
    assert "\n" not in result.stderr.strip() and "-h')" in result.stderr


def test_unknown_commands_options_and_missing_options_are_one_line():
    for args, name in [
        (["nosuch"], "No such command 'nosuch'"),
        (["--bogus"], "No such option: --bogus"),
        (["score", "--frames", "3"], "No such option: --frames"),
        (["extract", "--dataset", "synthetic"], "Missing option '--data-root'"),
    ]:
        result = runner.invoke(app, args)
        assert_refused(result, name)
        assert result.stderr.strip().startswith("Bad input:") and "\n" not in result.stderr.strip()


@pytest.mark.parametrize(
    "args, names",
    [
        (["train", "--set", "lr=abc"], ["--set lr=abc", "expected a number"]),
        (["train", "--set", "lr_schedule=cosin"],
         ["--set lr_schedule=cosin", "expected one of constant, cosine"]),
        (["train", "--set", "lr=-1"], ["--set lr=-1", "must be >= 0"]),
        (["train", "--set", "epoch=3"], ["--set epoch=3", "unknown setting 'epoch'"]),
        (["train", "--set", "model.collab=both"], ["--set model.collab=both", "expected one of"]),
        (["train", "--set", "lr"], ["--set lr", "expected key=value"]),
    ],
)  # fmt: skip
def test_train_settings_are_refused_by_key(tmp_path, args, names):
    base = ["--features", str(tmp_path), "--out", str(tmp_path / "run"), "--preset", "synthetic"]
    assert_refused(runner.invoke(app, [args[0], *base, *args[1:]]), *names)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "sets, names",
    [
        (["target_fps=abc"], ["--set target_fps=abc", "expected a number"]),
        (["max_frames=0"], ["--set max_frames=0", "must be >= 1"]),
        (["max_text_len=many"], ["--set max_text_len=many", "expected an integer"]),
        (["backend=lmdb"], ["--set backend=lmdb", "expected one of zarr, hdf5"]),
        (["bogus=1"], ["--set bogus=1", "unknown setting 'bogus'"]),
    ],
)
def test_extract_settings_are_refused_by_key(tmp_path, sets, names):
    args = ["extract", "--dataset", "synthetic", "--data-root", str(tmp_path)]
    args += ["--out", str(tmp_path / "features"), "--device", "cpu"]
    for item in sets:
        args += ["--set", item]
    assert_refused(runner.invoke(app, args), *names)
    assert not (tmp_path / "features").exists()


@pytest.mark.parametrize(
    "sets, names",
    [
        (["extract.max_frames=0"], ["--set extract.max_frames=0", "must be >= 1"]),
        (["extract.bogus=1"], ["--set extract.bogus=1", "unknown setting 'bogus'"]),
        (["lr_schedule=cosin"], ["--set lr_schedule=cosin", "expected one of constant"]),
        (["train.lr=abc"], ["--set lr=abc", "expected a number"]),
    ],
)
def test_pipeline_settings_are_refused_before_any_step(tmp_path, sets, names):
    args = ["pipeline", "--out", str(tmp_path / "p"), "--device", "cpu"]
    for item in sets:
        args += ["--set", item]
    assert_refused(runner.invoke(app, args), *names)
    assert not (tmp_path / "p").exists()


def test_missing_files_and_folders_are_named(tmp_path):
    missing = tmp_path / "missing"
    cases = [
        (["extract", "--dataset", "synthetic", "--data-root", missing, "--out", tmp_path / "f"],
         "--data-root"),
        (["train", "--features", missing, "--out", tmp_path / "r", "--preset", "synthetic"],
         "--features"),
        (["score", "--annotations", missing, "--predictions", missing], "missing"),
        (["data", "convert", missing, "--out", tmp_path / "o.json"], "missing"),
        (["predict", "--run", missing, "--features", missing, "--out", tmp_path / "p.json",
          "--device", "cpu"], "missing"),
        (["features", "info", missing], "missing"),
        (["plot", missing], "missing"),
        (["pipeline", "--dataset", "vidstg", "--data-root", missing, "--out", tmp_path / "p"],
         "--data-root"),
    ]  # fmt: skip
    for args, name in cases:
        result = runner.invoke(app, [str(a) for a in args])
        assert_refused(result, name)
        assert result.stderr.count("Bad input:") == 1


def test_device_auto_and_a_missing_gpu(monkeypatch, tmp_path):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    with pytest.raises(InputError, match="--device cuda: this machine has no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(InputError, match="--device gpu: expected auto, cpu, cuda"):
        resolve_device("gpu")
    args = ["train", "--features", str(tmp_path), "--out", str(tmp_path / "r")]
    assert_refused(runner.invoke(app, [*args, "--device", "cuda"]), "--device cuda")
    args = ["extract", "--dataset", "synthetic", "--data-root", str(tmp_path), "--out", "x"]
    assert_refused(runner.invoke(app, [*args, "--device", "cuda:1"]), "--device cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(InputError, match="2 CUDA device"):
        resolve_device("cuda:2")


def test_json_prints_and_json_out_writes(tmp_path):
    converted = tmp_path / "a.json"
    assert (
        runner.invoke(app, ["data", "convert", str(HCSTVG), "--out", str(converted)]).exit_code == 0
    )
    samples = json.loads(converted.read_text())["samples"]
    pred = tmp_path / "pred.json"
    pred.write_text(
        json.dumps(
            {
                "format": "stvg-predictions/1",
                "predictions": {s["sample_id"]: {"tube": s["tube"], "boxes": s["boxes"]}
                                for s in samples},
            }
        )
    )  # fmt: skip
    base = ["score", "--annotations", str(converted), "--predictions", str(pred)]
    printed = runner.invoke(app, [*base, "--json"])
    assert printed.exit_code == 0, printed.output
    scores = json.loads(printed.stdout)
    assert scores["all"]["m_vIoU"] == 1.0 and scores["all"]["count"] == 3
    out = tmp_path / "scores.json"
    table = runner.invoke(app, [*base, "--json-out", str(out)])
    assert table.exit_code == 0 and "m_vIoU" in table.stdout and "100.00" in table.stdout
    assert json.loads(out.read_text()) == scores


def test_synth_refuses_a_set_made_with_other_settings(tmp_path):
    out = tmp_path / "synth"
    small = ["data", "synth", "--out", str(out), "--videos", "3", "--seconds", "1"]
    small += ["--size", "64x48"]
    assert runner.invoke(app, small).exit_code == 0
    first = (out / "synth.json").read_text()
    again = runner.invoke(app, small)  # same settings: allowed, same files
    assert again.exit_code == 0 and (out / "synth.json").read_text() == first
    refused = runner.invoke(app, [*small, "--seed", "3"])
    assert_refused(refused, "seed: set has 0, asked 3", "--force")
    assert (out / "synth.json").read_text() == first  # nothing replaced
    forced = runner.invoke(app, [*small, "--seed", "3", "--force"])
    assert forced.exit_code == 0, forced.output
    assert json.loads((out / "synth.json").read_text())["seed"] == 3


def test_progress_bars_follow_quiet_and_the_terminal(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert bar_disabled(True) is None  # tqdm decides: drawn only on a terminal
    assert bar_disabled(False) is True
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert bar_disabled(True) is True


@pytest.mark.parametrize("quiet", [False, True])
def test_no_progress_lines_when_stderr_is_a_file(tmp_path, quiet):
    """stderr redirected to a file (as under SLURM): no bar, no carriage returns."""
    log = tmp_path / "stderr.log"
    args = ["-q"] if quiet else []
    args += ["data", "synth", "--out", str(tmp_path / "s"), "--videos", "3", "--seconds", "1"]
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    with log.open("w") as stderr:
        done = subprocess.run(
            [sys.executable, "-m", "stvg", *args, "--size", "64x48"],
            stderr=stderr,
            stdout=subprocess.PIPE,
            env=env,
            timeout=120,
        )
    assert done.returncode == 0
    text = log.read_text()
    assert "\r" not in text and "video/s" not in text and "synth:" not in text
