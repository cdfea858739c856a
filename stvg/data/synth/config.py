"""The synthetic benchmark's vocabulary and knobs: colors, shapes, actions, caption template,
query kinds, splits, and :class:`SynthConfig` (every knob, with the checks the generator needs)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from stvg.errors import InputError

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 70),
    "blue": (50, 90, 240),
    "yellow": (240, 220, 40),
}
SHAPES = ("square", "triangle", "cross")
ACTIONS: dict[str, str] = {
    "walk_left": "walks left",
    "walk_right": "walks right",
    "jump": "jumps",
    "stop": "stands still",
    "spin": "spins",
    "enter": "enters",
    "leave": "leaves",
}
CAPTION_TEMPLATE = "the {color} {shape} {action}"
KINDS = ("easy", "static_ambiguous", "dynamic_ambiguous")
SPLITS: dict[str, float] = {"train": 0.70, "val": 0.15, "test": 0.15}

# Pairs of actions too alike to tell a look-alike apart by (static_ambiguous excludes them).
CONFUSABLE = frozenset(
    frozenset(pair)
    for pair in [
        ("walk_left", "enter"),
        ("walk_right", "enter"),
        ("walk_left", "leave"),
        ("walk_right", "leave"),
        ("enter", "leave"),
        ("stop", "spin"),
    ]
)
FORMAT = "stvg-synth/1"


@dataclass(frozen=True)
class SynthConfig:
    """Every knob of the generator (recorded in ``synth.json``). Times in seconds, sizes in px."""

    videos: int = 240
    seed: int = 0
    seconds: float = 6.0
    fps: float = 10.0
    size: tuple[int, int] = (160, 120)  # (W, H)
    queries_per_video: int = 2
    actors: tuple[int, int] = (2, 4)  # min, max per video

    @property
    def frame_count(self) -> int:
        return int(round(self.seconds * self.fps))

    @property
    def actor_size(self) -> int:
        width, height = self.size
        return min(height // (2 * self.actors[1]), width // 8)

    @property
    def min_segment(self) -> int:
        """Shortest filler segment, frames."""
        return max(3, round(0.5 * self.fps))

    @property
    def max_segment(self) -> int:
        return max(self.min_segment + 1, round(2.5 * self.fps))

    @property
    def tube_range(self) -> tuple[int, int]:
        """Shortest and longest query tube, frames (20% and 60% of the video)."""
        n = self.frame_count
        low = max(self.min_segment, round(0.2 * n))
        return low, max(low, round(0.6 * n))

    def check(self) -> None:
        """Refuse knobs the generator cannot honor, as :class:`InputError`."""
        width, height = self.size
        if self.videos < 3:
            raise InputError(
                f"need at least 3 videos (one per split), got {self.videos}", field="videos"
            )
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise InputError(f"fps must be positive, got {self.fps}", field="fps")
        if self.frame_count < 10:
            raise InputError(
                f"seconds x fps gives {self.frame_count} frames; at least 10 are needed",
                field="seconds",
            )
        if width % 2 or height % 2 or width < 32 or height < 32:
            raise InputError(
                f"size {width}x{height}: width and height must be even (yuv420p) and >= 32",
                field="size",
            )
        if not (2 <= self.actors[0] <= self.actors[1] <= len(COLORS)):
            raise InputError(
                f"actors must satisfy 2 <= min <= max <= {len(COLORS)}", field="actors"
            )
        if self.actor_size < 6:
            raise InputError(
                f"size {width}x{height} is too small for {self.actors[1]} actors "
                f"(actors would be {self.actor_size} px; need >= 6)",
                field="size",
            )
        if self.queries_per_video < 1:
            raise InputError("queries_per_video must be >= 1", field="queries_per_video")


def parse_size(text: str) -> tuple[int, int]:
    """``"160x120"`` -> ``(160, 120)`` (width, height); raises :class:`InputError`."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise InputError(f"expected WIDTHxHEIGHT such as 160x120, got {text!r}", field="size")
    return int(match.group(1)), int(match.group(2))
