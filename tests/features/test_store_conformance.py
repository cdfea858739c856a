"""One conformance suite for the feature store, run against both backends (zarr and HDF5).

Expected values are computed here from the inputs: float16 storage must read back exactly as
``x.astype(float16)``; int8 must stay within ``max|x_c| / 127 / 2`` per channel ``c``.
Kill tests run a writer in a child process (this file, run as a script) and ``SIGKILL`` it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from stvg.data.sample import Sample
from stvg.features.manifest import Manifest
from stvg.features.store import (
    NonFiniteFeatures,
    PartLocked,
    create_store,
    entry_key,
    open_store,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BACKENDS = ["zarr", "hdf5"]


# data -----------------------------------------------------------------------------------------


def relu_maps(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Feature-map-like data: per-channel scale and shift, then ReLU (about 60% zeros)."""
    c = shape[1]
    scale = np.exp(rng.normal(0.0, 0.7, c)).reshape(1, c, *([1] * (len(shape) - 2)))
    shift = rng.normal(-0.3, 0.5, c).reshape(1, c, *([1] * (len(shape) - 2)))
    return np.maximum(0.0, rng.normal(size=shape) * scale + shift).astype(np.float32)


def text_states(rng: np.random.Generator, length: int, dim: int) -> np.ndarray:
    """RoBERTa-like states: small dense values plus a few outlier channels."""
    x = rng.normal(0.0, 0.3, (length, dim))
    x[:, : max(1, dim // 64)] *= 30.0
    return x.astype(np.float32)


def entry_arrays(i: int, ts: int = 6, td: int = 3, c: int = 32, c2: int = 24, size=(4, 5)) -> dict:
    rng = np.random.default_rng(1000 + i)
    h, w = size
    length = 5 + i % 3
    return {
        "frame_ids": (np.arange(ts) * 5 + i).astype(np.int64),
        "image": relu_maps(rng, (ts, c, h, w)),
        "clip_spans": np.array([[10 * k + i, 10 * k + i + 10] for k in range(td)], dtype=np.int64),
        "motion": relu_maps(rng, (td, c2, h // 2 + 1, w // 2 + 1)),
        "text": text_states(rng, length, 48),
        "text_mask": np.arange(length) < length - 1,
    }


def make_sample(i: int) -> Sample:
    return Sample(
        sample_id=f"s{i:03d}",
        video_id=f"v{i:03d}",
        video_path=f"videos/v{i:03d}.mp4",
        fps=25.0,
        frame_count=300,
        width=320,
        height=240,
        segment=(0, 300),
        tube=(10 + i, 50 + i),
        boxes={10 + i: (1.0, 2.0, 30.0, 40.5)},
        caption=f"the red square number {i} moves left",
        qtype="declarative",
        extra={"kind": "easy"},
    )


def entry_id(i: int) -> str:
    return f"v{i:03d}@0-300"


def manifest(backend: str, dtype: str = "float16") -> Manifest:
    return Manifest(
        dataset="synthetic",
        backbones={"image": {"name": "resnet18", "layer": "layer3", "weights": "random"}},
        sampling={"static_fps": 5},
        dtype=dtype,
        backend=backend,
    )


def write_entry(writer, i: int, resume: bool = False, **sizes) -> None:
    """Write video and query entry ``i`` (with ``resume``, only those not complete yet)."""
    a = entry_arrays(i, **sizes)
    if not (resume and writer.has_video(entry_id(i))):
        writer.write_video(entry_id(i), a["frame_ids"], a["image"], a["clip_spans"], a["motion"])
    if not (resume and writer.has_query(make_sample(i).sample_id)):
        writer.write_query(make_sample(i), a["text"], a["text_mask"], entry_id(i))


def fp16(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16).astype(np.float32)


def assert_entry_exact(store, split: str, i: int, **sizes) -> None:
    """Entry ``i`` reads back as its float16-rounded inputs, with the documented dtypes."""
    a = entry_arrays(i, **sizes)
    video = store.video(entry_id(i), split)
    assert video["frame_ids"].dtype == np.int32 and video["clip_spans"].dtype == np.int32
    assert video["image"].dtype == np.float32 and video["motion"].dtype == np.float32
    np.testing.assert_array_equal(video["frame_ids"], a["frame_ids"])
    np.testing.assert_array_equal(video["clip_spans"], a["clip_spans"])
    np.testing.assert_array_equal(video["image"], fp16(a["image"]))
    np.testing.assert_array_equal(video["motion"], fp16(a["motion"]))
    query = store.query(make_sample(i).sample_id, split)
    assert query["text"].dtype == np.float32 and query["text_mask"].dtype == np.bool_
    np.testing.assert_array_equal(query["text"], fp16(a["text"]))
    np.testing.assert_array_equal(query["text_mask"], a["text_mask"])
    assert query["sample"].to_json() == make_sample(i).to_json()
    assert query["entry_id"] == entry_id(i)


# child process (kill and lock tests) -----------------------------------------------------------


def _pause(message: str) -> None:
    print(message, flush=True)
    time.sleep(60)  # the parent kills us here


def _child(root: str, backend: str, mode: str, first: int, count: int, pause_at: int) -> None:
    """Write entries ``first .. first+count-1``, printing ``done i`` after each; ``mode`` says
    where to stop and wait to be killed: ``arrays`` (inside entry ``pause_at``, after two of its
    arrays), ``batch-before-rename`` / ``batch-after-rename`` (HDF5 consolidation),
    ``final-before-rename`` / ``final-after-rename`` (HDF5: assembling the single file at close),
    ``lock`` (right after taking the lock), ``run`` (never: write on; the parent kills at random).
    """
    from stvg.features import _hdf5, _zarr

    part_class = _zarr.ZarrPart if backend == "zarr" else _hdf5.Hdf5Part
    original = part_class.write

    class PausingDict(dict):
        def items(self):
            for n, item in enumerate(super().items()):
                if n == 2:
                    _pause("PAUSED")
                yield item

    def write(self, kind, key, attrs, arrays, *args, **kwargs):
        if mode == "arrays" and kind == "videos" and key == entry_key(entry_id(pause_at)):
            arrays = PausingDict(arrays)
        return original(self, kind, key, attrs, arrays, *args, **kwargs)

    part_class.write = write

    class OsProxy:
        def __getattr__(self, name):
            return getattr(os, name)

        def replace(self, src, dst):
            name = Path(dst).name
            steps = {"batch-": "batch", "part-": "final"}
            step = next((v for k, v in steps.items() if name.startswith(k)), "")
            if step and mode == f"{step}-before-rename":
                _pause("PAUSED")
            os.replace(src, dst)
            if step and mode == f"{step}-after-rename":
                _pause("PAUSED")

    _hdf5.os = OsProxy()
    sizes = {"ts": 16, "c": 128, "size": (8, 10)} if mode == "run" else {}
    store = create_store(root, manifest(backend))
    with store.writer("train", part=(0, 1), batch_entries=3) as writer:
        if mode == "lock":
            _pause(f"LOCKED {os.getpid()}")
        for i in range(first, first + count):
            write_entry(writer, i, resume=True, **sizes)
            print(f"done {i}", flush=True)


def start_child(
    root: Path, backend: str, mode: str, first: int = 0, count: int = 6, pause_at: int = 4
):
    args = [str(root), backend, mode, str(first), str(count), str(pause_at)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_for(proc: subprocess.Popen, prefix: str) -> tuple[str, list[str]]:
    """Read the child's lines until one starts with ``prefix``; return it and those before."""
    seen = []
    while True:
        line = proc.stdout.readline()
        if not line:
            proc.kill()
            raise AssertionError(f"child ended before {prefix!r}; stderr:\n{proc.stderr.read()}")
        if line.startswith(prefix):
            return line.strip(), seen
        seen.append(line.strip())


def kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    proc.stderr.close()


# the suite ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
class TestStoreConformance:
    def test_round_trip_float16(self, tmp_path, backend):
        store = create_store(tmp_path / "s", manifest(backend))
        with store.writer("train") as w:
            for i in range(3):
                write_entry(w, i)
        reader = open_store(tmp_path / "s")
        assert reader.splits() == ["train"]
        for i in range(3):
            assert_entry_exact(reader, "train", i)
        assert [s.sample_id for s in reader.samples("train")] == ["s000", "s001", "s002"]
        assert reader.entry_of("s001", "train") == entry_id(1)
        info = reader.info()
        assert (info["videos"], info["queries"], info["incomplete"], info["failures"]) == (
            3,
            3,
            0,
            0,
        )
        assert info["backend"] == backend and info["dtype"] == "float16"
        assert info["shapes"]["image"] == {"entries": 3, "rows": 18, "shape": [6, 32, 4, 5]}
        assert info["shapes"]["text"]["shape"] == [None, 48]  # lengths 5, 6, 7 vary
        assert info["bytes"] > 0

    def test_round_trip_int8_error_bound(self, tmp_path, backend):
        store = create_store(tmp_path / "s", manifest(backend, "int8"))
        with store.writer("train") as w:
            write_entry(w, 0)
        a = entry_arrays(0)
        video, query = store.video(entry_id(0), "train"), store.query("s000", "train")
        np.testing.assert_array_equal(video["frame_ids"], a["frame_ids"])
        np.testing.assert_array_equal(query["text_mask"], a["text_mask"])
        for name, got in (
            ("image", video["image"]),
            ("motion", video["motion"]),
            ("text", query["text"]),
        ):
            x = a[name]
            assert got.dtype == np.float32 and got.shape == x.shape
            other = tuple(i for i in range(x.ndim) if i != 1)
            scale = np.abs(x).max(axis=other) / 127.0  # the formula, per channel
            error = np.abs(x - got).max(axis=other)
            assert np.all(error <= scale / 2 * (1 + 1e-5) + 1e-12), name
            assert error.max() > 0  # really quantized, not stored losslessly
            assert np.abs(x - got).max() < np.abs(x).max() / 200

    def test_int8_at_most_half_the_bytes(self, tmp_path, backend):
        sizes = {"ts": 16, "td": 4, "c": 256, "c2": 288, "size": (8, 10)}
        totals = {}
        for dtype in ("float16", "int8"):
            store = create_store(tmp_path / dtype, manifest(backend, dtype))
            with store.writer("train") as w:
                for i in range(2):
                    write_entry(w, i, **sizes)
            totals[dtype] = store.info()["bytes"]
        assert totals["int8"] <= 0.5 * totals["float16"], totals

    def test_non_finite_and_fp16_overflow_refused_before_writing(self, tmp_path, backend):
        for dtype in ("float16", "int8"):
            store = create_store(tmp_path / dtype, manifest(backend, dtype))
            a = entry_arrays(0)
            with store.writer("train") as w:
                image = a["image"].copy()
                image[2, 3, 1, 1] = np.inf
                with pytest.raises(NonFiniteFeatures) as error:
                    w.write_video("bad@0-9", a["frame_ids"], image, a["clip_spans"], a["motion"])
                text = str(error.value)
                assert "bad@0-9" in text and "'image'" in text and "1 non-finite" in text
                assert "(2, 3, 1, 1)" in text
                motion = a["motion"].copy()
                motion[0, 0, 0, 0] = 7.0e4  # beyond float16's 65504
                with pytest.raises(
                    NonFiniteFeatures, match="'motion'.*1 values beyond the float16"
                ):
                    w.write_video("big@0-9", a["frame_ids"], a["image"], a["clip_spans"], motion)
                text_states_ = a["text"].copy()
                text_states_[0, 0] = np.nan
                with pytest.raises(NonFiniteFeatures, match="sample s000.*'text'"):
                    w.write_query(make_sample(0), text_states_, a["text_mask"], "bad@0-9")
                assert not w.has_video("bad@0-9") and not w.has_query("s000")
            info = store.info()
            assert (info["videos"], info["queries"], info["incomplete"]) == (0, 0, 0)

    def test_incomplete_entry_is_skipped_then_rewritten(self, tmp_path, backend, monkeypatch):
        store = create_store(tmp_path / "s", manifest(backend))
        with store.writer("train") as w:
            write_entry(w, 0)
        # An exception after two arrays leaves a half-written entry, as a crash would.
        from stvg.features._hdf5 import Hdf5Part
        from stvg.features._zarr import ZarrPart

        part_class = ZarrPart if backend == "zarr" else Hdf5Part
        original = part_class.write

        def failing(self, kind, key, attrs, arrays, *args, **kwargs):
            class Boom(dict):
                def items(self):
                    for n, item in enumerate(super().items()):
                        if n == 2:
                            raise RuntimeError("disk gone")
                        yield item

            return original(self, kind, key, attrs, Boom(arrays), *args, **kwargs)

        monkeypatch.setattr(part_class, "write", failing)
        w = store.writer("train")
        with pytest.raises(RuntimeError, match="disk gone"):
            write_entry(w, 1)
        monkeypatch.setattr(part_class, "write", original)
        os.close(w._lock_fd)  # abandon the writer without closing the part, like a crash
        reader = open_store(tmp_path / "s")
        assert reader.info()["incomplete"] == 1
        assert not reader.has_video(entry_id(1), "train")
        assert [s.sample_id for s in reader.samples("train")] == ["s000"]
        with pytest.raises(KeyError, match="no complete video entry"):
            reader.video(entry_id(1), "train")
        with store.writer("train") as w:  # opening deletes the half entry
            assert not w.has_video(entry_id(1))
            write_entry(w, 1)
        reader.refresh()
        assert reader.info()["incomplete"] == 0
        assert_entry_exact(reader, "train", 0)
        assert_entry_exact(reader, "train", 1)

    def test_has_for_resume_and_no_silent_rewrite(self, tmp_path, backend):
        store = create_store(tmp_path / "s", manifest(backend))
        with store.writer("val") as w:
            assert not w.has_video(entry_id(0)) and not w.has_query("s000")
            write_entry(w, 0)
            assert w.has_video(entry_id(0)) and w.has_query("s000")
        again = create_store(tmp_path / "s", manifest(backend))
        with again.writer("val") as w:
            assert w.has_video(entry_id(0)) and w.has_query("s000")
            assert not w.has_video(entry_id(1))
            a = entry_arrays(0)
            with pytest.raises(ValueError, match="already complete"):
                w.write_video(entry_id(0), a["frame_ids"], a["image"], a["clip_spans"], a["motion"])
        assert again.has_video(entry_id(0), "val") and not again.has_video(entry_id(0), "train")

    def test_two_parts_read_as_one_split(self, tmp_path, backend):
        store = create_store(tmp_path / "s", manifest(backend))
        with store.writer("test", part=(0, 2)) as w0:
            write_entry(w0, 0)
            write_entry(w0, 2)
        with store.writer("test", part=(1, 2)) as w1:
            assert w1.has_video(entry_id(0))  # complete in the other part: a rerun skips it
            write_entry(w1, 1)
        reader = open_store(tmp_path / "s")
        assert [s.sample_id for s in reader.samples("test")] == ["s000", "s001", "s002"]
        assert reader.entry_ids("test") == [entry_id(0), entry_id(1), entry_id(2)]
        for i in range(3):
            assert_entry_exact(reader, "test", i)
        ext = ".zarr" if backend == "zarr" else ".h5"
        assert reader.info()["splits"]["test"]["parts"] == [
            f"part-0-of-2{ext}",
            f"part-1-of-2{ext}",
        ]

    def test_reader_survives_the_writer_moving_files(self, tmp_path, backend):
        store = create_store(tmp_path / "s", manifest(backend))
        writer = store.writer("train", batch_entries=100)
        write_entry(writer, 0)
        reader = open_store(tmp_path / "s")
        assert reader.has_video(entry_id(0), "train") and not reader.has_video(entry_id(1), "train")
        write_entry(writer, 1)
        writer.close()  # HDF5: consolidates, deleting the pending file the reader indexed
        assert_entry_exact(reader, "train", 0)
        reader.refresh()  # a reader's index is a snapshot; refresh() shows new entries
        assert reader.has_video(entry_id(1), "train")

    def test_lazy_frame_and_clip_reads(self, tmp_path, backend):
        store = create_store(tmp_path / "s", manifest(backend))
        sizes = {"ts": 20, "c": 8}
        with store.writer("train") as w:
            write_entry(w, 0, **sizes)
        a = entry_arrays(0, **sizes)
        # sparse picks (a row selection), dense ones (a covering slice), one run, repeats
        for frames in ([17, 3, 3, 0], [9, 5, 7, 5, 11, 6], [4, 5, 6], [19]):
            got = store.video(entry_id(0), "train", frames=frames, clips=[2])
            np.testing.assert_array_equal(got["frame_ids"], a["frame_ids"][frames])
            np.testing.assert_array_equal(got["image"], fp16(a["image"][frames]))
            np.testing.assert_array_equal(got["clip_spans"], a["clip_spans"][[2]])
            np.testing.assert_array_equal(got["motion"], fp16(a["motion"][[2]]))
        with pytest.raises(IndexError, match=r"\[0, 20\)"):
            store.video(entry_id(0), "train", frames=[20])

    def test_awkward_ids_are_escaped(self, tmp_path, backend):
        ids = ["a/b@0-9", "a%2Fb@0-9", ".hidden", "__init__", "space and é", "x" * 300, "x" * 301]
        assert len({entry_key(i) for i in ids}) == len(ids)
        assert all("/" not in entry_key(i) and len(entry_key(i)) <= 160 for i in ids)
        store = create_store(tmp_path / "s", manifest(backend))
        a = entry_arrays(0)
        with store.writer("train") as w:
            for n, eid in enumerate(ids):
                w.write_video(eid, a["frame_ids"] + n, a["image"], a["clip_spans"], a["motion"])
        assert store.entry_ids("train") == sorted(ids)
        for n, eid in enumerate(ids):
            np.testing.assert_array_equal(
                store.video(eid, "train")["frame_ids"], a["frame_ids"] + n
            )

    def test_readable_with_the_plain_library(self, tmp_path, backend):
        store = create_store(tmp_path / "s", manifest(backend))
        with store.writer("train") as w:
            write_entry(w, 0)
        a = entry_arrays(0)
        key = entry_key(entry_id(0))
        if backend == "zarr":
            import zarr

            group = zarr.open_group(str(tmp_path / "s/train/part-0-of-1.zarr"), mode="r")
            entry = group["videos"][key]
            assert entry.attrs["complete"] is True and entry.attrs["entry_id"] == entry_id(0)
            image = entry["image"][...]
        else:
            import h5py

            with h5py.File(tmp_path / "s/train/part-0-of-1.h5", "r") as f:
                assert bool(f["videos"][key].attrs["complete"])
                image = f["videos"][key]["image"][()]
        assert image.dtype == np.float16
        np.testing.assert_array_equal(image, a["image"].astype(np.float16))

    def test_backend_implements_the_contract(self, tmp_path, backend):
        from stvg.features.contract import Part
        from stvg.features.store import BACKENDS

        part_class = BACKENDS[backend]
        path = tmp_path / f"part-0-of-1{part_class.suffix}"
        assert not part_class.exists(path)
        part = part_class(path, writable=True, batch_entries=2)
        assert isinstance(part, Part) and part_class.exists(path)
        part.close()
        assert part_class.exists(path)

    def test_extra_entry_attributes_round_trip(self, tmp_path, backend):
        store = create_store(tmp_path / "s", manifest(backend))
        a = entry_arrays(0)
        extra = {"fps": 29.97, "source_hash": "ab12", "frames": 300, "flipped": False}
        with store.writer("train") as w:
            w.write_video(
                entry_id(0), a["frame_ids"], a["image"], a["clip_spans"], a["motion"], attrs=extra
            )
            w.write_query(make_sample(0), a["text"], a["text_mask"], entry_id(0), attrs={"k": 1})
            for bad in ({"complete": False}, {"entry_id": "x"}, {"nested": {"a": 1}}, {"n": None}):
                with pytest.raises(ValueError, match="attribute"):
                    w.write_video("other@0-1", a["frame_ids"], a["image"], a["clip_spans"],
                                  a["motion"], attrs=bad)  # fmt: skip
        reader = open_store(tmp_path / "s")
        stored = reader.attrs("videos", entry_id(0), "train")
        assert {k: stored[k] for k in extra} == extra
        assert type(stored["frames"]) is int and type(stored["flipped"]) is bool
        assert stored["entry_id"] == entry_id(0) and stored["complete"] is True
        assert reader.attrs("queries", "s000", "train")["k"] == 1
        assert reader.entry_ids("train") == [entry_id(0)]

    def test_adding_to_a_finished_part(self, tmp_path, backend):
        store = create_store(tmp_path / "s", manifest(backend))
        with store.writer("train") as w:
            write_entry(w, 0)
        part = tmp_path / f"s/train/part-0-of-1{'.zarr' if backend == 'zarr' else '.h5'}"
        before = part.stat()
        with store.writer("train") as w:  # adds nothing: an HDF5 part is not rewritten
            write_entry(w, 0, resume=True)
        after = part.stat()
        if backend == "hdf5":
            assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        with store.writer("train") as w:
            write_entry(w, 1, resume=True)
        reader = open_store(tmp_path / "s")
        assert reader.entry_ids("train") == [entry_id(0), entry_id(1)]
        assert_entry_exact(reader, "train", 0)
        assert_entry_exact(reader, "train", 1)
        names = sorted(p.name for p in (tmp_path / "s/train").iterdir())
        assert names == sorted([part.name, "part-0-of-1.lock"])  # no working folder left

    def test_hdf5_folder_layout_of_earlier_versions(self, tmp_path, backend):
        if backend != "hdf5":
            pytest.skip("HDF5 parts only")
        root = tmp_path / "s"
        child = start_child(root, backend, "final-before-rename", first=0, count=6)
        try:
            wait_for(child, "PAUSED")
        finally:
            kill(child)
        # the working folder is the old layout: batch-*.h5 and pending/ in part-0-of-1.h5/
        (root / "train/part-0-of-1.h5.work").rename(root / "train/part-0-of-1.h5")
        store = open_store(root)
        assert store.info()["videos"] == 6
        for i in range(6):
            assert_entry_exact(store, "train", i)
        with store.writer("train") as w:  # converts it into one file
            write_entry(w, 6)
        assert (root / "train/part-0-of-1.h5").is_file()
        store.refresh()
        for i in range(7):
            assert_entry_exact(store, "train", i)

    def test_second_writer_on_a_part_is_refused(self, tmp_path, backend):
        root = tmp_path / "s"
        create_store(root, manifest(backend))
        child = start_child(root, backend, "lock")
        try:
            line, _ = wait_for(child, "LOCKED")
            pid = line.split()[1]
            store = open_store(root)
            with pytest.raises(PartLocked) as error:
                store.writer("train", part=(0, 1))
            assert f"pid/host {pid}" in str(error.value) and "--shard" in str(error.value)
            with store.writer("train", part=(0, 2)) as other:  # another part is free
                write_entry(other, 9)
        finally:
            kill(child)
        with open_store(root).writer("train", part=(0, 1)) as w:  # the lock died with the child
            write_entry(w, 0)

    @pytest.mark.parametrize(
        "point",
        [
            "arrays",
            "batch-before-rename",
            "batch-after-rename",
            "final-before-rename",
            "final-after-rename",
        ],
    )
    def test_kill_9_mid_write(self, tmp_path, backend, point):
        if backend == "zarr" and point != "arrays":
            pytest.skip("zarr parts have no consolidation step")
        root = tmp_path / "s"
        child = start_child(root, backend, point, first=0, count=6, pause_at=4)
        try:
            _, before = wait_for(child, "PAUSED")
        finally:
            kill(child)
        done = [int(line.split()[1]) for line in before if line.startswith("done")]
        store = open_store(root)
        info = store.info()
        if point == "arrays":
            assert done == [0, 1, 2, 3]
            assert (info["videos"], info["queries"], info["incomplete"]) == (4, 4, 1)
            assert not store.has_video(entry_id(4), "train")
        elif point.startswith("batch"):  # consolidating the first 3 entries: v0, q0, v1
            assert done == [0]
            assert (info["videos"], info["queries"], info["incomplete"]) == (2, 1, 0)
        else:  # every entry written; killed making the single file at close
            assert done == [0, 1, 2, 3, 4, 5]
            assert (info["videos"], info["queries"], info["incomplete"]) == (6, 6, 0)
            part = root / "train/part-0-of-1.h5"
            assert part.is_file() == (point == "final-after-rename")
            assert (root / "train/part-0-of-1.h5.work").is_dir()  # the working form is read too
        for i in range(info["queries"]):
            assert_entry_exact(store, "train", i)
        # A rerun completes the store; every entry equals an uninterrupted run's.
        rerun = start_child(root, backend, "none", first=0, count=6)
        wait_for(rerun, "done 5")
        assert rerun.wait(timeout=30) == 0
        rerun.stdout.close()
        rerun.stderr.close()
        store.refresh()
        info = store.info()
        assert (info["videos"], info["queries"], info["incomplete"]) == (6, 6, 0)
        for i in range(6):
            assert_entry_exact(store, "train", i)
        if backend == "hdf5":  # one file, nothing else left behind
            assert sorted(p.name for p in (root / "train").iterdir()) == [
                "part-0-of-1.h5",
                "part-0-of-1.lock",
            ]
            assert (root / "train/part-0-of-1.h5").is_file()

    @pytest.mark.slow
    def test_kill_9_at_random_moments(self, tmp_path, backend):
        root = tmp_path / "s"
        rng = np.random.default_rng(7)
        sizes = {"ts": 16, "c": 128, "size": (8, 10)}
        for _ in range(3):
            child = start_child(root, backend, "run", first=0, count=40)
            wait_for(child, "done 0")
            time.sleep(float(rng.uniform(0.0, 0.4)))
            kill(child)
            store = open_store(root)
            info = store.info()
            assert info["incomplete"] <= 1
            for sample in store.samples("train"):
                assert_entry_exact(store, "train", int(sample.sample_id[1:]), **sizes)
        rerun = start_child(root, backend, "run", first=0, count=40)
        wait_for(rerun, "done 39")
        assert rerun.wait(timeout=60) == 0
        rerun.stdout.close()
        rerun.stderr.close()
        store = open_store(root)
        info = store.info()
        assert (info["videos"], info["queries"], info["incomplete"]) == (40, 40, 0)
        for i in range(40):
            assert_entry_exact(store, "train", i, **sizes)


def _append_failures(root: str, tag: str, count: int) -> None:
    store = open_store(root)
    for n in range(count):
        store.record_failure("train", {"video_id": f"{tag}-{n}", "reason": "x" * 300})


def test_failures_from_several_processes(tmp_path):
    root = tmp_path / "s"
    create_store(root, manifest("zarr"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)])}
    code = "import sys; from test_store_conformance import _append_failures as f; f(*sys.argv[1:3], 100)"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(root), f"p{k}"], env=env)
        for k in range(3)
    ]
    _append_failures(str(root), "main", 100)
    assert all(p.wait(timeout=60) == 0 for p in procs)
    lines = (root / "failures.jsonl").read_text().splitlines()
    assert len(lines) == 400 and all(json.loads(line)["split"] == "train" for line in lines)
    store = open_store(root)
    records = store.failures()
    assert len(records) == 400
    assert {r["video_id"] for r in records} == {
        f"{t}-{n}" for t in ["main", "p0", "p1", "p2"] for n in range(100)
    }
    with open(root / "failures.jsonl", "a") as f:
        f.write('{"split": "train", "video_id": "torn')  # a line cut by a kill
    assert len(store.failures()) == 400
    assert store.info()["failures"] == 400


if __name__ == "__main__":
    _child(
        sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    )
