"""Stage three: box and tube ops, the published scoring protocols, and the scorer.

The public entry is :func:`score` (``stvg score`` on the command line); see
:mod:`stvg.evaluate.score` for the result's shape and :mod:`stvg.evaluate.protocols` for what
each protocol computes.
"""

from stvg.evaluate.score import format_table, score

__all__ = ["format_table", "score"]
