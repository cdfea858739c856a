"""The frozen image encoder: a torchvision ResNet cut after one of its stages.

The paper's static stream reads ResNet101's C5 map (``layer4``: 2048 channels, stride 32) of each
sampled frame. Other cuts are a choice recorded in the manifest (``spec``):

- ``resnet101`` ``layer4``: 2048 ch, stride 32. The paper's, the pretrained default. Not usable
  with random weights: it overflows fp16 (see below).
- ``resnet101`` ``layer3``: 1024 ch, stride 16. Random: values reach ~6e4, at the fp16 limit
  (65504): not usable.
- ``resnet101`` ``layer2``: 512 ch, stride 8. Random: usable (max ~6).
- ``resnet18`` ``layer3``: 256 ch, stride 16. Random: usable (max ~10), ~5x faster than C5; the
  documented light choice for ``--weights random`` and the offline demo.
- ``resnet18`` ``layer2`` / ``layer4`` (128 / 512 ch) and ``resnet50`` ``layer2``-``layer4`` are
  also accepted.
- ``pixels``: no network and no weights. Each ``stride x stride`` cell of the normalized frame
  becomes its own ``8 x 8`` RGB thumbnail (average-pooled by ``stride / 8``, then space-to-depth):
  192 channels at the stride of ``layer`` (8, 16 or 32), the input of ViT's patch embedding
  without the learned projection (the model's input FC is that projection). The offline demo's
  choice: the synthetic benchmark then measures the grounding model rather than what a random
  network happens to keep (the probes below), and extraction costs little more than decoding.

Measured here (seed 0, eval mode, 16 synthetic 128x160 frames): random ResNet101 ``layer4``
peaks at 1.5e5 and 0.8 % of its values become ``inf`` in fp16, with cosine .999 between
different frames; ``layer3`` peaks at 5.6e4. AdaBN (reset BN statistics, one pass in train mode)
brings ``layer4`` to max 24 and cosine .46, but it is not offered: the recalibrated net depends on
which frames were seen (two shards would build different encoders) and it restores the range, not
the information. A linear probe on mean-pooled maps (240 synthetic 128x160 frames, 4 colors x 3
shapes, ridge, 160 train / 80 test; chance .25 / .33) gives color / shape: random ``layer4``
.45 / .39, after AdaBN .55 / .39, ResNet101 ``layer2`` 1.00 / .88, ResNet18 ``layer3``
.96 / .65. With random weights use ``resnet18``/``layer3`` (or ``resnet101``/``layer2``); the
store writer refuses non-finite values in any case.

Pretrained weights are torchvision's ``IMAGENET1K_V1`` (the weights DETR, MDETR and TubeDETR
started from); a local PATH may hold a torchvision state dict or a DETR/MDETR checkpoint (its
``backbone.0.body.`` prefix is stripped; the keys must cover the cut); ``mdetr:PATH`` takes only
the ``backbone.0.body.*`` tensors of an MDETR checkpoint (the paper's image encoder: MDETR's
fine-tuned ResNet101).
"""

from __future__ import annotations

