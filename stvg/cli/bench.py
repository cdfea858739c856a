"""``stvg bench``: the measured ratios of docs/design.md section 10, as quoted in BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path

import typer

from stvg.cli.app import HELP, app, command

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
    json_out: Path = typer.Option(None, "--json-out", help=_JSON_OUT),
) -> None:
    """Cost per training sample end to end / heads from cache.

    End to end = decode + backbones + heads. Prints one JSON line:
    {"ratio_end_to_end_vs_cached": x, ...} (goal >= 20). Backbones: ResNet101 C5, SlowFast R50,
    RoBERTa-base with random weights; heads: CSDVL d=256 N=6.
    """
    from stvg.bench.e2e import bench_e2e
    from stvg.bench.report import report

    typer.echo(report(bench_e2e(quick=quick), json_out))


@bench_app.command("long")
@command
def bench_long_command(
    run: Path = typer.Option(..., help="A trained run (the demo's: runs/synthetic/run)."),
    features: Path = typer.Option(None, help="Its store, for a run made before runs recorded it."),
    quick: bool = typer.Option(False, "--quick", help="A 2-minute video instead of 10 minutes."),
    draw: bool = typer.Option(True, "--draw/--no-draw", help="Also time the PNG and the MP4."),
    json_out: Path = typer.Option(None, "--json-out", help=_JSON_OUT),
) -> None:
    """Long videos: stvg ground's peak memory, time and tIoU.

    A 10-minute synthetic video against a 20-second one, each grounded in a fresh process.
    Prints one JSON line: {"rss_ratio_long_vs_short": x (goal <= 1.5), "long_tIoU": t (goal
    >= 0.3 with a fully trained run), ...} with the wall time of each.
    """
    from stvg.bench.long import bench_long
    from stvg.bench.report import report

    typer.echo(report(bench_long(run, features=features, quick=quick, draw=draw), json_out))
