"""Resumable steps: each records a fingerprint of its inputs and config when it completes.

``DIR/pipeline.json`` holds, per step, ``{"fingerprint", "status": "running" | "complete",
"summary"}``. Before a step runs:

* same fingerprint and ``complete`` (and its outputs still there): skipped, and the log says so;
* same fingerprint but ``running`` (the last run was interrupted): run again in resume mode
  (extraction and training continue where they stopped);
* only its input files changed (``inputs``, e.g. an edited caption) and the step is
  ``incremental`` (extraction: each entry knows what it was made from and a rerun re-extracts
  the changed ones): run again in resume mode, its outputs kept;
* another fingerprint (an input or a setting changed), ``--force`` or ``--from`` this step or an
  earlier one: its outputs are removed and it runs from scratch.

A step's fingerprint covers its own config, the state of its input files (``inputs``: contents
of annotation files, size and modification time of videos: :mod:`stvg.pipelines.inputs`) and
its upstream steps' fingerprints, so a change reruns exactly the steps downstream of it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stvg.atomic import write_json_atomic

log = logging.getLogger(__name__)

STATE = "pipeline.json"


def fingerprint(config: Any) -> str:
    """A short sha256 of the JSON form of ``config`` (keys sorted)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Step:
    """One step: ``run(resume: bool) -> summary`` writes ``outputs`` (paths under DIR)."""

    name: str
    config: dict[str, Any]
    outputs: list[Path]
    run: Callable[[bool], dict[str, Any]]
    after: list[str] = field(default_factory=list)
    inputs: Callable[[], Any] | None = None  # the state of its input files, taken when it is due
    incremental: bool = False  # changed inputs alone: rerun in resume mode, outputs kept


@dataclass
class StepResult:
    name: str
    ran: bool
    fingerprint: str
    summary: dict[str, Any]


class Pipeline:
    """Runs steps in order with the rules of the module docstring."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / STATE
        self.state: dict[str, Any] = (
            json.loads(path.read_text()) if path.exists() else {"steps": {}}
        )
        self.fingerprints: dict[str, str] = {}

    def _save(self) -> None:
        write_json_atomic(self.root / STATE, self.state, indent=1)

    def run(
        self, steps: list[Step], start: str | None = None, force: bool = False
    ) -> list[StepResult]:
        names = [s.name for s in steps]
        if start is not None and start not in names:
            from stvg.errors import InputError

            raise InputError(f"unknown step {start!r}; steps: {', '.join(names)}", field="--from")
        forced_from = names.index(start) if start is not None else (0 if force else len(names))
        results = []
        for index, step in enumerate(steps):
            upstream = {name: self.fingerprints[name] for name in step.after}
            settings = fingerprint({"config": step.config, "upstream": upstream})
            inputs = step.inputs() if step.inputs is not None else None
            fp = (
                settings
                if inputs is None
                else fingerprint({"settings": settings, "inputs": inputs})
            )
            self.fingerprints[step.name] = fp
            record = self.state["steps"].get(step.name, {})
            same = record.get("fingerprint") == fp
            # state files of earlier versions hold the settings' fingerprint only
            same_settings = record.get("settings", record.get("fingerprint")) == settings
            outputs_there = all(p.exists() for p in step.outputs)
            if (
                same
                and record.get("status") == "complete"
                and outputs_there
                and index < forced_from
            ):
                log.info("step %s: up to date (inputs unchanged), skipped", step.name)
                results.append(StepResult(step.name, False, fp, record.get("summary", {})))
                continue
            update = not same and same_settings and step.incremental and outputs_there and record
            resume = (
                (same and record.get("status") == "running") or bool(update)
            ) and index < forced_from
            if not resume:
                for path in step.outputs:
                    if path.is_dir():
                        shutil.rmtree(path)
                    elif path.exists():
                        path.unlink()
            why = (
                "input files changed: updating"
                if resume and update
                else "resuming an interrupted run"
                if resume
                else "inputs changed"
                if record
                else "first run"
            )
            if index >= forced_from:
                why = "forced"
            log.info("step %s: running (%s)", step.name, why)
            state = {"fingerprint": fp, "settings": settings}
            self.state["steps"][step.name] = {**state, "status": "running"}
            self._save()
            summary = step.run(resume)
            self.state["steps"][step.name] = {**state, "status": "complete", "summary": summary}
            self._save()
            results.append(StepResult(step.name, True, fp, summary))
        return results
