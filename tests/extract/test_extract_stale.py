"""Stale features: a rerun re-extracts exactly the entries whose caption, sample fields or video
file changed, and the store then equals a clean extraction of the edited data.

Tiny sizes: 4 synthetic 64x48 videos of 2.5 s at 10 fps (the ``data`` fixture of conftest.py,
copied per test with file times kept), small preset overrides; both backends.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from store_contents import store_arrays
from typer.testing import CliRunner

from stvg.cli import app
from stvg.device import torch_threads
from stvg.extract import run
from stvg.extract.backbones import build_text_encoder
from stvg.extract.config import preset
from stvg.features.store import open_store

SPLITS = ["train", "val", "test"]
SMALL = {"td": 4, "clip_size": 32, "n_short": 48, "text_layers": 1, "batch_size": 4}
BACKENDS = ["zarr", "hdf5"]


def config(backend: str):
    return preset("synthetic", backend=backend, **SMALL)


def copy_data(data: Path, to: Path) -> Path:
    shutil.copytree(data, to, copy_function=shutil.copy2)  # keeps the files' mtimes
    return to


def samples_of(data: Path) -> dict[str, list[dict]]:
    return {s: json.loads((data / f"{s}.json").read_text())["samples"] for s in SPLITS}


def edit_caption(data: Path, split: str, index: int, caption: str) -> dict:
    path = data / f"{split}.json"
    doc = json.loads(path.read_text())
    doc["samples"][index]["caption"] = caption
    path.write_text(json.dumps(doc))
    return doc["samples"][index]


def entry_files(out: Path) -> dict[str, int]:
    """zarr: every file of every entry, with its mtime_ns (rewritten files show up)."""
    return {
        str(p.relative_to(out)): p.stat().st_mtime_ns
        for p in out.glob("*/part-*.zarr/*/*/**/*")
        if p.is_file()
    }


def assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray], keys=None) -> None:
    keys = sorted(a) if keys is None else keys
    assert sorted(a) == sorted(b)
    for key in keys:
        assert a[key].shape == b[key].shape and np.array_equal(a[key], b[key]), key


def same_batch_edit(data: Path, encoder) -> tuple[int, str]:
    """A test sample and another caption that leaves its entry's text batch shape [B, L] as it
    is (the captions of an entry are encoded together, padded to the longest)."""
    samples = samples_of(data)["test"]
    length = {
        c: len(encoder.tokenizer([c])["input_ids"][0])
        for c in {s["caption"] for s in [*samples, *samples_of(data)["train"]]}
    }
    for i, sample in enumerate(samples):
        mates = [
            s["caption"] for s in samples if s["video_id"] == sample["video_id"] and s is not sample
        ]
        longest = max(length[c] for c in [sample["caption"], *mates])
        for caption in length:
            if (
                caption != sample["caption"]
                and max([length[caption], *(length[c] for c in mates)]) == longest
            ):
                return i, caption
    raise AssertionError("no caption keeps the batch shape")


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_edited_caption_reextracts_that_query_only(data, tmp_path, backend):
    work = copy_data(data, tmp_path / "data")
    out = tmp_path / "features"
    first = run(config(backend), work, out, SPLITS, progress=False)
    entries = first.new_videos
    before = store_arrays(out)
    files = entry_files(out)

    encoder = build_text_encoder(layers=1, weights="random", device="cpu")
    index, caption = same_batch_edit(work, encoder)
    edited = edit_caption(work, "test", index, caption)
    sid = edited["sample_id"]
    args = ["extract", "--dataset", "synthetic", "--data-root", str(work), "--out", str(out)]
    args += ["--backend", backend, "--json-out", str(tmp_path / "summary.json")]
    args += [x for k, v in SMALL.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    line = f"0 new videos, 1 re-extracted (changed: caption), {entries - 1} skipped (complete)"
    assert line in result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["queries"], summary["frames"]) == (1, 0)  # no video was decoded
    assert summary["changes"] == {"caption": 1}

    after = store_arrays(out)
    mine = {f"test/{sid}/text", f"test/{sid}/text_mask"}
    assert_same(before, after, sorted(set(before) - mine))
    if backend == "zarr":  # only the edited query's files were rewritten
        changed = {k for k, t in entry_files(out).items() if files.get(k) != t}
        assert {k.split("/")[3] for k in changed} == {sid}, changed
        assert f"test/part-0-of-1.zarr/queries/{sid}/zarr.json" in changed
    # its text: the encoder's states of its entry's captions (one batch, on one CPU thread as
    # stage one encodes texts), its row, as float16
    batch = [s for s in samples_of(work)["test"] if s["video_id"] == edited["video_id"]]
    with torch_threads(1):
        states, mask = encoder.encode([s["caption"] for s in batch], max_length=24)
    row = [s["sample_id"] for s in batch].index(sid)
    n = int(mask[row].sum())
    expected = states[row, :n].numpy().astype(np.float16).astype(np.float32)
    assert np.array_equal(after[f"test/{sid}/text"], expected)
    assert open_store(out).query(sid, "test")["sample"].caption == caption

    clean = tmp_path / "clean"
    run(config(backend), work, clean, SPLITS, progress=False)
    assert_same(store_arrays(clean), after)

    again = run(config(backend), work, out, SPLITS, progress=False)
    assert (again.new_videos, again.reextracted, again.skipped) == (0, 0, entries)


def test_a_longer_caption_reencodes_its_entry_neighbours(data, tmp_path):
    work = copy_data(data, tmp_path / "data")
    out = tmp_path / "features"
    run(config("zarr"), work, out, SPLITS, progress=False)
    samples = samples_of(work)["test"]
    edited = edit_caption(work, "test", 0, "the purple hexagon dances in circles " * 2)
    mates = [s for s in samples if s["video_id"] == edited["video_id"]]
    summary = run(config("zarr"), work, out, SPLITS, progress=False)
    assert (summary.reextracted, summary.queries, summary.frames) == (1, len(mates), 0)
    assert summary.changes == (
        {"caption": 1, "text batch": 1} if len(mates) > 1 else {"caption": 1}
    )
    clean = tmp_path / "clean"
    run(config("zarr"), work, clean, SPLITS, progress=False)
    assert_same(store_arrays(clean), store_arrays(out))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_touched_or_replaced_video_reextracts_its_entry_and_queries(data, tmp_path, backend):
    work = copy_data(data, tmp_path / "data")
    out = tmp_path / "features"
    run(config(backend), work, out, SPLITS, progress=False)
    before = store_arrays(out)
    samples = samples_of(work)
    split = "train"
    target = samples[split][0]
    queries = [s for s in samples[split] if s["video_id"] == target["video_id"]]
    entry = f"{target['video_id']}@{target['segment'][0]}-{target['segment'][1]}"

    # touched: same bytes, new mtime -> re-extracted, same values
    video = work / target["video_path"]
    stat = video.stat()
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    summary = run(config(backend), work, out, SPLITS, progress=False)
    assert (summary.new_videos, summary.reextracted) == (0, 1)
    assert summary.changes == {"video file": 1} and summary.queries == len(queries)
    assert summary.frames > 0
    assert_same(before, store_arrays(out))
    attrs = open_store(out).attrs("videos", entry, split)
    assert json.loads(attrs["source"])["file"]["mtime_ns"] == stat.st_mtime_ns + 5_000_000_000

    # replaced by another video's bytes: its arrays change, to what a clean run gives
    other = next(s for s in samples["test"] if s["video_id"] != target["video_id"])
    shutil.copyfile(work / other["video_path"], video)
    summary = run(config(backend), work, out, SPLITS, progress=False)
    assert (summary.new_videos, summary.reextracted) == (0, 1)
    after = store_arrays(out)
    assert not np.array_equal(after[f"{split}/{entry}/image"], before[f"{split}/{entry}/image"])
    clean = tmp_path / "clean"
    run(config(backend), work, clean, SPLITS, progress=False)
    assert_same(store_arrays(clean), after)


def test_an_edited_box_rewrites_the_stored_sample(data, tmp_path):
    work = copy_data(data, tmp_path / "data")
    out = tmp_path / "features"
    run(config("zarr"), work, out, SPLITS, progress=False)
    path = work / "val.json"
    doc = json.loads(path.read_text())
    sample = doc["samples"][0]
    frame = sorted(sample["boxes"], key=int)[0]
    sample["boxes"][frame] = [1.0, 2.0, 3.0, 4.0]
    path.write_text(json.dumps(doc))
    summary = run(config("zarr"), work, out, SPLITS, progress=False)
    assert (summary.reextracted, summary.changes, summary.frames) == (1, {"boxes": 1}, 0)
    stored = open_store(out).query(sample["sample_id"], "val")["sample"]
    assert stored.boxes[int(frame)] == (1.0, 2.0, 3.0, 4.0)


def test_entries_without_a_source_are_kept_with_one_warning(data, tmp_path, caplog):
    work = copy_data(data, tmp_path / "data")
    source = tmp_path / "source"
    run(config("zarr"), work, source, SPLITS, progress=False)
    # strip the source attribute, as stvg versions before it wrote entries
    for meta in source.glob("*/part-*.zarr/*/*/zarr.json"):
        doc = json.loads(meta.read_text())
        doc["attributes"].pop("source", None)
        meta.write_text(json.dumps(doc))
    before = store_arrays(source)
    edit_caption(work, "test", 0, "a caption the old entry does not know")
    with caplog.at_level(logging.WARNING):
        summary = run(config("zarr"), work, source, SPLITS, progress=False)
    assert (summary.new_videos, summary.reextracted) == (0, 0)
    assert summary.legacy == sum(len(v) for v in samples_of(work).values()) + summary.skipped
    warnings = [r for r in caplog.records if "without a source record" in r.getMessage()]
    assert len(warnings) == 1
    assert_same(before, store_arrays(source))

    # a query missing from an old entry is written (with a source), then stays complete
    gone = next(p for p in source.glob("test/part-*.zarr/queries/*") if p.is_dir())
    shutil.rmtree(gone)
    summary = run(config("zarr"), work, source, SPLITS, progress=False)
    assert (summary.new_videos, summary.reextracted, summary.queries) == (1, 0, 1)
    again = run(config("zarr"), work, source, SPLITS, progress=False)
    assert (again.new_videos, again.reextracted, again.queries) == (0, 0, 0)


def test_a_changed_entry_in_a_part_of_another_sharding_layout(data, tmp_path):
    work = copy_data(data, tmp_path / "data")
    out = tmp_path / "features"
    for k in range(2):
        run(config("hdf5"), work, out, SPLITS, shard=(k, 2), progress=False)
    edited = edit_caption(work, "train", 0, "the orange star spins twice")
    summary = run(config("hdf5"), work, out, SPLITS, shard=(0, 1), progress=False)
    assert summary.reextracted == 1 and summary.changes["caption"] == 1
    store = open_store(out)
    assert store.holders("queries", edited["sample_id"], "train") == [(0, 1)]
    clean = tmp_path / "clean"
    run(config("hdf5"), work, clean, SPLITS, progress=False)
    assert_same(store_arrays(clean), store_arrays(out))


def test_a_changed_entry_in_a_part_being_written_is_refused(data, tmp_path, monkeypatch):
    from stvg.errors import InputError
    from stvg.extract import runner

    monkeypatch.setattr(runner, "LOCK_WAIT", 1.0)

    work = copy_data(data, tmp_path / "data")
    out = tmp_path / "features"
    for k in range(2):
        run(config("zarr"), work, out, SPLITS, shard=(k, 2), progress=False)
    edited = edit_caption(work, "train", 0, "the orange star spins twice")
    store = open_store(out)
    holder = store.holders("queries", edited["sample_id"], "train")[0]
    before = store_arrays(out)
    with store.writer("train", part=holder):  # that part's writer is running
        with pytest.raises(InputError) as error:
            run(config("zarr"), work, out, SPLITS, shard=(0, 1), progress=False)
    message = str(error.value)
    assert f"part {holder[0]}-of-2" in message and "running now" in message
    assert_same(before, store_arrays(out))


# a kill during a re-extraction ---------------------------------------------------------------


def rewritten_videos(out: Path, mtime_ns: int) -> int:
    """Video entries complete with a source naming the new mtime (zarr ``zarr.json``)."""
    n = 0
    for meta in out.glob("*/part-*.zarr/videos/*/zarr.json"):
        try:
            attrs = json.loads(meta.read_text()).get("attributes", {})
        except (OSError, ValueError):
            continue
        n += attrs.get("complete") is True and f'"mtime_ns":{mtime_ns}' in attrs.get("source", "")
    return n


def test_kill_9_during_reextraction_then_rerun_equals_clean(data, tmp_path):
    work = copy_data(data, tmp_path / "data")
    out = tmp_path / "features"
    first = run(config("zarr"), work, out, SPLITS, progress=False)
    mtime = time.time_ns() + 10_000_000_000
    for video in (work / "videos").iterdir():
        os.utime(video, ns=(mtime, mtime))
    edit_caption(work, "test", 0, "the purple hexagon dances in circles")

    args = ["extract", "--dataset", "synthetic", "--data-root", str(work), "--out", str(out)]
    args += [x for k, v in SMALL.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    code = "from stvg.cli import main; main()"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "-q", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while rewritten_videos(out, mtime) < 1:
        assert process.poll() is None, "extract ended before the kill"
        assert time.monotonic() < deadline, "no progress in 120 s"
        time.sleep(0.002)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    assert rewritten_videos(out, mtime) < first.new_videos, "the kill came after the last entry"

    summary = run(config("zarr"), work, out, SPLITS, progress=False)
    assert summary.failed == []
    assert summary.new_videos + summary.reextracted + summary.skipped == first.new_videos
    assert rewritten_videos(out, mtime) == first.new_videos
    assert open_store(out).info()["incomplete"] == 0
    clean = tmp_path / "clean"
    run(config("zarr"), work, clean, SPLITS, progress=False)
    assert_same(store_arrays(clean), store_arrays(out))
