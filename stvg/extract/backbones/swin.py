"""The video Swin backbone (``--video-backbone swin3d_t``): torchvision's Video Swin Transformer
tiny, the video encoder of CG-STVG (next to its ResNet-101), as a frozen clip encoder.

What runs: ``torchvision.models.video.swin3d_t`` up to its last LayerNorm (patch embedding 2x4x4,
four stages of shifted-window attention with window 8x7x7, patch merging between stages, final
norm); its average pool and Kinetics classifier are dropped. The map has 768 channels and spatial
stride 32 (``ceil(size / 32)``: the patch embedding and patch merging pad odd sizes), and
``clip_frames / 2`` time steps, which are averaged: one ``[768, s, s]`` map per clip, as the
SlowFast choices average theirs. A 32-frame clip is what the Kinetics-400 weights were scored
on (torchvision's ``clip_len=32``), and it is SlowFast's clip length too, so both see the same
frames (:func:`stvg.data.sampling.clip_frame_ids`). Input: the common pad-to-square and resize of
:func:`stvg.extract.backbones.video.pad_resize_clip`, then the ImageNet mean/std, which are the
normalization of the Kinetics weights.

Weights: ``pretrained`` is ``Swin3D_T_Weights.KINETICS400_V1`` through the torch hub cache;
``random`` is torchvision's own init under the common seed; ``PATH`` is a state dict of
``swin3d_t`` (``torch.save(model.state_dict(), PATH)``; the classifier may be there or not), or a
folder holding it under its hub file name or ``swin3d_t.pth``. The file is read before the model
is built, so a bad one is refused at once, naming it.
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from stvg.extract.backbones.image import hash_prefix
from stvg.extract.backbones.weights import (
    WeightsChoice,
    fetch_torch_hub_file,
    file_id,
    load_into,
    load_state_dict,
    locate_file,
    random_id,
    seeded,
)

SWIN_WEIGHTS = "Swin3D_T_Weights.KINETICS400_V1"
SWIN_CHANNELS, SWIN_STRIDE, SWIN_FRAMES = 768, 32, 32
_WHAT = "torchvision swin3d_t"


class SwinBody(nn.Module):
    """``swin3d_t`` without its pool and head; ``[B, 3, T, S, S]`` -> the time mean of its last
    normalized map, ``[B, 768, ceil(S / 32), ceil(S / 32)]``.

    ``net`` is the torchvision model with ``head`` replaced by ``nn.Identity`` (so its
    ``state_dict`` keys are torchvision's and a checkpoint loads into it as is).
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net.norm(self.net.features(self.net.pos_drop(self.net.patch_embed(x))))
        return y.mean(dim=1).permute(0, 3, 1, 2)  # [B, T', s, s, C] -> [B, C, s, s]


def _swin3d_t() -> nn.Module:
    """A random-init ``swin3d_t`` under the common seed, without its classifier."""
    with seeded():
        net = torchvision.models.video.swin3d_t(weights=None)
    net.head = nn.Identity()
    return net


def build_swin_body(choice: WeightsChoice) -> tuple[SwinBody, str]:
    """The body and its weights id for a parsed ``--weights`` (not ``mdetr``).

    Raises :class:`~stvg.extract.backbones.weights.WeightsUnavailable` naming the file when the
    weights cannot be had or do not fit the architecture.
    """
    if choice.kind == "random":
        return SwinBody(_swin3d_t()), random_id()
    url = torchvision.models.get_weight(SWIN_WEIGHTS).url
    if choice.kind == "pretrained":
        path = fetch_torch_hub_file(url, _WHAT, hash_prefix(url))
        weights_id = f"torchvision:{SWIN_WEIGHTS}"
    else:
        assert choice.path is not None
        path = locate_file(choice.path, [url.rsplit("/", 1)[-1], "swin3d_t.pth"], _WHAT)
        weights_id = file_id(path)
    state = load_state_dict(path, _WHAT, strip_prefixes=("module.",))
    net = _swin3d_t()
    load_into(net, state, _WHAT, path)
    return SwinBody(net), weights_id
