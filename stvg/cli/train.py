"""``stvg train``: stage two."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from stvg.cli.app import app, command


@app.command("train")
@command
def train_command(
    features: Path = typer.Option(..., help="Feature store written by `stvg extract`."),
    out: Path = typer.Option(..., help="Run folder (refused if not empty, unless --resume)."),
    preset: str = typer.Option("vidstg", help="vidstg, hcstvg-v1, hcstvg-v2 or synthetic."),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a setting: key=value (e.g. lr=5e-5, model.collab=none)."
    ),
    init: str = typer.Option(
        None, help="mdetr:PATH: start the static stream from an MDETR checkpoint (= --set init=)."
    ),
    resume: bool = typer.Option(False, help="Continue the run in --out from its checkpoint."),
    force: bool = typer.Option(False, help="With --resume: accept a changed config."),
    max_steps: int = typer.Option(None, help="Stop after this many optimizer steps."),
    device: str = typer.Option("cpu", help="cpu or cuda (under torchrun: one GPU per process)."),
    deterministic: bool = typer.Option(False, help="Deterministic algorithms (exact resume)."),
) -> None:
    """Train CSDVL from cached features: AdamW, EMA, checkpoints, validation each epoch.

    Writes RUN/config.json, RUN/metrics.jsonl, RUN/checkpoint.pt and RUN/best.pt. Under
    `torchrun --nproc_per_node N` it trains with DistributedDataParallel.
    """
    from stvg.train import run
    from stvg.train.config import resolve

    overrides = list(set_)
    if max_steps is not None:
        overrides.append(f"max_steps={max_steps}")
    if init is not None:
        overrides.append(f"init={init}")
    config = resolve(preset, overrides)
    summary = run(
        features,
        out,
        config,
        resume=resume,
        device=device,
        deterministic=deterministic,
        force=force,
    )
    typer.echo(json.dumps(summary))
