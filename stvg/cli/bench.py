"""``stvg bench``: the measured ratios of docs/design.md section 10, as quoted in BENCHMARKS.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


def _emit(result: dict[str, Any], json_out: Path | None) -> None:
    """Print the result as one JSON line; also write it to ``json_out`` when given."""
    from stvg.atomic import write_json_atomic

    if json_out is not None:
        write_json_atomic(json_out, result, indent=1)
    typer.echo(json.dumps(result))


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
    from stvg.bench import bench_extract

    _emit(bench_extract(quick=quick), json_out)


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
    from stvg.bench import bench_train

    _emit(bench_train(quick=quick), json_out)


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
    from stvg.bench_e2e import bench_e2e

    _emit(bench_e2e(quick=quick), json_out)
