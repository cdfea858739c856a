"""The ``stvg`` command line: one module per command, all registered on :data:`app`.

Commands only parse and delegate to a plain function of the package (spaCy-style), so every
command also works from Python. Each module below registers its commands on import.
"""

from __future__ import annotations

from stvg.cli import (  # noqa: F401  (imported to register their commands)
    baseline,
    bench,
    data,
    extract,
    features,
    ground,
    pipeline,
    predict,
    predictions,
    report,
    score,
    synth,
    train,
    visualize,
)
from stvg.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
