"""``stvg.memory``: freed big blocks stay in the process, counted in the kernel's page faults.

Each case runs in a fresh interpreter (the thresholds are process-wide) that repeats a step's
worth of 40 MiB temporaries (allocate, compute, free) and reports the minor page faults of each
round. With glibc's defaults every such block is a new mapping (a fault per 4 KiB page touched,
30720 a round here); with :func:`~stvg.memory.keep_freed_memory` the heap grows to the working
set in the first rounds and then reuses it.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from stvg.cli.app import app
from stvg.memory import _glibc

PAGES = 3 * (40 << 20) // 4096  # one round's three blocks; the defaults fault 4 rounds of them

PROBE = """
import resource, sys
import torch
from stvg.memory import keep_freed_memory

print(keep_freed_memory() if sys.argv[1] == "keep" else "defaults")

def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = torch.ones(10 << 20)  # 40 MiB of float32
    b = a * 2
    (a + b).sum()
    del a, b
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

print(*[faults() for _ in range(12)])
"""


def probe(mode: str, env: dict[str, str] | None = None) -> tuple[str, int]:
    """Runs :data:`PROBE`; returns what ``keep_freed_memory`` said and the faults of the last 4
    rounds."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, env=env
    )
    status, *faults = done.stdout.split()
    return status, sum(int(n) for n in faults[-4:])  # the last 4 rounds: the steady state


needs_glibc = pytest.mark.skipif(_glibc() is None, reason="the C library is not glibc")


@needs_glibc
def test_kept_memory_is_reused_without_page_faults():
    status, defaults = probe("defaults")
    if defaults < PAGES:
        pytest.skip(f"this kernel maps the blocks with few faults ({defaults}): huge pages")
    kept_status, kept = probe("keep")
    assert kept_status == "True"
    assert kept <= defaults // 4  # mostly reused, not mapped anew (typically 0)


@needs_glibc
def test_stvg_malloc_system_leaves_the_defaults():
    env = {**os.environ, "STVG_MALLOC": "system"}
    status, _ = probe("keep", env)
    assert status == "False"


def test_every_command_keeps_freed_memory(monkeypatch):
    calls = []
    cli_app = importlib.import_module("stvg.cli.app")  # the module (the package exports `app`)
    monkeypatch.setattr(cli_app, "keep_freed_memory", lambda: calls.append(1) or True)
    result = CliRunner().invoke(app, ["data", "--help"])
    assert result.exit_code == 0
    assert calls == [1]
