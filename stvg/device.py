"""The ``--device`` option: ``auto`` (a GPU when there is one), ``cpu``, ``cuda``, ``cuda:N``.

:func:`resolve_device` checks the name against this machine before any work starts, so that
``--device cuda`` on a machine without a GPU ends as one line (exit 2) instead of a traceback
from deep inside torch. It imports torch, so only commands that run a network call it.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

from stvg.errors import InputError

DEVICE_HELP = "auto (cuda when this machine has a GPU, else cpu), cpu, cuda or cuda:N."
_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")


def resolve_device(name: str, option: str = "--device") -> str:
    """The torch device string for ``name``: ``"auto"`` becomes ``"cuda"`` when
    ``torch.cuda.is_available()``, else ``"cpu"``; a CUDA (or MPS) device this machine does not
    have is refused with an :class:`InputError` naming ``option``."""
    text = name.strip().lower()
    if not _PATTERN.match(text):
        raise InputError(f"{option} {name}: expected auto, cpu, cuda, cuda:N or mps")
    import torch

    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if text.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(f"{option} {name}: this machine has no CUDA device; use cpu or auto")
        index = int(text.partition(":")[2] or 0)
        if index >= count:
            raise InputError(
                f"{option} {name}: this machine has {count} CUDA device(s), 0-{count - 1}"
            )
    if text == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"{option} {name}: MPS is not available on this machine; use cpu or auto")
    return text


AMP_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


def autocast(device: Any, amp: str) -> contextlib.AbstractContextManager:
    """Mixed precision on ``device`` (a ``torch.device``): ``amp`` ``"off"`` runs float32 (a
    null context), ``"bf16"`` / ``"fp16"`` autocast to bfloat16 / float16. float16 is for CUDA
    only (training pairs it with a gradient scaler, which stvg runs there): elsewhere an
    :class:`InputError` naming ``amp``."""
    if amp == "off":
        return contextlib.nullcontext()
    if amp not in AMP_DTYPES:
        raise InputError(f"amp {amp!r}: expected off, bf16 or fp16", field="amp")
    if amp == "fp16" and device.type != "cuda":
        raise InputError(
            f"amp fp16 needs a CUDA device, not {device.type}", field="amp", hint="use amp=bf16"
        )
    import torch

    return torch.autocast(device_type=device.type, dtype=getattr(torch, AMP_DTYPES[amp]))


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Any:
    """torch's CPU ops on ``threads`` intra-op threads inside the block, the count before
    restored after (also on error); ``None`` or 0 leaves the count as it is."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
