"""CG-STVG (Gu et al., CVPR 2024): a context-guided decoder on a multimodal encoder.

Build with ``build_cgstvg(CGSTVGConfig(...))`` or ``CGSTVGConfig.from_preset("hcstvg-v1")``.
The forward input is CSDVL's dict (``image`` [B, Ts, C_img, h, w], ``image_mask`` [B, h, w]
optional, ``text`` [B, L, C_txt], ``text_mask`` [B, L], ``motion`` [B, Td, C_vid, h2, w2],
``frame_clip_index`` [B, Ts] optional); with ``context_selection="oracle"`` a training batch
must also hold ``boxes`` [B, Ts, 4] and ``box_mask`` [B, Ts] (a collated feature batch does).

Equations (the paper's display equations of section 3, numbered in order):

====  =====================================================  ===================================
eq.   formula                                                here
====  =====================================================  ===================================
(1)   ``x_i = [v^a_i ; v^m_i ; T]``                          :meth:`CGSTVG.encode`
(2)   ``X' = X + E_pos + E_typ``                             :meth:`CGSTVG.encode`
(3)   ``X~ = SAEncoder(X')``                                 :meth:`CGSTVG.encode`
(4)   ``Q_k = CA(CA(SA(Q_{k-1}), C_{k-1}), X~)``             :class:`SpatialDecodingBlock`
(5)   ``Q_1 = CA(SA(Q_0), X~)``                              :class:`SpatialDecodingBlock`
(6)   ``P_k = MLP(CA(SA(P_{k-1}), X~))``                     :class:`TemporalDecodingBlock`
(7)   ``R_k = MLP(Q_k)``                                     the shared box head
(8)   ``C^a_k, C^m_k = RoIAlign(X~^2d_{a,m}, R_k)``          :mod:`stvg.models.cgstvg_context`
(9)   ``s^t_k = Sigmoid(MLP(P_k))``                          :mod:`stvg.models.cgstvg_context`
(10)  ``C^{.,t}_k = HF_t(C^._k, s^t_k, theta_t)``            :func:`~.cgstvg_context.hard_filter`
(11)  ``s^s_k = (Sig(MLP(C^a_k)) + Sig(MLP(C^m_k))) / 2``    :mod:`stvg.models.cgstvg_context`
(12)  ``C^{.,ts}_k = HF_s(C^{.,t}_k, s^s_k, theta_s)``       :func:`~.cgstvg_context.hard_filter`
(13)  ``L^t_k`` (KL start/end + BCE on ``s^t_k``)            :mod:`stvg.models.cgstvg_losses`
(14)  ``L^s_k`` (L1 + IoU + BCE(IoU, ``s^s_k``))             :mod:`stvg.models.cgstvg_losses`
====  =====================================================  ===================================

Encoder (eqs. 1-3). Per static frame ``t`` the tokens are its ``h*w`` appearance cells, the
``h2*w2`` cells of its clip (``frame_clip_index``; the paper has a VidSwin map per frame, stage
one stores one motion map per clip) and the ``L`` text tokens, each FC-projected to ``d``.
``E_pos`` is the 2-D sine encoding of each grid (zeros on text), ``E_typ`` a learned vector per
token type; both are added once to the input (eq. 2) and the ``n_encoder_layers`` post-norm
self-attention layers (CSDVL's :class:`~stvg.models.static_stream.EncoderLayer`, given no
position) fuse the frame's tokens. The paper inherits STCAT's encoder; this is its eq. 1-3.

Features. The paper's motion features are VidSwin-tiny maps (768 channels, one per frame);
stage one stores AVA SlowFast clip maps (2304 channels) under ``motion``, which this module
reads as is. A VidSwin store would keep the same key and layout (``motion`` [Td, 768, h2, w2],
the last stage of torchvision's ``swin3d_t`` with Kinetics-400 weights, time-pooled per clip;
``backbones.video = "swin3d_t"`` in the manifest) and only ``motion_channels=768`` changes here.

Decoder (eqs. 4-6), ``K = n_layers`` stages. One spatial query ``q_t`` and one temporal query
``p_t`` per frame, each initialized from a learned vector (DETR); the self-attentions run over
the frames of a video with a 1-D sine encoding of the frame index on queries and keys; the
cross-attention to ``X~`` reads the frame's own tokens. Stage ``k > 1``'s SDB cross-attends to
the instance context ``C_{k-1}`` (the tokens of the frames that passed ICR, no position) between
its self-attention and its cross-attention to ``X~``; a video with no context token skips that
block. SDB and TDB end with the FFN (the figure's "MLP" of the TDB; the released SDB has one).

Heads: at every stage the shared 3-layer box MLP gives ``B_k`` (and ``R_k``), a 2-layer MLP on
``P_k`` gives the start/end logits ``H_k``. Forward output:

* ``pred_boxes`` [B, Ts, 4] normalized cxcywh (stage ``K``);
* ``start_logits``, ``end_logits`` [B, Ts] (stage ``K``): softmax over frames gives ``H_K``;
* ``score_map`` [B, Ts, Ts] and ``map_mask`` [Ts, Ts]: ``log p_s(i) + log p_e(j)`` for the
  span from frame ``i`` to frame ``j`` inclusive (``i <= j``), ``INVALID_LOGIT`` elsewhere: the
  paper's "maximum joint start and end probability". :func:`stvg.models.heads.best_span` on it
  gives the half-open span ``[i, j + 1)`` in units of the ``Ts`` sampled frames, which read as
  fractions of the segment ``[i / Ts, (j + 1) / Ts)`` exactly like CSDVL's clip units when the
  frames are sampled uniformly (frame ``k`` at ``(k + 0.5) / Ts``); :func:`frame_span` does the
  same from the logits with a minimum length, and :func:`stored_frame_span` joins the passes
  of a prediction (each pass a strided subset of the stored frames) into one span in
  stored-frame units;
* per stage (for eqs. 13-14): ``stage_boxes`` [B, K, Ts, 4], ``stage_start`` / ``stage_end``
  [B, K, Ts], ``temporal_logits`` [B, K, Ts] (``s^t_k`` before the sigmoid), ``spatial_conf``
  [B, K, Ts] (``s^s_k``), ``context_keep`` [B, K, Ts] bool (frames whose context passed);
* ``s2d_attention`` [B, K, Ts, h, w], only with ``cell_attention`` or a ``box_reference``: each
  SDB's cross-attention of the frame's query over the frame's appearance cells (heads averaged,
  renormalized over the valid cells: :func:`~stvg.models.box_reference.cell_attention`), what
  ``loss_att`` trains (CSDVL's key and shape).

Not in the paper, the scratch aids (the ``synthetic`` preset; off by default): ``loss_att`` on
``s2d_attention`` and ``box_reference="attention"``, each stage's box centre an offset from the
centre of mass of that stage's map (:mod:`stvg.models.box_reference`), as CSDVL's.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from stvg.config import config_from_mapping, config_from_preset
from stvg.errors import InputError
from stvg.evaluate.boxes import box_cxcywh_to_xyxy
from stvg.models.attention import Dropout, MultiheadAttention
from stvg.models.box_reference import BOX_REFERENCES, cell_attention, reference_point
from stvg.models.cgstvg_context import REFINEMENTS, InstanceContext, StageContext
from stvg.models.collaboration import frame_to_clip_index
from stvg.models.heads import INVALID_LOGIT, MLP, BoxHead
from stvg.models.position import sine_position_1d, sine_position_2d
from stvg.models.static_stream import EncoderLayer, FeedForward

log = logging.getLogger(__name__)

CONTEXT_SELECTIONS = ("predicted", "oracle")


@dataclass
class CGSTVGConfig:
    """Hyper-parameters; defaults are the paper's (section 4, "Implementation").

    ``theta_t`` / ``theta_s``: ICR thresholds (0.7 / 0.8, table 5). ``roi_size`` and
    ``roi_sampling``: RoIAlign bins per side and samples per bin (the paper does not say; the
    bins are averaged into one vector). ``context_selection``: ``"predicted"`` (the paper's text:
    ICR's filters choose the context frames, in training too) or ``"oracle"`` (the released
    code's training: frames of the GT tube whose stage box has GIoU with the GT above
    ``theta_s``; inference always uses the filters). Channel counts must match the store.
    """

    d_model: int = 256
    n_heads: int = 8
    n_layers: int = 6  # decoding stages K
    n_encoder_layers: int = 6  # L of the SAEncoder
    dim_feedforward: int = 2048
    dropout: float = 0.1
    image_channels: int = 2048
    text_channels: int = 768
    motion_channels: int = 2304
    theta_t: float = 0.7
    theta_s: float = 0.8
    roi_size: int = 2
    roi_sampling: int = 2
    context_selection: str = "predicted"
    # Ablations of the paper's table 4. False: the baseline, no SDB reads instance context (the
    # confidence heads and their losses stay). ``refinement``: which ICR levels filter the
    # context, "st" (the paper), "t", "s" or "none" (ICG alone: every frame's context passes).
    instance_context: bool = True
    refinement: str = "st"
    # Not in the paper: the scratch aids of the CPU demo (as CSDVL's; stvg.models.box_reference).
    # ``cell_attention``: the output also holds ``s2d_attention``, each SDB's attention over the
    # appearance cells, for ``loss_att``. ``box_reference``: "none" (the paper) or "attention" /
    # "attention_peak": each stage's box centre is an offset from that map's centre of mass
    # (which computes the maps too).
    cell_attention: bool = False
    box_reference: str = "none"

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> CGSTVGConfig:
        """The preset ``name`` (a key of :data:`CGSTVG_PRESETS`) with ``overrides`` applied."""
        return config_from_preset(cls, CGSTVG_PRESETS, name, overrides)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> CGSTVGConfig:
        """Build from a mapping (e.g. a run's ``config.json``); unknown keys are refused."""
        return config_from_mapping(cls, values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise :class:`InputError` naming the field for values the model cannot use."""
        if self.d_model % self.n_heads or self.d_model % 4:
            raise InputError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads}) and 4",
                field="d_model",
            )
        if self.n_layers < 1 or self.n_encoder_layers < 1:
            raise InputError("n_layers and n_encoder_layers must be >= 1", field="n_layers")
        for name in ("theta_t", "theta_s"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise InputError(f"{name} must be in [0, 1), got {value}", field=name)
        if self.roi_size < 1 or self.roi_sampling < 1:
            raise InputError("roi_size and roi_sampling must be >= 1", field="roi_size")
        if self.refinement not in REFINEMENTS:
            raise InputError(
                f"refinement must be one of {list(REFINEMENTS)}, got {self.refinement!r}",
                field="refinement",
            )
        if self.box_reference not in BOX_REFERENCES:
            raise InputError(
                f"box_reference must be one of {list(BOX_REFERENCES)}, got {self.box_reference!r}",
                field="box_reference",
            )
        if self.context_selection not in CONTEXT_SELECTIONS:
            raise InputError(
                f"context_selection must be one of {list(CONTEXT_SELECTIONS)}, "
                f"got {self.context_selection!r}",
                field="context_selection",
            )


# The paper uses one setting for all data sets (K = 6, L = 6, d = 256, thresholds 0.7 / 0.8);
# "synthetic" is the CPU demo's tiny model on the weight-free encoders' channels.
CGSTVG_PRESETS: dict[str, dict[str, Any]] = {
    "vidstg": {},
    "hcstvg-v1": {},
    "hcstvg-v2": {},
    "synthetic": {
        "d_model": 64,
        "n_heads": 8,
        "n_layers": 2,
        "n_encoder_layers": 2,
        "dim_feedforward": 128,
        "dropout": 0.0,
        "image_channels": 192,
        "motion_channels": 27,
        "context_selection": "oracle",
        # From scratch (no pre-trained decoder): the scratch aids, with the train preset's
        # loss_att (BENCHMARKS.md, "Model zoo").
        "cell_attention": True,
        "box_reference": "attention",
    },
}


class SpatialDecodingBlock(nn.Module):
    """SDB_k, eqs. (4)-(5): self-attention over frames, [context cross-attention], cross-attention
    to the frame's encoded tokens, FFN; post-norm residuals throughout."""

    def __init__(
        self, d_model: int, n_heads: int, dim_feedforward: int, dropout: float, guided: bool
    ) -> None:
        super().__init__()

        def mha() -> nn.MultiheadAttention:
            return MultiheadAttention(d_model, n_heads, dropout=dropout)

        self.self_attn = mha()
        self.context_attn = mha() if guided else None  # absent in SDB_1 (eq. 5)
        self.cross_attn = mha()
        self.norm_self = nn.LayerNorm(d_model)
        self.norm_context = nn.LayerNorm(d_model) if guided else None
        self.norm_cross = nn.LayerNorm(d_model)
        self.dropout = Dropout(dropout)
        self.ffn = FeedForward(d_model, dim_feedforward, dropout)

    def forward(
        self,
        queries: Tensor,
        frame_pos: Tensor,
        memory: Tensor,
        memory_pad: Tensor,
        context: Tensor | None = None,
        keep: Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """``queries`` [B, Ts, d]; ``frame_pos`` [Ts, d]; ``memory`` [B*Ts, M, d] with
        ``memory_pad`` [B*Ts, M] (True = padding); ``context`` [B, Ts, d] with ``keep``
        [B, Ts] bool (the tokens that passed ICR). Returns ``Q_k`` [B, Ts, d] and, with
        ``need_weights``, the cross-attention weights over ``memory`` [B, Ts, M] (heads
        averaged; else None)."""
        b, ts, d = queries.shape
        q = queries + frame_pos
        out = self.self_attn(q, q, queries, need_weights=False)[0]
        queries = self.norm_self(queries + self.dropout(out))
        if self.context_attn is not None and context is not None and keep is not None:
            has = keep.any(1)  # [B]
            mask = ~(keep | ~has[:, None])  # a video without context attends all (then unused)
            out = self.context_attn(
                queries + frame_pos, context, context, key_padding_mask=mask, need_weights=False
            )[0]
            guided = self.norm_context(queries + self.dropout(out))
            queries = torch.where(has[:, None, None], guided, queries)
        qf = (queries + frame_pos).reshape(b * ts, 1, d)  # each frame reads its own tokens
        out, weights = self.cross_attn(
            qf, memory, memory, key_padding_mask=memory_pad, need_weights=need_weights
        )
        queries = self.norm_cross(queries + self.dropout(out.view(b, ts, d)))
        return self.ffn(queries), None if weights is None else weights.view(b, ts, -1)


class TemporalDecodingBlock(nn.Module):
    """TDB_k, eq. (6): ``P_k = MLP(CA(SA(P_{k-1}), X~))`` with post-norm residuals."""

    def __init__(self, d_model: int, n_heads: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, n_heads, dropout=dropout)
        self.cross_attn = MultiheadAttention(d_model, n_heads, dropout=dropout)
        self.norm_self = nn.LayerNorm(d_model)
        self.norm_cross = nn.LayerNorm(d_model)
        self.dropout = Dropout(dropout)
        self.ffn = FeedForward(d_model, dim_feedforward, dropout)

    def forward(
        self, queries: Tensor, frame_pos: Tensor, memory: Tensor, memory_pad: Tensor
    ) -> Tensor:
        """Shapes as :meth:`SpatialDecodingBlock.forward`; returns ``P_k`` [B, Ts, d]."""
        b, ts, d = queries.shape
        q = queries + frame_pos
        out = self.self_attn(q, q, queries, need_weights=False)[0]
        queries = self.norm_self(queries + self.dropout(out))
        qf = (queries + frame_pos).reshape(b * ts, 1, d)
        out = self.cross_attn(qf, memory, memory, key_padding_mask=memory_pad, need_weights=False)
        queries = self.norm_cross(queries + self.dropout(out[0].view(b, ts, d)))
        return self.ffn(queries)


class CGSTVG(nn.Module):
    """The full model; see the module docstring for the input and output dicts."""

    def __init__(self, cfg: CGSTVGConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        d = cfg.d_model
        self.image_proj = nn.Linear(cfg.image_channels, d)
        self.motion_proj = nn.Sequential(nn.Linear(cfg.motion_channels, d), nn.LayerNorm(d))
        self.text_proj = nn.Sequential(
            nn.Linear(cfg.text_channels, d), nn.LayerNorm(d), Dropout(cfg.dropout)
        )
        self.type_embed = nn.Parameter(torch.randn(3, d) * 0.02)  # E_typ: appearance/motion/text
        self.encoder = nn.ModuleList(
            EncoderLayer(d, cfg.n_heads, cfg.dim_feedforward, cfg.dropout)
            for _ in range(cfg.n_encoder_layers)
        )
        self.spatial_blocks = nn.ModuleList(
            SpatialDecodingBlock(
                d,
                cfg.n_heads,
                cfg.dim_feedforward,
                cfg.dropout,
                guided=k > 0 and cfg.instance_context,
            )
            for k in range(cfg.n_layers)
        )
        self.temporal_blocks = nn.ModuleList(
            TemporalDecodingBlock(d, cfg.n_heads, cfg.dim_feedforward, cfg.dropout)
            for _ in range(cfg.n_layers)
        )
        self.spatial_query = nn.Parameter(torch.randn(d) * 0.02)  # Q_0 (every frame)
        self.temporal_query = nn.Parameter(torch.randn(d) * 0.02)  # P_0 (every frame)
        self.context = InstanceContext(
            d, cfg.roi_size, cfg.roi_sampling, cfg.refinement, with_tokens=cfg.instance_context
        )
        self.box_head = BoxHead(d)  # B_k and R_k (eq. 7)
        self.span_head = MLP(d, d, 2, 2)  # start / end logits H_k

    def encode(
        self,
        image: Tensor,
        image_valid: Tensor,
        text: Tensor,
        text_mask: Tensor,
        motion: Tensor,
        clip_index: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """Eqs. (1)-(3) for every frame.

        ``image`` [B, Ts, C_img, h, w]; ``image_valid`` [B, h, w]; ``text`` [B, L, C_txt] with
        ``text_mask`` [B, L]; ``motion`` [B, Td, C_vid, h2, w2] and ``clip_index`` [B, Ts] long
        (each frame's clip; clips are projected once, then copied to their frames). Returns
        ``X~`` [B*Ts, h*w + h2*w2 + L, d] (appearance cells, motion cells, text tokens) and its
        padding mask [B*Ts, M] (True = padding).
        """
        b, ts, _, h, w = image.shape
        h2, w2 = motion.shape[3:]
        d = self.cfg.d_model
        app = self.image_proj(image.flatten(3).transpose(2, 3))  # [B,Ts,hw,d]
        mot = self.motion_proj(motion.flatten(3).transpose(2, 3))  # [B,Td,h2w2,d]
        mot = mot[torch.arange(b, device=mot.device)[:, None], clip_index]  # [B,Ts,h2w2,d]
        txt = self.text_proj(text)  # [B,L,d]
        app = app + (sine_position_2d(image_valid, d).flatten(1, 2) + self.type_embed[0])[:, None]
        full = torch.ones(1, h2, w2, dtype=torch.bool, device=image.device)
        mot = mot + sine_position_2d(full, d).flatten(1, 2) + self.type_embed[1]
        txt = txt + self.type_embed[2]
        n_txt = txt.shape[1]
        x = torch.cat((app, mot, txt[:, None].expand(b, ts, n_txt, d)), dim=2).flatten(0, 1)
        pad = torch.cat(
            (
                ~image_valid.flatten(1),
                torch.zeros(b, h2 * w2, dtype=torch.bool, device=image.device),
                ~text_mask,
            ),
            dim=1,
        )
        pad = pad[:, None].expand(b, ts, -1).flatten(0, 1)
        zero = torch.zeros_like(x)  # E_pos was added to the input (eq. 2), not per layer
        for layer in self.encoder:
            x = layer(x, zero, pad)
        return x, pad

    def _oracle_keep(self, boxes: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        if "boxes" not in batch or "box_mask" not in batch:
            raise InputError(
                "context_selection='oracle' trains with the GT boxes: the batch needs "
                "'boxes' and 'box_mask'",
                field="boxes",
            )
        gt = batch["boxes"].to(boxes.dtype)
        giou = paired_giou(box_cxcywh_to_xyxy(boxes.detach()), box_cxcywh_to_xyxy(gt))
        return batch["box_mask"].bool() & (giou > self.cfg.theta_s)

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
        d = self.cfg.d_model
        valid = batch.get("image_mask")
        valid = torch.ones(b, h, w, dtype=torch.bool, device=device) if valid is None else valid
        valid = valid.bool()
        clip_index = batch.get("frame_clip_index")
        if clip_index is None:
            clip_index = frame_to_clip_index(ts, td, device)[None].expand(b, ts)
        memory, pad = self.encode(image, valid, text, text_mask, motion, clip_index)
        h2, w2 = motion.shape[3:]
        maps = memory.view(b, ts, -1, d)
        appearance = maps[:, :, : h * w].transpose(2, 3).reshape(b, ts, d, h, w)  # X~^2d_a
        motion_map = maps[:, :, h * w : h * w + h2 * w2].transpose(2, 3)
        motion_map = motion_map.reshape(b, ts, d, h2, w2)  # X~^2d_m
        frame_pos = sine_position_1d(ts, d, device=device)

        oracle = self.training and self.cfg.context_selection == "oracle"
        maps = self.cfg.cell_attention or self.cfg.box_reference != "none"
        attention: list[Tensor] = []
        q = self.spatial_query.expand(b, ts, d)
        p = self.temporal_query.expand(b, ts, d)
        context: StageContext | None = None
        stages: list[tuple[Tensor, Tensor, StageContext]] = []
        for k in range(self.cfg.n_layers):
            last = k == self.cfg.n_layers - 1
            q, weights = self.spatial_blocks[k](
                q,
                frame_pos,
                memory,
                pad,
                None if context is None else context.tokens,
                None if context is None else context.keep,
                need_weights=maps,
            )  # eqs. (4)-(5)
            p = self.temporal_blocks[k](p, frame_pos, memory, pad)  # eq. (6)
            reference = None
            if weights is not None:
                attention.append(cell_attention(weights, valid))  # [B,Ts,h,w]
                reference = reference_point(attention[-1], valid, self.cfg.box_reference)
            boxes = self.box_head(q, reference)  # B_k = R_k (eq. 7)
            context = self.context(
                p,
                appearance,
                motion_map,
                boxes,
                valid,
                self.cfg.theta_t,
                self.cfg.theta_s,
                keep=self._oracle_keep(boxes, batch) if oracle else None,
                build_tokens=not last and self.cfg.instance_context,
            )  # eqs. (8)-(12)
            stages.append((boxes, self.span_head(p), context))

        boxes = torch.stack([s[0] for s in stages], dim=1)  # [B,K,Ts,4]
        spans = torch.stack([s[1] for s in stages], dim=1)  # [B,K,Ts,2]
        start, end = spans[..., 0], spans[..., 1]
        score_map, map_mask = joint_span_map(start[:, -1], end[:, -1])
        out = {
            "pred_boxes": boxes[:, -1],
            "start_logits": start[:, -1],
            "end_logits": end[:, -1],
            "score_map": score_map,
            "map_mask": map_mask,
            "stage_boxes": boxes,
            "stage_start": start,
            "stage_end": end,
            "temporal_logits": torch.stack([s[2].temporal_logits for s in stages], dim=1),
            "spatial_conf": torch.stack([s[2].spatial_conf for s in stages], dim=1),
            "context_keep": torch.stack([s[2].keep for s in stages], dim=1),
        }
        if attention:
            out["s2d_attention"] = torch.stack(attention, dim=1)  # [B,K,Ts,h,w]
        return out


def paired_giou(a: Tensor, b: Tensor) -> Tensor:
    """Generalized IoU of matching xyxy boxes ``a``, ``b`` [..., 4] -> [...] (0-area safe)."""
    inter_wh = (
        torch.minimum(a[..., 2:], b[..., 2:]) - torch.maximum(a[..., :2], b[..., :2])
    ).clamp(min=0)
    inter = inter_wh[..., 0] * inter_wh[..., 1]
    area_a = (a[..., 2] - a[..., 0]).clamp(min=0) * (a[..., 3] - a[..., 1]).clamp(min=0)
    area_b = (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)
    union = area_a + area_b - inter
    iou = torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))
    hull_wh = (torch.maximum(a[..., 2:], b[..., 2:]) - torch.minimum(a[..., :2], b[..., :2])).clamp(
        min=0
    )
    hull = hull_wh[..., 0] * hull_wh[..., 1]
    penalty = torch.where(hull > 0, (hull - union) / hull.clamp(min=1e-12), torch.zeros_like(hull))
    return iou - penalty


def joint_span_map(start_logits: Tensor, end_logits: Tensor) -> tuple[Tensor, Tensor]:
    """``log softmax(start)_i + log softmax(end)_j`` for ``i <= j``: ([B, T, T], [T, T] bool).

    Entries with ``i > j`` hold :data:`~stvg.models.heads.INVALID_LOGIT`; the mask is the
    upper triangle with the diagonal (a span of one frame is allowed).
    """
    t = start_logits.shape[1]
    mask = torch.ones(t, t, dtype=torch.bool, device=start_logits.device).triu()
    joint = start_logits.log_softmax(1)[:, :, None] + end_logits.log_softmax(1)[:, None, :]
    return joint.masked_fill(~mask, INVALID_LOGIT), mask


def frame_span(
    start_logits: Tensor, end_logits: Tensor, min_frames: int = 1
) -> tuple[Tensor, Tensor, Tensor]:
    """The span of maximum joint start and end probability (section 3.2, inference).

    ``start_logits``, ``end_logits`` [B, T]. Over ``j - i + 1 >= min_frames``, maximizes
    ``p_s(i) * p_e(j)`` (softmax over frames). Returns ``(start, end, log_prob)``, each [B]:
    the half-open span ``[start, end)`` in sampled-frame units (``end = j + 1``) and
    ``log p_s(i) + log p_e(j)``. ``min_frames=2`` is the released code's rule (``i < j``); ties go
    to the first pair in row-major order.
    """
    b, t = start_logits.shape
    if not 1 <= min_frames <= t:
        raise ValueError(f"min_frames must be in [1, {t}], got {min_frames}")
    joint = start_logits.log_softmax(1)[:, :, None] + end_logits.log_softmax(1)[:, None, :]
    mask = torch.ones(t, t, dtype=torch.bool, device=joint.device).triu(min_frames - 1)
    flat = joint.masked_fill(~mask, float("-inf")).reshape(b, t * t)
    score, idx = flat.max(dim=1)
    return idx // t, idx % t + 1, score


def stored_frame_span(
    pass_frames: Sequence[Tensor | Sequence[int]],
    start_logits: Sequence[Tensor],
    end_logits: Sequence[Tensor],
    stored: int,
    min_frames: int = 1,
) -> tuple[int, int, float]:
    """One query's span in stored-frame units from the passes of a prediction.

    Pass ``p`` ran the model on the stored frames ``pass_frames[p]`` [Ts] (indices into the
    entry's ``stored`` frames; a frame repeated to pad a pass counts once, at its first
    position) and gave ``start_logits[p]`` / ``end_logits[p]`` [Ts]. Each stored frame takes
    its pass's ``log softmax`` start and end probabilities; the span maximizes ``p_s(i) p_e(j)``
    over stored frames ``j - i + 1 >= min_frames`` (frames no pass ran never start or end it).
    Returns ``(start, end, log_prob)``: the half-open ``[start, end)`` in stored-frame indices
    (``end = j + 1``) and the log joint probability (renormalized over the stored frames).
    """
    log_s = torch.full((stored,), float("-inf"))
    log_e = torch.full((stored,), float("-inf"))
    seen = torch.zeros(stored, dtype=torch.bool)
    for frames, s, e in zip(pass_frames, start_logits, end_logits, strict=True):
        ls = s.detach().float().cpu().log_softmax(0)
        le = e.detach().float().cpu().log_softmax(0)
        for k, f in enumerate(torch.as_tensor(frames).tolist()):
            if not seen[f]:
                log_s[f], log_e[f], seen[f] = ls[k], le[k], True
    if not bool(seen.any()):
        raise ValueError("no pass ran any stored frame")
    start, end, score = frame_span(log_s[None], log_e[None], min_frames)
    return int(start), int(end), float(score)


def build_cgstvg(cfg: CGSTVGConfig | Mapping[str, Any]) -> CGSTVG:
    """Build :class:`CGSTVG` from a config or a plain mapping of its fields."""
    if not isinstance(cfg, CGSTVGConfig):
        cfg = CGSTVGConfig.from_dict(cfg)
    model = CGSTVG(cfg)
    log.info(
        "built CG-STVG (d=%d, K=%d, theta_t=%.2f, theta_s=%.2f): %d parameters",
        cfg.d_model,
        cfg.n_layers,
        cfg.theta_t,
        cfg.theta_s,
        sum(p.numel() for p in model.parameters()),
    )
    return model
