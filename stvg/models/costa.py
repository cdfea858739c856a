"""CoSTA (AAAI 2024): comprehensive space-time entanglement, on stvg's cached features.

Build from Python with ``build_costa(CoSTAConfig(...))`` or
``build_costa(CoSTAConfig.from_preset("hcstvg-v1", d_model=64))``; a config round-trips through
``to_dict`` and ``build_costa(dict)``.

Pipeline (the paper's fig. 3): the space-time video fusion (eq. 1, last stage only, see
:mod:`stvg.models.costa_encoder`) of the C5 map of every static frame with the 3D features of its
clip; ``N`` spatial + temporal encoder layer pairs over ``[CLS; video; text]`` per frame; the
temporal decoder (eq. 2) predicting a start and an end distribution over the frames; the entangled
query (eq. 3-5: an event part from the predicted, or in training with probability ``gt_ratio``
the ground-truth, event; an object part of 4-D anchors from the [CLS] tokens) and the spatial
decoder whose last anchors are the boxes (:mod:`stvg.models.costa_decoder`).

Forward input: the same dict as CSDVL (:mod:`stvg.models.csdvl`): ``image`` [B, Ts, C_img, h, w],
``image_mask`` [B, h, w] bool optional, ``text`` [B, L, C_txt], ``text_mask`` [B, L] bool,
``motion`` [B, Td, C_vid, h2, w2], ``frame_clip_index`` [B, Ts] long optional. In training mode
the dataset's ``frame_in_tube`` [B, Ts] bool, if present, is the ground-truth event of eq. (3)
(without it the predicted event is always used).

Forward output (a dict):

* ``pred_boxes`` [B, Ts, 4]: normalized ``(cx, cy, w, h)`` in [0, 1] for every frame (the last
  layer's anchors); ``layer_boxes`` [n_spatial_layers, B, Ts, 4] every layer's;
* ``start_logits``, ``end_logits`` [B, Ts]: the temporal head, ``p_t = softmax`` over the frames.
  CoSTA has no 2D proposal map: :func:`predict_span` turns them into the half-open span
  ``[start, end)`` in units of the ``Ts`` frames fed to the model (frame ``k`` of them is the
  stored frame ``frame_idx[k]``); :func:`stored_frame_span` merges a query's prediction passes
  into one span over the stored frames;
* ``enc_attendance`` [B, Ts]: logits "the object is in this frame" from the encoder's [CLS]
  tokens (``L_e``); ``dec_attendance`` [B, Ts]: the same from the temporal decoder's last queries
  (``L_d``; the paper says "the queries updated by the last decoder layer" without naming the
  decoder: the spatial decoder's are not used because their event part is built from the GT
  tube in training, so they would read the answer back);
* ``event_labels`` [B, Ts] long: the ``a_i`` of eq. (3) the spatial decoder was given;
* ``spatial_attention`` [B, Ts, h, w]: the last spatial layer's cross-attention on the visual
  cells (heads averaged; for pictures);
* ``s2d_attention`` [B, N, Ts, h, w]: every spatial layer's cross-attention on the visual cells,
  heads averaged and renormalized over the valid cells
  (:func:`~stvg.models.box_reference.cell_attention`), what ``loss_att`` trains (CSDVL's key
  and shape).

Not in the paper, the scratch aids (the ``synthetic`` preset; off by default): ``loss_att`` on
``s2d_attention`` and ``box_reference="attention"``, each spatial layer's box centre an offset
from the centre of mass of that layer's map (:mod:`stvg.models.box_reference`), as CSDVL's.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from stvg.config import config_from_mapping, config_from_preset
from stvg.errors import InputError
from stvg.models.attention import Dropout
from stvg.models.box_reference import BOX_REFERENCES, cell_attention
from stvg.models.collaboration import GridSizes, frame_to_clip_index
from stvg.models.costa_decoder import (
    EventEmbedding,
    SpatialDecoder,
    TemporalDecoder,
    event_labels,
    frame_span,
)
from stvg.models.costa_encoder import VIDEO_FUSIONS, SpaceTimeFusionEncoder, SpaceTimeVideoFusion

log = logging.getLogger(__name__)


@dataclass
class CoSTAConfig:
    """Model hyper-parameters.

    The paper gives no layer counts or widths; the defaults are TubeDETR's / STCAT's (which CoSTA
    builds on): ``d = 256``, 8 heads, 6 layers everywhere, FFN 2048, dropout 0.1. ``video_fusion``
    is table 3's connection (``"sum_norm"``, the paper's) or one backbone (``"2d"`` / ``"3d"``).
    ``gt_ratio`` is ``beta``, the probability that a training sample's event part comes from the
    ground truth (table 3c: 0.9 is best). ``video_fusion="2d"`` with ``temporal_encoder=False``
    is table 2's "w/o ST-encoder" (no 3D features, no temporal encoder layers);
    ``entangled=False`` is table 2's "w/o ST-decoder": the spatial content queries start from the
    [CLS] tokens, with no event part.
    """

    d_model: int = 256
    n_heads: int = 8
    n_encoder_layers: int = 6
    n_temporal_layers: int = 6
    n_spatial_layers: int = 6
    dim_feedforward: int = 2048
    dropout: float = 0.1
    image_channels: int = 2048
    text_channels: int = 768
    motion_channels: int = 2304
    video_fusion: str = "sum_norm"
    temporal_encoder: bool = True
    gt_ratio: float = 0.9
    entangled: bool = True
    # Not in the paper: a scratch aid of the CPU demo (as CSDVL's; stvg.models.box_reference).
    # "none" (the paper: DAB-DETR's anchors) or "attention" / "attention_peak": each spatial
    # layer's box centre is an offset from the centre of mass of its attention over the cells.
    box_reference: str = "none"
    # Not in the paper (as CSDVL's): the 2-D sine position is also added to the visual tokens
    # before the encoder, so the values the spatial decoder reads carry where they are.
    visual_pos_in_values: bool = False

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> CoSTAConfig:
        """The preset ``name`` (a key of :data:`COSTA_PRESETS`) with ``overrides`` applied."""
        return config_from_preset(cls, COSTA_PRESETS, name, overrides, "CoSTA")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> CoSTAConfig:
        """Build from a mapping (e.g. a run's ``config.json``); unknown keys are refused."""
        return config_from_mapping(cls, values, "CoSTA")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise :class:`InputError` naming the field for values the model cannot use."""
        if self.d_model % self.n_heads or self.d_model % 4:
            raise InputError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads}) and 4",
                field="d_model",
            )
        if self.video_fusion not in VIDEO_FUSIONS:
            raise InputError(
                f"video_fusion must be one of {list(VIDEO_FUSIONS)}, got {self.video_fusion!r}",
                field="video_fusion",
            )
        if self.box_reference not in BOX_REFERENCES:
            raise InputError(
                f"box_reference must be one of {list(BOX_REFERENCES)}, got {self.box_reference!r}",
                field="box_reference",
            )
        if not 0.0 <= self.gt_ratio <= 1.0:
            raise InputError(f"gt_ratio must be in [0, 1], got {self.gt_ratio}", field="gt_ratio")
        for name in ("n_encoder_layers", "n_temporal_layers", "n_spatial_layers"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1", field=name)


# Model parts of the dataset presets. "synthetic" is the CPU demo's channel counts and tiny dims.
COSTA_PRESETS: dict[str, dict[str, Any]] = {
    "vidstg": {},
    "hcstvg-v1": {},
    "hcstvg-v2": {},
    "synthetic": {
        "d_model": 64,
        "n_heads": 8,
        "n_encoder_layers": 2,
        "n_temporal_layers": 2,
        "n_spatial_layers": 2,
        "dim_feedforward": 128,
        "dropout": 0.0,
        "image_channels": 192,
        "motion_channels": 27,
        # From scratch: the scratch aids, with the train preset's loss_att (BENCHMARKS.md,
        # "Model zoo"). With the position in the values too, m_sIoU rose in each of 3 seeds.
        "box_reference": "attention",
        "visual_pos_in_values": True,
    },
}


class CoSTA(nn.Module):
    """The full model; see the module docstring for the input and output dicts."""

    def __init__(self, cfg: CoSTAConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        d = cfg.d_model
        self.video = SpaceTimeVideoFusion(
            cfg.image_channels, cfg.motion_channels, d, cfg.video_fusion
        )
        # MDETR's FeatureResizer for the text states, as CSDVL's static stream: FC + LN + dropout.
        self.text_proj = nn.Sequential(
            nn.Linear(cfg.text_channels, d), nn.LayerNorm(d), Dropout(cfg.dropout)
        )
        ff, drop = cfg.dim_feedforward, cfg.dropout
        self.encoder = SpaceTimeFusionEncoder(
            d,
            cfg.n_heads,
            cfg.n_encoder_layers,
            ff,
            drop,
            temporal=cfg.temporal_encoder,
            pos_in_values=cfg.visual_pos_in_values,
        )
        self.temporal = TemporalDecoder(d, cfg.n_heads, cfg.n_temporal_layers, ff, drop)
        self.event = EventEmbedding(d) if cfg.entangled else None
        self.spatial = SpatialDecoder(
            d, cfg.n_heads, cfg.n_spatial_layers, ff, drop, cfg.box_reference
        )
        self.enc_attendance = nn.Linear(d, 1)
        self.dec_attendance = nn.Linear(d, 1)

    def event_part(self, batch: Mapping[str, Tensor], start: Tensor, end: Tensor) -> Tensor:
        """Eq. (3) labels [B, Ts] long: the predicted event ``[start, end)``, or in training, per
        sample with probability ``gt_ratio``, ``batch["frame_in_tube"]``."""
        labels = event_labels(start, end, batch["image"].shape[1])
        gt = batch.get("frame_in_tube")
        if self.training and gt is not None and self.cfg.gt_ratio > 0:
            use_gt = torch.rand(labels.shape[0], device=labels.device) < self.cfg.gt_ratio
            labels = torch.where(use_gt[:, None], gt.long().to(labels.device), labels)
        return labels

    def forward(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        image, text, text_mask, motion = (
            batch["image"],
            batch["text"],
            batch["text_mask"].bool(),
            batch["motion"],
        )
        b, ts, _, h, w = image.shape
        td = motion.shape[1]
        device = image.device
        image_valid = batch.get("image_mask")
        if image_valid is None:
            image_valid = torch.ones(b, h, w, dtype=torch.bool, device=device)
        image_valid = image_valid.bool()
        clip_index = batch.get("frame_clip_index")
        if clip_index is None:
            clip_index = frame_to_clip_index(ts, td, device)[None].expand(b, ts)
        sizes = GridSizes.of(image_valid) if self.cfg.video_fusion != "2d" else None

        fv = self.video(image, motion, clip_index, sizes)  # [B,Ts,HW,d]
        memory, memory_pos, memory_pad, cls = self.encoder(
            fv, image_valid, self.text_proj(text), text_mask
        )
        start_logits, end_logits, tq = self.temporal(cls, memory, memory_pos, memory_pad, h * w)
        start, end, _ = frame_span(start_logits.detach(), end_logits.detach())
        labels = self.event_part(batch, start, end)
        first = self.event(labels) if self.event is not None else cls
        boxes, _, attn = self.spatial(first, cls, memory, memory_pos, memory_pad, image_valid)
        maps = torch.stack([cell_attention(a, image_valid) for a in attn], dim=1)
        return {
            "pred_boxes": boxes[-1],
            "layer_boxes": boxes,
            "start_logits": start_logits,
            "end_logits": end_logits,
            "enc_attendance": self.enc_attendance(cls)[..., 0],
            "dec_attendance": self.dec_attendance(tq)[..., 0],
            "event_labels": labels,
            "spatial_attention": attn[-1][..., : h * w].reshape(b, ts, h, w),
            "s2d_attention": maps,  # [B,N,Ts,h,w]
        }


def predict_span(outputs: Mapping[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """The tube's time span from a CoSTA output: ``(start, end, score)`` [B] each, the half-open
    ``[start, end)`` in units of the model's ``Ts`` frames (see
    :func:`stvg.models.costa_decoder.frame_span`). The tube is ``pred_boxes[:, start:end]``."""
    return frame_span(outputs["start_logits"], outputs["end_logits"])


def stored_frame_span(
    start_logits: Tensor, end_logits: Tensor, frame_idx: Tensor, num_stored: int
) -> tuple[int, int, float]:
    """One query's span in stored-frame units from its prediction passes.

    ``start_logits``, ``end_logits`` [P, Ts]: the model's outputs for the ``P`` passes of a query;
    ``frame_idx`` [P, Ts] long: the stored frame (index into the entry's static grid) each model
    frame was taken from. Each pass's ``softmax`` distribution is summed onto its stored frames
    (a frame taken twice in a pass gets both shares), then averaged over the passes that saw the
    frame; :func:`~stvg.models.costa_decoder.frame_span` on the merged distributions, restricted to
    the seen frames, gives ``(start, end, score)``: the half-open ``[start, end)`` over the
    ``num_stored`` stored frames (so the tube's native frames are ``stored_ids[start:end]``).
    """
    p, _ = frame_idx.shape
    merged = []
    for logits in (start_logits, end_logits):
        prob = logits.float().softmax(-1)
        total = prob.new_zeros(p, num_stored).scatter_add_(1, frame_idx, prob)
        seen = prob.new_zeros(p, num_stored).scatter_add_(1, frame_idx, torch.ones_like(prob)) > 0
        count = seen.sum(0)
        merged.append(total.sum(0) / count.clamp(min=1))
    mask = count > 0
    start, end, score = frame_span(
        merged[0].clamp(min=1e-30).log()[None],
        merged[1].clamp(min=1e-30).log()[None],
        mask[None],
    )
    return int(start), int(end), float(score)


def build_costa(cfg: CoSTAConfig | Mapping[str, Any]) -> CoSTA:
    """Build :class:`CoSTA` from a config or a plain mapping of its fields."""
    if not isinstance(cfg, CoSTAConfig):
        cfg = CoSTAConfig.from_dict(cfg)
    model = CoSTA(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    log.info(
        "built CoSTA (fusion=%s, d=%d, layers=%d/%d/%d): %d parameters",
        cfg.video_fusion,
        cfg.d_model,
        cfg.n_encoder_layers,
        cfg.n_temporal_layers,
        cfg.n_spatial_layers,
        n_params,
    )
    return model
