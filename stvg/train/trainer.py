"""Stage two: train a model (``model_name``: CSDVL by default) from a feature store. :func:`run` reads top to bottom: setup, loop, save.

Run folder ``RUN/``: ``config.json`` (the resolved config, plus ``features``: the store manifest's
backbones and sampling, which ``stvg predict`` / ``score --run`` / ``train --resume`` compare
with the store they are given, its whole extraction config ``extract`` and the median training
segment length ``train_segment_seconds``, with which ``stvg ground`` extracts new videos),
``metrics.jsonl`` (one JSON object per optimizer step: ``step``, ``epoch``, ``loss``, each loss
term, ``lr``; plus one ``{"step", "epoch", "val": {...}}`` line per validation), ``checkpoint.pt`` (the latest: ``model``, ``ema``, ``optimizer``, ``scheduler``,
``step``, ``rng``, ``config``, ``features``) and ``best.pt`` (the EMA weights with the best
validation m_vIoU). See :mod:`stvg.train.state` for the run's state and its checkpoints.

Data order is a function of ``(seed, epoch)`` only (:mod:`stvg.train.batches`): a resumed run
sees exactly what an uninterrupted run would, and with ``deterministic`` its final weights match
it (docs/design.md section 11).

Several GPUs: the same command under ``torchrun --nproc_per_node N`` uses DistributedDataParallel
(nccl on CUDA, gloo on CPU); only rank 0 writes files and validates.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import torch
from tqdm import tqdm

from stvg.atomic import torch_save_atomic, write_json_atomic, write_text_atomic
from stvg.device import autocast
from stvg.progress import bar_disabled
from stvg.train.batches import RankBatches, batch_loader, to_device
from stvg.train.config import TrainConfig
from stvg.train.state import (
    BEST,
    CHECKPOINT,
    CONFIG,
    EMA,
    METRICS,
    TrainState,
    checkpoint,
    lr_factor,
    setup,
)

log = logging.getLogger(__name__)

# EMA, RankBatches and lr_factor live in stvg.train.state / .batches; still importable from here.
__all__ = ["EMA", "RankBatches", "lr_factor", "run", "setup", "train_loader", "train_step"]


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
    """Train ``config.model_name`` on the store at ``features`` into the run folder ``out``.

    Returns ``{"steps", "best_m_vIoU" (-1: never validated), "seconds" (the loop's wall time)}``.
    """
    state = setup(
        features, out, config, resume=resume, device=device, deterministic=deterministic,
        force=force,
    )  # fmt: skip
    out, main = state.out, state.dist.main
    if main:
        record = {**config.to_json(), "model_resolved": state.model_config}
        write_json_atomic(out / CONFIG, record | {"features": state.features}, indent=1)
        truncate_metrics(out / METRICS, state.step)

    start = time.perf_counter()
    bar = tqdm(
        total=state.total_steps, initial=state.step, desc="train", unit="step",
        disable=bar_disabled(progress and main),
    )  # fmt: skip
    with bar, open_metrics(out / METRICS, main) as metrics:
        for batch in train_loader(state):
            epoch = state.step // state.steps_per_epoch
            values = train_step(state, batch)
            write_line(metrics, {"step": state.step, "epoch": epoch, **values})
            bar.update(1)
            bar.set_postfix(loss=f"{values['loss']:.3f}")
            if main and state.step % config.checkpoint_every == 0:
                torch_save_atomic(checkpoint(state), out / CHECKPOINT)
            if validation_due(state, epoch):
                if main and state.val_set is not None:
                    validate_and_keep_best(state, epoch, metrics)
                state.dist.barrier()

    if main:
        torch_save_atomic(checkpoint(state), out / CHECKPOINT)
        if not (out / BEST).exists():  # no validation saved one: the last EMA weights
            torch_save_atomic(checkpoint(state, best=True), out / BEST)
    state.dist.close()
    return {"steps": state.step, "best_m_vIoU": state.best, "seconds": time.perf_counter() - start}


def train_loader(state: TrainState) -> torch.utils.data.DataLoader:
    """This rank's batches from ``state.step`` to ``state.total_steps`` (workers read ahead)."""
    config, dist = state.config, state.dist
    batches = RankBatches(
        len(state.train_set), state.batch_size, config.seed, dist.world, dist.rank,
        state.step, state.total_steps,
    )  # fmt: skip
    return batch_loader(
        state.train_set, batches, config.num_workers, pin_memory=dist.device.type == "cuda"
    )


def as_float32(value: Any) -> Any:
    """``value`` with every bfloat16 or float16 tensor in it (through dicts, lists and tuples)
    cast to float32; anything else as it is."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.dtype in (torch.bfloat16, torch.float16) else value
    if isinstance(value, dict):
        return {k: as_float32(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(as_float32(v) for v in value)
    return value


def train_step(state: TrainState, batch: dict[str, Any]) -> dict[str, float]:
    """One optimizer step on a collated batch: forward, the model's weighted losses (its entry
    of :data:`stvg.models.zoo.MODELS`; CSDVL's add DETR's auxiliary box losses with
    ``aux_loss``), backward, gradient clipping, AdamW, scheduler, EMA; ``state.step`` advances
    by one. With ``amp`` (bf16, fp16) the forward runs under autocast, the losses in float32 on
    its outputs (:func:`as_float32`), and fp16 scales the loss (:class:`torch.amp.GradScaler`);
    parameters, gradients and the optimizer stay float32.

    Returns ``{"loss", <each loss term>, "lr"}`` as floats (``lr``: the rate this step used).
    The benchmarks time this very function.
    """
    from stvg.models.zoo import model_entry
    from stvg.train.losses import total_loss

    config, model, optimizer, scaler = state.config, state.model, state.optimizer, state.scaler
    entry = model_entry(config.model_name)
    model.train()
    batch = to_device(batch, state.dist.device)
    with autocast(state.dist.device, config.amp):
        outputs = state.net(batch, aux=True) if config.aux_loss else state.net(batch)
    # losses in float32: CPU autocast would leave some (e.g. l1) in bf16
    outputs = as_float32(outputs) if config.amp != "off" else outputs
    terms = entry.losses(outputs, batch, config)
    loss = total_loss(terms, entry.weights(config))
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
    else:  # fp16: scaled backward, gradients unscaled before clipping
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    if config.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    lr = optimizer.param_groups[0]["lr"]
    if scaler is None:
        optimizer.step()
    else:  # skips the step when a gradient is inf or nan, and adapts the scale
        scaler.step(optimizer)
        scaler.update()
    state.scheduler.step()
    state.ema.update(model)
    state.step += 1
    values = {"loss": float(loss.detach())}
    values.update({k: float(v.detach()) for k, v in terms.items()})
    values["lr"] = lr
    return values


def validation_due(state: TrainState, epoch: int) -> bool:
    """After the last step of every ``val_every``-th epoch, and after the run's last step."""
    last = state.step >= state.total_steps
    end_of_epoch = state.step % state.steps_per_epoch == 0 or last
    return end_of_epoch and (last or (epoch + 1) % state.config.val_every == 0)


def validate_and_keep_best(state: TrainState, epoch: int, metrics: TextIO | None) -> None:
    """Score the EMA weights on the validation split, log the scores, and save ``best.pt``
    when their m_vIoU beats ``state.best``."""
    val = validate(state.model, state.ema, state.val_set, state.dist.device)
    write_line(metrics, {"step": state.step, "epoch": epoch, "val": val})
    if val["all"]["m_vIoU"] is not None and val["all"]["m_vIoU"] > state.best:
        state.best = val["all"]["m_vIoU"]
        torch_save_atomic(checkpoint(state, best=True, val=val), state.out / BEST)


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


# ----------------------------------------------------------------------------- metrics.jsonl
@contextlib.contextmanager
def open_metrics(path: Path, main: bool) -> Iterator[TextIO | None]:
    """``metrics.jsonl`` opened for appending on the main rank; ``None`` on the others."""
    if not main:
        yield None
        return
    with open(path, "a") as metrics:
        yield metrics


def write_line(metrics: TextIO | None, line: dict[str, Any]) -> None:
    """Append one JSON line and flush it (a kill loses at most the line being written)."""
    if metrics is not None:
        metrics.write(json.dumps(line) + "\n")
        metrics.flush()


def truncate_metrics(path: Path, step: int) -> None:
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
