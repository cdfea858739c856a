"""The bounded LRU mapping behind a store part's open arrays and small reads."""

from __future__ import annotations

import pickle

from stvg.features._cache import Lru


def test_least_recently_used_is_forgotten_first():
    cache = Lru(2)
    cache.keep("a", 1)
    cache.keep("b", 2)
    assert cache.recall("a") == 1  # a is now the most recent
    cache.keep("c", 3)  # over the size: b, the least recently used, goes
    assert list(cache) == ["a", "c"]
    assert cache.recall("b") is None
    cache.keep("a", 4)  # keeping a kept key refreshes it
    cache.keep("d", 5)
    assert dict(cache) == {"a": 4, "d": 5}


def test_survives_pickling_with_its_size():
    cache = Lru(3)
    cache.keep("x", [1])
    copy = pickle.loads(pickle.dumps(cache))
    assert copy.size == 3 and dict(copy) == {"x": [1]}
