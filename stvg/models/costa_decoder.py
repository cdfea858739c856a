"""CoSTA's space-time entangled decoder (AAAI 2024, "Space-time Entangled Decoding").

* Temporal decoder (eq. 2): queries ``q_i = W(theta_t(c_i) + PE(i))`` from the encoder's [CLS]
  tokens; each layer is inter-frame self-attention, intra-frame cross-attention (query ``i``
  reads only frame ``i``'s memory) and an FFN: exactly CSDVL's static decoder layer
  (:class:`stvg.models.static_stream.DecoderLayer`, reused). A 2-layer MLP on the last layer's
  queries gives start and end logits per frame; their softmax over the frames is ``p_t``.
* Span read-out (:func:`frame_span`): the pair ``(t_s, t_e)`` with ``t_e > t_s`` maximizing
  ``p_s(t_s) * p_e(t_e)`` (the paper: "maximum and valid start or end probabilities"), returned
  as the half-open ``[t_s, t_e + 1)`` in stored-frame units.
* Entangled query: the event part (eq. 3-4, :func:`event_labels`, :class:`EventEmbedding`) and the
  object part, 4-D anchor boxes (eq. 5, :func:`anchor_sine`) as DAB-DETR: the anchor's sine
  encoding, an MLP to ``d`` gives the positional query of each layer.
* Spatial decoder (fig. 5b, :class:`SpatialDecoderLayer`): the content query starts as the event
  part; in each layer content and object part are *summed* for inter-frame self-attention and
  *concatenated* (per head, :class:`ConcatCrossAttention`, Conditional/DAB-DETR) for the
  intra-frame cross-attention; after the FFN a box MLP (shared by the layers) moves the anchor in
  logit space, ``b' = sigmoid(logit(b) + delta)``, and the next layer reads the detached anchor
  (DAB-DETR). The last layer's anchors are the boxes. With ``box_reference`` "attention" (not in
  the paper, a scratch aid as CSDVL's: :mod:`stvg.models.box_reference`), the box centre moves
  from the centre of mass of the layer's attention over the frame's cells instead of from the
  anchor's centre: ``c' = sigmoid(logit(c_att) + delta_c)``; width and height as above.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from stvg.models.attention import Dropout, MultiheadAttention
from stvg.models.box_reference import cell_attention, reference_point
from stvg.models.heads import MLP
from stvg.models.position import sine_position_1d
from stvg.models.static_stream import DecoderLayer, FeedForward


# ----------------------------------------------------------------------------- temporal part
class TemporalDecoder(nn.Module):
    """Eq. (2) queries, ``n_layers`` decoder layers and the start/end head."""

    def __init__(
        self, d_model: int, n_heads: int, n_layers: int, dim_feedforward: int, dropout: float
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.theta_t = MLP(d_model, d_model, d_model, 2)
        self.w = nn.Linear(d_model, d_model)
        self.layers = nn.ModuleList(
            DecoderLayer(d_model, n_heads, dim_feedforward, dropout) for _ in range(n_layers)
        )
        self.head = MLP(d_model, d_model, 2, 2)

    def queries(self, cls: Tensor) -> Tensor:
        """Eq. (2): ``q_i = W(theta_t(c_i) + PE(i))``. ``cls`` [B, T, d] -> [B, T, d]."""
        t = cls.shape[1]
        pe = sine_position_1d(t, self.d_model, device=cls.device, dtype=cls.dtype)
        return self.w(self.theta_t(cls) + pe)

    def forward(
        self, cls: Tensor, memory: Tensor, memory_pos: Tensor, memory_pad: Tensor, n_visual: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Returns ``start_logits``, ``end_logits`` [B, T] and the last queries [B, T, d]."""
        q = self.queries(cls)
        t = cls.shape[1]
        pe = sine_position_1d(t, self.d_model, device=cls.device, dtype=cls.dtype)
        for layer in self.layers:
            q, _ = layer(q, pe, memory, memory_pos, memory_pad, n_visual, 1.0)
        logits = self.head(q)
        return logits[..., 0], logits[..., 1], q