import contextlib
import math
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from stvg.extract.backbones.weights import (
    WeightsChoice,
    fetch_torch_hub_file,
    file_id,
    load_into,
    load_state_dict,
    locate_file,
    mdetr_id,
    mdetr_part,
    parse_weights,
    random_id,
    seeded,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_RATIO = 1.8  # longer side at most MAX_RATIO * n_short (docs/design.md section 6)

# (channels of layer2, layer3, layer4); strides are 8, 16, 32 for every ResNet.
_WIDTHS = {
    "resnet18": (128, 256, 512),
    "resnet50": (512, 1024, 2048),
    "resnet101": (512, 1024, 2048),
    "pixels": (3 * 64, 3 * 64, 3 * 64),
}
THUMBNAIL = 8  # side of the pixel thumbnail of one cell (``pixels``)
WEIGHT_FREE = "none"  # the weights id of the weight-free choices
_STRIDES = {"layer2": 8, "layer3": 16, "layer4": 32}
IMAGE_BACKBONES, IMAGE_LAYERS = tuple(_WIDTHS), tuple(_STRIDES)
_PRETRAINED = {
    "resnet18": "ResNet18_Weights.IMAGENET1K_V1",
    "resnet50": "ResNet50_Weights.IMAGENET1K_V1",
    "resnet101": "ResNet101_Weights.IMAGENET1K_V1",
}
_DETR_PREFIXES = ("backbone.0.body.", "module.backbone.0.body.", "module.", "body.")


def resize_shape(
    height: int, width: int, n_short: int, max_ratio: float = MAX_RATIO
) -> tuple[int, int]:
    """Output ``(h, w)`` for a ``height x width`` frame, DETR's rule.

    The shorter side becomes ``n_short`` (up- or down-scaling), unless the longer side would then
    exceed ``max_long = max_ratio * n_short``: then the shorter side is
    ``floor(max_long * short / long)``. The longer side is ``int(short_out * long / short)``
    (truncated), as in DETR's ``get_size_with_aspect_ratio``, which rounds instead of flooring
    the capped short side; flooring keeps the longer side ``<= max_long`` exactly.
    Examples: 240x320 with ``n_short=64`` gives 64x85; 100x400 gives 28x112.
    """
    short, long = min(height, width), max(height, width)
    size = n_short
    max_long = max_ratio * n_short
    if long / short * size > max_long:
        size = int(max_long * short / long)
    out_short, out_long = size, int(size * long / short)
    return (out_short, out_long) if height <= width else (out_long, out_short)


def autocast_context(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CPU, fp16 on CUDA, or nothing when ``amp`` is false
    (:func:`stvg.device.autocast`)."""
    from stvg.device import autocast

    return autocast(device, ("fp16" if device.type == "cuda" else "bf16") if amp else "off")


class ImageEncoder(nn.Module):
    """A frozen ResNet trunk: ``preprocess`` frames, then ``forward`` to feature maps.

    ``forward`` maps ``[N, 3, h, w]`` float32 to ``[N, out_channels, ceil(h / stride),
    ceil(w / stride)]`` float32 (values may be non-finite only for the unusable random cuts).
    """

    def __init__(
        self,
        body: nn.Module,
        *,
        name: str,
        layer: str,
        weights_id: str,
        device: torch.device,
        amp: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.body = body
        self.name, self.layer = name, layer
        self.out_channels = _WIDTHS[name][int(layer[-1]) - 2]
        self.stride = _STRIDES[layer]
        self.device = device
        self.amp, self.channels_last = amp, channels_last
        self.spec = {
            "kind": "image",
            "name": name,
            "layer": layer,
            "weights": weights_id,
            "out_channels": self.out_channels,
            "stride": self.stride,
            "normalize": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
            "autocast": ("float16" if device.type == "cuda" else "bfloat16") if amp else None,
        }
        mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

        self.eval()

    def train(self, mode: bool = True):
        """Frozen: stays in eval mode (BatchNorm statistics, no dropout) whatever ``mode`` says."""
        return super().train(False)

    def preprocess(self, frames: np.ndarray, n_short: int) -> torch.Tensor:
        """uint8 RGB frames ``[N, H, W, 3]`` -> normalized ``[N, 3, h, w]`` float32 on the device.

        ``(h, w) = resize_shape(H, W, n_short)``; bilinear resize with antialiasing (as
        torchvision's ``Resize`` on tensors), then ImageNet mean/std normalization.
        """
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be [N, H, W, 3], got {frames.shape}")
        h, w = resize_shape(frames.shape[1], frames.shape[2], n_short)
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)  # [N, 3, H, W] in [0, 1]
        if (h, w) != tuple(x.shape[-2:]):
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), autocast_context(self.device, self.amp):
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = self.body(x.to(self.device))
        return y.float().contiguous()  # [N, C, ceil(h/stride), ceil(w/stride)]

    def output_shape(self, height: int, width: int) -> tuple[int, int]:
        """Map size for a preprocessed ``height x width`` input: ``ceil(. / stride)`` each."""
        return math.ceil(height / self.stride), math.ceil(width / self.stride)


def torchvision_url(enum_name: str) -> str:
    """Download URL of torchvision weights named like ``"ResNet101_Weights.IMAGENET1K_V1"``."""
    cls_name, member = enum_name.split(".")
    return getattr(getattr(torchvision.models, cls_name), member).url


def hash_prefix(url: str) -> str | None:
    """The sha256 prefix that torch hub file names carry (``resnet18-f37072fd.pth``)."""
    match = torch.hub.HASH_REGEX.search(url.rsplit("/", 1)[-1])
    return match.group(1) if match else None


def resnet_trunk(net: torchvision.models.ResNet, layer: str) -> nn.Sequential:
    """Stem and stages up to ``layer``, under torchvision's names (so state dicts load as is)."""
    stages = ["layer1", "layer2", "layer3", "layer4"]
    kept = stages[: stages.index(layer) + 1]
    parts = [("conv1", net.conv1), ("bn1", net.bn1), ("relu", net.relu), ("maxpool", net.maxpool)]
    return nn.Sequential(OrderedDict(parts + [(s, getattr(net, s)) for s in kept]))


class Thumbnails(nn.Module):
    """``[N, 3, h, w]`` -> ``[N, 3 * side**2, ceil(h / stride), ceil(w / stride)]``: every
    ``stride x stride`` cell as a ``side x side`` thumbnail (mean-pooled), channels ``c * side**2
    + row * side + column``. The input is padded with zeros at the right and bottom first."""

    def __init__(self, stride: int, side: int = THUMBNAIL) -> None:
        super().__init__()
        if stride % side:
            raise ValueError(f"stride {stride} is not a multiple of the thumbnail side {side}")
        self.stride, self.side = stride, side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = F.pad(x, (0, -w % self.stride, 0, -h % self.stride))
        if self.stride > self.side:
            x = F.avg_pool2d(x, self.stride // self.side)
        return F.pixel_unshuffle(x, self.side)


def build_image_encoder(
    name: str = "resnet101",
    layer: str = "layer4",
    weights: str = "pretrained",
    device: str | torch.device = "cpu",
    *,
    amp: bool = False,
    channels_last: bool = False,
) -> ImageEncoder:
    """Build a frozen (eval mode) ResNet trunk cut after ``layer``, or the weight-free ``pixels``.

    ``name``: ``resnet101`` (the paper's), ``resnet50``, ``resnet18`` or ``pixels`` (thumbnails,
    see the module docstring; ``weights`` is then ignored); ``layer``: ``layer2``, ``layer3`` or
    ``layer4``. ``weights``: ``"pretrained"`` (torchvision IMAGENET1K_V1 through the torch hub
    cache), ``"random"`` (seeded, identical in every process) or a checkpoint path.
    ``amp``: bf16 autocast on CPU / fp16 on CUDA; ``channels_last``: NHWC convolutions.
    Raises :class:`~stvg.extract.backbones.weights.WeightsUnavailable` when weights cannot be had.
    """
    if name not in _WIDTHS:
        raise ValueError(f"unknown image backbone {name!r}; choose one of {sorted(_WIDTHS)}")
    if layer not in _STRIDES:
        raise ValueError(f"unknown layer {layer!r}; choose one of {sorted(_STRIDES)}")
    choice = parse_weights(weights)
    if name == "pixels":
        body: nn.Module = Thumbnails(_STRIDES[layer])
        weights_id = WEIGHT_FREE
    else:
        body, weights_id = _resnet_with_weights(name, layer, choice)
    dev = torch.device(device)
    body = body.eval().requires_grad_(False).to(dev)
    if channels_last:
        body = body.to(memory_format=torch.channels_last)
    return ImageEncoder(
        body,
        name=name,
        layer=layer,
        weights_id=weights_id,
        device=dev,
        amp=amp,
        channels_last=channels_last,
    )


def _resnet_with_weights(name: str, layer: str, choice: WeightsChoice) -> tuple[nn.Module, str]:
    """torchvision's ResNet ``name`` cut after ``layer``, holding ``choice``; and the weights id."""
    with seeded():
        net = getattr(torchvision.models, name)(weights=None)
    body = resnet_trunk(net, layer)
    if choice.kind == "random":
        return body, random_id()
    if choice.kind == "mdetr":  # MDETR's ResNet: backbone.0.body.* (frozen-BN buffers)
        state = mdetr_part(choice.path, "backbone.0.body.", f"{name} image")
        load_into(body, state, name, choice.path)
        return body, mdetr_id(choice.path)
    enum_name = _PRETRAINED[name]
    url = torchvision_url(enum_name)
    if choice.kind == "pretrained":
        path = fetch_torch_hub_file(url, f"torchvision {name} ({enum_name})", hash_prefix(url))
        weights_id = f"torchvision:{enum_name}"
    else:
        path = locate_file(choice.path, [url.rsplit("/", 1)[-1], f"{name}.pth"], name)
        weights_id = file_id(path)
    load_into(body, load_state_dict(path, name, strip_prefixes=_DETR_PREFIXES), name, path)
    return body, weights_id
