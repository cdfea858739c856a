"""Random-read speed of the two store backends (for ``stvg bench``).

Training reads a few static frames of random videos, so the figure that matters is single-frame
random reads through :meth:`FeatureStore.video` (``frames=[i]``), after every file is open.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import zarr

from stvg.features.manifest import Manifest
from stvg.features.store import create_store

log = logging.getLogger(__name__)


def random_read_speed(
    root: str | Path,
    *,
    videos: int = 8,
    frames: int = 32,
    channels: int = 256,
    size: tuple[int, int] = (10, 14),
    reads: int = 400,
    dtype: str = "float16",
    seed: int = 0,
) -> dict[str, Any]:
    """Write the same synthetic entries to a zarr and an HDF5 store, then time random reads.

    Each store gets ``videos`` entries with ``image`` maps ``[frames, channels, *size]`` (ReLU-like
    values); then ``reads`` random ``(video, frame)`` pairs are read one frame at a time, after one
    warm-up read per video. The stores live in a temporary folder under ``root`` that is removed.

    ``reads_per_s`` goes through the store (what training sees: image frame, frame ids, clip
    spans and motion maps per call); ``plain_reads_per_s`` reads just the image frame with plain
    ``zarr`` / ``h5py`` on arrays opened beforehand (the libraries' own cost).

    Returns:
        ``{"zarr": {"reads_per_s", "plain_reads_per_s", "bytes"}, "hdf5": {...},
        "zarr_over_hdf5": float (store reads), "reads": int, "image_shape": [frames, channels,
        h, w], "dtype": str}``.
    """
    Path(root).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="read-bench-", dir=root))
    rng = np.random.default_rng(seed)
    shape = (frames, channels, *size)
    maps = [np.maximum(0.0, rng.normal(-0.3, 1.0, shape)).astype(np.float32) for _ in range(videos)]
    picks = [(int(rng.integers(videos)), int(rng.integers(frames))) for _ in range(reads)]
    spans = np.array([[0, 32]])
    motion = np.zeros((1, 8, 2, 2), dtype=np.float32)
    result: dict[str, Any] = {"reads": reads, "image_shape": list(shape), "dtype": dtype}
    try:
        for backend in ("zarr", "hdf5"):
            manifest = Manifest(dataset="bench", backbones={}, dtype=dtype, backend=backend)
            store = create_store(work / backend, manifest)
            with store.writer("bench") as writer:
                for v, image in enumerate(maps):
                    writer.write_video(f"v{v}", np.arange(frames), image, spans, motion)
            for v in range(videos):  # open every file once, as a training worker would have
                store.video(f"v{v}", "bench", frames=[0])
            start = time.perf_counter()
            for v, f in picks:
                store.video(f"v{v}", "bench", frames=[f])
            elapsed = time.perf_counter() - start
            result[backend] = {
                "reads_per_s": reads / elapsed,
                "plain_reads_per_s": _plain_reads_per_s(work / backend, backend, videos, picks),
                "bytes": store.info()["bytes"],
            }
            store.close()
            log.info("%s: %.0f single-frame reads/s", backend, result[backend]["reads_per_s"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["zarr_over_hdf5"] = result["zarr"]["reads_per_s"] / result["hdf5"]["reads_per_s"]
    return result


def _plain_reads_per_s(
    root: Path, backend: str, videos: int, picks: list[tuple[int, int]]
) -> float:
    """Single-frame reads of ``image`` with the plain library, arrays opened beforehand."""
    part = root / "bench" / ("part-0-of-1.zarr" if backend == "zarr" else "part-0-of-1.h5")
    files = []
    if backend == "zarr":
        arrays = [
            zarr.open_array(str(part / "videos" / f"v{v}" / "image"), mode="r")
            for v in range(videos)
        ]
    else:
        files = [h5py.File(part, "r")]  # one file per part
        arrays = [files[0]["videos"][f"v{v}"]["image"] for v in range(videos)]
    try:
        for array in arrays:
            array[0]
        start = time.perf_counter()
        for v, f in picks:
            array = arrays[v][f]
        return len(picks) / (time.perf_counter() - start)
    finally:
        for f in files:
            f.close()
