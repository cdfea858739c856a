"""A static HTML report of one or more prediction files: scores, a sortable sample list, frames.

The public entry is :func:`build_report` (``stvg report`` on the command line). Data gathering
(:mod:`stvg.report.gather`, :mod:`stvg.report.frames`) is kept apart from the page
(:mod:`stvg.report.html`), which is a pure function of the gathered data.
"""

from stvg.report.build import build_report

__all__ = ["build_report"]
