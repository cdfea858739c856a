"""Stage two: train CSDVL from a feature store. Reads top to bottom: setup, loop, save.

Run folder ``RUN/``: ``config.json`` (the resolved config, plus ``features``: the store manifest's
backbones and sampling, which ``stvg predict`` / ``score --run`` / ``train --resume`` compare
with the store they are given), ``metrics.jsonl`` (one JSON object per
optimizer step: ``step``, ``epoch``, ``loss``, each loss term, ``lr``; plus one ``{"step", "epoch",
"val": {...}}`` line per validation), ``checkpoint.pt`` (the latest: ``model``, ``ema``,
``optimizer``, ``scheduler``, ``step``, ``rng``, ``config``, ``features``) and ``best.pt`` (the EMA weights with
the best validation m_vIoU).

Data order is a function of ``(seed, epoch)`` only: epoch ``e`` visits the training queries in
``randperm(n, generator=seed + e)`` order, rank ``r`` of ``W`` taking every W-th batch (the
epoch's batches padded by wrap-around to a multiple of W, so ranks step together). A resumed
run therefore skips the batches its epoch had already done and sees exactly what an uninterrupted
run would; with ``deterministic`` the final weights match it (docs/design.md section 11).
Batches come from a DataLoader with ``num_workers`` processes that read the store lazily,
ahead of the step.

Several GPUs: the same command under ``torchrun --nproc_per_node N`` uses DistributedDataParallel
(nccl on CUDA, gloo on CPU); only rank 0 writes files and validates.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from stvg.atomic import torch_save_atomic, write_text_atomic
from stvg.errors import InputError
from stvg.progress import bar_disabled
from stvg.train.config import TrainConfig

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
METRICS = "metrics.jsonl"
CONFIG = "config.json"


# ----------------------------------------------------------------------------- small pieces
class EMA:
    """Exponential moving average of a model's floating-point state: ``e = d * e + (1 - d) * w``."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for key, value in model.state_dict().items():
            ema = self.state[key]
            if ema.is_floating_point():
                ema.mul_(self.decay).add_(value.detach(), alpha=1.0 - self.decay)
            else:
                ema.copy_(value)


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def lr_factor(config: TrainConfig, total_steps: int):
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


