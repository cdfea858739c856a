"""A bounded least-recently-used mapping, for the open arrays and small reads of a store part."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class Lru(OrderedDict):
    """An ordered dict of at most ``size`` entries that forgets the least recently used first."""

    def __init__(self, size: int = 256) -> None:
        super().__init__()
        self.size = size

    def recall(self, key: Any) -> Any:
        """The value kept for ``key`` (now the most recently used), or ``None``."""
        if key not in self:
            return None
        self.move_to_end(key)
        return self[key]

    def keep(self, key: Any, value: Any) -> Any:
        """Keep ``value`` for ``key`` as the most recently used; returns ``value``."""
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.size:
            self.popitem(last=False)
        return value
