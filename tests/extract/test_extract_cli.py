"""``stvg extract`` through the CLI: shapes, rerun, failures (exit 3), offline pretrained weights
(exit 2), and ``stvg bench extract --quick``.

Tiny sizes: 64x48 synthetic videos of 2.5 s at 10 fps (25 frames), small preset overrides.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from stvg.cli import app
from stvg.data.synth import synthesize
from stvg.features.store import open_store

runner = CliRunner()
SMALL = ["--td", "4", "--clip-size", "32", "--n-short", "48", "--text-layers", "1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    synthesize(root, videos=6, seconds=2.5, fps=10.0, size=(64, 48), progress=False)
    return root


def extract(data: Path, out: Path, *extra: str, env: dict[str, str] | None = None):
    args = ["extract", "--dataset", "synthetic", "--data-root", str(data), "--out", str(out)]
    return runner.invoke(app, [*args, *SMALL, *extra], env=env)


def videos_of(data: Path) -> dict[str, str]:
    """``{video_id: split}`` from the annotation files."""
    out = {}
    for split in ("train", "val", "test"):
        for s in json.loads((data / f"{split}.json").read_text())["samples"]:
            out[s["video_id"]] = split
    return out


def test_cli_extracts_hdf5_and_rerun_says_0_new(data, tmp_path):
    out = tmp_path / "features"
    result = extract(data, out, "--backend", "hdf5", "--json-out", str(tmp_path / "summary.json"))
    assert result.exit_code == 0, result.output
    assert "6 new videos, 0 skipped (complete), 0 failed" in result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    # per video: 13 static frames (every 2nd of 25) + 4 clips x 8 frames
    assert summary["frames"] == 6 * (13 + 4 * 8)
    store = open_store(out)
    for video_id, split in videos_of(data).items():
        v = store.video(f"{video_id}@0-25", split)
        assert v["frame_ids"].tolist() == list(range(0, 25, 2))
        assert v["image"].shape == (13, 192, 3, 4)  # 48x64 / 16
        assert v["clip_spans"].tolist() == [[0, 6], [6, 12], [12, 18], [18, 25]]
        assert v["motion"].shape == (4, 27, 2, 2)  # 32 / 16
    store.close()
    info = runner.invoke(app, ["features", "info", str(out), "--json"])
    assert json.loads(info.output)["videos"] == 6

    again = extract(data, out, "--backend", "hdf5")
    assert again.exit_code == 0, again.output
    assert "0 new videos, 6 skipped (complete), 0 failed" in again.output


def test_failures_are_recorded_and_retried(data, tmp_path):
    damaged = tmp_path / "data"
    shutil.copytree(data, damaged)
    videos = damaged / "videos"
    good = (videos / "v0001.mp4").read_bytes()
    (videos / "v0001.mp4").write_bytes(good[: len(good) // 2])  # truncated: no moov index
    payload = bytearray((videos / "v0003.mp4").read_bytes())
    start = payload.find(b"mdat") + 4  # garbage over the first half of the coded frames
    n = (len(payload) - start) // 2
    payload[start : start + n] = np.random.default_rng(0).integers(0, 256, n, np.uint8).tobytes()
    (videos / "v0003.mp4").write_bytes(bytes(payload))
    (videos / "v0004.mp4").unlink()
    expected = {"v0001@0-25": "truncated", "v0003@0-25": "corrupt", "v0004@0-25": "missing"}

    out = tmp_path / "features"
    result = extract(damaged, out)
    assert result.exit_code == 3, result.output
    assert "3 new videos, 0 skipped (complete), 3 failed" in result.output
    for entry_id, reason in expected.items():
        assert f"failed: {entry_id} ({reason})" in result.output
    assert "3 video(s) failed" in result.output
    lines = [json.loads(x) for x in (out / "failures.jsonl").read_text().splitlines()]
    assert {x["entry_id"]: x["reason"] for x in lines} == expected
    split_of = videos_of(data)
    for x in lines:
        assert x["split"] == split_of[x["video_id"]] and x["message"]
        assert x["video_path"].endswith(f"{x['video_id']}.mp4")
    store = open_store(out)
    done = {e for split in ("train", "val", "test") for e in store.entry_ids(split)}
    assert done == {f"{v}@0-25" for v in ("v0000", "v0002", "v0005")}

    # a rerun retries only the failed ones
    again = extract(damaged, out)
    assert again.exit_code == 3
    assert "0 new videos, 3 skipped (complete), 3 failed" in again.output
    assert len((out / "failures.jsonl").read_text().splitlines()) == 6
    # --skip-failed leaves them alone
    skipping = extract(damaged, out, "--skip-failed")
    assert skipping.exit_code == 0, skipping.output
    assert "0 new videos, 6 skipped (complete), 0 failed" in skipping.output
    # once repaired, a video is extracted by the next plain rerun
    (videos / "v0001.mp4").write_bytes(good)
    repaired = extract(damaged, out)
    assert repaired.exit_code == 3
    assert "1 new videos, 3 skipped (complete), 2 failed" in repaired.output
    assert open_store(out).has_video("v0001@0-25", split_of["v0001"])


def test_pretrained_offline_names_what_to_download(data, tmp_path):
    env = {"TORCH_HOME": str(tmp_path / "torch"), "HF_HOME": str(tmp_path / "hf")}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    args = ["--weights", "pretrained", "--image-backbone", "resnet18"]
    result = extract(data, tmp_path / "features", *args, env=env)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    # the first encoder built is the image one: torchvision's ResNet18
    assert "https://download.pytorch.org/models/resnet18-" in result.output
    assert str(tmp_path / "torch") in result.output  # where to put it
    assert "--weights random" in result.output


@pytest.mark.slow  # 12-15 s alone, up to ~40 s on a loaded 2-core machine
def test_bench_extract_quick(tmp_path):
    out = tmp_path / "bench.json"
    result = runner.invoke(app, ["bench", "extract", "--quick", "--json-out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert json.loads(result.output.strip().splitlines()[-1]) == report
    assert report["quick"] is True
    # the ratio is the two measured rates divided, and both ran on the same frames
    ratio = report["extract_frames_per_s"] / report["backbone_frames_per_s"]
    assert report["ratio_vs_backbone"] == pytest.approx(ratio, rel=1e-3)
    # timings on a shared CPU are noise-prone: only their sanity is tested here
    assert report["frames"] == 3 * (10 + 4 * 8)  # 3 videos of 20 frames: 10 static, 4 clips of 8
    assert report["ratio_vs_backbone"] > 0 and report["ratio_cpu_time"] > 0
    assert report["store_bytes"]["int8_over_float16"] <= 0.5
    assert report["random_read"]["zarr"]["reads_per_s"] > 0


def test_unknown_backbone_is_refused_by_option_before_any_write(data, tmp_path):
    out = tmp_path / "features"
    result = extract(data, out, "--video-backbone", "pixelfloww")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "'--video-backbone'" in result.output and "pixelflow" in result.output
    assert not out.exists()
