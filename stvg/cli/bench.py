"""``stvg bench``: the measured ratios of docs/design.md section 10, as quoted in BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path

import typer

from stvg.bench.zoo import EPOCHS, VIDEOS
from stvg.cli.app import HELP, app, command
from stvg.errors import InputError

bench_app = typer.Typer(
    help="Measure stvg's speed ratios on this machine.",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings=HELP,
)
app.add_typer(bench_app, name="bench")

_JSON_OUT = "Also write the result as JSON to this file."


@bench_app.command("extract")
@command
def bench_extract_command(
    quick: bool = typer.Option(
        False, "--quick", help="Tiny light encoders: seconds instead of minutes."
    ),
    json_out: Path = typer.Option(None, "--json-out", help=_JSON_OUT),
) -> None:
    """Extraction speed: the runner / the bare backbone forward.

    Frames per second on the same inputs. Prints one JSON line: {"ratio_vs_backbone": x, ...}
    (goal >= 0.9), with the time breakdown, and (full mode) the speed knobs, HC-STVG store
    bytes (float16 vs int8) and zarr vs HDF5 random reads.
    """
    from stvg.bench.extract import bench_extract
    from stvg.bench.report import report

    typer.echo(report(bench_extract(quick=quick), json_out))


@bench_app.command("train")
@command
def bench_train_command(
    quick: bool = typer.Option(False, "--quick", help="Fewer videos and steps: about a minute."),
    json_out: Path = typer.Option(None, "--json-out", help=_JSON_OUT),
) -> None:
    """Training step time with features in RAM / reading the store.

    Prints one JSON line: {"ratio_store_vs_ram": x, ...} (goal >= 0.95), same model and
    batches, the store read by DataLoader workers as `stvg train` does.
    """
    from stvg.bench.report import report
    from stvg.bench.train import bench_train

    typer.echo(report(bench_train(quick=quick), json_out))


@bench_app.command("e2e")
@command
def bench_e2e_command(
    quick: bool = typer.Option(
        False, "--quick", help="A scaled setting (Ts 8, Td 4, small frames)."
    ),
    models: str = typer.Option(
        "csdvl", help="Comma-separated models whose heads are timed (e.g. csdvl,cgstvg)."
    ),
    threads: int = typer.Option(None, min=1, help="Torch threads (default: torch's)."),
    amp: str = typer.Option(
        "off",
        help="bf16 autocast: off, heads (the heads' steps) or all (the backbones' passes too).",
    ),
    json_out: Path = typer.Option(None, "--json-out", help=_JSON_OUT),
) -> None:
    """Cost per training sample end to end / heads from cache.

    End to end = decode + backbones + heads. Prints one JSON line:
    {"ratio_end_to_end_vs_cached": x, ..., "models": {...}} (goal >= 20). Backbones: ResNet101
    C5, SlowFast R50, RoBERTa-base with random weights; heads: each model's paper-size defaults.
    Per model also the FLOP ratio and efficiency = ratio / FLOP ratio (1.0: the heads run as
    fast per FLOP as the backbones).
    """
    from stvg.bench.e2e import AMP_CHOICES, bench_e2e
    from stvg.bench.report import report
    from stvg.device import torch_threads

    names = _model_list(models)
    if amp not in AMP_CHOICES:
        raise InputError(f"--amp {amp}: expected one of {', '.join(AMP_CHOICES)}")
    with torch_threads(threads):
        typer.echo(report(bench_e2e(quick=quick, models=names, amp=amp), json_out))


@bench_app.command("memory")
@command
def bench_memory_command(
    quick: bool = typer.Option(
        False, "--quick", help="Small inputs (Ts 8, small maps) instead of the e2e full size."
    ),
    models: str = typer.Option(
        "csdvl", help="Comma-separated models whose heads are timed (e.g. csdvl,cgstvg)."
    ),
    reps: int = typer.Option(3, min=1, help="Timed steps per model and setting."),
    threads: int = typer.Option(None, min=1, help="Torch threads (default: torch's)."),
    json_out: Path = typer.Option(None, "--json-out", help=_JSON_OUT),
) -> None:
    """Heads' step time, glibc malloc defaults / freed memory kept.

    Every stvg command keeps freed memory in the process (blocks up to 1 GiB from the heap;
    STVG_MALLOC=system turns that off). This times each model's paper-size training step on one
    sample of random features of the e2e full-size shapes both ways, each in a child process of
    its own. Prints one JSON line: per model the step seconds, median, peak RSS, "speedup"
    (defaults / kept) and "rss_ratio" (kept / defaults).
    """
    from stvg.bench.memory import bench_memory
    from stvg.bench.report import report

    names = _model_list(models)
    typer.echo(report(bench_memory(names, quick, reps, threads), json_out))


@bench_app.command("video")
@command
def bench_video_command(
    threads: int = typer.Option(1, min=1, help="Torch threads."),
    repeats: int = typer.Option(3, min=1, help="Timed forwards of each backbone (best kept)."),
    clip_size: int = typer.Option(256, min=32, help="Clip side in pixels (256 as in extract)."),
    clips: int = typer.Option(2, min=1, help="Clips per forward."),
    json_out: Path = typer.Option(None, "--json-out", help=_JSON_OUT),
) -> None:
    """Video backbones: swin3d_t over SlowFast on the same clips.

    Prints one JSON line: {"ratio_cpu_time": x, "ratio_wall": x, "ratio_gflops": x, ...} with
    the CPU seconds, wall seconds and GFLOPs per clip of each (random weights).
    """
    from stvg.bench.report import report
    from stvg.bench.video import bench_video

    result = bench_video(clip_size=clip_size, clips=clips, repeats=repeats, threads=threads)
    typer.echo(report(result, json_out))


@bench_app.command("long")
@command
def bench_long_command(
    run: Path = typer.Option(..., help="A trained run (the demo's: runs/synthetic/run)."),
    features: Path = typer.Option(None, help="Its store, for a run made before runs recorded it."),
    quick: bool = typer.Option(False, "--quick", help="A 2-minute video instead of 10 minutes."),
    draw: bool = typer.Option(True, "--draw/--no-draw", help="Also time the PNG and the MP4."),
    seeds: str = typer.Option(
        None, help="Also judge the long video of these generator seeds (e.g. 0,1,2,3,4)."
    ),
    json_out: Path = typer.Option(None, "--json-out", help=_JSON_OUT),
) -> None:
    """Long videos: stvg ground's peak memory, time and tIoU.


    A 10-minute synthetic video against a 20-second one, each grounded in a fresh process.
    Prints one JSON line: {"rss_ratio_long_vs_short": x (goal <= 1.5), "long_tIoU": t (goal
    >= 0.3 with a fully trained run), ...} with the wall time of each.
    """
    from stvg.bench.long import bench_long
    from stvg.bench.report import report

    chosen = None if seeds is None else _seed_list(seeds)
    result = bench_long(run, features=features, quick=quick, draw=draw, seeds=chosen)
    typer.echo(report(result, json_out))


@bench_app.command("zoo")
@command
def bench_zoo_command(
    out: Path = typer.Option(Path("runs/zoo"), help="Folder of the store, trainings and report."),
    models: str = typer.Option(None, help="Comma-separated models (default: every model)."),
    seeds: int = typer.Option(3, min=1, help="Seeds per model and ablation arm (0 .. N-1)."),
    collab: str = typer.Option(
        "none,s2d,d2s,full", help="CSDVL collaboration modes of the ablation ('' for none)."
    ),
    epochs: int = typer.Option(EPOCHS, min=1, help="Epochs of every training."),
    videos: int = typer.Option(VIDEOS, min=1, help="Synthetic videos of the store."),
    features: Path = typer.Option(None, help="Use this store instead of synthesizing one."),
    split: str = typer.Option("test", help="The split scored."),
    jobs: int = typer.Option(2, min=1, help="Trainings run at a time (child processes)."),
    threads: int = typer.Option(1, min=1, help="Torch threads of each training."),
    set_: list[str] = typer.Option([], "--set", help="A key=value setting for every training."),
) -> None:
    """Model zoo: every model over seeds on one synthetic store.

    Trains each with several seeds on one synthetic store and compares them.

    Scores the test split per synthetic kind (m_vIoU, m_tIoU, m_sIoU, mean +- std over seeds),
    runs CSDVL's collaboration ablation (none / s2d / d2s / full) and says whether the paper's
    ordering full > one direction > none holds beyond the seed spread. Writes OUT/zoo.json,
    zoo.md and zoo.png; a rerun skips finished trainings. Budget: with the defaults (240
    videos, 7 epochs, 3 seeds, 2 jobs of 1 thread) the 21 trainings of the four models plus
    the ablation took 58 minutes on a 2-core CPU that other jobs shared, about 40 quiet
    (measured; BENCHMARKS.md, "Model zoo").
    """
    from stvg.bench.zoo import ZooConfig, run_zoo

    report = run_zoo(
        ZooConfig(
            out=out, models=tuple(m for m in (models or "").split(",") if m), seeds=seeds,
            collab=tuple(m for m in collab.split(",") if m), epochs=epochs, videos=videos,
            features=features, split=split, jobs=jobs, threads=threads, train=tuple(set_),
        )
    )  # fmt: skip
    typer.echo((out / "zoo.md").read_text() if report else "")


@bench_app.command("probes")
@command
def bench_probes_command(
    data: Path = typer.Option(
        ..., "--data", help="The synthetic set (what `stvg data synth` wrote)."
    ),
    features: Path = typer.Option(..., "--features", help="Its feature store."),
    run: Path = typer.Option(None, "--run", help="A trained CSDVL run to probe as well."),
    split: list[str] = typer.Option(["val", "test"], "--split", help="Splits to report (repeat)."),
    json_out: Path = typer.Option(None, "--json-out", help=_JSON_OUT),
) -> None:
    """Probe why static_ambiguous queries pick the look-alike.

    Linear probes on the cached features and, with --run, the model's attention, boxes and
    dynamic features (stvg.bench.probes). Prints a table, then one JSON line.
    """
    from stvg.bench.probes import format_probes, run_probes
    from stvg.bench.report import report

    result = run_probes(data, features, run, tuple(split))
    typer.echo(format_probes(result))
    typer.echo(report(result, json_out))


def _seed_list(text: str) -> list[int]:
    """``--seeds`` as non-negative integers, or a one-line error naming the option."""
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values or not all(v.isdigit() for v in values):
        raise typer.BadParameter(
            f"{text!r} is not a comma-separated list of seeds (e.g. 0,1,2)", param_hint="'--seeds'"
        )
    return [int(v) for v in values]


def _model_list(text: str) -> list[str]:
    """The models of a comma-separated ``--models``; an empty or unknown name is a usage error."""
    from stvg.models.zoo import MODELS

    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODELS]
    if not names or unknown:
        raise typer.BadParameter(
            f"unknown model(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(MODELS)}",
            param_hint="--models",
        )
    return names
