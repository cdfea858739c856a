"""Everything a training run holds, how it is built (:func:`setup`) and saved (:func:`checkpoint`).

:func:`setup` opens the run folder and the store, seeds, builds the data, model, EMA, optimizer
and scheduler, and on ``--resume`` loads them back from ``RUN/checkpoint.pt``; the result is a
:class:`TrainState` that :func:`stvg.train.trainer.train_step` advances one optimizer step at a
time. :func:`checkpoint` is the one payload builder, for ``checkpoint.pt`` (everything needed to
resume: ``model``, ``ema``, ``optimizer``, ``scheduler``, ``step``, ``best``, ``rng``) and for
``best.pt`` (the EMA weights, with the validation scores that made them the best); both carry
``config`` (whose ``model_name`` says which model of :data:`stvg.models.zoo.MODELS` the weights
are), ``model_config`` and ``features``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from stvg.errors import InputError
from stvg.train.config import TrainConfig
from stvg.train.distributed import Distributed
from stvg.train.seeding import rng_state, seed_everything, set_rng_state

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
METRICS = "metrics.jsonl"
CONFIG = "config.json"


class EMA:
    """Exponential moving average of a model's floating-point state: ``e = d * e + (1 - d) * w``."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """One update; the floating-point entries in one ``lerp`` (``e + (1 - d) (w - e)``) per
        device and dtype rather than two passes per tensor."""
        floats: dict[tuple[torch.device, torch.dtype], tuple[list, list]] = {}
        for key, value in model.state_dict().items():
            ema = self.state[key]
            if ema.is_floating_point():
                group = floats.setdefault((ema.device, ema.dtype), ([], []))
                group[0].append(ema)
                group[1].append(value.detach())
            else:
                ema.copy_(value)
        for emas, values in floats.values():
            torch._foreach_lerp_(emas, values, 1.0 - self.decay)


@dataclass
class TrainState:
    """A run in progress. ``net`` is ``model``, or DistributedDataParallel around it.

    ``step`` counts the optimizer steps done (the next one is ``step + 1``); the epoch of a step
    is ``step // steps_per_epoch``; ``best`` is the best validation m_vIoU so far (-1: none).
    """

    config: TrainConfig
    out: Path
    dist: Distributed
    model: torch.nn.Module
    net: torch.nn.Module
    ema: EMA
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    model_config: dict[str, Any]  # the resolved config of config.model_name, as a dict
    batch_size: int  # queries per step in this process (TrainConfig.per_process_batch)
    steps_per_epoch: int
    total_steps: int
    features: dict[str, Any] = field(default_factory=dict)  # the manifest's backbones, sampling
    train_set: Any = None  # stvg.features.dataset.FeatureDataset
    val_set: Any = None
    step: int = 0
    best: float = -1.0
    # amp=fp16 (CUDA): scales the loss so float16 gradients do not underflow; else None
    scaler: Any = None


# ----------------------------------------------------------------------------- small pieces
def fusable(model: torch.nn.Module) -> bool:
    """Whether AdamW can run as one fused kernel over ``model``'s parameters: all of them
    floating point on the CPU or CUDA (the update is AdamW's; only the kernel differs)."""
    params = list(model.parameters())
    return bool(params) and all(
        p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params
    )


def lr_factor(config: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """The multiplier of ``config.lr`` at optimizer step ``step`` (0-based: the rate step
    ``step`` uses). Warmup: ``(step + 1) / W`` for ``step < W = warmup_steps``. Then, with
    ``p = (step - W) / max(1, total_steps - W)`` clipped to [0, 1]: ``constant`` 1, ``cosine``
    ``(1 + cos(pi p)) / 2``, ``linear`` ``1 - p``."""

    def factor(step: int) -> float:
        if config.warmup_steps and step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps)
        progress = min(1.0, max(0.0, progress))
        if config.lr_schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        if config.lr_schedule == "linear":
            return 1.0 - progress
        return 1.0

    return factor


def model_inputs_from(dataset: Any) -> dict[str, int]:
    """Channel counts of the stored features (the model's input sizes)."""
    item = dataset.item(0)
    return {
        "image_channels": int(item["image"].shape[1]),
        "motion_channels": int(item["motion"].shape[1]),
        "text_channels": int(item["text"].shape[1]),
    }


def train_dataset(features: str | Path, config: TrainConfig) -> Any:
    """The training split of the store as the trainer reads it (``FeatureDataset``), followed
    by event-free queries with ``negatives`` or ``negatives_outside``
    (:class:`stvg.train.negatives.WithNegatives`)."""
    from stvg.features.dataset import FeatureDataset
    from stvg.train.negatives import WithNegatives

    dataset = FeatureDataset(
        features,
        config.train_split,
        config.num_frames,
        in_memory=config.in_memory,
        jitter=config.frame_jitter,
        seed=config.seed,
    )
    if not (config.negatives or config.negatives_outside):
        return dataset
    return WithNegatives(dataset, config.negatives, config.seed, config.negatives_outside)


# ----------------------------------------------------------------------------- run folder
def check_run_folder(out: Path, config: TrainConfig, resume: bool, force: bool) -> dict | None:
    """Refuse to overwrite a run; on resume, load the checkpoint and refuse a conflicting config."""
    existing = [p for p in out.iterdir()] if out.is_dir() else []
    if not resume:
        if existing:
            raise InputError(
                "the run folder is not empty",
                file=out,
                hint="Pass --resume to continue it, or choose another --out",
            )
        return None
    path = out / CHECKPOINT
    if not path.exists():
        if existing and not (out / CONFIG).exists():
            raise InputError("--resume: this folder is not an stvg run", file=out)
        return None  # nothing saved yet: start from scratch in the same folder
    saved = torch.load(path, map_location="cpu", weights_only=False)
    defaults = TrainConfig().to_json()  # settings added since the run began read as defaults
    old = {**defaults, **saved["config"]}
    new = config.to_json()
    changed = {k for k in set(old) | set(new) if old.get(k) != new.get(k)} - {"max_steps", "epochs"}
    if old["model_name"] != new["model_name"]:  # other weights: --force cannot help
        raise InputError(
            f"--resume with a different model: the run trains {old['model_name']!r}, "
            f"now {new['model_name']!r}",
            file=out / CONFIG,
            field="model_name",
            hint="Resume with the run's own model, or start a new --out",
        )
    if changed and not force:
        diffs = "; ".join(
            f"{k}: run has {old.get(k)!r}, now {new.get(k)!r}" for k in sorted(changed)
        )
        raise InputError(
            f"--resume with a different config ({diffs})",
            file=out / CONFIG,
            field=sorted(changed)[0],
            hint="Resume with the run's own settings, pass --force to accept the change, or start a new --out",
        )
    return saved


def _resume_from(
    features: str | Path, out: Path, config: TrainConfig, resume: bool, force: bool, dist: Any
) -> tuple[dict | None, dict[str, Any]]:
    """The checkpoint to resume from (None: a fresh start) and the store's ``features`` record,
    after checking (on rank 0) that the folder, the config and the store fit the run."""
    from stvg.features.manifest import check_same_features, features_record
    from stvg.features.store import open_store

    saved = check_run_folder(out, config, resume, force) if dist.main else None
    store = open_store(features)
    manifest, splits = store.manifest, list(store.splits())
    if saved is not None and not force:
        check_same_features(
            saved.get("features"),
            manifest,
            run=out,
            store=features,
            hint="Resume with the store the run was trained on, pass --force to continue on "
            "this one anyway, or start a new --out",
        )
    dist.barrier()
    if not dist.main and resume and (out / CHECKPOINT).exists():
        saved = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=False)
    return saved, {"record": features_record(manifest), "splits": splits}


