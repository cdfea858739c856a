"""Training settings: one flat dataclass, presets per dataset, ``--set key=value``.

From the paper (section 4.1, supplementary B.1): AdamW, lr 1e-4, weight decay 1e-4, EMA 0.99997
(VidSTG) / 0.999 (HC-STVG), epochs 10 / 10 / 4 (VidSTG / HC-STVG v1 / v2), Ts = 64 / 48 static
frames, alpha 1.0 / 0.1, loss weights L1 5, GIoU 2, L_tg 5, L_ta 1 (taken from
``stvg.train.losses.DEFAULT_LOSS_WEIGHTS``). The paper's "batch size of 8"
on 8 GPUs does not say whether it is per GPU or in all; ``batch_size`` 8 here is per process
(``global_batch`` sets the total instead). Not from the paper: ``grad_clip`` 0.1 (MDETR's and
TubeDETR's default), the constant lr without warmup (MDETR decays and warms up; see
``lr_schedule``), ``aux_loss`` off, and every value of the ``synthetic`` preset.
``model.*`` keys go to :class:`stvg.models.CSDVLConfig`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from stvg.errors import InputError
from stvg.train.losses import DEFAULT_LOSS_WEIGHTS

LR_SCHEDULES = ("constant", "cosine", "linear")


@dataclass
class TrainConfig:
    preset: str = "vidstg"
    epochs: int = 10
    max_steps: int | None = None  # stop after this many optimizer steps (overrides epochs)
    batch_size: int = 8  # queries per optimizer step *per process*; see global_batch
    # Queries per optimizer step over all processes: under torchrun with W processes each takes
    # global_batch / W (must divide). None: every process takes batch_size (global W * batch_size).
    global_batch: int | None = None
    num_frames: int = 64  # Ts: static frames per query in a training step
    frame_jitter: bool = False  # Ts frames drawn one per segment (TSN), not always the centres
    # frames per prediction pass (validation, `stvg predict`); None: num_frames. Passes spread
    # them over the whole segment as training does (STVGFormer: 48 in training, 96 in testing)
    frames_per_pass: int | None = None
    lr: float = 1e-4
    weight_decay: float = 1e-4
    # constant | cosine | linear: after warmup_steps of linear warmup (step s at (s+1)/warmup of
    # lr), constant, cosine decay to 0 or linear decay to 0 at the last step (MDETR's
    # "all_linear_with_warmup"). See stvg.train.state.lr_factor.
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    grad_clip: float = 0.1  # max grad norm, as TubeDETR/MDETR; 0 disables
    ema_decay: float = 0.99997
    loss_l1: float = DEFAULT_LOSS_WEIGHTS["l1"]
    loss_giou: float = DEFAULT_LOSS_WEIGHTS["giou"]
    loss_tg: float = DEFAULT_LOSS_WEIGHTS["tg"]
    loss_ta: float = DEFAULT_LOSS_WEIGHTS["ta"]
    loss_att: float = 0.0  # spatial attention loss (not in the paper; see stvg.train.losses)
    # DETR's auxiliary decoder losses: the l1 and giou terms, with their weights, also on the
    # boxes predicted from every earlier static decoder layer (terms aux_l1, aux_giou: sums over
    # those layers). Not stated by the CSDVL paper; MDETR and TubeDETR train with them.
    aux_loss: bool = False
    # mdetr:PATH: start the static stream and box head from an MDETR checkpoint
    # (stvg.models.mdetr); applied once, when a run starts (not on resume).
    init: str | None = None
    seed: int = 0
    num_workers: int = 2
    checkpoint_every: int = 500
    validate: bool = True
    val_every: int = 1  # validate every this many epochs (and after the last step)
    val_split: str = "val"
    train_split: str = "train"
    in_memory: bool = False  # read every entry into RAM first (small stores)
    model: dict[str, Any] = field(default_factory=dict)  # overrides of the model preset

    def loss_weights(self) -> dict[str, float]:
        """The weight of each named loss term (``stvg.train.losses.compute_losses``), in the
        order :func:`stvg.train.losses.total_loss` sums them."""
        weights = {
            "l1": self.loss_l1,
            "giou": self.loss_giou,
            "tg": self.loss_tg,
            "ta": self.loss_ta,
            "att": self.loss_att,
        }
        if self.aux_loss:
            weights.update(aux_l1=self.loss_l1, aux_giou=self.loss_giou)
        return weights

    def check(self) -> None:
        """Raise :class:`InputError` naming the setting for values training cannot use."""
        if self.lr_schedule not in LR_SCHEDULES:
            raise InputError(
                f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}",
                field="lr_schedule",
            )
        if self.warmup_steps < 0:
            raise InputError("warmup_steps must be >= 0", field="warmup_steps")
        if self.global_batch is not None and self.global_batch < 1:
            raise InputError("global_batch must be >= 1", field="global_batch")
        if self.frames_per_pass is not None and self.frames_per_pass < 1:
            raise InputError("frames_per_pass must be >= 1", field="frames_per_pass")
        if self.init is not None:
            from stvg.models.mdetr import parse_init

            parse_init(self.init)

    def per_process_batch(self, world: int) -> int:
        """Queries per optimizer step in each of ``world`` processes (see ``global_batch``)."""
        if self.global_batch is None:
            return self.batch_size
        if self.global_batch % world:
            raise InputError(
                f"global_batch {self.global_batch} is not divisible by the {world} processes",
                field="global_batch",
            )
        return self.global_batch // world

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainConfig:
        return cls(**data)


PRESETS: dict[str, dict[str, Any]] = {
    # model numbers (alpha, sizes) come from stvg.models.MODEL_PRESETS of the same name
    "vidstg": {"epochs": 10, "num_frames": 64, "ema_decay": 0.99997},
    "hcstvg-v1": {"epochs": 10, "num_frames": 48, "ema_decay": 0.999},
    "hcstvg-v2": {"epochs": 4, "num_frames": 48, "ema_decay": 0.999},
    # The CPU demo: a small model on the weight-free synthetic features, trained for minutes;
    # with the spatial attention loss (from scratch, the paper's MDETR initialization missing).
    "synthetic": {
        "epochs": 20,
        "val_every": 5,  # one validation (67 queries, every stored frame) costs about an epoch
        "loss_att": 1.0,
        "batch_size": 8,
        "num_frames": 8,
        "lr": 1e-3,
        "lr_schedule": "cosine",
        "warmup_steps": 50,
        "ema_decay": 0.98,
        "num_workers": 0,
        "in_memory": True,
        "checkpoint_every": 100,
    },
}


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def resolve(preset: str, overrides: list[str] | None = None) -> TrainConfig:
    """The preset with ``key=value`` overrides (values parsed as JSON, else kept as strings)."""
    if preset not in PRESETS:
        raise InputError(
            f"unknown preset {preset!r}; known: {', '.join(PRESETS)}", field="--preset"
        )
    values: dict[str, Any] = {"preset": preset, **json.loads(json.dumps(PRESETS[preset]))}
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for item in overrides or []:
        key, sep, text = item.partition("=")
        if not sep:
            raise InputError(f"expected key=value, got {item!r}", field="--set")
        value = _parse_value(text)
        if key.startswith("model."):
            values.setdefault("model", {})[key[len("model.") :]] = value
        elif key in names:
            values[key] = value
        else:
            raise InputError(
                f"unknown setting {key!r}; known: {', '.join(sorted(names))} and model.*",
                field="--set",
            )
    config = TrainConfig(**values)
    config.check()
    return config
