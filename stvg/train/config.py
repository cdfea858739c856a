"""Training settings: one flat dataclass, presets per dataset, ``--set key=value``.

From the paper (section 4.1, supplementary B.1): AdamW, lr 1e-4, weight decay 1e-4, EMA 0.99997
(VidSTG) / 0.999 (HC-STVG), epochs 10 / 10 / 4 (VidSTG / HC-STVG v1 / v2), Ts = 64 / 48 static
frames, alpha 1.0 / 0.1, loss weights L1 5, GIoU 2, L_tg 5, L_ta 1 (taken from
``stvg.train.losses.DEFAULT_LOSS_WEIGHTS``). The paper's "batch size of 8"
on 8 GPUs does not say whether it is per GPU or in all; ``batch_size`` 8 here is per process
(``global_batch`` sets the total instead). Not from the paper: ``grad_clip`` 0.1 (MDETR's and
TubeDETR's default), the constant lr without warmup (MDETR decays and warms up; see
``lr_schedule``), ``aux_loss`` off, and every value of the ``synthetic`` preset.
``model_name`` picks the model (:data:`stvg.models.zoo.MODELS`: csdvl, cgstvg, costa, stvgformer);
``model.*`` keys go to its config (:class:`stvg.models.CSDVLConfig` for csdvl). Overrides are typed and every config
is checked when built (:mod:`stvg.config`; docs/design.md section 8): ``--set lr=abc`` or
``--set lr_schedule=cosin`` is refused by name, ``TrainConfig(lr=-1)`` raises
:class:`~stvg.errors.InputError`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from stvg.config import SettingError, apply_overrides, build, check_fields, require
from stvg.errors import InputError
from stvg.train.losses import DEFAULT_LOSS_WEIGHTS

LrSchedule = Literal["constant", "cosine", "linear"]
LR_SCHEDULES: tuple[str, ...] = get_args(LrSchedule)
Amp = Literal["off", "bf16", "fp16"]


@dataclass
class TrainConfig:
    preset: str = "vidstg"
    # which model to train: csdvl, cgstvg, costa or stvgformer (stvg.models.zoo.MODELS); model.*
    # keys go to its config. The loss_* weights, aux_loss and init are CSDVL's (STVGFormer takes
    # the last two); the others train with their papers' loss weights. loss_att (a scratch aid)
    # weighs the attention loss of every model.
    model_name: str = "csdvl"
    epochs: int = 10
    max_steps: int | None = None  # stop after this many optimizer steps (overrides epochs)
    batch_size: int = 8  # queries per optimizer step *per process*; see global_batch
    # Queries per optimizer step over all processes: under torchrun with W processes each takes
    # global_batch / W (must divide). None: every process takes batch_size (global W * batch_size).
    global_batch: int | None = None
    num_frames: int = 64  # Ts: static frames per query in a training step
    frame_jitter: bool = False  # Ts frames drawn one per segment (TSN), not always the centres
    # frames per prediction pass (validation, `stvg predict`); None: num_frames times the
    # model's test_frames_scale (STVGFormer's 2: 48 in training, 96 in testing; else 1). Passes
    # spread them over the whole segment as training does
    frames_per_pass: int | None = None
    lr: float = 1e-4
    weight_decay: float = 1e-4
    # constant | cosine | linear: after warmup_steps of linear warmup (step s at (s+1)/warmup of
    # lr), constant, cosine decay to 0 or linear decay to 0 at the last step (MDETR's
    # "all_linear_with_warmup"). See stvg.train.state.lr_factor.
    lr_schedule: LrSchedule = "constant"
    warmup_steps: int = 0
    grad_clip: float = 0.1  # max grad norm, as TubeDETR/MDETR; 0 disables
    ema_decay: float = 0.99997
    loss_l1: float = DEFAULT_LOSS_WEIGHTS["l1"]
    loss_giou: float = DEFAULT_LOSS_WEIGHTS["giou"]
    loss_tg: float = DEFAULT_LOSS_WEIGHTS["tg"]
    loss_ta: float = DEFAULT_LOSS_WEIGHTS["ta"]
    loss_att: float = 0.0  # spatial attention loss (not in the paper; see stvg.train.losses)
    # the d2s cross-attention's loss (not in the paper; stvg.train.losses.d2s_attention_loss);
    # needs model.d2s_attention=output or prior
    loss_d2s_att: float = 0.0
    # Long videos (not in the paper; stvg.train.losses.presence_loss): the weight of the BCE of
    # the per-frame presence logits against the tube; needs model.presence_head=true. 0: off.
    loss_presence: float = 0.0
    # Event-free queries (stvg.train.negatives): per epoch, round(negatives * n) extra queries
    # of the n training ones, each a training segment paired with the sentence of a query of
    # another video that no annotation of this video carries; their targets say "nowhere"
    # (no tube, no box). 0: off. CSDVL only.
    negatives: float = 0.0
    # Outside negatives (stvg.train.negatives): per epoch, round(negatives_outside * n) more
    # event-free queries, each a training query's own sentence on the longer side of its
    # segment that its tube leaves free (the actor there, not doing it). 0: off. CSDVL only.
    negatives_outside: float = 0.0
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
    # Mixed precision of the training step (not in the paper): off (float32), bf16 (autocast to
    # bfloat16 on the CPU or CUDA; fast on CPUs with AVX-512 BF16 or AMX and on Ampere GPUs)
    # or fp16 (autocast to float16 with a gradient scaler, CUDA only). The forward runs under
    # autocast, the losses in float32; weights, gradients, AdamW, EMA, validation and
    # prediction stay float32. See stvg.train.trainer.train_step.
    amp: Amp = "off"
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
            "d2s_att": self.loss_d2s_att,
            "presence": self.loss_presence,
        }
        if self.aux_loss:
            weights.update(aux_l1=self.loss_l1, aux_giou=self.loss_giou)
        return weights

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise :class:`~stvg.config.SettingError` (an :class:`InputError` naming the setting)
        for the first value training cannot use: types and choices from the annotations, then
        the ranges below. Called when the config is built."""
        where = "TrainConfig"
        check_fields(self, where)
        for key in ("epochs", "batch_size", "num_frames", "checkpoint_every", "val_every"):
            value = getattr(self, key)
            require(value >= 1, key, value, "must be >= 1", where)
        for key in ("max_steps", "global_batch"):
            value = getattr(self, key)
            require(value is None or value >= 1, key, value, "must be >= 1 (or none)", where)
        # lr 0 is allowed: the weights then stay as initialized (tests of --init use it)
        require(self.lr >= 0, "lr", self.lr, "must be >= 0", where)
        require(0 <= self.ema_decay < 1, "ema_decay", self.ema_decay, "must be in [0, 1)", where)
        for key in (
            ("weight_decay", "grad_clip", "warmup_steps", "num_workers")
            + tuple(f"loss_{k}" for k in ("l1", "giou", "tg", "ta", "att", "d2s_att", "presence"))
            + ("negatives", "negatives_outside")
        ):
            value = getattr(self, key)
            require(value >= 0, key, value, "must be >= 0", where)
        require(0 <= self.seed < 2**32, "seed", self.seed, "must be in [0, 2**32)", where)
        require(
            self.preset in PRESETS,
            "preset",
            self.preset,
            f"expected one of {', '.join(PRESETS)}",
            where,
        )
        for key in ("train_split", "val_split"):
            require(bool(getattr(self, key)), key, getattr(self, key), "must not be empty", where)
        require(
            self.frames_per_pass is None or self.frames_per_pass >= 1,
            "frames_per_pass",
            self.frames_per_pass,
            "must be >= 1 (or none)",
            where,
        )
        from stvg.models.zoo import MODELS

        require(
            self.model_name in MODELS,
            "model_name",
            self.model_name,
            f"expected one of {', '.join(MODELS)}",
            where,
        )
        if self.model_name not in ("csdvl", "stvgformer"):
            for key, off in (("aux_loss", False), ("init", None)):
                value = getattr(self, key)
                problem = "is a CSDVL setting (model_name=csdvl or stvgformer)"
                require(value == off, key, value, problem, where)
        for key in ("negatives", "negatives_outside", "loss_presence"):
            value = getattr(self, key)
            problem = "is a CSDVL setting (model_name=csdvl)"
            require(value == 0 or self.model_name == "csdvl", key, value, problem, where)
        require(
            self.loss_presence == 0 or bool(self.model.get("presence_head", False)),
            "loss_presence",
            self.loss_presence,
            "needs the presence head (model.presence_head=true)",
            where,
        )
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


