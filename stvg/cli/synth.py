"""``stvg data synth``: generate the synthetic benchmark (videos + normalized annotations)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer

from stvg.cli.app import command, data_app
from stvg.data.sample import Annotations
from stvg.data.synth import KINDS, SynthConfig, parse_size, synthesize


def format_summary(out: Path, result: dict[str, Annotations]) -> str:
    """One line: videos, queries per split, queries per kind."""
    videos = len({s.video_id for a in result.values() for s in a.samples})
    splits = " / ".join(f"{name} {len(a.samples)}" for name, a in result.items())
    kinds = Counter(s.extra["kind"] for a in result.values() for s in a.samples)
    per_kind = " / ".join(f"{k} {kinds[k]}" for k in KINDS)
    return f"wrote {videos} videos to {out}: queries {splits}; kinds {per_kind}"


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
) -> None:
    """Render small videos of colored shapes that walk, jump, stop, spin, enter and leave, with
    one query per named action and exact boxes; kinds easy / static_ambiguous /
    dynamic_ambiguous in about equal shares (see stvg.data.synth)."""
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
