"""``stvg extract``: stage one."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

import typer

from stvg.cli.app import app, command
from stvg.device import DEVICE_HELP
from stvg.extract.config import Dataset, ImageBackbone, ImageLayer, VideoBackbone

Backend = Literal["zarr", "hdf5"]
Dtype = Literal["float16", "int8"]


@app.command("extract", short_help="Stage one: backbone features of every video, stored once.")
@command
def extract_command(
    dataset: Dataset = typer.Option(
        None, help="The data set (sets the preset; with --like, only the annotation layout)."
    ),
    like: Path = typer.Option(
        None,
        "--like",
        help="A training run: extract with exactly the settings of the store it was trained on.",
    ),
    data_root: Path = typer.Option(
        ..., help="Dataset folder (for synthetic: what `stvg data synth` wrote)."
    ),
    out: Path = typer.Option(..., help="Feature store folder, e.g. features/vidstg."),
    annotations: str = typer.Option(
        None, help="Annotation file, or a pattern with {split}; default: the dataset's layout."
    ),
    boxes_dir: Path = typer.Option(None, help="VidSTG: the VidOR box annotation folder."),
    split: list[str] = typer.Option(["train", "val", "test"], help="Splits to extract (repeat)."),
    backend: Backend = typer.Option("zarr", help="Store format."),
    weights: str = typer.Option(
        None, help="pretrained, random, a local checkpoint PATH, or mdetr:PATH (image and text)."
    ),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    batch_size: int = typer.Option(16, min=1, help="Frames (or clips) per backbone forward."),
    pack: bool = typer.Option(
        True,
        "--pack/--no-pack",
        help="Fill backbone batches with the frames (clips) of several videos; the stored "
        "values are the same either way.",
    ),
    dtype: Dtype = typer.Option(
        "float16",
        help="Stored values: int8 has per-channel scales and takes less than half the bytes.",
    ),
    image_backbone: ImageBackbone | None = typer.Option(
        None,
        help="resnet101 is the paper's; pixels needs no weights.",
    ),
    image_layer: ImageLayer | None = typer.Option(None, help="layer4 (C5) is the paper's."),
    n_short: int = typer.Option(None, help="Static frames: shorter side at most this many pixels."),
    video_backbone: VideoBackbone | None = typer.Option(
        None,
        help="slowfast_r50_detection (AVA) is the paper's; swin3d_t (Kinetics-400) is "
        "CG-STVG's; pixelflow needs no weights.",
    ),
    td: int = typer.Option(None, help="Number of clips per segment (Td)."),
    clip_size: int = typer.Option(None, help="Clip frames are padded square and resized to this."),
    text_layers: int = typer.Option(None, help="RoBERTa layers to run (12 = roberta-base)."),
    set_: list[str] = typer.Option(
        [],
        "--set",
        help="Override any extraction setting: key=value (repeat), e.g. target_fps=2, "
        "max_frames=100, max_text_len=32.",
    ),
    shard: str = typer.Option(
        None, help="K/N: extract every N-th entry from K (default: SLURM array variables, or 0/1)."
    ),
    scheduler: str = typer.Option(None, help="dask.distributed scheduler address."),
    dask_workers: int = typer.Option(
        None, min=1, help="Start a local dask cluster of N worker processes."
    ),
    skip_failed: bool = typer.Option(
        False, "--skip-failed", help="Do not retry videos recorded in failures.jsonl."
    ),
    amp: bool = typer.Option(False, "--amp", help="Autocast (bf16 on CPU, fp16 on CUDA)."),
    channels_last: bool = typer.Option(
        False, "--channels-last", help="channels_last memory format for the CNNs."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    json_out: Path = typer.Option(None, "--json-out", help="Also write the summary JSON here."),
) -> None:
    """Decode each video once, run the frozen backbones, write a feature store.

    Resumable: a rerun skips complete entries and re-extracts the ones whose caption, sample
    fields or video file changed since (each entry records what it was made from). A video
    that cannot be decoded is recorded in the store's failures.jsonl and the others go on; the
    exit code is then 3.
    """
    from stvg.atomic import write_json_atomic
    from stvg.device import resolve_device
    from stvg.errors import InputError
    from stvg.extract import run
    from stvg.extract.config import resolve
    from stvg.extract.plan import parse_shard

    if not data_root.is_dir():
        raise InputError(f"--data-root {data_root}: no such folder")
    if dataset is None and like is None:
        raise InputError("--dataset is required (or --like RUN)", field="--dataset")
    config = resolve(
        dataset or "normalized",
        list(set_),
        backend=backend,
        weights=weights,
        device=resolve_device(device),
        batch_size=batch_size,
        dtype=dtype,
        image_backbone=image_backbone,
        image_layer=image_layer,
        n_short=n_short,
        video_backbone=video_backbone,
        td=td,
        clip_size=clip_size,
        text_layers=text_layers,
        amp=amp,
        channels_last=channels_last,
        pack=pack,
    )
    if like is not None:
        feature_options = {
            "weights": weights, "image_backbone": image_backbone, "image_layer": image_layer,
            "n_short": n_short, "video_backbone": video_backbone, "td": td,
            "clip_size": clip_size, "text_layers": text_layers, "amp": amp,
            "channels_last": channels_last,
        }  # fmt: skip
        config = _like(like, dataset, set_, config, feature_options)
    summary = run(
        config,
        data_root,
        out,
        splits=list(split),
        annotations=annotations,
        boxes_dir=boxes_dir,
        shard=parse_shard(shard),
        scheduler=scheduler,
        dask_workers=dask_workers,
        skip_failed=skip_failed,
    )
    report = summary.to_json()
    if json_out is not None:
        write_json_atomic(json_out, report, indent=1)
    sys.stderr.flush()  # the progress bar's last newline goes before the summary line
    if as_json:
        typer.echo(json.dumps(report))
    else:
        typer.echo(
            f"{summary.counts_line()}, "
            f"{report['failed']} failed, {report['queries']} queries, {report['frames']} frames "
            f"in {report['seconds']:.1f} s -> {out}"
        )
    if summary.failed:
        for entry_id, reason in summary.failed:
            typer.echo(f"  failed: {entry_id} ({reason})", err=True)
        typer.echo(f"{len(summary.failed)} video(s) failed; see {out}/failures.jsonl", err=True)
        raise typer.Exit(3)


def _like(run: Path, dataset: str | None, items: list[str], config: Any, given: dict) -> Any:
    """``--like RUN``: the run's settings, with this command's device, batch size, packing and
    storage (``config``'s) and ``--set`` items; refuses ``given`` options (those deciding what
    the features mean) that were set."""
    from stvg.errors import InputError
    from stvg.ground.settings import config_like

    named = [f"--{k.replace('_', '-')}" for k, v in given.items() if v not in (None, False)]
    if named:
        raise InputError(
            f"--like takes every feature setting from the run; drop {', '.join(named)}"
        )
    knobs = {k: getattr(config, k) for k in ("device", "batch_size", "pack", "backend", "dtype")}
    return config_like(run, dataset, list(items), **knobs)