def frame_span(
    start_logits: Tensor, end_logits: Tensor, frame_mask: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """The predicted event: ``argmax_{t_s < t_e} p_s(t_s) p_e(t_e)``.

    ``start_logits``, ``end_logits`` [B, T]; ``p = softmax`` over the frames (``frame_mask``
    [B, T] bool, True = real frame, restricts both ends). Returns ``(start, end, score)``, each
    [B]: the half-open span ``[t_s, t_e + 1)`` in the model's frame units (frame ``k`` of the
    ``Ts`` frames fed to the model) and ``p_s(t_s) p_e(t_e)``. With a single frame the span is
    ``[0, 1)``. Ties go to the first pair in row-major order.
    """
    b, t = start_logits.shape
    if frame_mask is not None:
        start_logits = start_logits.masked_fill(~frame_mask, float("-inf"))
        end_logits = end_logits.masked_fill(~frame_mask, float("-inf"))
    ls = start_logits.log_softmax(-1)
    le = end_logits.log_softmax(-1)
    joint = ls[:, :, None] + le[:, None, :]  # [B,T,T], (i, j) = start i, end j
    valid = torch.ones(t, t, dtype=torch.bool, device=joint.device).triu(1 if t > 1 else 0)
    flat = joint.masked_fill(~valid, float("-inf")).reshape(b, t * t)
    score, idx = flat.max(dim=1)
    return idx // t, idx % t + 1, score.exp()


# ----------------------------------------------------------------------------- entangled query
def event_labels(start: Tensor, end: Tensor, frames: int) -> Tensor:
    """Eq. (3): ``a_i = 1`` if frame ``i`` is in the event ``[start, end)`` (half-open, frame
    units, [B] long each), else 0. Returns [B, frames] long."""
    i = torch.arange(frames, device=start.device)[None]
    return ((i >= start[:, None]) & (i < end[:, None])).long()


class EventEmbedding(nn.Module):
    """Eq. (4): ``Tem_i = Emb(a_i) + PE(i)`` inside the event, ``Emb(a_i)`` outside."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.d_model = d_model
        self.embed = nn.Embedding(2, d_model)

    def forward(self, labels: Tensor) -> Tensor:
        """``labels`` [B, T] long in {0, 1} -> [B, T, d]."""
        t = labels.shape[1]
        pe = sine_position_1d(t, self.d_model, device=labels.device)
        emb = self.embed(labels)
        return emb + labels[..., None].to(emb.dtype) * pe.to(emb.dtype)


def anchor_sine(anchors: Tensor, d_model: int, temperature: float = 10000.0) -> Tensor:
    """``SE`` of eq. (5): the sine encoding of 4-D anchors ``(cx, cy, w, h)`` in [0, 1].

    Each coordinate ``v`` becomes ``d_model / 2`` channels: channel ``k`` is
    ``sin(2 pi v / temperature**(2 (k // 2) / (d_model / 2)))`` for even ``k`` and the matching
    cosine for odd ``k`` (DETR's per-axis layout, as :func:`stvg.models.position.sine_position_2d`).
    The four blocks are concatenated in the order ``cy, cx, w, h`` (the 2-D map's ``y, x``
    first). ``anchors`` [..., 4] -> [..., 2 * d_model].
    """
    half = d_model // 2
    k = torch.arange(half, device=anchors.device, dtype=torch.float32)
    freq = temperature ** (2 * torch.div(k, 2, rounding_mode="floor") / half)
    parts = []
    for c in (1, 0, 2, 3):
        p = anchors[..., c : c + 1].float() * (2 * math.pi) / freq  # [...,half]
        parts.append(torch.stack((p[..., 0::2].sin(), p[..., 1::2].cos()), dim=-1).flatten(-2))
    return torch.cat(parts, dim=-1).to(anchors.dtype)


# ----------------------------------------------------------------------------- spatial part
class ConcatCrossAttention(nn.Module):
    """Cross-attention on concatenated content and positional parts (Conditional DETR).

    Per head ``h``: ``softmax([W_qc x; W_qp p]_h . [W_kc m; W_kp r]_h / sqrt(2 d_h)) (W_v m)_h``,
    i.e. ``(q_c . k_c + q_p . k_p) / sqrt(2 d_h)``, heads concatenated, then ``W_o``. ``x`` is
    the content (event) query, ``p`` the positional (object) query, ``m`` the memory and ``r``
    its position.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.q_content = nn.Linear(d_model, d_model)
        self.q_pos = nn.Linear(d_model, d_model)
        self.k_content = nn.Linear(d_model, d_model)
        self.k_pos = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = Dropout(dropout)

    def forward(
        self, x: Tensor, p: Tensor, m: Tensor, r: Tensor, pad: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``x``, ``p`` [N, Lq, d]; ``m``, ``r`` [N, M, d]; ``pad`` [N, M] bool (True = ignore).
        Returns the output [N, Lq, d] and the head-averaged weights [N, Lq, M]."""
        n, lq, d = x.shape
        mk = m.shape[1]
        h, dh = self.n_heads, d // self.n_heads

        def heads(z: Tensor, length: int) -> Tensor:
            return z.view(n, length, h, dh).transpose(1, 2)  # [N,h,len,dh]

        q = torch.cat((heads(self.q_content(x), lq), heads(self.q_pos(p), lq)), dim=-1)
        k = torch.cat((heads(self.k_content(m), mk), heads(self.k_pos(r), mk)), dim=-1)
        logits = q @ k.transpose(-1, -2) / math.sqrt(2 * dh)  # [N,h,Lq,M]
        if pad is not None:
            logits = logits.masked_fill(pad[:, None, None, :], float("-inf"))
        weights = logits.softmax(-1)
        out = self.dropout(weights) @ heads(self.v(m), mk)  # [N,h,Lq,dh]
        out = out.transpose(1, 2).reshape(n, lq, d)
        return self.out(out), weights.mean(1)


class SpatialDecoderLayer(nn.Module):
    """One entangled spatial decoder layer (fig. 5b; see the module docstring)."""

    def __init__(self, d_model: int, n_heads: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, n_heads, dropout=dropout)
        self.cross_attn = ConcatCrossAttention(d_model, n_heads, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = Dropout(dropout)
        self.ffn = FeedForward(d_model, dim_feedforward, dropout)

    def forward(
        self,
        content: Tensor,
        obj: Tensor,
        memory: Tensor,
        memory_pos: Tensor,
        memory_pad: Tensor | None,
    ) -> tuple[Tensor, Tensor]:
        """``content`` (event part) and ``obj`` (object part) [B, T, d]; ``memory``,
        ``memory_pos`` [B*T, M, d]; ``memory_pad`` [B*T, M]. Returns the new content [B, T, d]
        and the cross-attention weights [B, T, M]."""
        b, t, d = content.shape
        q = content + obj  # summed for inter-frame self-attention
        out = self.self_attn(q, q, content, need_weights=False)[0]
        content = self.norm1(content + self.dropout(out))
        out, weights = self.cross_attn(  # concatenated for intra-frame cross-attention
            content.reshape(b * t, 1, d), obj.reshape(b * t, 1, d), memory, memory_pos, memory_pad
        )
        content = self.norm2(content + self.dropout(out.view(b, t, d)))
        return self.ffn(content), weights.view(b, t, -1)


class SpatialDecoder(nn.Module):
    """Eq. (5) anchors, ``n_layers`` :class:`SpatialDecoderLayer` and the anchor updates."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        n_layers: int,
        dim_feedforward: int,
        dropout: float,
        box_reference: str = "none",
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.box_reference = box_reference
        self.theta_s = MLP(d_model, d_model, 4, 2)
        self.ref_point_head = MLP(2 * d_model, d_model, d_model, 2)
        self.layers = nn.ModuleList(
            SpatialDecoderLayer(d_model, n_heads, dim_feedforward, dropout) for _ in range(n_layers)
        )
        self.box_delta = MLP(d_model, d_model, 4, 3)

    def initial_anchors(self, cls: Tensor) -> Tensor:
        """``sigma(theta_s(c_i))`` of eq. (5): [B, T, d] -> [B, T, 4] normalized cxcywh."""
        return self.theta_s(cls).sigmoid()

    def forward(
        self,
        event: Tensor,
        cls: Tensor,
        memory: Tensor,
        memory_pos: Tensor,
        memory_pad: Tensor | None,
        cells: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``event`` [B, T, d] (eq. 4), ``cls`` [B, T, d]; ``cells`` [B, h, w] bool, the valid
        cells of the grid whose ``h * w`` tokens open ``memory`` (needed by ``box_reference``).
        Returns the boxes of every layer [n_layers, B, T, 4], the last content queries
        [B, T, d] and every layer's attention [n_layers, B, T, M]."""
        anchors = self.initial_anchors(cls)
        content = event
        boxes, attention = [], []
        for layer in self.layers:
            obj = self.ref_point_head(anchor_sine(anchors, self.d_model))
            content, weights = layer(content, obj, memory, memory_pos, memory_pad)
            attention.append(weights)
            ref = torch.logit(anchors.clamp(1e-4, 1 - 1e-4))
            if self.box_reference != "none":
                if cells is None:
                    raise ValueError("box_reference needs the valid cells of the memory's grid")
                centre = reference_point(cell_attention(weights, cells), cells, self.box_reference)
                ref = torch.cat((torch.logit(centre.clamp(1e-4, 1 - 1e-4)), ref[..., 2:]), -1)
            new = (ref + self.box_delta(content)).sigmoid()
            boxes.append(new)
            anchors = new.detach()
        return torch.stack(boxes), content, torch.stack(attention)
