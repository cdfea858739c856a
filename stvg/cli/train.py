"""``stvg train``: stage two."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import typer

from stvg.cli.app import app, command
from stvg.device import DEVICE_HELP

Preset = Literal["vidstg", "hcstvg-v1", "hcstvg-v2", "synthetic"]


@app.command("train", short_help="Stage two: train CSDVL from cached features.")
@command
def train_command(
    features: Path = typer.Option(..., help="Feature store written by `stvg extract`."),
    out: Path = typer.Option(..., help="Run folder (refused if not empty, unless --resume)."),
    preset: Preset = typer.Option("vidstg", help="The paper's settings for this data set."),
    model: str = typer.Option(
        None, help="The model: csdvl (default), cgstvg, costa or stvgformer (= --set model_name=)."
    ),
    set_: list[str] = typer.Option(
        [],
        "--set",
        help="Override a setting: key=value (repeat), e.g. lr=5e-5, lr_schedule=cosine, "
        "model.collab=none. Values are checked against the setting's type and choices.",
    ),
    init: str = typer.Option(
        None, help="mdetr:PATH: start the static stream from an MDETR checkpoint (= --set init=)."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run in --out from its checkpoint."
    ),
    force: bool = typer.Option(False, "--force", help="With --resume: accept a changed config."),
    max_steps: int = typer.Option(None, min=1, help="Stop after this many optimizer steps."),
    seed: int = typer.Option(None, min=0, help="Random seed (default: the preset's, 0)."),
    device: str = typer.Option("auto", help=DEVICE_HELP + " Under torchrun: one GPU per process."),
    deterministic: bool = typer.Option(
        False, "--deterministic", help="Deterministic algorithms (exact resume)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Train a grounding model (CSDVL, CG-STVG or CoSTA) from cached features: AdamW, EMA,
    checkpoints, validation.

    Writes RUN/config.json, RUN/metrics.jsonl, RUN/checkpoint.pt and RUN/best.pt. Under
    `torchrun --nproc_per_node N` it trains with DistributedDataParallel.
    """
    from stvg.device import resolve_device
    from stvg.errors import InputError
    from stvg.train import run
    from stvg.train.config import resolve

    overrides = list(set_)
    if max_steps is not None:
        overrides.append(f"max_steps={max_steps}")
    if init is not None:
        overrides.append(f"init={init}")
    if seed is not None:
        overrides.append(f"seed={seed}")
    if model is not None:
        overrides.append(f"model_name={model}")
    config = resolve(preset, overrides)
    if not features.is_dir():
        raise InputError(f"--features {features}: no such folder (a store of `stvg extract`)")
    summary = run(
        features,
        out,
        config,
        resume=resume,
        device=resolve_device(device),
        deterministic=deterministic,
        force=force,
    )
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        best = summary["best_m_vIoU"]
        best_text = f"best val m_vIoU {100 * best:.2f} %" if best >= 0 else "no validation"
        typer.echo(
            f"trained {summary['steps']} steps in {summary['seconds']:.1f} s; {best_text} -> {out}"
        )
