"""What every test module shares: the slow tests run only when asked for (``--slow``), and
session fixtures (tiny synthetic videos, their tiny feature stores, one-thread torch, a ``Sample``
factory).

A developer's plain ``pytest`` skips the tests marked ``slow`` (end-to-end pipelines, kill loops,
torchrun, overfitting); the README's test command and CI pass ``--slow`` and run everything.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sample_factory import make_sample as _make_sample
from tiny_settings import TINY_EXTRACT


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow",
        action="store_true",
        help="also run the tests marked slow (what CI and the README's test command do)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow") or config.option.markexpr:
        return  # asked for everything, or a -m expression chooses
    skip = pytest.mark.skip(reason="slow: run with --slow (the README's test command does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def copy_of(tmp_path: Path) -> Callable[[Path], Path]:
    """``copy_of(folder)``: a private copy (under the test's ``tmp_path``) of a shared read-only
    fixture folder, for a test that writes in it."""
    return lambda path: Path(shutil.copytree(path, tmp_path / "copy" / path.name))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``stvg data synth`` of 4 videos of 2 s at 10 fps and 64x48 (train 2 videos / 4 queries,
    val 1, test 1). Read-only: a test that writes in it takes ``copy_of(tiny_data)``."""
    from stvg.data.synth import synthesize

    root = tmp_path_factory.mktemp("tiny") / "data"
    synthesize(root, videos=4, seconds=2.0, fps=10.0, size=(64, 48), progress=False)
    return root


def _extract(data: Path, out: Path, splits: list[str]) -> Path:
    from stvg.extract import run as extract
    from stvg.extract.config import preset

    extract(preset("synthetic", **TINY_EXTRACT), data, out, splits, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_train_features(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The train split of ``tiny_data`` extracted with ``TINY_EXTRACT`` (no val split). Read-only."""
    return _extract(tiny_data, tmp_path_factory.mktemp("tiny-train") / "features", ["train"])


@pytest.fixture(scope="session")
def tiny_features(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The train and val splits of ``tiny_data`` extracted with ``TINY_EXTRACT``. Read-only."""
    return _extract(
        tiny_data, tmp_path_factory.mktemp("tiny-trainval") / "features", ["train", "val"]
    )


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Torch on one thread for the test (tiny matmuls are much faster single-threaded on a
    shared 2-core machine); restores the thread count and the deterministic-algorithms flag."""
    import torch

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


@pytest.fixture
def make_sample() -> Callable[..., object]:
    """The ``Sample`` factory of tests/sample_factory.py."""
    return _make_sample
