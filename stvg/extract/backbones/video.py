"""The frozen video encoder: one feature map per clip, from pytorchvideo's SlowFast or a light
frame-difference encoder for the offline demo.

Choices (``name``):

- ``slowfast_r50_detection`` (default): pytorchvideo's AVA-finetuned SlowFast 8x8 R50 (hub
  builder ``pytorchvideo.models.hub.slowfast_r50_detection``, checkpoint
  ``ava/SLOWFAST_8x8_R50_DETECTION.pyth``). We run its body (``model.blocks[:5]``: stem and res2-
  res5 of both pathways with their lateral fusions) and stop before its pooling/RoI head. Its res5
  is dilated (dilation 2, spatial stride 1), so the map has stride 16: a 256x256 clip gives
  16x16. Slow res5 (2048) and fast res5 (256) are each averaged over time (as the head's
  ``AvgPool3d((8|32, 1, 1))`` does) and concatenated: 2304 channels, slow first.
- ``slowfast_r101``: pytorchvideo's Kinetics-400 SlowFast 8x8 R101 (``slowfast_r101``,
  ``kinetics/SLOWFAST_8x8_R101.pyth``), the same 2304 channels but an undilated res5, so stride
  32 (256 -> 8x8). The paper (CSDVL) says only "SlowFast pre-trained on AVA", following Aug.
  2D-TAN; it states neither the depth nor the variant. The default is pytorchvideo's AVA
  SlowFast (R50, the one AVA checkpoint it ships), so the AVA pretraining is the paper's and
  the depth is unknown. The supplementary's table 1 compares AVA and Kinetics-600 pretraining
  on HC-STVG v2 and calls them similar (m_vIoU 38.7 vs 38.4).
- ``framediff_resnet18``: the light choice for ``--weights random`` and the offline demo. Each of
  the clip's frames goes through ResNet18 up to ``layer3`` (256 ch, stride 16); the output is
  ``[mean over frames, last frame - first frame]`` concatenated: 512 channels. Section 6 of
  docs/design.md measured that this difference carries motion direction (.90 5-way with
  random weights), while a random SlowFast carries little (pytorchvideo zero-inits the last BN
  of every residual branch, so it is mostly stem and shortcuts). ``clip_frames`` = 8.
  Pretrained weights are torchvision's ResNet18 IMAGENET1K_V1.
- ``pixelflow``: no network and no weights; the offline demo's choice. Per ``16 x 16`` cell of
  the clip: its mean color (3 channels) and classic Lucas-Kanade optical flow (velocity ``vx, vy``
  and RMS frame difference for each of the 7 frame pairs and for the whole clip: 24 channels),
  27 channels, stride 16, ``clip_frames`` = 8. Measured on the synthetic benchmark (240 videos,
  the flow of the cell under the actor's box centre, MLP, held-out videos): the 7 actions at
  .72 (walks, jumps, stops, spins .85-.96; enter and leave are walks near an edge), where the
  same probe on ``[mean, last - first]`` of ``8 x 8`` pixel thumbnails reached .43 and a linear
  one .24: velocity is translation-invariant, raw pixel differences are not.
- ``swin3d_t``: torchvision's Video Swin tiny (Kinetics-400), CG-STVG's video encoder: its last
  normalized map averaged over time, 768 channels, stride 32, ``clip_frames`` = 32 (see
  :mod:`.swin`).

Input convention (all choices): ``preprocess`` takes the clip's ``clip_frames`` RGB uint8 frames
``[T, H, W, 3]``, pads them at the right/bottom with black to a square of side ``max(H, W)``
(so a pixel ``(x, y)`` lands at ``(x, y) * size / max(H, W)``), resizes to ``size x size``
(bilinear, antialiased) and normalizes: mean 0.45 / std 0.225 per channel for SlowFast (the
values of pytorchvideo's and SlowFast's AVA/Kinetics configs, RGB order), ImageNet mean/std for
``framediff_resnet18`` and ``swin3d_t``. It returns ``[3, T, size, size]``; ``forward`` takes a stack
``[B, 3, T, size, size]``. SlowFast's slow pathway gets ``T / alpha`` frames (alpha = 4) picked
by ``linspace(0, T - 1, T / alpha)`` as SlowFast's ``PackPathway`` does (frames
0, 4, 8, 13, 17, 22, 26, 31 of 32).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from stvg.extract.backbones.image import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    WEIGHT_FREE,
    Thumbnails,
    autocast_context,
    hash_prefix,
    resnet_trunk,
    torchvision_url,
)
from stvg.extract.backbones.swin import (
    SWIN_CHANNELS,
    SWIN_FRAMES,
    SWIN_STRIDE,
    SWIN_WEIGHTS,
    build_swin_body,
)
from stvg.extract.backbones.weights import (
    WeightsUnavailable,
    fetch_torch_hub_file,
    file_id,
    load_into,
    load_state_dict,
    locate_file,
    parse_weights,
    random_id,
    seeded,
)

PYTORCHVIDEO_ZOO = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo"
SLOWFAST_MEAN = (0.45, 0.45, 0.45)
SLOWFAST_STD = (0.225, 0.225, 0.225)
ALPHA = 4  # fast/slow frame-rate ratio

# name -> (out_channels, stride, clip_frames, checkpoint URL or torchvision weights)
_CHOICES = {
    "slowfast_r50_detection": (
        2304,
        16,
        32,
        f"{PYTORCHVIDEO_ZOO}/ava/SLOWFAST_8x8_R50_DETECTION.pyth",
    ),
    "slowfast_r101": (2304, 32, 32, f"{PYTORCHVIDEO_ZOO}/kinetics/SLOWFAST_8x8_R101.pyth"),
    "framediff_resnet18": (512, 16, 8, "ResNet18_Weights.IMAGENET1K_V1"),
    "pixelflow": (3 + 3 * 8, 16, 8, None),
    "swin3d_t": (SWIN_CHANNELS, SWIN_STRIDE, SWIN_FRAMES, SWIN_WEIGHTS),
}
VIDEO_BACKBONES = tuple(_CHOICES)
FLOW_RIDGE = 5e-3  # added to the diagonal of each cell's 2x2 Lucas-Kanade system
FLOW_MAX = 4.0  # |velocity| cap, half-resolution pixels per frame
SLOW_CHANNELS, FAST_CHANNELS = 2048, 256


def pad_resize_clip(frames: np.ndarray, size: int, device: torch.device) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` -> float ``[3, T, size, size]`` in [0, 1]; padded, resized."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [T, H, W, 3], got {frames.shape}")
    t, h, w, _ = frames.shape
    side = max(h, w)
    x = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
    x = x.permute(0, 3, 1, 2).float().div_(255.0)  # [T, 3, H, W]
    x = F.pad(x, (0, side - w, 0, side - h))  # black at the right and bottom
    if side != size:
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
    return x.permute(1, 0, 2, 3).contiguous()  # [3, T, size, size]


class _SlowFastBody(nn.Module):
    """pytorchvideo SlowFast blocks up to res5; time-pooled slow and fast maps, concatenated."""

    def __init__(self, blocks: nn.ModuleList) -> None:
        super().__init__()
        self.blocks = blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 3, T, S, S]
        t = x.shape[2]
        slow_ids = torch.linspace(0, t - 1, t // ALPHA, device=x.device).long()
        paths = [x.index_select(2, slow_ids), x]  # [B,3,T/4,S,S], [B,3,T,S,S]
        for block in self.blocks:
            paths = block(paths)
        slow, fast = paths  # [B, 2048, T/4, s, s], [B, 256, T, s, s]
        return torch.cat([slow.mean(dim=2), fast.mean(dim=2)], dim=1)  # [B, 2304, s, s]


class _FrameDiffBody(nn.Module):
    """ResNet18 ``layer3`` of every frame -> [mean over frames, last - first] (512 channels)."""

    def __init__(self, trunk: nn.Module, channels_last: bool = False) -> None:
        super().__init__()
        self.trunk = trunk
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 3, T, S, S]
        b, c, t, s, _ = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, s, s)  # [B*T, 3, S, S]
        if self.channels_last:
            frames = frames.contiguous(memory_format=torch.channels_last)
        maps = self.trunk(frames)
        maps = maps.reshape(b, t, *maps.shape[1:])  # [B, T, 256, s, s]
        return torch.cat([maps.mean(dim=1), maps[:, -1] - maps[:, 0]], dim=1)  # [B, 512, s, s]


class _PixelFlowBody(nn.Module):
    """Weight-free: per cell, its mean color over the clip (3 channels), then the Lucas-Kanade
    velocity ``(vx, vy)`` and the RMS temporal difference of each of the ``T - 1`` frame pairs and
    of the whole clip (``3 T`` channels; see :func:`cell_flow`)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.thumbnails = Thumbnails(stride)
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 3, T, S, S]
        cells = self.thumbnails(x.mean(dim=2))  # the clip's mean frame: [B, 3 * side**2, g, g]
        color = cells.unflatten(1, (x.shape[1], -1)).mean(dim=2)  # [B, 3, g, g]
        return torch.cat([color, cell_flow(x, self.stride)], dim=1)


