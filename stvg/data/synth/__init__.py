"""The synthetic benchmark (docs/design.md section 9): small rendered videos with exact tubes.

Scene. A plain grey background (one grey level per video, 60-110) split into horizontal lanes,
one per actor (2-4 actors). An actor is a flat-colored shape of ``s x s`` pixels (``s`` fixed per
config, ``min(H // (2 * max_actors), W // 8)``) standing on its lane's floor; lanes keep actors
from ever overlapping, so every box is fully visible. Each actor follows a script: consecutive
segments of one action each, covering the whole video:

===============  ===================================================================
action           what is drawn
===============  ===================================================================
``walk_left``    steady horizontal motion to the left, 0.12-0.45 frame widths per second
``walk_right``   the same to the right
``jump``         in place; whole hops of ~0.8 s, apex ``min(lane - s - 2, 2 s)`` px; the
                 actor is off the floor on every frame of the segment
``stop``         in place, upright, still ("stands still")
``spin``         in place, turning about its centroid at 0.75 turn per second
``enter``        comes in from the left or right edge; ``max(2, 0.3 s)`` px of it are
                 visible on the first frame, it is fully inside on the frame after
``leave``        walks out through an edge; ``max(2, 0.3 s)`` px are visible on its last
                 frame and the actor is gone (not drawn) afterwards
===============  ===================================================================

Vocabulary (captions are ``CAPTION_TEMPLATE`` filled from these, e.g. "the red square jumps"):
colors red, green, blue, yellow; shapes square, triangle, cross; actions as in :data:`ACTIONS`.
Captions lean on color and motion, not shape (docs/design.md section 6: random-weight backbones keep
color and motion but barely shape): inside one video each color has one shape, so two actors
either look alike (same color and shape) or differ in color.

Queries. Each query names one actor by appearance and one of its actions; the tube is that
action segment ``[start, end)`` (0-based frame ids, half-open) and the segment the whole video
``[0, frame_count)``. A query is only kept if it is unambiguous: the actor does that action
in no other segment and no look-alike ever does it. ``extra`` records ``kind``, ``action``,
``color``, ``shape``, ``actor`` (the actor's index) and ``actors`` (how many are in the video):

* ``easy``: no look-alike in the video and no other actor does the action at any time of the
  tube;
* ``static_ambiguous``: a look-alike is visible during the whole tube doing clearly different
  actions (never walk vs. enter/leave or stop vs. spin), so only motion tells them apart;
* ``dynamic_ambiguous``: no look-alike, and a differently colored actor does the same action over
  the whole tube (the same segment), so only appearance tells them apart.

Each video is built around a first query of the kind that is rarest so far in its split (so
shares stay near 1/3 each); further queries (``queries_per_video``) are picked among the video's
other unambiguous actions of at least the minimum tube length, again rarest kind first.

Boxes are exact: the renderer rasterizes each shape by testing pixel centers, and a box is the
bounding box of the drawn pixels, ``[x1, y1, x2, y2]`` with pixel ``(i, j)`` covering
``[i, i + 1) x [j, j + 1)`` (a shape drawn on columns 10..24 has ``x1 = 10, x2 = 25``). An actor
partly outside the frame (entering, leaving) is boxed by its visible pixels only, i.e. clipped
to the frame. A spinning shape's box follows its rotation.

Files. ``out_dir/videos/<video_id>.mp4`` (H.264 via PyAV/libx264, yuv420p, crf 12, one keyframe
per second, no B-frames, one encoder thread: the same seed gives the same bytes),
``out_dir/{train,val,test}.json`` (``stvg-annotations/1``, ``video_path`` relative to
``out_dir``) and ``out_dir/synth.json`` (every knob, the seed and the split of each video),
written last. Splits are by video, 70/15/15 (at least one video each), from a seeded permutation.

Defaults: 240 videos of 6 s at 10 fps, 160x120, 2 queries per video (320 train / 67 val / 70
test queries with seed 0), generated in about half a minute; with the weight-free encoders of
the synthetic extract preset, extraction and training on a 2-core CPU take minutes. (60 videos
were the default before: the model then memorized its 84 training queries.)
"""

from stvg.data.synth.config import (
    ACTIONS,
    CAPTION_TEMPLATE,
    COLORS,
    CONFUSABLE,
    FORMAT,
    KINDS,
    SHAPES,
    SPLITS,
    SynthConfig,
    parse_size,
)
from stvg.data.synth.generate import synthesize

__all__ = [
    "ACTIONS",
    "CAPTION_TEMPLATE",
    "COLORS",
    "CONFUSABLE",
    "FORMAT",
    "KINDS",
    "SHAPES",
    "SPLITS",
    "SynthConfig",
    "parse_size",
    "synthesize",
]
