"""Seeds and random-number state: what makes a run repeatable and a resumed run exact.

:func:`rng_state` is saved in every ``checkpoint.pt`` and restored by :func:`set_rng_state` on
``--resume`` (python, numpy, torch and, when present, CUDA generators).
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch


def rng_state() -> dict[str, Any]:
    """The state of every global generator: ``{"python", "numpy", "torch"[, "cuda"]}``."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (CUDA only where it was saved and is present)."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed python, numpy and torch with ``seed``; with ``deterministic`` also make torch use
    deterministic algorithms only (exact resume; slower on GPU)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
