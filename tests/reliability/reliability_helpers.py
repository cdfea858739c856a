"""Shared tiny settings and helpers of the reliability suite (tests/reliability)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tiny_settings import TINY_EXTRACT, TINY_TRAIN

# Synthetic videos: 64x48, 2 s at 10 fps (20 frames).
SYNTH = {"seconds": 2.0, "fps": 10.0, "size": (64, 48)}
EXTRACT = TINY_EXTRACT
EXTRACT_ARGS = [x for k, v in EXTRACT.items() for x in (f"--{k.replace('_', '-')}", str(v))]
TRAIN_SETS = TINY_TRAIN
TRAIN_ARGS = [x for s in TRAIN_SETS for x in ("--set", s)]


def stvg_command(*args: str) -> list[str]:
    """The argv of ``stvg ARGS`` run as a fresh Python process (quiet logging)."""
    return [sys.executable, "-c", "from stvg.cli import main; main()", "-q", *args]


def run_stvg(*args: str, timeout: float = 300, env: dict[str, str] | None = None) -> Any:
    """Run ``stvg ARGS`` in a subprocess to the end; returns the CompletedProcess."""
    return subprocess.run(
        stvg_command(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def store_arrays(root: Path) -> dict[str, np.ndarray]:
    """Every array of a feature store (complete entries), keyed ``split/id/name``."""
    from store_contents import store_arrays as arrays

    return arrays(root)


def assert_same_arrays(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)


def edit_manifest(root: Path, **changes: Any) -> dict[str, Any]:
    """Change top-level fields of ``root/manifest.json`` (dotted keys reach inside), in place."""
    path = root / "manifest.json"
    data = json.loads(path.read_text())
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    path.write_text(json.dumps(data, indent=1))
    return data


def listing(root: Path) -> dict[str, int]:
    """Relative path -> size of every file under ``root`` (to prove nothing was written)."""
    return {
        str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()
    }
