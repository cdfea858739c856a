"""The features of grounded videos, kept under ``OUT/cache`` so that nothing is decoded twice.

The cache is a feature store (:mod:`stvg.features.store`) at ``OUT/cache/<settings key>/``
(the key: a hash of the extraction settings that decide the values, so two runs extracted
differently never share features), split ``ground``:

* a **video entry** per window, ``<video fingerprint>@<start>-<end>``: the window's image and
  motion maps. The fingerprint is a hash of the video file's bytes, so a renamed or copied video
  is still found and an edited one is not taken for the old;
* a **query entry** per window and sentence, ``<video entry>#<sentence key>``: the sentence's
  text states. A sentence is encoded alone (not padded to its neighbours), once per command.

A second sentence on a grounded video thus only encodes the sentence; the same sentence again
reads everything from the cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stvg.extract.config import ExtractConfig
from stvg.extract.sources import digest
from stvg.ground.windows import Span

SPLIT = "ground"
CACHE_DIR = "cache"


def video_fingerprint(path: str | Path, chunk: int = 1 << 20) -> str:
    """The first 20 hex digits of the sha256 of the file's bytes (read in 1 MiB pieces)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()[:20]


def sentence_key(sentence: str) -> str:
    """The first 12 hex digits of the sha256 of the sentence (UTF-8)."""
    return hashlib.sha256(sentence.encode("utf-8")).hexdigest()[:12]


def entry_id(fingerprint: str, span: Span) -> str:
    return f"{fingerprint}@{span[0]}-{span[1]}"


def query_id(fingerprint: str, span: Span, sentence: str) -> str:
    return f"{entry_id(fingerprint, span)}#{sentence_key(sentence)}"


def cache_root(out: str | Path, config: ExtractConfig) -> Path:
    """``OUT/cache/<12 hex digits of the settings' hash>`` (:meth:`ExtractConfig.values_json`)."""
    return Path(out) / CACHE_DIR / digest(config.values_json())[:12]


_BUILT: dict[str, Any] = {}


def built_encoders(config: ExtractConfig) -> Any:
    """:func:`stvg.extract.runner.build_encoders` of ``config``, kept for the next call with the
    same settings in this process (a notebook, the tests: a random RoBERTa alone takes about a
    second to initialize); only the last config's encoders are kept."""
    from stvg.extract.runner import build_encoders

    key = digest(config.values_json())
    encoders = _BUILT.get(key) or build_encoders(config)
    _BUILT.clear()
    _BUILT[key] = encoders
    return encoders


class FeatureCache:
    """The cache store of one extraction config. The encoders are built (and the store made)
    only when something has to be extracted; ``check`` then receives the store's manifest and
    raises when its features are not those the run was trained on."""

    def __init__(
        self, root: str | Path, config: ExtractConfig, check: Callable[[Any], None]
    ) -> None:
        from stvg.features.store import open_store

        self.root, self.config, self._check = Path(root), config, check
        self._encoders: Any = None
        self.store: Any = open_store(self.root) if (self.root / "manifest.json").is_file() else None

    def has_video(self, fingerprint: str, span: Span) -> bool:
        return self.store is not None and self.store.has_video(entry_id(fingerprint, span), SPLIT)

    def has_query(self, fingerprint: str, span: Span, sentence: str) -> bool:
        sid = query_id(fingerprint, span, sentence)
        return self.store is not None and self.store.has_query(sid, SPLIT)

    def encoders(self) -> Any:
        """The run's frozen encoders, built once; creates the store and checks its manifest."""
        if self._encoders is None:
            from stvg.extract import make_manifest
            from stvg.features.store import create_store

            encoders = built_encoders(self.config)
            manifest = make_manifest(self.config, encoders.specs())
            self._check(manifest)
            self.store = create_store(self.root, manifest)
            self._encoders = encoders
        return self._encoders

    def writer(self) -> Any:
        """The writer of the cache's one part (a context manager; takes the part's lock)."""
        self.encoders()
        return self.store.writer(SPLIT)

    def refresh(self) -> None:
        if self.store is not None:
            self.store.refresh()
