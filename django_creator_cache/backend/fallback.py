"""A bounded in-process LRU that stands in for Redis while the circuit is open.

Opt-in (``OPTIONS["LOCAL_FALLBACK"] = True``). It lets hot keys still hit while
Redis is down; it is emptied as soon as Redis answers again, so no value it
holds can outlive a change or an invalidation made elsewhere meanwhile.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

_MISSING = object()


class LocalFallback:
    """LRU of ``maxsize`` entries, each with its own expiry (monotonic time)."""

    def __init__(self, maxsize: int = 1000) -> None:
        self.maxsize = max(int(maxsize), 1)
        self._data: OrderedDict[str, tuple[float | None, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return default
            expires, value = item
            if expires is not None and expires <= time.monotonic():
                del self._data[key]
                return default
            self._data.move_to_end(key)
            return value

    def set(self, key: str, value: Any, timeout_ms: int | None) -> None:
        """Store ``value``; ``timeout_ms`` None = no expiry, <= 0 = delete."""
        with self._lock:
            if timeout_ms is not None and timeout_ms <= 0:
                self._data.pop(key, None)
                return
            expires = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
            self._data[key] = (expires, value)
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def delete(self, key: str) -> bool:
        with self._lock:
            return self._data.pop(key, _MISSING) is not _MISSING

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
