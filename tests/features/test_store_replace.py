"""Replacing a stale entry (``write_*(..., replace=True)``, ``PartWriter.remove``) on both
backends: the completion marker is cleared first, so a ``kill -9`` at any moment leaves the old
entry whole or no entry at all, never a mix; the next writer completes it.

Kill tests run a writer in a child process (this file, run as a script) and ``SIGKILL`` it at a
chosen point. Expected values are the float16-rounded inputs (``test_store_conformance``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_store_conformance import (
    assert_entry_exact,
    entry_arrays,
    entry_id,
    fp16,
    make_sample,
    manifest,
    write_entry,
)

from stvg.features.store import create_store, open_store

REPO = Path(__file__).resolve().parent.parent.parent

BACKENDS = ["zarr", "hdf5"]
STALE = 1  # the entry replaced; its new values are those of entry NEW
NEW = 7


def replace_entry(writer) -> None:
    """Entry STALE's video and query, rewritten with entry NEW's arrays."""
    a = entry_arrays(NEW)
    writer.write_video(
        entry_id(STALE), a["frame_ids"], a["image"], a["clip_spans"], a["motion"], replace=True
    )
    writer.write_query(make_sample(STALE), a["text"], a["text_mask"], entry_id(STALE), replace=True)


def assert_replaced(store) -> None:
    a = entry_arrays(NEW)
    video = store.video(entry_id(STALE), "train")
    np.testing.assert_array_equal(video["image"], fp16(a["image"]))
    np.testing.assert_array_equal(video["motion"], fp16(a["motion"]))
    np.testing.assert_array_equal(video["frame_ids"], a["frame_ids"])
    np.testing.assert_array_equal(store.query("s001", "train")["text"], fp16(a["text"]))


def assert_others(store) -> None:
    for i in (0, 2, 3):
        assert_entry_exact(store, "train", i)


def first_part(root: Path, entries: int = 4, **kwargs):
    store = create_store(root, manifest(kwargs.pop("backend")))
    with store.writer("train", **kwargs) as w:
        for i in range(entries):
            write_entry(w, i)
    return store


@pytest.mark.parametrize("backend", BACKENDS)
def test_replace_round_trip_and_refusal_without_it(tmp_path, backend):
    store = first_part(tmp_path / "s", backend=backend)
    with store.writer("train", batch_entries=1) as w:
        with pytest.raises(ValueError, match="already complete"):
            write_entry(w, STALE)
        replace_entry(w)  # HDF5: consolidated into a batch at once (batch_entries=1)
        replace_entry(w)  # a second time, over the batched copy
        assert w.remove("videos", "no-such-entry") is False
    reader = open_store(tmp_path / "s")
    assert reader.entry_ids("train") == [entry_id(i) for i in range(4)]
    assert_replaced(reader)
    assert_others(reader)
    assert reader.info()["incomplete"] == 0
    names = sorted(p.name for p in (tmp_path / "s/train").iterdir())
    assert len(names) == 2  # the part and its lock: no working folder or tombstone left


@pytest.mark.parametrize("backend", BACKENDS)
def test_remove_then_reopen(tmp_path, backend):
    store = first_part(tmp_path / "s", backend=backend)
    with store.writer("train") as w:
        assert w.remove("videos", entry_id(STALE)) is True
        assert not w.has_video(entry_id(STALE)) and w.has_query("s001")
    reader = open_store(tmp_path / "s")
    assert reader.entry_ids("train") == [entry_id(i) for i in (0, 2, 3)]
    assert_others(reader)


# kills ----------------------------------------------------------------------------------------


def _child(root: str, backend: str, mode: str) -> None:
    """Replace entry STALE in a finished part and stop where ``mode`` says: ``removed`` (the
    marker cleared, nothing new written), ``arrays`` (inside the new video entry, after two of
    its arrays), ``final-after-rename`` (HDF5: the finished file renamed, tombstones not yet
    deleted)."""
    from stvg.features import _hdf5, _zarr

    part_class = _zarr.ZarrPart if backend == "zarr" else _hdf5.Hdf5Part
    original_write, original_remove = part_class.write, part_class.remove

    def pause() -> None:
        print("PAUSED", flush=True)
        time.sleep(60)

    class PausingDict(dict):
        def items(self):
            for n, item in enumerate(super().items()):
                if n == 2:
                    pause()
                yield item

    def write(self, kind, key, attrs, arrays, *args, **kwargs):
        if mode == "arrays" and kind == "videos":
            arrays = PausingDict(arrays)
        return original_write(self, kind, key, attrs, arrays, *args, **kwargs)

    def remove(self, kind, key):
        original_remove(self, kind, key)
        if mode == "removed":
            pause()

    class OsProxy:
        def __getattr__(self, name):
            return getattr(os, name)

        def replace(self, src, dst):
            os.replace(src, dst)
            if mode == "final-after-rename" and Path(dst).name.startswith("part-"):
                pause()

    part_class.write, part_class.remove = write, remove
    _hdf5.os = OsProxy()
    store = open_store(root)
    with store.writer("train") as writer:
        replace_entry(writer)


def run_child_until_paused(root: Path, backend: str, mode: str) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), str(root), backend, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    line = proc.stdout.readline()
    if not line.startswith("PAUSED"):
        proc.kill()
        raise AssertionError(f"child ended before pausing: {proc.stderr.read()}")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    proc.stderr.close()


@pytest.mark.parametrize(
    "backend,mode",
    [
        ("zarr", "removed"),
        ("zarr", "arrays"),
        ("hdf5", "removed"),
        ("hdf5", "arrays"),
        ("hdf5", "final-after-rename"),
    ],
)
def test_kill_9_during_a_replacement(tmp_path, backend, mode):
    root = tmp_path / "s"
    first_part(root, backend=backend)
    run_child_until_paused(root, backend, mode)
    reader = open_store(root)
    assert_others(reader)
    if mode == "final-after-rename":  # the new video and query are in; the old ones gone
        assert_replaced(reader)
    else:  # the stale video entry no longer counts; nothing half-written counts either
        assert not reader.has_video(entry_id(STALE), "train")
    # the next writer cleans up and completes it
    with open_store(root).writer("train") as w:
        if not w.has_video(entry_id(STALE)) or not w.has_query("s001"):
            replace_entry(w)
    reader = open_store(root)
    assert_replaced(reader)
    assert_others(reader)
    assert reader.info()["incomplete"] == 0


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], sys.argv[3])
