"""The Typer application objects and the wrapper every command goes through.

Each command module (``stvg/cli/<command>.py``) holds typed signatures with docstrings (the
``--help`` text) and calls one plain function of the package. :func:`command` turns stvg's
:class:`~stvg.errors.InputError` into a one-paragraph message on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from stvg.errors import InputError

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="stvg",
    help="Spatio-temporal video grounding: extract features once, train from cache, score exactly.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(
    help="Annotations: convert, inspect and generate data sets.", no_args_is_help=True
)
app.add_typer(data_app, name="data")


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Log warnings and errors only."),
) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)


def fail(error: InputError | str, code: int = 2) -> typer.Exit:
    """Print ``error`` as one paragraph on stderr; return the ``typer.Exit`` to raise."""
    typer.echo(str(error), err=True)
    return typer.Exit(code)


def command(func: F) -> F:
    """Wrap a command so bad input ends as a clear message with exit code 2, no traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InputError as error:
            raise fail(error, error.exit_code) from None

    return wrapper  # type: ignore[return-value]
