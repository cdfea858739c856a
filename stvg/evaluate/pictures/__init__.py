"""Pictures of tubes and of the static-to-dynamic attention (training curves: ``curves``).

Two plain functions, each returning the path(s) it wrote:

* :func:`tube_strip`: a PNG strip of frames with the ground-truth box (GREEN ``(0, 255, 0)``)
  and the predicted box (YELLOW ``(255, 255, 0)``), the caption as a title and a timeline of the
  segment with both spans and their tIoU; optionally an animated GIF (Pillow);
* :func:`attention_strip`: the paper's Figure 5 / supplementary Figure S1: frames on the first
  row, the static-to-dynamic attention maps ``A_i`` upsampled and overlaid as a heat map on the
  second, normalized by the maximum over all frames of the sample.

Strip layout (pixels; the tests map annotation coordinates through these formulas). With ``n``
frames, the frame size ``W0 x H0`` of the sample and ``tile_width = tw``:

* tile height ``th = round(H0 * tw / W0)``; the image is ``2 * PAD + n * tw + (n - 1) * GAP``
  wide; tile ``k`` has its top-left corner at ``(PAD + k * (tw + GAP), PAD + TITLE_H)``;
* a box ``[x1, y1, x2, y2]`` (original pixels, pixel ``(i, j)`` covering ``[i, i+1) x [j, j+1)``)
  becomes the tile columns ``X1 = round(x1 * tw / W0) .. X2 - 1`` with ``X2 = round(x2 * tw /
  W0)`` (rows alike with ``th / H0``); its outline is ``BOX_WIDTH`` pixels thick, drawn inside
  that rectangle (clipped to the tile), with a 1 px black halo just outside it. The GT box is
  drawn over the predicted one;
* under the tiles: a ``LABEL_H`` band of frame ids (and the per-frame box IoU), then the
  timeline band of ``TIMELINE_H``: frame ``f`` of the segment ``[s0, s1)`` sits at
  ``x(f) = X0 + (f - s0) * BW / (s1 - s0)`` with ``X0 = PAD + TRACK_LABEL_W`` and ``BW = width -
  PAD - X0``; a span ``[a, b)`` fills the columns ``round(x(a)) .. round(x(b)) - 1`` of its row,
  the GT row at ``y = TIMELINE_TOP + GT_ROW_Y`` and the predicted row at ``... + PRED_ROW_Y``,
  each ``ROW_H`` tall, where ``TIMELINE_TOP = PAD + TITLE_H + th + LABEL_H``;
* total height ``PAD + TITLE_H + th + LABEL_H + TIMELINE_H + PAD``.

Rounding is half-up (``floor(v + 0.5)``). The predicted box is drawn on frames inside the
predicted span only (the boxes vIoU uses); the GT box on frames that have one. Frame sources are
a video file (decoded by :mod:`stvg.data.video`) or a folder of images whose file name ends in
the 0-based frame id (``000012.jpg``, ``img_12.png``). Drawing is pure numpy + Pillow with
Pillow's default font, so the same inputs give the same pixels.
"""

from stvg.evaluate.pictures.attention import (
    attention_overlay,
    attention_strip,
    heat_colors,
    select_attention,
)
from stvg.evaluate.pictures.frames import read_strip_frames
from stvg.evaluate.pictures.inference import attention_from_model, sample_attention
from stvg.evaluate.pictures.layout import (
    box_to_tile,
    draw_box,
    strip_frame_ids,
    tile_size,
    timeline_x,
)
from stvg.evaluate.pictures.tube import gif_frame_ids, tube_gif, tube_strip
from stvg.evaluate.pictures.visualize import visualize_sample

__all__ = [
    "attention_from_model",
    "attention_overlay",
    "attention_strip",
    "box_to_tile",
    "draw_box",
    "gif_frame_ids",
    "heat_colors",
    "read_strip_frames",
    "sample_attention",
    "select_attention",
    "strip_frame_ids",
    "tile_size",
    "timeline_x",
    "tube_gif",
    "tube_strip",
    "visualize_sample",
]
