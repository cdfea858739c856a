"""The one error type for bad input, and how it reads.

Every loader, reader and command raises :class:`InputError` for input it cannot use. The CLI
prints it as one paragraph on stderr and exits with code 2 (no traceback), or 3 for a video
that exists but cannot be decoded (:class:`UndecodableVideo`, as ``stvg extract`` exits 3 when
videos failed). The message always
names the file and, where they are known, the sample and the field, so that a user can open the
file and fix the entry.
"""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Input that stvg cannot use: a file, a sample in it, a field of that sample.

    ``file`` is the path that was read, ``sample`` the id (or index) of the offending record,
    ``field`` the key inside it (dotted for nested keys, e.g. ``"boxes.120"``).
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        sample: str | int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.file = None if file is None else str(file)
        self.sample = None if sample is None else str(sample)
        self.field = field
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.file is not None:
            where.append(f"file {self.file}")
        if self.sample is not None:
            where.append(f"sample {self.sample}")
        if self.field is not None:
            where.append(f"field '{self.field}'")
        text = self.message.rstrip(".") + "."
        if where:
            text = f"{', '.join(where)}: {text}"
        if self.hint:
            text += " " + self.hint.rstrip(".") + "."
        return "Bad input: " + text

    def located(
        self,
        *,
        file: str | Path | None = None,
        sample: str | int | None = None,
        field: str | None = None,
    ) -> InputError:
        """The same error with the missing parts of its location filled in."""
        return InputError(
            self.message,
            file=self.file if self.file is not None else file,
            sample=self.sample if self.sample is not None else sample,
            field=self.field if self.field is not None else field,
            hint=self.hint,
        )


class UndecodableVideo(InputError):
    """A video file that exists but cannot be decoded (truncated, corrupt, not a video): exit
    code 3."""

    exit_code = 3