def segment_seconds(samples: list[Any]) -> float:
    """The median segment length of ``samples`` in seconds: the length of video the run learns
    to ground in, recorded as ``features.train_segment_seconds`` (``stvg ground`` reads longer
    videos in windows of it)."""
    import statistics

    return float(statistics.median((s.segment[1] - s.segment[0]) / s.fps for s in samples))


# ----------------------------------------------------------------------------- setup / save
def setup(
    features: str | Path,
    out: str | Path,
    config: TrainConfig,
    *,
    resume: bool = False,
    device: str = "cpu",
    deterministic: bool = False,
    force: bool = False,
) -> TrainState:
    """Build a run: checks, seeds, data, model, EMA, AdamW, LR schedule, and the resume state.

    Refuses (:class:`InputError`) a non-empty ``out`` without ``resume``, and on ``resume`` a
    changed config or store unless ``force``. Writes nothing but the (empty) folder ``out``.
    """
    from stvg.evaluate.predict import run_frames_per_pass
    from stvg.features.dataset import FeatureDataset
    from stvg.models.zoo import model_entry

    out = Path(out)
    config.check()
    dist = Distributed(device)
    check_amp(config, dist.device)  # before anything is read or written
    saved, store = _resume_from(features, out, config, resume, force, dist)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(config.seed, deterministic)

    train_set = train_dataset(features, config)
    if len(train_set) == 0:
        raise InputError(f"no complete queries in split '{config.train_split}'", file=features)
    model_config = (
        model_entry(config.model_name)
        .config.from_preset(config.preset, **{**model_inputs_from(train_set), **config.model})
        .to_dict()
    )
    val_set = None
    if config.validate and config.val_split in store["splits"]:
        val_set = FeatureDataset(  # predicted by passes of the run's frames per pass
            features,
            config.val_split,
            run_frames_per_pass(config.to_json(), model_config),
            in_memory=config.in_memory,
        )
    batch_size = config.per_process_batch(dist.world)
    steps_per_epoch = math.ceil(math.ceil(len(train_set) / batch_size) / dist.world)
    total_steps = config.max_steps or config.epochs * steps_per_epoch
    init = config.init if saved is None else None  # applied once, when the run starts
    state = new_state(config, model_config, out, dist, steps_per_epoch, total_steps, init=init)
    record = {**store["record"], "train_segment_seconds": segment_seconds(train_set.samples)}
    state.features, state.train_set, state.val_set = record, train_set, val_set
    if saved is not None:
        state.model.load_state_dict(saved["model"])
        state.ema.state = saved["ema"]
        state.optimizer.load_state_dict(saved["optimizer"])
        state.scheduler.load_state_dict(saved["scheduler"])
        state.step, state.best = saved["step"], saved.get("best", -1.0)
        if state.scaler is not None and "scaler" in saved:
            state.scaler.load_state_dict(saved["scaler"])
        set_rng_state(saved["rng"])
        log.info("resumed from step %d", state.step)
    state.net = dist.wrap(state.model)
    return state