def resolve(preset: str, overrides: list[str] | None = None) -> TrainConfig:
    """The preset with ``key=value`` overrides, each converted to its field's type
    (``model.KEY`` to the config class of the chosen ``model_name``, e.g.
    :class:`stvg.models.CSDVLConfig`); the result, model part included, is validated. Raises
    :class:`InputError` naming the override at fault."""
    from stvg.models.zoo import DEFAULT_MODEL, model_entry

    if preset not in PRESETS:
        raise InputError(
            f"unknown preset {preset!r}; known: {', '.join(PRESETS)}", field="--preset"
        )
    items = list(overrides or [])
    values: dict[str, Any] = {"preset": preset, **json.loads(json.dumps(PRESETS[preset]))}
    names = [i.partition("=")[2] for i in items if i.partition("=")[0].strip() == "model_name"]
    name = (names or [values.get("model_name", DEFAULT_MODEL)])[-1].strip()
    model_config = model_entry(name).config
    values = apply_overrides(TrainConfig, values, items, nested={"model": model_config})
    config = build(TrainConfig, values, items)
    model_items = [i[len("model.") :] for i in items if i.startswith("model.")]
    try:
        model_config.from_preset(preset, **config.model)
    except SettingError as error:
        typed = dict(i.partition("=")[::2] for i in model_items)
        if error.key in typed:
            raise InputError(
                f"--set model.{error.key}={typed[error.key]}: {error.problem}"
            ) from None
        raise
    return config
