"""The one output of the benchmarks: a JSON-able dict, printed on one line, optionally saved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stvg.atomic import write_json_atomic


def report(result: dict[str, Any], json_path: str | Path | None = None) -> str:
    """``result`` as one JSON line (what ``stvg bench`` prints); also written, indented, to
    ``json_path`` (atomically) when given."""
    if json_path is not None:
        write_json_atomic(json_path, result, indent=1)
    return json.dumps(result)
