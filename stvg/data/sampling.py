"""Which native frames the static and dynamic streams see (docs/design.md section 6).

All ids are 0-based native frame ids; spans are half-open ``[start, end)``.

* The **static grid** is the frame grid the ``tubedetr`` protocol samples: 5 fps over the
  segment, capped at 200 frames. Extracting exactly these frames means every frame the scorer
  looks at has a stored image map, so prediction needs no interpolation.
* The **clip spans** cut the segment into ``Td`` consecutive, near-equal clips (2D-TAN-style
  uniform sampling); the video backbone sees ``clip_frames`` frames spread evenly inside each.
"""

from __future__ import annotations


def sampled_frame_ids(
    start: int, end: int, fps: float, target_fps: float = 5.0, max_frames: int = 200
) -> list[int]:
    """TubeDETR's frame grid over the half-open segment ``[start, end)`` (native frame ids).

    With ``r = target_fps / fps``: ``ids = [start]``, then for ``f`` in ``[start, end)`` append
    ``f`` when ``int(ids[-1] * r) < int(f * r)``; so one frame per ``1 / target_fps`` seconds,
    and every frame when ``fps <= target_fps``. When more than ``max_frames`` are kept, keep
    ``ids[(j * n) // max_frames]`` for ``j < max_frames`` (``n`` the number kept). ``start`` is
    kept even for an empty segment, as in TubeDETR. The ``tubedetr`` protocol scores on this grid
    and stage one stores image maps on it.
    """
    rate = target_fps / fps
    ids = [start]
    for frame in range(start, end):
        if int(ids[-1] * rate) < int(frame * rate):
            ids.append(frame)
    if len(ids) > max_frames:
        n = len(ids)
        ids = [ids[(j * n) // max_frames] for j in range(max_frames)]
    return ids


def clip_spans(start: int, end: int, num_clips: int) -> list[tuple[int, int]]:
    """``num_clips`` consecutive spans covering ``[start, end)``, each at least one frame long.

    Clip ``j`` starts at ``start + floor(j * L / num_clips)`` with ``L = end - start``. When the
    segment has fewer frames than clips, neighbouring clips share frames (every clip still has one).
    """
    if end <= start or num_clips <= 0:
        raise ValueError(f"bad span [{start}, {end}) or num_clips {num_clips}")
    length = end - start
    spans = []
    for j in range(num_clips):
        a = start + (j * length) // num_clips
        b = start + ((j + 1) * length) // num_clips
        if b <= a:
            a = min(a, end - 1)
            b = a + 1
        spans.append((a, b))
    return spans


def clip_frame_ids(span: tuple[int, int], clip_frames: int) -> list[int]:
    """``clip_frames`` frame ids spread evenly over ``span`` (repeats when the span is shorter).

    Frame ``k`` is ``start + floor((k + 0.5) * len / clip_frames)``: the centres of equal bins.
    """
    a, b = span
    length = b - a
    return [a + int((k + 0.5) * length / clip_frames) for k in range(clip_frames)]
