"""The weights switch (``pretrained | random | PATH``) and the error for weights we cannot get.

- ``pretrained``: the real checkpoints, through the libraries' own caches: the torch hub cache
  (``$TORCH_HOME/hub/checkpoints``, default ``~/.cache/torch``) for torchvision and pytorchvideo
  files, the Hugging Face cache (``$HF_HOME/hub``, default ``~/.cache/huggingface``) for RoBERTa.
  A file already in the cache is used without any network access. Otherwise it is downloaded,
  unless we are offline: ``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE`` or ``STVG_OFFLINE`` set to
  1/true (for every hub, not only Hugging Face's), or the host does not answer within
  :data:`PROBE_TIMEOUT` seconds. Then :class:`WeightsUnavailable` says what to download and where
  to put it; nothing waits on retries (huggingface_hub alone retries for ~25 s offline).
- ``random``: the same architecture, initialized by the library's own init under
  ``torch.manual_seed(SEED)`` (inside :func:`seeded`, which leaves the caller's RNG untouched),
  so every process builds bit-identical weights. Weight id ``"random:seed0"``.
- ``PATH``: a local checkpoint file (or, for the text encoder, a folder saved by
  ``save_pretrained``). Weight id ``"file:<sha256 prefix>"`` of its bytes, so stores can tell
  two different files apart.
- ``mdetr:PATH``: an MDETR checkpoint (:mod:`stvg.models.mdetr` reads it safely): the image
  encoder takes its ResNet (``backbone.0.body.*``), the text encoder its RoBERTa
  (``transformer.text_encoder.*``, with roberta-base's tokenizer from the Hugging Face cache);
  MDETR has no video encoder, so ``stvg extract`` builds that one ``pretrained``. Weight id
  ``"mdetr:<sha256 prefix>"``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch

from stvg.errors import InputError

log = logging.getLogger(__name__)

SEED = 0
PROBE_TIMEOUT = 3.0  # seconds to wait for a hub host before calling it unreachable
DOWNLOAD_TIMEOUT = 30.0  # seconds a download socket may stay silent
MDETR_SCHEME = "mdetr:"
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "STVG_OFFLINE")


class WeightsUnavailable(InputError):
    """Pretrained weights that cannot be had (offline, not cached, or a bad local path).

    A subclass of :class:`stvg.errors.InputError`, so the CLI prints it and exits with code 2.
    The message names what is missing; the hint names where to download it and where to put it.
    """


@dataclass(frozen=True)
class WeightsChoice:
    """A parsed ``--weights`` value: ``kind`` is ``"pretrained"``, ``"random"``, ``"file"`` or
    ``"mdetr"``."""

    kind: str
    path: Path | None = None


def parse_weights(weights: str | Path) -> WeightsChoice:
    """Parse ``"pretrained"``, ``"random"``, ``"mdetr:PATH"`` or a local path that must exist."""
    if isinstance(weights, str) and weights in ("pretrained", "random"):
        return WeightsChoice(weights)
    kind = "file"
    if isinstance(weights, str) and weights.startswith(MDETR_SCHEME):
        kind, weights = "mdetr", weights[len(MDETR_SCHEME) :]
    path = Path(weights).expanduser()
    if not path.exists():
        raise WeightsUnavailable(
            f"--weights is {str(weights)!r}, which is neither 'pretrained', 'random' nor an "
            "existing file or folder",
            file=path,
            field="--weights",
            hint="Pass 'pretrained' (downloads into the library caches), 'random', or the path "
            "of a checkpoint that exists on this machine",
        )
    if kind == "mdetr" and not path.is_file():
        raise WeightsUnavailable(
            "--weights mdetr:PATH needs the MDETR checkpoint file", file=path, field="--weights"
        )
    return WeightsChoice(kind, path)


def mdetr_id(path: str | Path) -> str:
    """``"mdetr:<first 16 hex of sha256>"`` of an MDETR checkpoint file."""
    return "mdetr:" + file_id(path).split(":", 1)[1]


def mdetr_part(path: str | Path, prefix: str, what: str) -> dict[str, torch.Tensor]:
    """The tensors of an MDETR checkpoint under ``prefix``, with the prefix removed; refused
    (:class:`WeightsUnavailable` naming ``what``) when there are none."""
    from stvg.models.mdetr import read_mdetr_checkpoint

    state, _ = read_mdetr_checkpoint(path, "--weights")
    part = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not part:
        raise WeightsUnavailable(
            f"the MDETR checkpoint holds no {what} weights (no key starts with {prefix!r})",
            file=path,
            field="--weights",
            hint="Use MDETR's ResNet101 checkpoint (pretrained_resnet101_checkpoint.pth)",
        )
    return part


def random_id(seed: int = SEED) -> str:
    return f"random:seed{seed}"


@contextmanager
def seeded(seed: int = SEED) -> Iterator[None]:
    """Run a block (a model's construction) under ``torch.manual_seed(seed)``, restoring the RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def file_id(path: str | Path) -> str:
    """``"file:<first 16 hex of sha256>"`` of a file, or of a folder's files (names and bytes)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            digest.update(f.relative_to(path).as_posix().encode() + b"\0")
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return f"file:{digest.hexdigest()[:16]}"


def is_offline() -> bool:
    """True when an offline variable (``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``, ...) is set."""
    return any(
        os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in _OFFLINE_VARS
    )


def can_reach(url: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether ``url``'s host accepts a TCP connection within ``timeout`` seconds (DNS included).

    The probe runs in a daemon thread because DNS lookups ignore socket timeouts.
    """
    parsed = urlparse(url)
    host, port = parsed.hostname or "", parsed.port or (443 if parsed.scheme == "https" else 80)
    ok: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                ok.append(True)
        except OSError:
            pass

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(ok)


def torch_hub_dir() -> Path:
    """The torch hub checkpoint folder (``$TORCH_HOME/hub/checkpoints``), read at call time."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def fetch_torch_hub_file(url: str, what: str, hash_prefix: str | None = None) -> Path:
    """The cached copy of ``url`` in the torch hub folder, downloading it when possible.

    Raises :class:`WeightsUnavailable` (naming ``what``, the URL and the target folder) when the
    file is not cached and we are offline, the host is unreachable, or the download fails.
    """
    target = torch_hub_dir() / Path(urlparse(url).path).name
    if target.is_file():
        return target

    def unavailable(reason: str) -> WeightsUnavailable:
        return WeightsUnavailable(
            f"cannot get the pretrained weights of {what}: {reason}",
            file=target,
            hint=f"Download {url} and put it at {target} (the torch hub cache, set by TORCH_HOME), "
            "or pass --weights PATH with a local copy, or --weights random for random weights",
        )

    if is_offline():
        raise unavailable("not in the torch hub cache and offline mode is set")
    if not can_reach(url):
        raise unavailable(f"not in the torch hub cache and {urlparse(url).hostname} is unreachable")
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s to %s", url, target)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)
    try:
        torch.hub.download_url_to_file(url, str(target), hash_prefix=hash_prefix, progress=True)
    except Exception as exc:  # network errors, hash mismatch, disk full: all mean "not available"
        raise unavailable(f"download failed ({type(exc).__name__}: {exc})") from exc
    finally:
        socket.setdefaulttimeout(previous)
    return target


def locate_file(path: Path, names: list[str], what: str) -> Path:
    """``path`` itself when it is a file; inside a folder, the first of ``names`` it holds.

    So one ``--weights DIR`` can serve all backbones: put each checkpoint in DIR under its hub
    file name (e.g. ``resnet101-5d3b4d8f.pth``, ``SLOWFAST_8x8_R50_DETECTION.pyth``).
    """
    if path.is_file():
        return path
    for name in names:
        if (path / name).is_file():
            return path / name
    raise WeightsUnavailable(
        f"the folder holds no {what} checkpoint (looked for {', '.join(names)})",
        file=path,
        field="--weights",
        hint="Put the checkpoint in the folder under one of those names, or pass the file itself",
    )


def load_state_dict(
    path: str | Path, what: str, *, strip_prefixes: tuple[str, ...] = ()
) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file, unwrapped and with known prefixes removed.

    Accepts a bare state dict or one nested under ``model_state`` (pytorchvideo), ``state_dict``,
    ``model_ema`` or ``model`` (DETR/MDETR; the EMA weights first). Only tensors, plain
    containers and ``argparse.Namespace`` (MDETR's ``args``) are loaded (``weights_only=True``):
    a file that needs arbitrary unpickling is refused with a hint to re-save its state dict.
    """
    path = Path(path)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):  # MDETR's "args"
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsUnavailable(
            f"cannot read {what} weights ({type(exc).__name__}: {str(exc).splitlines()[0]})",
            file=path,
            field="--weights",
            hint="Give a file written by torch.save(model.state_dict(), PATH)",
        ) from exc
    for key in ("model_state", "state_dict", "model_ema", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping):
        raise WeightsUnavailable(f"{what} weights file holds no state dict", file=path)
    state = {}
    for key, value in obj.items():
        for prefix in strip_prefixes:
            if key.startswith(prefix):
                key = key[len(prefix) :]
                break
        state[key] = value
    return state


def load_into(
    module: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str, file: str | Path
) -> None:
    """Load ``state`` into ``module``: every parameter/buffer of ``module`` must be present.

    Extra keys (a classifier, a detection head, layers past the cut) are ignored; BatchNorm's
    ``num_batches_tracked`` may be missing (frozen-BN checkpoints such as DETR's do not have it).
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise WeightsUnavailable(
            f"{what} weights lack {len(missing)} of the {len(own)} tensors the model needs, "
            f"e.g. {missing[:3]}",
            file=file,
            field="--weights",
            hint="Check that the file belongs to this architecture",
        )
    bad = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if bad:
        k = bad[0]
        raise WeightsUnavailable(
            f"{what} weights have the wrong shape for {k}: {tuple(state[k].shape)} instead of "
            f"{tuple(own[k].shape)}",
            file=file,
            field="--weights",
        )
    module.load_state_dict({k: state[k] for k in own if k in state}, strict=False)
