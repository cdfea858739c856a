"""``stvg ground``: a trained run on your own videos and sentences."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from stvg.cli.app import app, command
from stvg.device import DEVICE_HELP


@app.command("ground", short_help="Find what a sentence describes in your own video(s).")
@command
def ground_command(
    target: Path = typer.Argument(
        ...,
        metavar="VIDEO",
        help="A video, a folder of videos, or a CSV/JSON file of video + sentence pairs.",
    ),
    sentences: list[str] = typer.Argument(
        None, metavar="SENTENCE", help="The sentence(s) to ground in the video(s)."
    ),
    run: Path = typer.Option(..., help="Training run folder (uses its EMA weights)."),
    out: Path = typer.Option(Path("grounded"), help="Output folder (also holds the cache)."),
    features: Path = typer.Option(
        None,
        help="The store the run was trained on; only for a run made before runs recorded "
        "their extraction settings.",
    ),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    draw: bool = typer.Option(True, "--draw/--no-draw", help="Write a PNG and an MP4 per pair."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Ground each sentence in each video with a trained run.

    Extracts the features of just these videos with the settings the run's store was made
    with, reading a video longer than the run's training segments in overlapping windows of
    that length (the best-scoring window wins). Writes OUT/predictions.json
    (stvg-predictions/1) and, per pair, OUT/<sample_id>.png and .mp4 with the predicted box.
    Features are cached in OUT/cache: another sentence on the same video does not decode it
    again. Exit code 2 for bad input, 3 for a video that cannot be decoded.
    """
    import sys

    from stvg.ground.inputs import gather_pairs
    from stvg.ground.run import PREDICTIONS, ground

    pairs = gather_pairs(target, list(sentences or []))
    groundings = ground(run, pairs, out, features=features, device=device, draw=draw)
    sys.stderr.flush()
    if as_json:
        typer.echo(json.dumps([g.to_json() for g in groundings]))
        return
    for grounding in groundings:
        typer.echo(grounding.line())
    typer.echo(f"{len(groundings)} predictions -> {out / PREDICTIONS}")
