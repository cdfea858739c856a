"""When tqdm progress bars are drawn: one rule for every bar of stvg.

A bar is drawn only when the caller wants one (``progress``), the command did not run with
``--quiet``, and stderr is a terminal: under SLURM or with stderr redirected to a file the bars
would fill the log with ``\\r`` lines, so tqdm's ``disable=None`` turns them off there. ``--quiet``
is passed on through the ``TQDM_DISABLE`` environment variable, which tqdm itself reads for
bars without an explicit ``disable`` and which child processes (dask workers) inherit.
"""

from __future__ import annotations

import os

QUIET_ENV = "TQDM_DISABLE"


def set_quiet(quiet: bool) -> None:
    """Turn every progress bar of this process and its children off (``--quiet``) or back on."""
    if quiet:
        os.environ[QUIET_ENV] = "1"
    else:
        os.environ.pop(QUIET_ENV, None)


def bar_disabled(progress: bool = True) -> bool | None:
    """The ``disable`` argument for ``tqdm``: True when ``progress`` is off or the run is quiet,
    else None (tqdm then draws only when its stream, stderr, is a terminal)."""
    quiet = os.environ.get(QUIET_ENV, "").strip().lower() not in ("", "0", "false")
    return True if quiet or not progress else None
