"""CoSTA's space-time feature encoding (AAAI 2024, "Space-Time Feature Encoding").

Two parts, both on stvg's cached features:

* :class:`SpaceTimeVideoFusion`, the space-time collaborative video encoder (eq. 1) reduced to
  its last stage. The paper fuses a 2D and a 3D backbone after each of four stages,
  ``y_l = phi_l(y_{l-1}) (.) x_l``; the store holds only the last stage of each pathway: the C5
  map ``x_4`` of every static frame (``image``) and the 3D backbone's last maps (``motion``, one
  per clip). So ``y_4 = phi_4(...) (.) x_4`` is computed once, with ``phi_4``'s output read from
  the store (``motion`` at the clip holding each frame, resized bilinearly to the frame's valid
  C5 grid) instead of from ``y_3``. Both maps are first FC-projected to ``d`` (their channel
  counts differ; the paper's sum needs one). The connection ``(.)`` is table 3b's:

  - ``"sum_norm"`` (the paper's choice): ``LN_x(x) + LN_y(y)``, a LayerNorm on each pathway;
  - ``"concat"``: an FC on ``[x; y]`` (2d -> d, the 1x1 convolution of table 3b);
  - ``"hadamard"``: ``x * y``;
  - ``"2d"`` / ``"3d"``: one backbone only (table 3a).

* :class:`SpaceTimeFusionEncoder`, the space-time multi-modal fusion: per frame, the tokens
  ``[CLS_t; F_v(t) (h*w cells); F_l (L tokens, the sentence repeated for every frame)]`` go through
  a spatial self-attention layer (``F_s``, [T, 1 + HW + L, d]), then the ``T`` [CLS] tokens go
  through a temporal self-attention layer (``F_t``, [T, d]); the pair is repeated ``N`` times
  (ViViT's factorized encoder, interleaved as STCAT's frame/global encoders). Both layers are
  CSDVL's DETR post-norm encoder layer (:class:`stvg.models.static_stream.EncoderLayer`): the
  visual cells carry a 2-D sine position on queries and keys (zeros on [CLS] and text), the
  temporal layer a 1-D sine encoding of the frame index. The [CLS] tokens start from one learned
  vector shared by all frames (the paper has ``T`` learned ones; ``T`` varies per batch here, the
  temporal layer's frame encoding tells them apart).

Output: ``memory`` [B*T, HW + L, d] (``F_out``, visual cells then text), its position and padding,
and the updated [CLS] tokens [B, T, d].

What the store would need for the paper's full eq. (1): the 3D stages consume the fused maps
(``phi_l(y_{l-1})``), so the hierarchy cannot be split into two cached backbones. It can be cached
whole when both backbones are frozen and the connection has no trained parameters (a sum of
non-affine normalizations): stage one would run a 2D ResNet and a 3D ResNet of the same stage
widths (ResNet-101 and a 3D ResNet-50/101 with temporal stride 1: 256/512/1024/2048 channels) on
the static frames, fuse after every stage and store ``y_4`` per video as ``st_image``
[S, 2048, h, w], aligned with ``image`` (same frame ids and grid), the 3D weights recorded in the
manifest under the same weights switch. This module would then read it in place of
``image`` + ``motion``. Not built.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stvg.models.collaboration import GridSizes
from stvg.models.position import sine_position_1d, sine_position_2d
from stvg.models.static_stream import EncoderLayer

VIDEO_FUSIONS = ("sum_norm", "concat", "hadamard", "2d", "3d")


def motion_on_frames(
    motion: Tensor, frame_clip_index: Tensor, sizes: GridSizes, h: int, w: int
) -> Tensor:
    """The 3D pathway's map for every static frame, on the frames' grid.

    ``motion`` [B, Td, d, h2, w2]; ``frame_clip_index`` [B, Ts] long; ``sizes`` the valid
    ``h_b x w_b`` part of each sample's ``h x w`` grid. Each frame takes the map of its clip,
    resized bilinearly (``align_corners=False``) to ``h_b x w_b`` in the top-left corner; padded
    cells are 0. Returns [B, Ts, d, h, w].
    """
    b, ts = frame_clip_index.shape
    d = motion.shape[2]
    picked = motion[torch.arange(b, device=motion.device)[:, None], frame_clip_index]
    out = motion.new_zeros(b, ts, d, h, w)
    for rows, hb, wb in sizes.groups:
        part = picked[rows].flatten(0, 1)  # [n*Ts,d,h2,w2]
        part = F.interpolate(part, size=(hb, wb), mode="bilinear", align_corners=False)
        out[rows, :, :, :hb, :wb] = part.view(-1, ts, d, hb, wb)
    return out


class SpaceTimeVideoFusion(nn.Module):
    """Eq. (1) at the last stage: ``y_4 = phi_4 (.) x_4`` (see the module docstring)."""

    def __init__(
        self, image_channels: int, motion_channels: int, d_model: int, fusion: str
    ) -> None:
        super().__init__()
        if fusion not in VIDEO_FUSIONS:
            raise ValueError(f"fusion must be one of {VIDEO_FUSIONS}, got {fusion!r}")
        self.fusion = fusion
        self.image_proj = nn.Linear(image_channels, d_model) if fusion != "3d" else None
        self.motion_proj = nn.Linear(motion_channels, d_model) if fusion != "2d" else None
        if fusion == "sum_norm":
            self.image_norm = nn.LayerNorm(d_model)
            self.motion_norm = nn.LayerNorm(d_model)
        if fusion == "concat":
            self.reduce = nn.Linear(2 * d_model, d_model)

    def forward(
        self, image: Tensor, motion: Tensor, frame_clip_index: Tensor, sizes: GridSizes
    ) -> Tensor:
        """``image`` [B, Ts, C_img, h, w], ``motion`` [B, Td, C_vid, h2, w2]. Returns ``F_v``
        [B, Ts, h*w, d] (cells row-major)."""
        b, ts, _, h, w = image.shape
        x = y = None
        if self.image_proj is not None:
            x = self.image_proj(image.flatten(3).transpose(2, 3))  # [B,Ts,HW,d]
        if self.motion_proj is not None:
            m = self.motion_proj(motion.permute(0, 1, 3, 4, 2)).permute(0, 1, 4, 2, 3)
            y = motion_on_frames(m, frame_clip_index, sizes, h, w).flatten(3).transpose(2, 3)
        if self.fusion == "2d":
            return x
        if self.fusion == "3d":
            return y
        if self.fusion == "sum_norm":
            return self.image_norm(x) + self.motion_norm(y)
        if self.fusion == "concat":
            return self.reduce(torch.cat((x, y), dim=-1))
        return x * y  # hadamard


class SpaceTimeFusionEncoder(nn.Module):
    """The ``N`` spatial + temporal encoder layer pairs over ``[CLS; F_v; F_l]`` per frame."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        n_layers: int,
        dim_feedforward: int,
        dropout: float,
        temporal: bool = True,
        pos_in_values: bool = False,
    ) -> None:
        """``temporal=False`` drops the temporal layers (table 2's "w/o ST-encoder" keeps only
        the per-frame spatial layers). ``pos_in_values`` (not in the paper, as CSDVL's
        ``visual_pos_in_values``): the 2-D sine position is also added to the visual tokens
        themselves, so the values the decoders read carry where they are."""
        super().__init__()
        self.d_model = d_model
        self.pos_in_values = pos_in_values
        self.cls = nn.Parameter(torch.randn(d_model) * 0.02)
        self.spatial = nn.ModuleList(
            EncoderLayer(d_model, n_heads, dim_feedforward, dropout) for _ in range(n_layers)
        )
        self.temporal = nn.ModuleList(
            EncoderLayer(d_model, n_heads, dim_feedforward, dropout)
            for _ in range(n_layers if temporal else 0)
        )

    def forward(
        self, fv: Tensor, image_valid: Tensor, text: Tensor, text_mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``fv`` [B, T, HW, d]; ``image_valid`` [B, h, w] bool (True = real cell); ``text``
        [B, L, d] projected; ``text_mask`` [B, L] bool (True = real token).

        Returns ``memory``, ``memory_pos`` [B*T, HW + L, d], ``memory_pad`` [B*T, HW + L] bool
        (True = padding) and the [CLS] tokens ``cls`` [B, T, d].
        """
        b, t, hw, d = fv.shape
        n_txt = text.shape[1]
        dev = fv.device
        cls = self.cls.expand(b * t, 1, d)
        vis_pos = sine_position_2d(image_valid, d).flatten(1, 2).to(fv.dtype)  # [B,HW,d]
        if self.pos_in_values:
            fv = fv + vis_pos[:, None]
        x = torch.cat((fv, text[:, None].expand(b, t, n_txt, d)), dim=2).flatten(0, 1)
        x = torch.cat((cls, x), dim=1)  # [B*T,1+HW+L,d]
        pos = torch.cat(
            (fv.new_zeros(b, 1, d), vis_pos, fv.new_zeros(b, n_txt, d)), dim=1
        )  # [B,1+HW+L,d]
        pos = pos[:, None].expand(b, t, -1, d).flatten(0, 1)
        no_pad = torch.zeros(b, 1, dtype=torch.bool, device=dev)
        pad = torch.cat((no_pad, ~image_valid.flatten(1), ~text_mask), dim=1)
        pad = pad[:, None].expand(b, t, -1).flatten(0, 1)
        time_pos = sine_position_1d(t, d, device=dev, dtype=fv.dtype)[None].expand(b, t, d)
        for i, spatial in enumerate(self.spatial):
            x = spatial(x, pos, pad)  # F_s: per-frame multi-modal alignment
            if self.temporal:
                c = self.temporal[i](x[:, 0].view(b, t, d), time_pos, None)  # F_t: the T [CLS]
                x = torch.cat((c.reshape(b * t, 1, d), x[:, 1:]), dim=1)
        return x[:, 1:], pos[:, 1:], pad[:, 1:], x[:, 0].view(b, t, d)
