"""The dynamic vision-language stream: the Space-Time Cross-Modal Transformer (CSDVL 3.2).

Clip features ``[B, Td, C_vid, h2, w2]`` (SlowFast) are FC-projected to ``d`` (FC + LayerNorm,
as the text projection; the paper only says "an FC layer") giving ``F_v^0`` laid out as
``[B, Td, S, d]`` with ``S = h2*w2`` spatial tokens (row-major). Each STCMT layer does

1. divided space-time self-attention (TimeSformer): attention over the ``Td`` clips at each
   spatial cell (1-D sine encoding of the clip index on queries/keys), then over the ``S`` cells
   of each clip (2-D sine encoding), each post-norm;
2. text self-attention (post-norm, padded tokens masked);
3. the cross-attention of eq. (1), :class:`TextVisualCrossAttention`, then a LayerNorm on each
   modality (the equation shows the residual only; the norm is the usual post-norm placement);
4. one FFN per modality.

Ablation switches (paper table 4): ``spatial=False`` mean-pools the clip features over space
before the projection (``S = 1``, "w/o spatial"); ``mean_pool=False`` lets the text queries of
eq. (1) attend to all ``Td*S`` visual tokens instead of the spatially mean-pooled ``Td`` ones
("w/o mean pool").
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from stvg.models.attention import Dropout, MultiheadAttention
from stvg.models.position import sine_position_1d, sine_position_2d
from stvg.models.static_stream import FeedForward


class TextVisualCrossAttention(nn.Module):
    """Eq. (1): visual queries attend to text; text queries attend to pooled visual features.

    With multi-head attention ``Attention(Q, K, V)`` is the usual per-head
    ``softmax(QK^T / sqrt(d_head)) V``, heads concatenated, then the output projection.
    ``visual_to_text`` holds ``W_v^q`` (queries from ``H_v``) with ``W_l^k, W_l^v`` (keys and values
    from ``H_l``); ``text_to_visual`` holds ``W_l^q`` with ``W_v^k, W_v^v`` applied to
    ``mean_{h,w} H_v`` ([B, Td, d]) or, with ``mean_pool=False``, to all ``Td*S`` tokens.
    With ``update_text=False`` (the last layer, whose text output nothing reads) the text branch
    is not built and ``hl`` is returned unchanged.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        dropout: float,
        mean_pool: bool = True,
        update_text: bool = True,
    ) -> None:
        super().__init__()
        self.mean_pool = mean_pool
        self.visual_to_text = MultiheadAttention(d_model, n_heads, dropout=dropout)
        self.text_to_visual = (
            MultiheadAttention(d_model, n_heads, dropout=dropout) if update_text else None
        )

    def forward(self, hv: Tensor, hl: Tensor, text_mask: Tensor) -> tuple[Tensor, Tensor]:
        """``hv`` [B, Td, S, d], ``hl`` [B, L, d], ``text_mask`` [B, L] (True = real token).

        Returns ``(hv + Attn(Q_v, K_l, V_l), hl + Attn(Q_l, K_v, V_v))`` with the input shapes.
        """
        b, t, s, d = hv.shape
        q_v = hv.reshape(b, t * s, d)  # every (t, h, w) token is a query on the L text tokens
        out_v = self.visual_to_text(q_v, hl, hl, key_padding_mask=~text_mask, need_weights=False)
        hv = hv + out_v[0].view(b, t, s, d)
        if self.text_to_visual is None:
            return hv, hl
        kv = q_v.view(b, t, s, d).mean(2) if self.mean_pool else q_v  # [B,Td,d] / [B,Td*S,d]
        out_l = self.text_to_visual(hl, kv, kv, need_weights=False)[0]
        return hv, hl + out_l


