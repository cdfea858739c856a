"""The Typer application objects and the wrapper every command goes through.

Each command module (``stvg/cli/<command>.py``) holds typed signatures with docstrings (the
``--help`` text) and calls one plain function of the package. :func:`command` turns stvg's
:class:`~stvg.errors.InputError` into a one-paragraph message on stderr and exit code 2.

Conventions shared by every command: ``-h`` / ``--help``; ``--json`` prints JSON on stdout
(instead of the text form) and ``--json-out FILE`` writes it to a file; ``--device`` takes
``auto`` (the default: cuda when the machine has one); options with a fixed set of values list
them in ``--help``; progress bars are drawn only when stderr is a terminal and never with the
global ``--quiet``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from typer.core import TyperGroup

from stvg import __version__
from stvg.errors import InputError
from stvg.memory import keep_freed_memory
from stvg.progress import set_quiet

F = TypeVar("F", bound=Callable[..., Any])

HELP = {"help_option_names": ["-h", "--help"]}

# click's UsageError, found through typer's public BadParameter (typer may vendor click).
_UsageError: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError"
)


class _OneLineUsageError(_UsageError):  # type: ignore[misc, valid-type]
    """A usage error shown as one line on stderr, in the form of :class:`InputError`."""

    def show(self, file: Any = None) -> None:
        typer.echo(f"Bad input: {self.format_message()}", err=True)


class StvgGroup(TyperGroup):
    """The root command group: a wrong word or a missing option of any command (a choice not
    offered, a value of the wrong type) ends as one line naming the option, exit code 2."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:  # the root's own options (``stvg --bogus``)
            return super().parse_args(ctx, args)
        except _UsageError as error:
            raise _one_line(error) from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except _UsageError as error:
            raise _one_line(error) from None


def _one_line(error: Exception) -> Exception:
    """``error`` as a :class:`_OneLineUsageError` naming the command's help (help requests and
    errors already in that form pass through)."""
    if isinstance(error, _OneLineUsageError) or type(error).__name__ == "NoArgsIsHelpError":
        return error
    text = error.format_message().replace("Value error, ", "").rstrip(".")
    where = getattr(error, "ctx", None)
    hint = f" (see '{where.command_path} -h')" if where is not None else ""
    return _OneLineUsageError(f"{text}{hint}.", ctx=where)


app = typer.Typer(
    name="stvg",
    cls=StvgGroup,
    help="Spatio-temporal video grounding: extract features once, train from cache, score exactly.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: docstrings as written, flags shown as flags
    context_settings=HELP,
)
data_app = typer.Typer(
    help="Annotations: convert, inspect and generate data sets.",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings=HELP,
)
app.add_typer(data_app, name="data")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"stvg {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Log warnings and errors only; no progress bars."
    ),
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    set_quiet(quiet)
    keep_freed_memory()  # big tensors without a page fault per use (stvg.memory)


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
