"""Feature-store figures for ``stvg bench extract``: bytes per video-second and random reads.

- :func:`bench_store_bytes`: one HC-STVG-sized entry (20 s) written as float16 and as int8.
- :func:`random_read_speed`: zarr vs HDF5 single-frame random reads. Training reads a few
  static frames of random videos, so the figure that matters is single-frame random reads
  through :meth:`FeatureStore.video` (``frames=[i]``), after every file is open.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from stvg.bench.timer import Timer

log = logging.getLogger(__name__)

# HC-STVG-sized entries (docs/design.md section 6-7): 20 s videos, 5 fps static grid -> 100 frames of
# 1080x1920 resized to 320x568 -> C5 10x18 (stride 32); Td 16 SlowFast clips at 256 -> 16x16
# (stride 16, dilated res5); a 20-token query of RoBERTa-base states.
HCSTVG_SECONDS = 20.0
HCSTVG_IMAGE = (100, 2048, 10, 18)
HCSTVG_MOTION = (16, 2304, 16, 16)
HCSTVG_TEXT = (20, 768)


def bench_store_bytes(root: str | Path, quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Store bytes per video-second for one HC-STVG-sized entry (20 s), float16 vs int8.

    ReLU-like random maps (``max(0, N(-0.3, 1))``, about 38 % zeros, as C5 and SlowFast maps
    are after their last ReLU) of the shapes in :data:`HCSTVG_IMAGE` / :data:`HCSTVG_MOTION`
    and text states ``N(0, 1)`` ``[20, 768]``, written to a zarr store of each dtype. ``quick``
    uses a tenth of the frames and clips (bytes still per video-second of the shorter entry).
    """
    from stvg.data.sample import Sample
    from stvg.features.manifest import Manifest
    from stvg.features.store import create_store

    rng = np.random.default_rng(seed)
    image_shape, motion_shape, seconds = HCSTVG_IMAGE, HCSTVG_MOTION, HCSTVG_SECONDS
    if quick:
        image_shape = (10, *HCSTVG_IMAGE[1:])
        motion_shape = (2, *HCSTVG_MOTION[1:])
        seconds = HCSTVG_SECONDS / 10
    image = np.maximum(0.0, rng.normal(-0.3, 1.0, image_shape)).astype(np.float32)
    motion = np.maximum(0.0, rng.normal(-0.3, 1.0, motion_shape)).astype(np.float32)
    text = rng.normal(0.0, 1.0, HCSTVG_TEXT).astype(np.float32)
    frame_ids = np.arange(image_shape[0]) * 5
    end = int(seconds * 25)
    bounds = np.linspace(0, end, motion_shape[0] + 1).astype(int)
    spans = np.stack([bounds[:-1], bounds[1:]], axis=1)
    sample = Sample("q0", "v0", "v0.mp4", 25.0, end, 1920, 1080, (0, end), (0, end), {}, "a man")
    out: dict[str, Any] = {
        "seconds": seconds,
        "image_shape": list(image_shape),
        "motion_shape": list(motion_shape),
        "text_shape": list(HCSTVG_TEXT),
    }
    for dtype in ("float16", "int8"):
        manifest = Manifest(dataset="bench", backbones={}, dtype=dtype, backend="zarr")
        store = create_store(Path(root) / dtype, manifest)
        with store.writer("test") as writer:
            writer.write_video("v0@0-500", frame_ids, image, spans, motion)
            writer.write_query(sample, text, np.ones(len(text), bool), "v0@0-500")
        total = store.info()["bytes"]
        store.close()
        out[dtype] = {"bytes": total, "bytes_per_video_second": total / seconds}
    raw = 2 * (image.size + motion.size + text.size)
    out["raw_float16_bytes"] = raw
    out["int8_over_float16"] = out["int8"]["bytes"] / out["float16"]["bytes"]
    return out


def bench_random_read(root: str | Path, quick: bool = False) -> dict[str, Any]:
    """zarr vs HDF5 single-frame random reads (:func:`random_read_speed`) on C5-like maps
    ``[32, 2048, 10, 18]``, float16; ``quick``: small maps, few reads."""
    if quick:
        return random_read_speed(root, videos=2, frames=8, channels=64, reads=50)
    return random_read_speed(root, videos=8, frames=32, channels=2048, size=(10, 18), reads=400)


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
    from stvg.features.manifest import Manifest
    from stvg.features.store import create_store

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
            with Timer() as timer:
                for v, f in picks:
                    store.video(f"v{v}", "bench", frames=[f])
            result[backend] = {
                "reads_per_s": reads / timer.seconds,
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
    import h5py
    import zarr

    part = root / "bench" / ("part-0-of-1.zarr" if backend == "zarr" else "part-0-of-1.h5")
    files = []
    if backend == "zarr":
        arrays = [
            zarr.open_array(str(part / "videos" / f"v{v}" / "image"), mode="r")
            for v in range(videos)
        ]
    else:
        import hdf5plugin  # noqa: F401  (registers the Blosc filter of HDF5 parts)

        files = [h5py.File(part, "r")]  # a finished HDF5 part is one file
        arrays = [files[0]["videos"][f"v{v}"]["image"] for v in range(videos)]
    try:
        for array in arrays:
            array[0]
        with Timer() as timer:
            for v, f in picks:
                array = arrays[v][f]
        return len(picks) / timer.seconds
    finally:
        for f in files:
            f.close()