def cell_flow(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Per ``stride x stride`` cell of clips ``x`` [B, 3, T, S, S]: Lucas-Kanade on the clip at
    half resolution (moments summed over the color channels, averaged over the cell).

    For the frames ``I0, I1`` of a pair: ``It = I1 - I0``, ``Ix, Iy`` central differences of
    ``(I0 + I1) / 2``; ``(vx, vy) = -(M + FLOW_RIDGE) ^ -1 [<Ix It>, <Iy It>]`` with
    ``M = [[<Ix Ix>, <Ix Iy>], [<Ix Iy>, <Iy Iy>]]``, clamped to ``FLOW_MAX``; and
    ``sqrt(<It It>)``. Returns ``[vx of each pair, vx of the clip, vy ..., rms ...]``:
    ``[B, 3 T, S / stride, S / stride]`` (the clip's values from the moments averaged over pairs).
    """
    b, c, t, s, _ = x.shape
    half = F.avg_pool2d(x.permute(0, 2, 1, 3, 4).reshape(b * t, c, s, s), 2)
    half = half.reshape(b, t, c, *half.shape[-2:])
    i0, i1 = half[:, :-1], half[:, 1:]  # [B, T-1, 3, s, s]
    it, mid = i1 - i0, (i0 + i1) / 2
    padded = F.pad(mid.flatten(0, 1), (1, 1, 1, 1), mode="replicate").reshape(
        *mid.shape[:3], mid.shape[3] + 2, mid.shape[4] + 2
    )
    ix = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) / 2
    iy = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) / 2
    products = [ix * ix, ix * iy, iy * iy, ix * it, iy * it, it * it]
    cell = stride // 2
    moments = [F.avg_pool2d(p.sum(dim=2), cell, ceil_mode=True) for p in products]  # [B,T-1,g,g]
    moments = [torch.cat([m, m.mean(dim=1, keepdim=True)], dim=1) for m in moments]  # + clip
    xx, xy, yy, xt, yt, tt = moments
    a, d = xx + FLOW_RIDGE, yy + FLOW_RIDGE
    det = a * d - xy * xy
    vx = (-(d * xt) + xy * yt) / det
    vy = (xy * xt - a * yt) / det
    return torch.cat(
        [vx.clamp(-FLOW_MAX, FLOW_MAX), vy.clamp(-FLOW_MAX, FLOW_MAX), tt.clamp(min=0).sqrt()],
        dim=1,
    )


class VideoEncoder(nn.Module):
    """A frozen clip encoder: ``preprocess`` one clip, ``forward`` a batch of clips.

    ``forward``: ``[B, 3, clip_frames, size, size]`` float32 -> ``[B, out_channels, ceil(size /
    stride), ceil(size / stride)]`` float32 (or ``pool_to x pool_to`` when ``pool_to`` is set).
    """

    def __init__(
        self,
        body: nn.Module,
        *,
        name: str,
        weights_id: str,
        size: int,
        device: torch.device,
        pool_to: int | None = None,
        amp: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.body = body
        self.name = name
        self.out_channels, self.stride, self.clip_frames, _ = _CHOICES[name]
        self.size, self.pool_to = size, pool_to
        self.device, self.amp, self.channels_last = device, amp, channels_last
        slowfast = name.startswith("slowfast")
        mean, std = (SLOWFAST_MEAN, SLOWFAST_STD) if slowfast else (IMAGENET_MEAN, IMAGENET_STD)
        self.register_buffer("mean", torch.tensor(mean, device=device).view(3, 1, 1, 1), False)
        self.register_buffer("std", torch.tensor(std, device=device).view(3, 1, 1, 1), False)
        self.spec = {
            "kind": "video",
            "name": name,
            "weights": weights_id,
            "out_channels": self.out_channels,
            "stride": self.stride,
            "clip_frames": self.clip_frames,
            "slow_frames": self.clip_frames // ALPHA if slowfast else None,
            "size": size,
            "pool_to": pool_to,
            "pad": "right-bottom",
            "normalize": {"mean": list(mean), "std": list(std)},
            "autocast": ("float16" if device.type == "cuda" else "bfloat16") if amp else None,
        }

        self.eval()

    def train(self, mode: bool = True):
        """Frozen: stays in eval mode (BatchNorm statistics, no dropout) whatever ``mode`` says."""
        return super().train(False)

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 RGB ``[clip_frames, H, W, 3]`` -> normalized ``[3, clip_frames, size, size]``."""
        if frames.shape[0] != self.clip_frames:
            raise ValueError(
                f"{self.name} takes clips of {self.clip_frames} frames, got {frames.shape[0]}"
            )
        x = pad_resize_clip(frames, self.size, self.device)
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[2] != self.clip_frames:
            raise ValueError(f"expected [B, 3, {self.clip_frames}, S, S], got {tuple(x.shape)}")
        with torch.inference_mode(), autocast_context(self.device, self.amp):
            x = x.to(self.device)
            if self.channels_last and isinstance(self.body, _SlowFastBody):
                x = x.contiguous(memory_format=torch.channels_last_3d)
            y = self.body(x)
            if self.pool_to is not None:
                y = F.adaptive_avg_pool2d(y, self.pool_to)
        return y.float().contiguous()

    def output_shape(self) -> tuple[int, int]:
        """Map size ``(h, w)`` of :meth:`forward`."""
        if self.pool_to is not None:
            return self.pool_to, self.pool_to
        side = math.ceil(self.size / self.stride)
        return side, side


def _slowfast(name: str) -> tuple[nn.Module, nn.ModuleList]:
    """The full pytorchvideo hub model (random init) and its body blocks."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script deprecation inside pytorchvideo
        from pytorchvideo.models import hub

        model = getattr(hub, name)(pretrained=False)
    blocks = model.model.blocks if name == "slowfast_r50_detection" else model.blocks
    return model, nn.ModuleList(list(blocks)[:5])


def build_video_encoder(
    name: str = "slowfast_r50_detection",
    weights: str = "pretrained",
    device: str | torch.device = "cpu",
    size: int = 256,
    *,
    pool_to: int | None = None,
    amp: bool = False,
    channels_last: bool = False,
) -> VideoEncoder:
    """Build a frozen (eval mode) clip encoder; see the module docstring for the choices.

    ``size``: side of the square clip input in pixels (256 as in the paper). ``pool_to``: average
    the map to ``pool_to x pool_to`` (e.g. 8; docs/design.md section 6). ``amp``: bf16 autocast
    on CPU, fp16 on CUDA. ``weights``: ``"pretrained"`` (torch hub cache), ``"random"`` or a
    checkpoint path (``pixelflow`` has none and ignores it). Raises
    :class:`~stvg.extract.backbones.weights.WeightsUnavailable`.
    """
    if name not in _CHOICES:
        raise ValueError(f"unknown video backbone {name!r}; choose one of {sorted(_CHOICES)}")
    choice = parse_weights(weights)
    if choice.kind == "mdetr" and name != "pixelflow":
        raise WeightsUnavailable(
            "an MDETR checkpoint holds no video encoder",
            file=choice.path,
            field="--weights",
            hint="Build the video encoder with 'pretrained' (stvg extract does so with mdetr:PATH)",
        )
    source = _CHOICES[name][3]
    target: nn.Module | None = None  # what to load weights into here (swin3d_t loads its own)
    if name == "pixelflow":
        body: nn.Module = _PixelFlowBody(_CHOICES[name][1])
        weights_id = WEIGHT_FREE
    elif name == "swin3d_t":
        body, weights_id = build_swin_body(choice)
    elif name.startswith("slowfast"):
        with seeded():
            model, blocks = _slowfast(name)
        body = _SlowFastBody(blocks)
        target, what, prefixes = model, f"pytorchvideo {name}", ("module.",)
        pretrained_id = f"pytorchvideo:{source.split('/model_zoo/')[1]}"
    else:
        with seeded():
            net = torchvision.models.resnet18(weights=None)
        body = _FrameDiffBody(resnet_trunk(net, "layer3"), channels_last=channels_last)
        target, what, prefixes = body.trunk, "torchvision resnet18", ("module.",)
        pretrained_id = f"torchvision:{source}"
    if target is not None and choice.kind == "random":
        weights_id = random_id()
    elif target is not None:
        url = source if name.startswith("slowfast") else torchvision_url(source)
        if choice.kind == "pretrained":
            path = fetch_torch_hub_file(url, what, hash_prefix(url))
            weights_id = pretrained_id
        else:
            names = [url.rsplit("/", 1)[-1], f"{name}.pyth", f"{name}.pth"]
            path = locate_file(choice.path, names, what)
            weights_id = file_id(path)
        load_into(target, load_state_dict(path, what, strip_prefixes=prefixes), what, path)
    dev = torch.device(device)
    body = body.eval().requires_grad_(False).to(dev)
    if channels_last:
        fmt = torch.channels_last if isinstance(body, _FrameDiffBody) else torch.channels_last_3d
        body = body.to(memory_format=fmt)
    return VideoEncoder(
        body,
        name=name,
        weights_id=weights_id,
        size=size,
        device=dev,
        pool_to=pool_to,
        amp=amp,
        channels_last=channels_last,
    )