def check_amp(config: TrainConfig, device: torch.device) -> None:
    """Refuse ``amp=fp16`` off CUDA (:class:`~stvg.config.SettingError` naming ``amp``)."""
    from stvg.config import SettingError

    if config.amp == "fp16" and device.type != "cuda":
        problem = f"needs a CUDA device, not {device.type} (bf16 runs on both)"
        raise SettingError("amp", config.amp, problem, where="TrainConfig")


def new_state(
    config: TrainConfig,
    model_config: dict[str, Any],
    out: str | Path,
    dist: Distributed,
    steps_per_epoch: int,
    total_steps: int,
    *,
    init: str | None = None,
) -> TrainState:
    """A state at step 0 without data: the ``config.model_name`` model of ``model_config``
    (initialized from the current torch RNG, then from ``init`` = ``mdetr:PATH`` if given,
    CSDVL only) on ``dist.device``, its
    EMA, AdamW and the LR schedule over ``total_steps``. :func:`setup` builds its runs with it;
    the end-to-end benchmark, whose store fills while it runs, trains its heads with one."""
    from stvg.models.mdetr import initialize
    from stvg.models.zoo import model_entry

    model = model_entry(config.model_name).build(model_config)
    if init:
        initialize(model, init)
    check_amp(config, dist.device)
    model = model.to(dist.device)
    ema = EMA(model, config.ema_decay)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=fusable(model)
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config, total_steps))
    return TrainState(
        config, Path(out), dist, model, model, ema, optimizer, scheduler, model_config,
        config.per_process_batch(dist.world), steps_per_epoch, total_steps,
        scaler=torch.amp.GradScaler("cuda") if config.amp == "fp16" else None,
    )  # fmt: skip


def checkpoint(
    state: TrainState, *, best: bool = False, val: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The payload of ``checkpoint.pt`` or, with ``best``, of ``best.pt`` (see the module doc).

    ``val``: the validation scores saved with a best checkpoint (absent when no validation ran).
    """
    if best:
        payload: dict[str, Any] = {"ema": state.ema.state, "step": state.step}
        if val is not None:
            payload["val"] = val
    else:
        payload = {
            "model": state.model.state_dict(),
            "ema": state.ema.state,
            "optimizer": state.optimizer.state_dict(),
            "scheduler": state.scheduler.state_dict(),
            "step": state.step,
            "best": state.best,
            "rng": rng_state(),
        }
        if state.scaler is not None:
            payload["scaler"] = state.scaler.state_dict()
    return {
        **payload,
        "config": state.config.to_json(),
        "model_config": state.model_config,
        "features": state.features,
    }
