"""Small pieces of the report's HTML: escaping, colors, numbers and spans as the page shows them."""

from __future__ import annotations

import html
from collections.abc import Sequence

from stvg.data.sample import Span

GT_COLOR = "#00e000"
RUN_COLORS = ("#ffd400", "#ff3df2", "#00d5ff", "#ff8c00", "#b388ff", "#ffffff")
SAMPLE_METRICS = (("viou", "vIoU"), ("tiou", "tIoU"), ("siou", "sIoU"))


def esc(text: object) -> str:
    """HTML-escape ``text`` for element content and double-quoted attributes."""
    return html.escape(str(text), quote=True)


def run_color(r: int) -> str:
    """The color of run ``r`` (0-based): boxes, spans and swatches."""
    return RUN_COLORS[r % len(RUN_COLORS)]


def score_cell(value: float | int | None) -> str:
    """A value of the score table as ``stvg score`` prints it: % with 2 decimals, ``-`` for None."""
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{100 * value:.2f}"


def num(value: float) -> str:
    """A number for CSS / SVG attributes: at most 3 decimals, no trailing zeros."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def span_text(span: Span) -> str:
    """A half-open span of frame ids as ``[start, end)``."""
    return f"[{span[0]}, {span[1]})"


def swatch(cls: str) -> str:
    """A small square in the color of ``cls`` (``gt`` or ``run-R``), hidden from screen readers."""
    return f'<span class="swatch {cls}" aria-hidden="true"></span>'


def classes(names: Sequence[str]) -> str:
    """`` class="a b"`` for a non-empty list of class names, else nothing."""
    return f' class="{" ".join(names)}"' if names else ""
