"""Shared fixture of the extraction tests: 4 tiny synthetic videos (64x48, 2.5 s at 10 fps)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stvg.data.synth import synthesize


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> Path:
    """A ``stvg data synth`` folder; read-only for the tests (modules needing other videos
    define their own ``data``)."""
    root = tmp_path_factory.mktemp("synth")
    synthesize(root, videos=4, seconds=2.5, fps=10.0, size=(64, 48), progress=False)
    return root
