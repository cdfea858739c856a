"""``FeatureStore.info``: counts, bytes, failures and shapes of a store (``stvg features info``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from stvg.features.manifest import Manifest
from stvg.features.reading import SplitIndex


def summarize(
    root: Path, manifest: Manifest, indexes: dict[str, SplitIndex], failures: int
) -> dict[str, Any]:
    """A summary of a store from its split indexes.

    ``shapes`` maps each stored array to ``{"entries", "rows", "shape"}`` where ``rows`` is the
    sum of the first axis over entries and ``shape`` has ``None`` on axes that vary; ``bytes``
    counts every file under ``root``.
    """
    splits: dict[str, Any] = {}
    shapes: dict[str, list[tuple[int, ...]]] = {}
    for split, index in indexes.items():
        splits[split] = {
            "videos": len(index.videos),
            "queries": len(index.queries),
            "incomplete": index.incomplete,
            "parts": [part.path.name for part in index.parts],
        }
        for kind in ("videos", "queries"):
            for where in index.table(kind).values():
                for name, shape in where.part.shapes(kind, where.key).items():
                    shapes.setdefault(name, []).append(shape)
    summary = {}
    for name, seen in sorted(shapes.items()):
        first = seen[0]
        same = [
            first[i] if all(len(s) == len(first) and s[i] == first[i] for s in seen) else None
            for i in range(len(first))
        ]
        summary[name] = {
            "entries": len(seen),
            "rows": int(sum(s[0] for s in seen if s)),
            "shape": same,
        }
    total = 0
    for folder, _, files in os.walk(root):
        total += sum(os.path.getsize(os.path.join(folder, f)) for f in files)
    return {
        "root": str(root),
        "layout": manifest.layout,
        "dataset": manifest.dataset,
        "backend": manifest.backend,
        "dtype": manifest.dtype,
        "videos": sum(s["videos"] for s in splits.values()),
        "queries": sum(s["queries"] for s in splits.values()),
        "incomplete": sum(s["incomplete"] for s in splits.values()),
        "bytes": total,
        "failures": failures,
        "splits": splits,
        "shapes": summary,
        "backbones": manifest.backbones,
        "sampling": manifest.sampling,
        "stvg_version": manifest.stvg_version,
    }
