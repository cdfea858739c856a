"""Extraction settings: one dataclass, presets per dataset (docs/design.md section 6 and the
paper's supplementary B.1).

Sizes are in pixels, ``td`` in clips, ``target_fps`` in frames per second. The resolved config is
written into the store manifest (``sampling`` and ``backbones``), so a store says how it was made.
Every field can be overridden with ``--set key=value`` (:func:`resolve`, typed by
:mod:`stvg.config`), and a config is checked when built (choices, sizes > 0).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from stvg.config import SettingError, apply_overrides, build, check_fields, require
from stvg.errors import InputError

Dataset = Literal["vidstg", "hcstvg-v1", "hcstvg-v2", "synthetic", "normalized"]
# The names stvg.extract.backbones builds (kept here so that the config needs no torch import;
# tests/extract check that the two lists agree).
ImageBackbone = Literal["resnet18", "resnet50", "resnet101", "pixels"]
ImageLayer = Literal["layer2", "layer3", "layer4"]
VideoBackbone = Literal[
    "slowfast_r50_detection", "slowfast_r101", "framediff_resnet18", "pixelflow", "swin3d_t"
]
DATASETS: tuple[str, ...] = get_args(Dataset)


@dataclass
class ExtractConfig:
    """Everything that decides the stored values (and a few knobs that only decide speed)."""

    dataset: Dataset = "normalized"
    # static stream: the protocol's frame grid, resized to short side <= n_short (long <= 1.8x)
    image_backbone: ImageBackbone = "resnet101"
    image_layer: ImageLayer = "layer4"
    n_short: int = 448
    target_fps: float = 5.0
    max_frames: int = 200
    # dynamic stream: td clips over the segment, each seen by the video backbone
    video_backbone: VideoBackbone = "slowfast_r50_detection"
    td: int = 64
    clip_size: int = 256
    # text stream
    text_layers: int = 12
    max_text_len: int = 64
    # weights and storage
    weights: str = "pretrained"
    dtype: Literal["float16", "int8"] = "float16"
    backend: Literal["zarr", "hdf5"] = "zarr"
    # speed only: these never change the stored values
    batch_size: int = 16
    device: str = "cpu"
    amp: bool = False
    channels_last: bool = False
    decode_threads: int = 2
    # fill backbone batches with the frames and clips of several entries (see extract.runner)
    pack: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise :class:`~stvg.config.SettingError` naming the first field extraction cannot use."""
        where = "ExtractConfig"
        check_fields(self, where)
        for key in ("n_short", "max_frames", "td", "clip_size", "text_layers", "max_text_len"):
            value = getattr(self, key)
            require(value >= 1, key, value, "must be >= 1", where)
        require(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1", where)
        require(self.target_fps > 0, "target_fps", self.target_fps, "must be > 0", where)
        require(
            self.decode_threads >= 0, "decode_threads", self.decode_threads, "must be >= 0", where
        )
        require(bool(self.weights), "weights", self.weights, "pretrained, random or a PATH", where)
        require(bool(self.device), "device", self.device, "cpu, cuda or cuda:N", where)

    def sampling(self) -> dict[str, Any]:
        """The parameters that decide which frames are read and how they are sized."""
        return {
            "target_fps": self.target_fps,
            "max_frames": self.max_frames,
            "n_short": self.n_short,
            "td": self.td,
            "clip_size": self.clip_size,
            "max_text_len": self.max_text_len,
        }

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def values_json(self) -> dict[str, Any]:
        """:meth:`to_json` without the knobs that provably leave every stored value unchanged
        (:data:`SCHEDULING_KNOBS`): what a pipeline fingerprints to decide on re-extraction."""
        return {k: v for k, v in self.to_json().items() if k not in SCHEDULING_KNOBS}


# Batching and threading only (stvg.extract.runner pads every forward to batch_size rows, so a
# frame's features do not depend on its batch-mates): changing them never changes a stored value.
SCHEDULING_KNOBS = ("batch_size", "decode_threads", "pack")


PRESETS: dict[str, dict[str, Any]] = {
    # CSDVL supplementary B.1: Nshort 448 / 320, Td 64 / 16. The static frames come from the
    # tubedetr protocol's 5 fps grid (at most 200 frames): our choice; the supplementary samples
    # Ts frames uniformly and mentions 5 fps only for its inference speed.
    "vidstg": {"n_short": 448, "td": 64},
    "hcstvg-v1": {"n_short": 320, "td": 16},
    "hcstvg-v2": {"n_short": 320, "td": 16},
    "normalized": {},
    # The offline demo: random networks keep little of a frame (docs/design.md section 6), so
    # weight-free encoders: pixel cells and per-cell optical flow (stride 16); small frames and
    # clips. The text encoder is random RoBERTa (2 layers): captions need only be told apart.
    "synthetic": {
        "image_backbone": "pixels",
        "image_layer": "layer3",
        "n_short": 120,
        "video_backbone": "pixelflow",
        "td": 16,
        "clip_size": 112,
        "text_layers": 2,
        "max_text_len": 24,
        "weights": "random",
    },
}


def preset(dataset: str, **overrides: Any) -> ExtractConfig:
    """The preset for ``dataset`` with ``overrides`` (``None`` values are ignored)."""
    return resolve(dataset, [], **overrides)


def resolve(
    dataset: str, items: list[str] | None = None, *, prefix: str = "", **overrides: Any
) -> ExtractConfig:
    """The preset for ``dataset``, then ``overrides`` (Python values; ``None`` ignored: the
    CLI's named options), then ``items`` (``--set key=value`` strings, typed by the field).

    Raises :class:`InputError` naming ``--dataset``, the option or the override at fault
    (``prefix``: what precedes the keys in ``--set``, e.g. ``"extract."`` for the pipeline).
    """
    if dataset not in PRESETS:
        raise InputError(f"--dataset {dataset}: expected one of {', '.join(DATASETS)}")
    items = list(items or [])
    values = {"dataset": dataset, **PRESETS[dataset]}
    values.update({k: v for k, v in overrides.items() if v is not None})
    values = apply_overrides(ExtractConfig, values, items, prefix=prefix)
    try:
        return build(ExtractConfig, values, items, prefix=prefix)
    except SettingError as error:
        if overrides.get(error.key) is None:
            raise
        option = "--" + error.key.replace("_", "-")
        raise InputError(f"{option} {overrides[error.key]}: {error.problem}") from None
