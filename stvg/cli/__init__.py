"""The ``stvg`` command line: one module per command, all registered on :data:`app`.

Commands only parse and delegate to a plain function of the package (spaCy-style), so every
command also works from Python. Import order below only decides the order in ``--help``.
"""

from __future__ import annotations

from stvg.cli.app import app

# Each module registers its commands on import (one line per module).


def main() -> None:
    app()


__all__ = ["app", "main"]
