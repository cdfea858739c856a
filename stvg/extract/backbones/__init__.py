"""The frozen backbones of stage one: image (ResNet), text (RoBERTa-base), video (SlowFast or
Video Swin).

Each ``build_*`` takes ``weights="pretrained" | "random" | PATH`` and returns an eval-mode module
with a JSON-able ``spec`` for the store manifest (name, cut, weights id such as
``"torchvision:ResNet101_Weights.IMAGENET1K_V1"``, ``"random:seed0"`` or ``"file:<sha256>"``).
Weights that cannot be had raise :class:`WeightsUnavailable` (an ``InputError``: CLI exit 2).

With random weights use the light cuts: ``build_image_encoder("resnet18", "layer3")`` and
``build_video_encoder("framediff_resnet18")`` (see :mod:`.image` and :mod:`.video` for the
measurements behind that advice).

Speed options, measured on this project's 2-core AMD EPYC CPU (avx512_bf16; best of 3): ``amp``
(bf16 autocast) runs ResNet101 C5 at 320x568 in 183 instead of 343 ms/frame, ResNet18 layer3 in
27 instead of 55, RoBERTa-base in 15 instead of 27 ms/query, SlowFast R50 (256, 32 frames) in 846
instead of 1646 ms/clip, at about 1 % relative error (0.4-1 %); ``channels_last`` gains 0-14 %,
within the noise. Both are off by default; ``spec["autocast"]`` records amp.
"""

from stvg.extract.backbones.image import ImageEncoder, build_image_encoder, resize_shape
from stvg.extract.backbones.text import ROBERTA_BASE, TextEncoder, build_text_encoder
from stvg.extract.backbones.video import VideoEncoder, build_video_encoder
from stvg.extract.backbones.weights import WeightsUnavailable, parse_weights

__all__ = [
    "ROBERTA_BASE",
    "ImageEncoder",
    "TextEncoder",
    "VideoEncoder",
    "WeightsUnavailable",
    "build_image_encoder",
    "build_text_encoder",
    "build_video_encoder",
    "parse_weights",
    "resize_shape",
]
