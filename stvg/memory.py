"""Keep freed memory in the process, so big tensors do not cost page faults every time.

On Linux, glibc's ``malloc`` hands every block above a threshold (128 KiB at first, at most
32 MiB after its own adjustment) straight to ``mmap`` and gives it back with ``munmap`` when it
is freed. A training step of the heads on a CPU allocates and frees thousands of tensors of tens
of megabytes (attention weights, feed-forward activations, their gradients), so the kernel maps,
zero-fills and unmaps the same memory thousands of times a step: on our 2-core machine that made
an element-wise pass over a 32 MiB tensor 5x slower (16 ms instead of 3 ms) and the paper-size
CSDVL step 1.5x slower (BENCHMARKS.md, "Freed memory kept"). This is what PyTorch's CPU tuning
guide fixes by preloading jemalloc or tcmalloc; we get the same effect from glibc itself, with
no extra library, by raising two of its thresholds (``mallopt``):

* ``M_MMAP_THRESHOLD`` to :data:`MMAP_THRESHOLD`: blocks up to 1 GiB come from the heap, whose
  freed memory is reused without new page faults;
* ``M_TRIM_THRESHOLD`` to :data:`TRIM_THRESHOLD`: free memory at the top of the heap is returned
  to the system only when it exceeds 1 GiB.

The cost is memory the process keeps after a peak: peak RSS of a paper-size training step rose
by 2-15 % in our measurements. Every ``stvg`` command calls :func:`keep_freed_memory` at start;
``STVG_MALLOC=system`` in the environment leaves glibc's defaults alone. Other C libraries
(macOS, musl) are left alone too.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

MALLOC_ENV = "STVG_MALLOC"
MMAP_THRESHOLD = 1 << 30  # bytes: larger blocks still get their own mapping
TRIM_THRESHOLD = 1 << 30  # bytes of free heap top kept before giving memory back

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3


def _glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 (glibc only: musl has no such symbol)
    except (OSError, AttributeError):
        return None
    return libc


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds to 1 GiB (see the module docstring). Returns
    True when they were set, False when ``STVG_MALLOC=system`` or the C library is not glibc."""
    if os.environ.get(MALLOC_ENV, "").strip().lower() == "system":
        return False
    libc = _glibc()
    if libc is None:
        return False
    return bool(
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
