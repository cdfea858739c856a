"""``stvg features ...``: inspect a feature store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from stvg.cli.app import HELP, app, command

features_app = typer.Typer(
    help="Feature stores: inspect what extraction wrote.",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings=HELP,
)
app.add_typer(features_app, name="features")


@features_app.command("info", short_help="Summarize a feature store.")
@command
def info(
    path: Path = typer.Argument(..., help="The store folder (the one holding manifest.json)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Summarize a feature store: videos, queries, bytes, shapes, backbones.

    Also counts incomplete entries (an interrupted writer's) and recorded failures.
    """
    from stvg.features.store import open_store

    summary = open_store(path).info()
    typer.echo(json.dumps(summary, indent=1) if as_json else format_info(summary))


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def format_info(summary: dict[str, Any]) -> str:
    """The text form of :meth:`FeatureStore.info` (``*`` marks an axis that varies)."""
    s = summary
    lines = [
        f"feature store {s['root']} ({s['backend']}, {s['dtype']}, {s['layout']}, dataset {s['dataset']})",
        f"videos {s['videos']}  queries {s['queries']}  incomplete {s['incomplete']}  "
        f"failures {s['failures']}  bytes {s['bytes']} ({_size(s['bytes'])})",
    ]
    if s["splits"]:
        lines.append(f"{'split':<12}{'videos':>8}{'queries':>9}{'incomplete':>12}  parts")
        for name, split in s["splits"].items():
            lines.append(
                f"{name:<12}{split['videos']:>8}{split['queries']:>9}{split['incomplete']:>12}  "
                + ", ".join(split["parts"])
            )
    if s["shapes"]:
        lines.append("arrays (shape per entry; rows = first axis summed over entries)")
        for name, shape in s["shapes"].items():
            dims = ", ".join("*" if d is None else str(d) for d in shape["shape"])
            lines.append(f"  {name:<12} [{dims}]  entries {shape['entries']}  rows {shape['rows']}")
    if s["backbones"]:
        lines.append("backbones")
        for role, spec in s["backbones"].items():
            lines.append(f"  {role}: {json.dumps(spec, sort_keys=True)}")
    if s["sampling"]:
        lines.append(f"sampling {json.dumps(s['sampling'], sort_keys=True)}")
    return "\n".join(lines)
