"""Pipeline fingerprints cover the input files: an edited annotation reruns the steps that depend
on it (extraction in place, keeping its store), an unedited rerun skips everything."""

from __future__ import annotations

import json
import os

from stvg.pipelines.inputs import annotation_files, files_state
from stvg.pipelines.steps import Pipeline, Step


def test_files_state_hashes_annotation_bytes_and_stats_the_rest(tmp_path):
    data = tmp_path / "data"
    (data / "videos").mkdir(parents=True)
    (data / "test.json").write_text('{"a": 1}')
    (data / "videos" / "v.mp4").write_bytes(b"x" * 10)
    notes = annotation_files("synthetic", data, ["test"], None)
    assert notes == [data / "test.json"]
    first = files_state(data, notes)
    assert first["count"] == 1 and list(first["annotations"]) == ["test.json"]
    assert files_state(data, notes) == first
    stat = (data / "test.json").stat()
    (data / "test.json").write_text('{"a": 1}')  # same bytes, new mtime: same state
    os.utime(data / "test.json", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert files_state(data, notes) == first
    (data / "test.json").write_text('{"a": 2}')
    edited = files_state(data, notes)
    assert edited["annotations"] != first["annotations"] and edited["files"] == first["files"]
    video = data / "videos" / "v.mp4"
    os.utime(video, ns=(video.stat().st_atime_ns, video.stat().st_mtime_ns + 10**9))
    touched = files_state(data, notes)
    assert touched["files"] != edited["files"] and touched["annotations"] == edited["annotations"]


def test_changed_inputs_rerun_downstream_and_update_an_incremental_step(tmp_path):
    (tmp_path / "data").mkdir()
    source = tmp_path / "data" / "input.json"
    source.write_text("1")
    calls: list[tuple[str, bool]] = []

    def step(name: str, after: list[str], **kwargs) -> Step:
        out = tmp_path / f"{name}.out"

        def run(resume: bool) -> dict:
            calls.append((name, resume))
            out.write_text(source.read_text())
            return {}

        return Step(name, {"k": 1}, [out], run, after=after, **kwargs)

    def steps() -> list[Step]:
        inputs = {"inputs": lambda: files_state(tmp_path / "data", [source])}
        return [
            step("extract", [], incremental=True, **inputs),
            step("train", ["extract"]),
            step("score", ["train"]),
        ]

    Pipeline(tmp_path / "p").run(steps())
    assert calls == [("extract", False), ("train", False), ("score", False)]
    calls.clear()
    Pipeline(tmp_path / "p").run(steps())
    assert calls == []  # nothing changed: all skipped
    source.write_text("2")
    Pipeline(tmp_path / "p").run(steps())
    # extract updates in place (resume mode, outputs kept); the rest run from scratch
    assert calls == [("extract", True), ("train", False), ("score", False)]
    state = json.loads((tmp_path / "p" / "pipeline.json").read_text())
    assert state["steps"]["extract"]["status"] == "complete"
    calls.clear()
    Pipeline(tmp_path / "p").run(steps())
    assert calls == []
