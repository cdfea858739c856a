"""The static vision-language stream (CSDVL section 3.1; STVGFormer section 1.1).

Per frame, DETR/MDETR-like: the ResNet C5 map (``h*w`` cells of ``C_img`` channels) and the text
states (``L`` tokens of 768) are FC-projected to ``d``; ``N`` post-norm encoder layers run over the
concatenation ``[visual; text]`` (``h*w + L`` tokens) with a 2-D sine position encoding on the
visual part (zeros on the text part, as MDETR) and give the memory ``M_t``. ``N`` decoder layers
refine one learnable object query per frame: self-attention over the ``Ts`` frames of the clip
(our reading: the papers describe MDETR-like decoder layers and say nothing more of their
self-attention, which over a single query would be trivial; a 1-D sine encoding of the frame
index is added to its queries and keys), then cross-attention to ``M_t``, then an FFN.

Each decoder layer also returns ``A``, its cross-attention weights over the *visual* memory
positions (``[B, Ts, h*w]``, averaged over heads), recomputed with the projected query multiplied
by ``alpha`` (supplementary B.1: a softmax temperature for the static-to-dynamic block). The
softmax runs over all ``h*w + L`` memory positions and the text columns are then dropped, so a
frame's map sums to at most 1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stvg.models.attention import Dropout, MultiheadAttention
from stvg.models.position import sine_position_1d, sine_position_2d


def scaled_attention_weights(
    attn: nn.MultiheadAttention,
    query: Tensor,
    key: Tensor,
    key_padding_mask: Tensor | None = None,
    alpha: float = 1.0,
    bias: Tensor | None = None,
) -> Tensor:
    """Head-averaged attention weights of ``attn`` with the projected query scaled by ``alpha``.

    ``query`` [N, Lq, d], ``key`` [N, Lk, d] (batch-first, positions already added),
    ``key_padding_mask`` [N, Lk] bool with True = ignore, ``bias`` [N, Lk] float added to every
    head's logits (after the scaling). Returns [N, Lq, Lk]: the average over heads of
    ``softmax(alpha * (W_q q + b_q)(W_k k + b_k)^T / sqrt(d_head) + bias)``. With ``alpha=1``
    this equals ``attn(query, key, ...)[1]`` (no dropout).
    """
    d = attn.embed_dim
    h = attn.num_heads
    w, b = attn.in_proj_weight, attn.in_proj_bias
    q = F.linear(query, w[:d], None if b is None else b[:d])  # [N,Lq,d]
    k = F.linear(key, w[d : 2 * d], None if b is None else b[d : 2 * d])  # [N,Lk,d]
    n, lq, lk = q.shape[0], q.shape[1], k.shape[1]
    q = q.view(n, lq, h, d // h).transpose(1, 2)  # [N,h,Lq,dh]
    k = k.view(n, lk, h, d // h).transpose(1, 2)  # [N,h,Lk,dh]
    logits = alpha * (q @ k.transpose(-1, -2)) / math.sqrt(d // h)  # [N,h,Lq,Lk]
    if bias is not None:
        logits = logits + bias[:, None, None, :]
    if key_padding_mask is not None:
        logits = logits.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
    return logits.softmax(-1).mean(1)


class FeedForward(nn.Module):
    """``LayerNorm(x + Dropout(W2 Dropout(ReLU(W1 x))))``: the post-norm transformer FFN."""

    def __init__(self, d_model: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.dropout = Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x + self.dropout(self.linear2(self.dropout(F.relu(self.linear1(x))))))


class EncoderLayer(nn.Module):
    """DETR post-norm encoder layer: ``q = k = x + pos``, values ``x``; then the FFN."""

    def __init__(self, d_model: int, n_heads: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, n_heads, dropout=dropout)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = Dropout(dropout)
        self.ffn = FeedForward(d_model, dim_feedforward, dropout)

    def forward(self, x: Tensor, pos: Tensor, pad: Tensor | None) -> Tensor:
        """``x``, ``pos`` [N, M, d]; ``pad`` [N, M] bool, True = padding. Returns [N, M, d]."""
        q = x + pos
        out = self.self_attn(q, q, x, key_padding_mask=pad, need_weights=False)[0]
        return self.ffn(self.norm(x + self.dropout(out)))


class DecoderLayer(nn.Module):
    """One static decoder layer B_s^i: frame self-attention, cross-attention to M_t, FFN."""

    def __init__(self, d_model: int, n_heads: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, n_heads, dropout=dropout)
        self.cross_attn = MultiheadAttention(d_model, n_heads, dropout=dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = Dropout(dropout)
        self.ffn = FeedForward(d_model, dim_feedforward, dropout)

    def forward(
        self,
        queries: Tensor,
        query_pos: Tensor,
        memory: Tensor,
        memory_pos: Tensor,
        memory_pad: Tensor | None,
        n_visual: int,
        alpha: float,
        bias: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Refine the object queries.

        ``queries`` [B, Ts, d] (one per frame); ``query_pos`` [Ts, d] (frame-index encoding);
        ``memory``/``memory_pos`` [B*Ts, M, d] with the ``n_visual`` visual cells first, then the
        text tokens; ``memory_pad`` [B*Ts, M] bool (True = padding); ``bias`` [B*Ts, n_visual]
        optional, added to every head's cross-attention logits on the visual cells (a prior,
        e.g. CSDVL's ``d2s_attention="prior"``).
        Returns the new queries [B, Ts, d] and ``A`` [B, Ts, n_visual] (alpha-scaled weights).
        """
        b, ts, d = queries.shape
        q = queries + query_pos
        out = self.self_attn(q, q, queries, need_weights=False)[0]  # over frames
        queries = self.norm1(queries + self.dropout(out))

        qf = (queries + query_pos).reshape(b * ts, 1, d)  # each frame's query is its own batch
        key = memory + memory_pos
        mask = None
        if bias is not None:  # one float mask: the prior on the visual cells, -inf on padding
            bias = F.pad(bias, (0, memory.shape[1] - n_visual))
            if memory_pad is not None:
                bias, memory_pad = bias.masked_fill(memory_pad, float("-inf")), None
            mask = bias.repeat_interleave(self.cross_attn.num_heads, dim=0)[:, None]
        out = self.cross_attn(
            qf, key, memory, key_padding_mask=memory_pad, attn_mask=mask, need_weights=False
        )[0]
        queries = self.norm2(queries + self.dropout(out.view(b, ts, d)))
        weights = scaled_attention_weights(self.cross_attn, qf, key, memory_pad, alpha, bias)
        attn = weights[:, 0, :n_visual].reshape(b, ts, n_visual)  # [B,Ts,HW]
        return self.ffn(queries), attn


