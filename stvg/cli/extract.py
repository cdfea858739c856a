"""``stvg extract``: stage one."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from stvg.cli.app import app, command


@app.command("extract")
@command
def extract_command(
    dataset: str = typer.Option(
        ..., help="vidstg, hcstvg-v1, hcstvg-v2, synthetic or normalized (sets the preset)."
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
    backend: str = typer.Option("zarr", help="zarr or hdf5."),
    weights: str = typer.Option(
        None, help="pretrained, random, a local checkpoint PATH, or mdetr:PATH (image and text)."
    ),
    device: str = typer.Option("cpu", help="cpu or cuda[:N]."),
    batch_size: int = typer.Option(16, help="Frames (or clips) per backbone forward."),
    pack: bool = typer.Option(
        True,
        help="Fill backbone batches with the frames (clips) of several videos; the stored "
        "values are the same either way.",
    ),
    dtype: str = typer.Option(
        "float16", help="float16, or int8 (per-channel scales, < half the bytes)."
    ),
    image_backbone: str = typer.Option(
        None, help="resnet101 (paper), resnet50, resnet18 or pixels (no weights)."
    ),
    image_layer: str = typer.Option(None, help="layer4 (C5, paper), layer3 or layer2."),
    n_short: int = typer.Option(None, help="Static frames: shorter side at most this many pixels."),
    video_backbone: str = typer.Option(
        None, help="slowfast_r50_detection (AVA), slowfast_r101, framediff_resnet18 or pixelflow."
    ),
    td: int = typer.Option(None, help="Number of clips per segment (Td)."),
    clip_size: int = typer.Option(None, help="Clip frames are padded square and resized to this."),
    text_layers: int = typer.Option(None, help="RoBERTa layers to run (12 = roberta-base)."),
    shard: str = typer.Option(
        None, help="K/N: extract every N-th entry from K (default: SLURM array variables, or 0/1)."
    ),
    scheduler: str = typer.Option(None, help="dask.distributed scheduler address."),
    dask_workers: int = typer.Option(
        None, help="Start a local dask cluster of N worker processes."
    ),
    skip_failed: bool = typer.Option(False, help="Do not retry videos recorded in failures.jsonl."),
    amp: bool = typer.Option(False, help="Autocast (bf16 on CPU, fp16 on CUDA)."),
    channels_last: bool = typer.Option(False, help="channels_last memory format for the CNNs."),
    json_out: Path = typer.Option(None, "--json", help="Also write the summary as JSON here."),
) -> None:
    """Decode each video once, run the frozen backbones, write a sharded feature store.

    Resumable: a rerun skips complete entries. A video that cannot be decoded is recorded in
    the store's failures.jsonl and the others go on; the exit code is then 3.
    """
    from stvg.extract import run
    from stvg.extract.config import preset
    from stvg.extract.plan import parse_shard

    config = preset(
        dataset,
        backend=backend,
        weights=weights,
        device=device,
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
        json_out.write_text(json.dumps(report, indent=1) + "\n")
    typer.echo(
        f"{report['new_videos']} new videos, {report['skipped']} skipped (complete), "
        f"{report['failed']} failed, {report['queries']} queries, {report['frames']} frames "
        f"in {report['seconds']:.1f} s -> {out}"
    )
    if summary.failed:
        for entry_id, reason in summary.failed:
            typer.echo(f"  failed: {entry_id} ({reason})", err=True)
        typer.echo(f"{len(summary.failed)} video(s) failed; see {out}/failures.jsonl", err=True)
        raise typer.Exit(3)
