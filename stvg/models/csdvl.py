"""CSDVL: the static and dynamic VL streams, their collaboration blocks and the heads.

Build from Python with ``build_model(CSDVLConfig(...))`` or ``build_model(CSDVLConfig.from_preset(
"hcstvg-v2", d_model=64))``; a resolved config round-trips through ``dataclasses.asdict`` and
``build_model(dict)``.

Forward input (a dict of batched tensors, ``Ts`` and ``Td`` fixed per batch):

=====================  ======================================  ==================================
key                    shape                                   meaning
=====================  ======================================  ==================================
``image``              [B, Ts, C_img, h, w] float              static frames' C5 maps
``image_mask``         [B, h, w] bool, optional                True = real cell (default all)
``text``               [B, L, C_txt] float                     RoBERTa last hidden states
``text_mask``          [B, L] bool                             True = real token
``motion``             [B, Td, C_vid, h2, w2] float            clip features (SlowFast)
``frame_clip_index``   [B, Ts] long, optional                  clip of each frame (d2s
                                                               replication); default: centres
``frame_ids``          [B, Ts] long, optional                  native id of each frame
``clip_spans``         [B, Td, 2] long, optional               native ``[start, end)`` of each
                                                               clip; with ``frame_ids``, frames
                                                               pool into clips by time
=====================  ======================================  ==================================

Images of a batch may come from videos of different grids: each sample's ``h_b x w_b`` map sits
in the top-left corner of the batch's ``h x w``, zero-padded, and ``image_mask`` marks it
(:func:`stvg.features.dataset.collate` does this); a sample's outputs then do not depend on the
others of its batch. Frames pool into clips (eq. (2), attention pooling of ``F_d``) by time:
each clip averages the frames that fall in its span, or takes the nearest one
(:func:`~stvg.models.collaboration.clip_pool_weights`); without ``frame_ids`` and
``clip_spans``, frames and clips are placed by their relative position in the segment.

Forward output (a dict):

* ``pred_boxes`` [B, Ts, 4]: normalized ``(cx, cy, w, h)`` in [0, 1] for every frame;
* ``score_map`` [B, Td, Td]: 2D-TAN logits, ``(i, j)`` = clips ``i..j`` inclusive; entries
  outside ``map_mask`` hold ``INVALID_LOGIT``;
* ``map_mask`` [Td, Td] bool: valid proposals;
* ``frame_logits`` [B, Ts] and ``clip_logits`` [B, Td]: auxiliary scores for L_ta;
* ``s2d_attention`` [B, N, Ts, h, w]: the alpha-scaled decoder attention maps ``A_i`` over the
  visual cells, one per layer (computed in every collab mode, for pictures);
* ``d2s_attention`` [B, N, Ts, h2*w2], only with ``d2s_attention`` "output" or "prior": each
  dynamic-to-static block's cross-attention weights (heads averaged) of every frame's query over
  the cells of its clip;
* ``presence_logits`` [B, Ts], only with ``presence_head``: per frame, "the described event is
  here" (:class:`~stvg.models.heads.PresenceHead`, trained with BCE; ``stvg ground`` ranks
  windows by it);
* ``aux_boxes`` [B, N - 1, Ts, 4], only from ``model(batch, aux=True)``: the box head on every
  earlier layer's object queries (DETR's auxiliary decoder outputs).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from stvg.config import check_fields, config_from_mapping, config_from_preset, require
from stvg.models.box_reference import reference_point
from stvg.models.collaboration import (
    COLLAB_MODES,
    CollaborationBlock,
    GridSizes,
    align_attention,
    clip_pool_weights,
    frame_to_clip_index,
    relative_pool_weights,
    spread_attention,
)
from stvg.models.dynamic_stream import DynamicStream
from stvg.models.heads import (
    BoxHead,
    ClipScoreHead,
    FrameScoreHead,
    PresenceHead,
    TemporalHead,
    proposal_mask,
)
from stvg.models.static_stream import StaticStream

log = logging.getLogger(__name__)

# The smallest probability of ``d2s_attention="prior"`` (its log is the prior on a cell): a
# cell the dynamic stream gives nothing is put at -log(1e4) ~ -9.2, not at -inf, so the static
# stream can still look there when its own evidence is strong.
PRIOR_FLOOR = 1e-4


@dataclass
class CSDVLConfig:
    """Model hyper-parameters. Where the defaults come from:

    * the paper (section 4.1, supplementary B.1): ``n_layers = n_encoder_layers = 6`` (N = 6 in
      both streams) and ``alpha`` (1.0 VidSTG, 0.1 HC-STVG; presets set it);
    * MDETR's defaults, which the paper says it keeps "for most other hyperparameters" and whose
      weights it starts from (so the static stream must have MDETR's sizes): ``d_model`` 256,
      ``n_heads`` 8, ``dim_feedforward`` 2048, ``dropout`` 0.1. The paper states none of them;
    * chosen by us within 2D-TAN's published ranges (the paper gives no value): ``d_map`` 512,
      ``map_layers`` 4, ``map_kernel`` 5, and 2D-TAN's sparse ``pooling_counts``.

    ``alpha`` is the attention-query scale of the static-to-dynamic block. ``collab`` selects the collaboration (see :mod:`stvg.models.collaboration`);
    ``dynamic_spatial=False`` / ``dynamic_mean_pool=False`` are table 4's "w/o spatial" and
    "w/o mean pool". ``d_map`` / ``map_layers`` / ``map_kernel`` shape the 2D-TAN head (2D-TAN
    uses 512 channels, kernel 5-9, 4-8 layers); ``pooling_counts`` ``None`` derives 2D-TAN's
    sparse schedule from ``Td``. Channel counts must match the feature store.
    """

    d_model: int = 256
    n_heads: int = 8
    n_layers: int = 6  # decoder layers = STCMT layers = collaboration blocks
    n_encoder_layers: int = 6
    dim_feedforward: int = 2048
    dropout: float = 0.1
    image_channels: int = 2048
    text_channels: int = 768
    motion_channels: int = 2304
    alpha: float = 1.0
    collab: Literal["none", "s2d", "d2s", "full", "sum", "fc_sum", "concat_fc"] = "full"
    dynamic_spatial: bool = True
    dynamic_mean_pool: bool = True
    d_map: int = 512
    map_layers: int = 4
    map_kernel: int = 5
    pooling_counts: list[int] | None = None
    # False (the paper, DETR): the 2-D sine position enters the static encoder's queries and
    # keys only. True: it is also added to the projected visual tokens (ViT-style), so the values
    # the object query reads carry where they are; a from-scratch model then learns to localize
    # in hundreds of steps instead of tens of thousands (the CPU demo's choice, see README).
    visual_pos_in_values: bool = False
    # "none" (the paper): the box head is a 3-layer MLP on the object query. "attention": the box
    # centre is an offset (in logit space) from a reference point, the centre of mass of the last
    # decoder layer's attention over the feature grid (Deformable/Conditional-DETR style). The
    # paper's static stream starts from MDETR weights that already localize; a from-scratch model
    # (the offline demo) learns the MLP's position read-out far faster with the reference point.
    # "attention_peak" (not in the paper): the centre of mass of the attention within the 3 x 3
    # cells around its peak (argmax cell), so that a map split between two look-alikes puts the
    # box on one of them rather than between them.
    box_reference: Literal["none", "attention", "attention_peak"] = "none"
    # False (the paper): the 2D-TAN head sees only F_d, text enters through the dynamic stream.
    # True: 2D-TAN's own sentence fusion, each proposal feature multiplied by a projection of the
    # sentence (masked mean of the dynamic stream's text states) and L2-normalized before the
    # convolutions. From scratch on a few hundred queries, the paper's head learned one span per
    # video whatever the query; the product makes every proposal's score query-dependent.
    temporal_text_fusion: bool = False
    # False (the paper, MDETR): every frame's object query starts from one learned vector. True:
    # a projection of the sentence (masked mean of the static stream's projected text) is added
    # to it, as STCAT's and CG-STVG's text-conditioned queries, so the first cross-attention
    # already knows what to look for.
    query_from_text: bool = False
    # "mean" (the paper): F_d is the spatial mean of the dynamic stream's last features. "attention":
    # their average weighted by the static stream's last attention map aligned to the clips (as
    # eq. (2) aligns it), so F_d carries the described object's motion rather than 1/S of it.
    dynamic_pool: Literal["mean", "attention"] = "mean"
    # MDETR's decoder layout, for a static stream initialized from MDETR (``stvg train --init
    # mdetr:PATH``; stvg.models.mdetr). ``decoder_norm``: a LayerNorm on the object queries
    # before the heads (MDETR's ``transformer.decoder.norm``, applied to every decoder output it
    # predicts from). ``query_as_position``: the queries start at zero and the learned query
    # vector is added to the query position of every attention, with the frame encoding (MDETR's
    # ``pass_pos_and_query``), instead of being the initial content O^0. Off (the paper's
    # description): the learned vector is O^0 and no norm precedes the heads.
    decoder_norm: bool = False
    query_as_position: bool = False
    # Not in the paper; for the look-alike case (a twin of the target on screen, only motion
    # tells them apart). "off" (the paper): the d2s cross-attention's weights are not used.
    # "output": the model also returns them, ``d2s_attention`` [B, N, Ts, h2*w2] (each frame's
    # query over the cells of its clip), for the d2s attention loss (``loss_d2s_att``) and the
    # probes. "prior": besides, the map of block i, spread back onto the static grid
    # (:func:`~stvg.models.collaboration.spread_attention`), enters static decoder layer i + 1 as
    # ``log`` prior added to its cross-attention logits over the visual cells: where the dynamic
    # stream found the described motion, the static stream looks. Needs a d2s block (collab
    # d2s or full).
    d2s_attention: Literal["off", "output", "prior"] = "off"
    # Not in the paper; for long videos read in windows. True: a presence head, per frame "the
    # described event is here" from the object query and its clip's F_d, output as
    # ``presence_logits`` [B, Ts] and trained with BCE (``loss_presence``; with ``negatives``,
    # also on segments paired with a sentence that does not occur in them). The frame and clip
    # scores are softmax-trained, so they rank frames within a segment but not across segments;
    # this head's probabilities do, and ``stvg ground`` ranks windows by them.
    presence_head: bool = False

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> CSDVLConfig:
        """The preset ``name`` (a key of :data:`MODEL_PRESETS`) with ``overrides`` applied."""
        return config_from_preset(cls, MODEL_PRESETS, name, overrides)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> CSDVLConfig:
        """Build from a mapping (e.g. a run's ``config.json``); unknown keys are refused."""
        return config_from_mapping(cls, values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise :class:`~stvg.config.SettingError` (an :class:`InputError` whose ``field`` is
        the key) for values the model cannot use: types and choices from the annotations, then
        sizes. Called when the config is built."""
        where = type(self).__name__
        check_fields(self, where)
        require(
            self.collab in COLLAB_MODES,
            "collab",
            self.collab,
            f"expected one of {', '.join(COLLAB_MODES)}",
            where,
        )
        for key in ("d_model", "n_heads", "dim_feedforward", "d_map", "map_kernel") + (
            "image_channels",
            "text_channels",
            "motion_channels",
        ):
            require(getattr(self, key) >= 1, key, getattr(self, key), "must be >= 1", where)
        require(
            self.d_model % self.n_heads == 0 and self.d_model % 4 == 0,
            "d_model",
            self.d_model,
            f"must be divisible by n_heads ({self.n_heads}) and by 4",
            where,
        )
        require(
            self.d2s_attention == "off" or self.collab in ("d2s", "full"),
            "d2s_attention",
            self.d2s_attention,
            f"needs a d2s block (collab d2s or full; collab is {self.collab})",
            where,
        )
        require(self.map_kernel % 2 == 1, "map_kernel", self.map_kernel, "must be odd", where)
        for key in ("n_layers", "n_encoder_layers"):
            require(getattr(self, key) >= 1, key, getattr(self, key), "must be >= 1", where)
        require(self.map_layers >= 0, "map_layers", self.map_layers, "must be >= 0", where)
        require(0 <= self.dropout < 1, "dropout", self.dropout, "must be in [0, 1)", where)
        require(
            self.pooling_counts is None or all(c >= 1 for c in self.pooling_counts),
            "pooling_counts",
            self.pooling_counts,
            "must be positive counts (or none)",
            where,
        )


# Model parts of the dataset presets (the trainer's presets hold the optimization numbers).
# "synthetic" is the CPU demo: weight-free encoders (192-channel pixel cells, 27-channel flow) and
# tiny dims; the trainer takes the channel counts from the store's manifest.
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "vidstg": {"alpha": 1.0},
    "hcstvg-v1": {"alpha": 0.1},
    "hcstvg-v2": {"alpha": 0.1},
    "synthetic": {
        "alpha": 1.0,
        "d_model": 64,
        "n_heads": 8,
        "n_layers": 2,
        "n_encoder_layers": 2,
        "dim_feedforward": 128,
        "dropout": 0.0,
        "image_channels": 192,
        "motion_channels": 27,
        "d_map": 64,
        "map_layers": 2,
        "map_kernel": 3,
        # From scratch (no MDETR initialization): see the two fields.
        "visual_pos_in_values": True,
        "box_reference": "attention",
        # The temporal head reads the clips where the static stream looks: with the paper's
        # mean over the grid the target's motion is ~1/49 of F_d and, trained from scratch on
        # the synthetic set, the 2D map stayed at the prior (val m_tIoU 40 % vs 58 %).
        "dynamic_pool": "attention",
    },
}


class CSDVL(nn.Module):
    """The full model; see the module docstring for the input and output dicts."""

    def __init__(self, cfg: CSDVLConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        d = cfg.d_model
        self.static = StaticStream(
            image_channels=cfg.image_channels,
            text_channels=cfg.text_channels,
            d_model=d,
            n_heads=cfg.n_heads,
            n_encoder_layers=cfg.n_encoder_layers,
            n_decoder_layers=cfg.n_layers,
            dim_feedforward=cfg.dim_feedforward,
            dropout=cfg.dropout,
            pos_in_values=cfg.visual_pos_in_values,
            query_as_position=cfg.query_as_position,
        )
        self.dynamic = DynamicStream(
            motion_channels=cfg.motion_channels,
            text_channels=cfg.text_channels,
            d_model=d,
            n_heads=cfg.n_heads,
            n_layers=cfg.n_layers,
            dim_feedforward=cfg.dim_feedforward,
            dropout=cfg.dropout,
            spatial=cfg.dynamic_spatial,
            mean_pool=cfg.dynamic_mean_pool,
        )
        self.collab = nn.ModuleList(
            CollaborationBlock(cfg.collab, d, cfg.n_heads, cfg.dropout)
            for _ in range(cfg.n_layers if cfg.collab != "none" else 0)
        )
        self.box_head = BoxHead(d)
        self.frame_head = FrameScoreHead(d)
        self.clip_head = ClipScoreHead(d)
        self.temporal_head = TemporalHead(
            d, cfg.d_map, cfg.map_layers, cfg.map_kernel, text_fusion=cfg.temporal_text_fusion
        )
        self.presence_head = PresenceHead(d) if cfg.presence_head else None
        self.query_text = nn.Linear(d, d) if cfg.query_from_text else None
        self.decoder_norm = nn.LayerNorm(d) if cfg.decoder_norm else None
        self._masks: dict[int, Tensor] = {}

    def map_mask(self, num_clips: int, device: torch.device) -> Tensor:
        """The valid-proposal mask for ``num_clips`` clips: [Td, Td] bool (cached)."""
        if num_clips not in self._masks:
            self._masks[num_clips] = proposal_mask(num_clips, self.cfg.pooling_counts)
        return self._masks[num_clips].to(device)

    def _reference(self, attn: Tensor, valid: Tensor) -> Tensor | None:
        return reference_point(attn, valid, self.cfg.box_reference)

    def _head_input(self, queries: Tensor) -> Tensor:
        return queries if self.decoder_norm is None else self.decoder_norm(queries)

    def forward(self, batch: Mapping[str, Tensor], aux: bool = False) -> dict[str, Tensor]:
        """The output dict of the module docstring; with ``aux`` also ``aux_boxes``
        [B, N - 1, Ts, 4]: the box head on the object queries after each collaboration block
        (after each decoder layer with ``collab="none"``) but the last, for DETR's auxiliary
        decoder losses."""
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
        if "frame_ids" in batch and "clip_spans" in batch:
            pool = clip_pool_weights(batch["frame_ids"], batch["clip_spans"])  # [B,Td,Ts]
        else:
            pool = relative_pool_weights(ts, td, device)  # [1,Td,Ts]

        memory, memory_pos, memory_pad = self.static.encode(image, image_valid, text, text_mask)
        queries = self.static.initial_queries(b, ts)
        if self.query_text is not None:
            sentence = masked_mean(self.static.text_proj(text), text_mask)  # [B,d]
            queries = queries + self.query_text(sentence)[:, None]
        frame_pos = self.static.frame_position(ts, device)
        fv, hl, grid = self.dynamic.embed(motion, text)
        time_pos, space_pos = self.dynamic.positions(td, grid, device)

        # Each layer's eq. (2) and the attention pooling align maps to the clips by the valid
        # grid sizes: read them once (a host sync) when something will use them.
        aligns = self.cfg.collab in ("s2d", "full") or self.cfg.dynamic_pool == "attention"
        guided = self.cfg.d2s_attention != "off"
        sizes = GridSizes.of(image_valid) if aligns or guided else image_valid
        maps, aux_boxes, d2s_maps, prior = [], [], [], None
        for i in range(self.cfg.n_layers):
            queries, attn = self.static.decoder[i](
                queries, frame_pos, memory, memory_pos, memory_pad, h * w, self.cfg.alpha, prior
            )
            attn = attn.view(b, ts, h, w)  # A^i
            maps.append(attn)
            fv, hl = self.dynamic.layers[i](fv, hl, text_mask, time_pos, space_pos)
            if guided:
                d2s_maps.append(self.collab[i].d2s.attention(queries, fv, clip_index, space_pos))
                if self.cfg.d2s_attention == "prior":
                    spread = spread_attention(d2s_maps[-1], grid, image_valid, sizes)
                    prior = spread.clamp(min=PRIOR_FLOOR).log().reshape(b * ts, h * w)
            if self.collab:
                queries, fv = self.collab[i](
                    queries, fv, attn, grid, clip_index, space_pos, frame_pos, sizes, pool
                )
            if aux and i < self.cfg.n_layers - 1:
                reference = self._reference(attn, image_valid)
                aux_boxes.append(self.box_head(self._head_input(queries), reference))

        fd = pool_dynamic(fv, maps[-1], grid, self.cfg.dynamic_pool, sizes, pool)  # [B,Td,d]
        mask = self.map_mask(td, device)
        sentence = masked_mean(hl, text_mask) if self.cfg.temporal_text_fusion else None
        queries = self._head_input(queries)
        out = {
            "pred_boxes": self.box_head(queries, self._reference(maps[-1], image_valid)),
            "score_map": self.temporal_head(fd, mask, sentence),
            "map_mask": mask,
            "frame_logits": self.frame_head(queries),
            "clip_logits": self.clip_head(fd),
            "s2d_attention": torch.stack(maps, dim=1),
        }
        if self.presence_head is not None:
            index = clip_index.clamp(0, td - 1)[..., None].expand(-1, -1, fd.shape[-1])
            per_frame = fd.gather(1, index)  # [B,Ts,d]: each frame's clip
            out["presence_logits"] = self.presence_head(queries, per_frame)
        if guided:
            out["d2s_attention"] = torch.stack(d2s_maps, dim=1)
        if aux:
            out["aux_boxes"] = (
                torch.stack(aux_boxes, dim=1) if aux_boxes else queries.new_zeros(b, 0, ts, 4)
            )
        return out


def pool_dynamic(
    fv: Tensor,
    attn: Tensor,
    grid: tuple[int, int],
    mode: str,
    valid: Tensor | GridSizes | None = None,
    pool: Tensor | None = None,
) -> Tensor:
    """``F_d`` [B, Td, d] from the dynamic features ``fv`` [B, Td, S, d].

    ``mode="mean"``: the spatial mean (the paper). ``"attention"``: the average weighted by the
    static maps ``attn`` [B, Ts, h, w] (unpadded cells ``valid`` [B, h, w] or their
    :class:`~stvg.models.collaboration.GridSizes`) aligned to the clips (by time with ``pool``
    [B, Td, Ts], :func:`~stvg.models.collaboration.clip_pool_weights`) and the ``grid`` as eq. (2)
    aligns them (:func:`~stvg.models.collaboration.align_attention`), renormalized per clip.
    """
    if mode == "mean":
        return fv.mean(2)
    weights = align_attention(attn, fv.shape[1], grid, valid, pool)  # [B,Td,S]
    weights = weights / weights.sum(2, keepdim=True).clamp(min=1e-6)
    return (fv * weights[..., None]).sum(2)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x`` [B, L, d] over the positions where ``mask`` [B, L] is True: [B, d]."""
    m = mask.to(x.dtype)[..., None]
    return (x * m).sum(1) / m.sum(1).clamp(min=1)


def build_model(cfg: CSDVLConfig | Mapping[str, Any]) -> CSDVL:
    """Build :class:`CSDVL` from a config or a plain mapping of its fields."""
    if not isinstance(cfg, CSDVLConfig):
        cfg = CSDVLConfig.from_dict(cfg)
    model = CSDVL(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    log.info(
        "built CSDVL (collab=%s, d=%d, N=%d): %d parameters",
        cfg.collab,
        cfg.d_model,
        cfg.n_layers,
        n_params,
    )
    return model