class StaticStream(nn.Module):
    """Projections, the cross-modal encoder and the decoder layers of the static stream.

    The decoder layers are exposed as ``decoder`` (a ModuleList) because the CSDVL assembly runs
    a collaboration block between layer ``i`` of the decoder and layer ``i + 1``.
    """

    def __init__(
        self,
        *,
        image_channels: int,
        text_channels: int,
        d_model: int,
        n_heads: int,
        n_encoder_layers: int,
        n_decoder_layers: int,
        dim_feedforward: int,
        dropout: float,
        pos_in_values: bool = False,
        query_as_position: bool = False,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.pos_in_values = pos_in_values
        self.query_as_position = query_as_position
        self.image_proj = nn.Linear(image_channels, d_model)  # DETR's 1x1 input projection
        # MDETR's FeatureResizer for the text states: FC + LayerNorm + dropout.
        self.text_proj = nn.Sequential(
            nn.Linear(text_channels, d_model), nn.LayerNorm(d_model), Dropout(dropout)
        )
        self.encoder = nn.ModuleList(
            EncoderLayer(d_model, n_heads, dim_feedforward, dropout)
            for _ in range(n_encoder_layers)
        )
        self.decoder = nn.ModuleList(
            DecoderLayer(d_model, n_heads, dim_feedforward, dropout)
            for _ in range(n_decoder_layers)
        )
        self.query_embed = nn.Parameter(torch.randn(d_model) * 0.02)  # O^0, shared by frames

    def encode(
        self, image: Tensor, image_valid: Tensor, text: Tensor, text_mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Build the per-frame memories M_t.

        ``image`` [B, Ts, C_img, h, w]; ``image_valid`` [B, h, w] bool (True = real cell, the
        same for every frame of a video); ``text`` [B, L, C_txt]; ``text_mask`` [B, L] bool
        (True = real token). Returns ``memory`` and ``memory_pos`` [B*Ts, h*w + L, d] and
        ``memory_pad`` [B*Ts, h*w + L] bool (True = padding).
        """
        b, ts, _, h, w = image.shape
        d = self.d_model
        vis = self.image_proj(image.flatten(3).transpose(2, 3))  # [B,Ts,HW,d]
        txt = self.text_proj(text)  # [B,L,d]
        n_txt = txt.shape[1]
        vis_pos = sine_position_2d(image_valid, d).flatten(1, 2)  # [B,HW,d]
        if self.pos_in_values:  # visual tokens carry their position (see CSDVLConfig)
            vis = vis + vis_pos[:, None]
        x = torch.cat((vis, txt[:, None].expand(b, ts, n_txt, d)), dim=2).flatten(0, 1)
        pos = torch.cat((vis_pos, torch.zeros_like(txt)), dim=1)  # [B,HW+L,d]
        pos = pos[:, None].expand(b, ts, -1, d).flatten(0, 1)  # [B*Ts,HW+L,d]
        pad = torch.cat((~image_valid.flatten(1), ~text_mask), dim=1)  # [B,HW+L]
        pad = pad[:, None].expand(b, ts, -1).flatten(0, 1)
        for layer in self.encoder:
            x = layer(x, pos, pad)
        return x, pos, pad

    def initial_queries(self, batch: int, frames: int) -> Tensor:
        """O^0 for every frame: [B, Ts, d] (zeros with ``query_as_position``)."""
        queries = self.query_embed.expand(batch, frames, self.d_model)
        return torch.zeros_like(queries) if self.query_as_position else queries

    def frame_position(self, frames: int, device: torch.device) -> Tensor:
        """The query position: the sine encoding of the frame index, [Ts, d], plus the learned
        query vector with ``query_as_position`` (MDETR's layout: content starts at zero and the
        learned query enters every attention's queries and keys)."""
        pos = sine_position_1d(frames, self.d_model, device=device)
        return pos + self.query_embed if self.query_as_position else pos