class STCMTLayer(nn.Module):
    """One layer B_d^i of the dynamic stream (see the module docstring for the order)."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        dim_feedforward: int,
        dropout: float,
        mean_pool: bool,
        update_text: bool = True,
    ) -> None:
        super().__init__()
        self.update_text = update_text

        def mha() -> nn.MultiheadAttention:
            return MultiheadAttention(d_model, n_heads, dropout=dropout)

        self.time_attn = mha()
        self.space_attn = mha()
        self.text_attn = mha()
        self.cross = TextVisualCrossAttention(d_model, n_heads, dropout, mean_pool, update_text)
        self.norm_time = nn.LayerNorm(d_model)
        self.norm_space = nn.LayerNorm(d_model)
        self.norm_text = nn.LayerNorm(d_model)
        self.norm_cross_v = nn.LayerNorm(d_model)
        self.dropout = Dropout(dropout)
        self.ffn_v = FeedForward(d_model, dim_feedforward, dropout)
        if update_text:
            self.norm_cross_l = nn.LayerNorm(d_model)
            self.ffn_l = FeedForward(d_model, dim_feedforward, dropout)

    def forward(
        self, fv: Tensor, hl: Tensor, text_mask: Tensor, time_pos: Tensor, space_pos: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``fv`` [B, Td, S, d]; ``hl`` [B, L, d]; ``time_pos`` [Td, d]; ``space_pos`` [S, d].

        Returns the layer's visual output ``F_v^i`` [B, Td, S, d] and text states [B, L, d].
        """
        b, t, s, d = fv.shape
        x = fv.transpose(1, 2).reshape(b * s, t, d)  # one sequence over time per cell
        q = x + time_pos
        x = self.norm_time(x + self.dropout(self.time_attn(q, q, x, need_weights=False)[0]))
        x = x.view(b, s, t, d).transpose(1, 2).reshape(b * t, s, d)  # one sequence per clip
        q = x + space_pos
        x = self.norm_space(x + self.dropout(self.space_attn(q, q, x, need_weights=False)[0]))
        hv = x.view(b, t, s, d)

        out = self.text_attn(hl, hl, hl, key_padding_mask=~text_mask, need_weights=False)[0]
        hl = self.norm_text(hl + self.dropout(out))

        hv, hl = self.cross(hv, hl, text_mask)
        hv = self.ffn_v(self.norm_cross_v(hv))
        if self.update_text:
            hl = self.ffn_l(self.norm_cross_l(hl))
        return hv, hl


class DynamicStream(nn.Module):
    """Projections and STCMT layers; ``layers`` is exposed for the interleaved CSDVL loop."""

    def __init__(
        self,
        *,
        motion_channels: int,
        text_channels: int,
        d_model: int,
        n_heads: int,
        n_layers: int,
        dim_feedforward: int,
        dropout: float,
        spatial: bool = True,
        mean_pool: bool = True,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.spatial = spatial
        self.motion_proj = nn.Sequential(nn.Linear(motion_channels, d_model), nn.LayerNorm(d_model))
        self.text_proj = nn.Sequential(
            nn.Linear(text_channels, d_model), nn.LayerNorm(d_model), Dropout(dropout)
        )
        # The last layer's text output feeds nothing (the heads read only visual features), so
        # its text branch is not built: every parameter then gets a gradient.
        self.layers = nn.ModuleList(
            STCMTLayer(d_model, n_heads, dim_feedforward, dropout, mean_pool, i < n_layers - 1)
            for i in range(n_layers)
        )

    def embed(self, motion: Tensor, text: Tensor) -> tuple[Tensor, Tensor, tuple[int, int]]:
        """``motion`` [B, Td, C_vid, h2, w2], ``text`` [B, L, C_txt].

        Returns ``F_v^0`` [B, Td, S, d], the projected text [B, L, d] and the token grid
        ``(h2, w2)`` (``(1, 1)`` when ``spatial`` is off).
        """
        if not self.spatial:
            motion = motion.mean(dim=(3, 4), keepdim=True)
        grid = (motion.shape[3], motion.shape[4])
        fv = self.motion_proj(motion.flatten(3).transpose(2, 3))  # [B,Td,S,d]
        return fv, self.text_proj(text), grid

    def positions(
        self, clips: int, grid: tuple[int, int], device: torch.device
    ) -> tuple[Tensor, Tensor]:
        """Clip-index encoding [Td, d] and cell encoding [S, d] of an unpadded grid."""
        valid = torch.ones(1, *grid, dtype=torch.bool, device=device)
        space = sine_position_2d(valid, self.d_model)[0].flatten(0, 1)
        return sine_position_1d(clips, self.d_model, device=device), space
