"""Long videos in windows: which native frames each window covers and which of them are read.

A run learned to ground in segments of about ``train_segment_seconds`` (the median of its
training segments), seen through the static grid at ``target_fps`` (at most ``max_frames``) and
``td`` clips. A video is read in windows of that length at its native frame rate, so every
window looks to the model like a training segment (not ``max_frames`` frames spread thinly over
an hour):

* window length ``L = max(1, round(train_segment_seconds * fps))`` native frames;
* a video of ``N <= L`` frames is one window ``[0, N)``;
* otherwise windows start every ``stride`` frames (default ``max(1, L // 2)``: each frame is in
  two windows, so an event cut by one window's edge lies whole, or nearly, in its neighbour)
  for as long as a window fits, ``[k * stride, k * stride + L)``, and a last window ``[N - L,
  N)`` ends on the last frame when the others do not reach it.

Inside a window ``[a, b)`` the frames read are those stage one reads for a segment ``[a, b)``
(:mod:`stvg.data.sampling`): the static grid ``sampled_frame_ids(a, b, fps, target_fps,
max_frames)``, the clips ``clip_spans(a, b, td)`` and in each clip ``clip_frame_ids(span,
clip_frames)``. Everything here is a pure function of integers.
"""

from __future__ import annotations

from dataclasses import dataclass

from stvg.data.sampling import clip_frame_ids, clip_spans, sampled_frame_ids

Span = tuple[int, int]


def window_length(segment_seconds: float, fps: float) -> int:
    """``max(1, round(segment_seconds * fps))`` native frames."""
    return max(1, round(segment_seconds * fps))


def window_spans(frame_count: int, length: int, stride: int | None = None) -> list[Span]:
    """The half-open windows covering ``[0, frame_count)`` (module docstring)."""
    if frame_count < 1 or length < 1:
        raise ValueError(f"need frame_count >= 1 and length >= 1, got {frame_count}, {length}")
    stride = max(1, length // 2) if stride is None else stride
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if frame_count <= length:
        return [(0, frame_count)]
    spans = [(a, a + length) for a in range(0, frame_count - length + 1, stride)]
    if spans[-1][1] < frame_count:
        spans.append((frame_count - length, frame_count))
    return spans


@dataclass(frozen=True)
class WindowPlan:
    """What stage one reads for the window ``span``: the static grid ``static_ids``, the
    ``clips`` spans and each clip's frame ids ``clip_ids`` (native ids, repeats allowed)."""

    span: Span
    static_ids: tuple[int, ...]
    clips: tuple[Span, ...]
    clip_ids: tuple[tuple[int, ...], ...]

    def needed(self) -> list[int]:
        """Every native frame the window reads, sorted, once each."""
        return sorted(set(self.static_ids).union(*self.clip_ids))


def plan_window(
    span: Span, fps: float, target_fps: float, max_frames: int, td: int, clip_frames: int
) -> WindowPlan:
    """The frames stage one reads for a segment ``span`` (module docstring)."""
    a, b = span
    clips = clip_spans(a, b, td)
    return WindowPlan(
        span=(a, b),
        static_ids=tuple(sampled_frame_ids(a, b, fps, target_fps, max_frames)),
        clips=tuple(clips),
        clip_ids=tuple(tuple(clip_frame_ids(c, clip_frames)) for c in clips),
    )


def last_use(plans: list[WindowPlan]) -> dict[int, int]:
    """For each frame any window reads, the index of the last window that reads it (a
    sequential reader keeps a frame until then and no longer)."""
    out: dict[int, int] = {}
    for k, plan in enumerate(plans):
        for frame in plan.needed():
            out[frame] = k
    return out


def seconds(frame: int, fps: float) -> float:
    """The time of native frame boundary ``frame`` in seconds (``frame / fps``)."""
    return frame / fps
