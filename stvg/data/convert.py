"""Any known annotation format -> stvg normalized ``stvg-annotations/1`` (``stvg data convert``)."""

from __future__ import annotations

import logging
from pathlib import Path

from stvg.data.formats import load_annotations
from stvg.data.sample import Annotations, write_normalized
from stvg.errors import InputError

log = logging.getLogger(__name__)


def convert(
    src: str | Path,
    out: str | Path,
    format: str | None = None,
    boxes_dir: str | Path | None = None,
) -> Annotations:
    """Load ``src`` (format detected from content unless ``format`` is given) and write it to
    ``out`` as normalized annotations, atomically; return what was written.

    ``boxes_dir`` is the VidOR box directory for raw VidSTG sentences. Raises
    :class:`~stvg.errors.InputError` on bad input; ``out`` is then left untouched.
    """
    if Path(out).resolve() == Path(src).resolve():
        raise InputError("the output would overwrite the source file", file=out, field="--out")
    annotations = load_annotations(src, format, boxes_dir=boxes_dir)
    write_normalized(annotations, out)
    log.info("wrote %d samples to %s", len(annotations.samples), out)
    return annotations
