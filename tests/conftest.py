"""What every test module shares: the slow tests run only when asked for (``--slow``).

A developer's plain ``pytest`` skips the tests marked ``slow`` (end-to-end pipelines, kill loops,
torchrun, overfitting); the README's test command and CI pass ``--slow`` and run everything.
"""

from __future__ import annotations

import pytest


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
