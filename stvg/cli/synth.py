"""``stvg data synth``: generate the synthetic benchmark (videos + normalized annotations)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import typer

from stvg.cli.app import command, data_app
from stvg.data.sample import Annotations
from stvg.data.synth import KINDS, SynthConfig, parse_size, synthesize
from stvg.errors import InputError


def format_summary(out: Path, result: dict[str, Annotations]) -> str:
    """One line: videos, queries per split, queries per kind."""
    videos = len({s.video_id for a in result.values() for s in a.samples})
    splits = " / ".join(f"{name} {len(a.samples)}" for name, a in result.items())
    kinds = Counter(s.extra["kind"] for a in result.values() for s in a.samples)
    per_kind = " / ".join(f"{k} {kinds[k]}" for k in KINDS)
    return f"wrote {videos} videos to {out}: queries {splits}; kinds {per_kind}"


def check_same_settings(out: Path, wanted: SynthConfig) -> None:
    """Refuse to replace the synthetic set in ``out`` when it was made with other settings
    (its ``synth.json`` differs from ``wanted`` on a knob); raises :class:`InputError` listing
    each knob as ``name: set has A, asked B``."""
    record_path = out / "synth.json"
    if not record_path.is_file():
        return
    try:
        record = json.loads(record_path.read_text())
    except (OSError, json.JSONDecodeError):
        return  # not a readable record: synthesize() decides what to do with the folder
    changed = []
    for name, value in asdict(wanted).items():
        value = list(value) if isinstance(value, tuple) else value
        if name in record and record[name] != value:
            changed.append(f"{name}: set has {record[name]}, asked {value}")
    if changed:
        raise InputError(
            "the folder holds a synthetic set made with other settings ("
            + "; ".join(changed)
            + ")",
            file=out,
            hint="pass --force to replace it, or choose another --out",
        )


@data_app.command("synth")
@command
def synth_command(
    out: Path = typer.Option(
        ..., "--out", help="Output folder (new, empty, or an earlier synth set)."
    ),
    videos: int = typer.Option(
        SynthConfig.videos, "--videos", help="Number of videos (split 70/15/15 by video)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same files."),
    seconds: float = typer.Option(6.0, "--seconds", help="Length of each video, seconds."),
    fps: float = typer.Option(10.0, "--fps", help="Frames per second."),
    size: str = typer.Option("160x120", "--size", help="Frame size WIDTHxHEIGHT (even numbers)."),
    queries_per_video: int = typer.Option(
        2,
        "--queries-per-video",
        help="Queries per video (at most; fewer when a video has no other unambiguous one).",
    ),
    force: bool = typer.Option(
        False, "--force", help="Replace a set in --out that was made with other settings."
    ),
) -> None:
    """Generate the synthetic benchmark: videos with exact tubes.

    Renders colored shapes that walk, jump, stop, spin, enter and leave, with one query per
    named action and exact boxes; kinds easy / static_ambiguous / dynamic_ambiguous in about
    equal shares (see stvg.data.synth). A rerun with the same settings writes the same files.
    """
    wanted = SynthConfig(
        videos=videos,
        seed=seed,
        seconds=seconds,
        fps=fps,
        size=parse_size(size),
        queries_per_video=queries_per_video,
    )
    if not force:
        check_same_settings(out, wanted)
    result = synthesize(
        out,
        videos=videos,
        seed=seed,
        seconds=seconds,
        fps=fps,
        size=parse_size(size),
        queries_per_video=queries_per_video,
    )
    typer.echo(format_summary(out, result))