def batch_order(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The epoch's batches of query indices (the last one may be short)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    return [perm[i : i + batch_size] for i in range(0, n, batch_size)]


class RankBatches:
    """The batches one rank trains on from ``start`` to ``total`` steps (a DataLoader batch_sampler).

    Epoch ``e`` takes :func:`batch_order` ``(n, batch_size, seed, e)``, padded by wrapping around
    to ``steps_per_epoch * world`` batches (as DistributedSampler pads) so that every rank does
    the same number of steps; rank ``r`` takes every ``world``-th batch from ``r``. A run resumed
    at step ``start`` skips the batches of its epoch that were already done.
    """

    def __init__(
        self, n: int, batch_size: int, seed: int, world: int, rank: int, start: int, total: int
    ) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.world, self.rank, self.start, self.total = world, rank, start, total
        self.steps_per_epoch = math.ceil(math.ceil(n / batch_size) / world)

    def __len__(self) -> int:
        return max(0, self.total - self.start)

    def __iter__(self):
        step = self.start
        while step < self.total:
            epoch, position = divmod(step, self.steps_per_epoch)
            order = batch_order(self.n, self.batch_size, self.seed, epoch)
            order = [order[i % len(order)] for i in range(self.steps_per_epoch * self.world)]
            for indices in order[self.rank :: self.world][position:]:
                if step >= self.total:
                    return
                yield [(i, epoch) for i in indices]  # the epoch keys the frame jitter
                step += 1


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {
        k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
    }


class Distributed:
    """Rank/world from torchrun's environment; a no-op for one process."""

    def __init__(self, device: str) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = torch.device(device)
        if self.world > 1:
            import torch.distributed as dist

            backend = "nccl" if self.device.type == "cuda" else "gloo"
            if self.device.type == "cuda":
                self.device = torch.device("cuda", self.local_rank)
                torch.cuda.set_device(self.device)
            dist.init_process_group(backend=backend)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()


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
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    defaults = TrainConfig().to_json()  # settings added since the run began read as defaults
    old = {**defaults, **checkpoint["config"]}
    new = config.to_json()
    changed = {k for k in set(old) | set(new) if old.get(k) != new.get(k)} - {"max_steps", "epochs"}
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
    return checkpoint


def model_inputs_from(dataset: Any) -> dict[str, int]:
    """Channel counts of the stored features (the model's input sizes)."""
    item = dataset.item(0)
    return {
        "image_channels": int(item["image"].shape[1]),
        "motion_channels": int(item["motion"].shape[1]),
        "text_channels": int(item["text"].shape[1]),
    }


# ----------------------------------------------------------------------------- the recipe
def run(
    features: str | Path,
    out: str | Path,
    config: TrainConfig,
    resume: bool = False,
    device: str = "cpu",
    deterministic: bool = False,
    force: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train CSDVL on the store at ``features`` into the run folder ``out``; returns a summary."""
    from stvg.features.dataset import FeatureDataset, collate
    from stvg.features.manifest import check_same_features, features_record
    from stvg.features.store import open_store
    from stvg.models import CSDVLConfig, build_model
    from stvg.models.mdetr import initialize
    from stvg.train.losses import aux_box_losses, compute_losses

    out = Path(out)
    config.check()
    dist = Distributed(device)
    checkpoint = check_run_folder(out, config, resume, force) if dist.main else None
    manifest = open_store(features).manifest
    feature_info = features_record(manifest)
    if checkpoint is not None and not force:
        check_same_features(
            checkpoint.get("features"),
            manifest,
            run=out,
            store=features,
            hint="Resume with the store the run was trained on, pass --force to continue on "
            "this one anyway, or start a new --out",
        )
    dist.barrier()
    if not dist.main and resume and (out / CHECKPOINT).exists():
        checkpoint = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=False)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(config.seed, deterministic)

    # --- setup
    train_set = FeatureDataset(
        features,
        config.train_split,
        config.num_frames,
        in_memory=config.in_memory,
        jitter=config.frame_jitter,
        seed=config.seed,
    )
    if len(train_set) == 0:
        raise InputError(f"no complete queries in split '{config.train_split}'", file=features)
    val_set = None
    if config.validate and config.val_split in _store_splits(features):
        val_set = FeatureDataset(
            features, config.val_split, config.num_frames, in_memory=config.in_memory
        )
    model_cfg = CSDVLConfig.from_preset(
        config.preset, **{**model_inputs_from(train_set), **config.model}
    ).to_dict()
    model = build_model(model_cfg)
    if checkpoint is None and config.init:
        initialize(model, config.init)  # once, when the run starts
    model = model.to(dist.device)
    ema = EMA(model, config.ema_decay)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    batch_size = config.per_process_batch(dist.world)
    batches_per_epoch = math.ceil(len(train_set) / batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch / dist.world)
    total_steps = config.max_steps or config.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config, total_steps))
    step, best = 0, -1.0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        ema.state = checkpoint["ema"]
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        step, best = checkpoint["step"], checkpoint.get("best", -1.0)
        set_rng_state(checkpoint["rng"])
        log.info("resumed from step %d", step)
    if dist.main:
        (out / CONFIG).write_text(
            json.dumps(
                {**config.to_json(), "model_resolved": model_cfg, "features": feature_info},
                indent=1,
            )
            + "\n"
        )
        _truncate_metrics(out / METRICS, step)
    net: torch.nn.Module = model
    if dist.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None
        )
    weights = config.loss_weights()

    def save(path: Path) -> None:
        state = {
            "model": model.state_dict(),
            "ema": ema.state,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "step": step,
            "best": best,
            "rng": rng_state(),
            "config": config.to_json(),
            "model_config": model_cfg,
            "features": feature_info,
        }
        torch_save_atomic(state, path)

    # --- loop
    bar = tqdm(
        total=total_steps,
        initial=step,
        desc="train",
        unit="step",
        disable=bar_disabled(progress and dist.main),
    )
    t0 = time.perf_counter()
    metrics_file = open(out / METRICS, "a") if dist.main else None
    # Workers read the store lazily and overlap reads with the step (each opens its own store).
    loader = torch.utils.data.DataLoader(
        train_set,
        batch_sampler=RankBatches(
            len(train_set), batch_size, config.seed, dist.world, dist.rank, step, total_steps
        ),
        collate_fn=collate,
        num_workers=config.num_workers,
        prefetch_factor=4 if config.num_workers > 0 else None,
        pin_memory=dist.device.type == "cuda",
    )
    try:
        for cpu_batch in loader:
            epoch = step // steps_per_epoch
            model.train()
            batch = to_device(cpu_batch, dist.device)
            outputs = net(batch, aux=True) if config.aux_loss else net(batch)
            terms = compute_losses(outputs, batch, attention=config.loss_att > 0)
            if config.aux_loss:
                terms.update(aux_box_losses(outputs["aux_boxes"], batch))
            loss = sum(weights[k] * terms[k] for k in weights if k in terms and weights[k])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            lr = optimizer.param_groups[0]["lr"]  # the rate this step uses (logged below)
            optimizer.step()
            scheduler.step()
            ema.update(model)
            step += 1
            if metrics_file is not None:
                line = {"step": step, "epoch": epoch, "loss": float(loss.detach())}
                line.update({k: float(v.detach()) for k, v in terms.items()})
                line["lr"] = lr
                metrics_file.write(json.dumps(line) + "\n")
                metrics_file.flush()
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
            if dist.main and step % config.checkpoint_every == 0:
                save(out / CHECKPOINT)
            last = step >= total_steps
            end_of_epoch = step % steps_per_epoch == 0 or last
            if not end_of_epoch or not (last or (epoch + 1) % config.val_every == 0):
                continue
            if val_set is not None and dist.main:
                val = validate(model, ema, val_set, dist.device)
                if metrics_file is not None:
                    metrics_file.write(
                        json.dumps({"step": step, "epoch": epoch, "val": val}) + "\n"
                    )
                    metrics_file.flush()
                if val["all"]["m_vIoU"] is not None and val["all"]["m_vIoU"] > best:
                    best = val["all"]["m_vIoU"]
                    torch_save_atomic(
                        {
                            "ema": ema.state,
                            "step": step,
                            "val": val,
                            "config": config.to_json(),
                            "model_config": model_cfg,
                            "features": feature_info,
                        },
                        out / BEST,
                    )
            dist.barrier()
    finally:
        bar.close()
        if metrics_file is not None:
            metrics_file.close()
    if dist.main:
        save(out / CHECKPOINT)
        if not (out / BEST).exists():
            torch_save_atomic(
                {
                    "ema": ema.state,
                    "step": step,
                    "config": config.to_json(),
                    "model_config": model_cfg,
                    "features": feature_info,
                },
                out / BEST,
            )
    dist.close()
    return {"steps": step, "best_m_vIoU": best, "seconds": time.perf_counter() - t0}


def _store_splits(features: str | Path) -> list[str]:
    from stvg.features.store import open_store

    return list(open_store(features).splits())


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop lines written after the checkpoint we resume from (they will be written again)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except (json.JSONDecodeError, KeyError):
            continue  # a line cut by a kill
    write_text_atomic(path, "".join(k + "\n" for k in keep))


@torch.no_grad()
def validate(
    model: torch.nn.Module, ema: EMA, dataset: Any, device: torch.device
) -> dict[str, Any]:
    """Score the EMA weights on ``dataset`` with the ``tubedetr`` protocol."""
    from stvg.data.sample import Annotations
    from stvg.evaluate import score
    from stvg.evaluate.predict import predict_dataset

    current = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(ema.state)
    try:
        predictions = predict_dataset(model, dataset, device=device, progress=False)
    finally:
        model.load_state_dict(current)
    annotations = Annotations(samples=list(dataset.samples), split=dataset.split)
    return score(annotations, predictions, protocol="tubedetr")
