"""The base install (no extras) scores and converts: ``stvg score``, ``stvg data convert`` /
``stats`` and ``stvg baseline`` run in a Python where importing torch, or any package of the
extras, fails (a ``sys.meta_path`` finder refuses them), as on ``pip install stvg``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HCSTVG = FIXTURES / "hcstvg" / "test.json"

# Packages of the [extract], [train], [cluster] and [viz] extras.
EXTRAS = (
    "torch", "torchvision", "av", "decord", "PIL", "zarr", "numcodecs", "h5py", "transformers",
    "tokenizers", "pytorchvideo", "dask", "distributed", "matplotlib",
)  # fmt: skip

BLOCKED_RUN = """
import sys

BLOCKED = set(sys.argv[1].split(","))


class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"blocked for this test: {name}", name=name)
        return None


sys.meta_path.insert(0, Refuse())
sys.argv = ["stvg", *sys.argv[2:]]
from stvg.cli import main

main()
"""


def stvg_without_extras(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN, ",".join(EXTRAS), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_finder_does_block_torch():
    result = stvg_without_extras("train", "--features", ".", "--out", "x")
    assert result.returncode != 0 and "blocked for this test: torch" in result.stderr


def test_score_convert_stats_and_baseline_without_torch(tmp_path):
    converted = tmp_path / "normalized.json"
    result = stvg_without_extras("data", "convert", HCSTVG, "--out", converted)
    assert result.returncode == 0, result.stderr
    samples = json.loads(converted.read_text())["samples"]
    assert len(samples) == 3  # the fixture's three HC-STVG videos

    result = stvg_without_extras("data", "stats", "--annotations", converted, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["queries"] == 3

    # perfect predictions built from the annotations themselves: every metric is 100 %
    predictions = {s["sample_id"]: {"tube": s["tube"], "boxes": s["boxes"]} for s in samples}
    pred_file = tmp_path / "pred.json"
    pred_file.write_text(json.dumps({"format": "stvg-predictions/1", "predictions": predictions}))
    result = stvg_without_extras(
        "score", "--annotations", converted, "--predictions", pred_file, "--json"
    )
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert scores["all"]["count"] == 3
    assert all(scores["all"][m] == 1.0 for m in ("m_tIoU", "m_vIoU", "m_sIoU"))

    result = stvg_without_extras(
        "baseline", "--annotations", converted, "--out", tmp_path / "center.json"
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "center.json").is_file()


@pytest.mark.parametrize("args", [["--version"], ["-h"], ["score", "-h"], ["extract", "-h"]])
def test_help_and_version_without_torch(args):
    result = stvg_without_extras(*args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
