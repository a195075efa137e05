"""Steps shared by several operations: bulk deletes, scans, dropping unreadable values."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ...exceptions import CorruptValue
from ..execution import Call, Steps, Unavailable

if TYPE_CHECKING:
    from ..protocol import Backend

logger = logging.getLogger("django_creator_cache.ops")
_DEBUG = logging.DEBUG

# Keys per DEL command (a Cluster client splits each by slot).
DELETE_BATCH = 500
# Keys asked of SCAN per call.
SCAN_COUNT = 1000


def text(key: bytes | str) -> str:
    return key.decode("utf-8", "surrogateescape") if isinstance(key, bytes) else key


def delete_keys(cache: Backend, keys: Sequence[bytes | str]) -> Steps[int]:
    """Delete ``keys`` in batches; returns how many existed."""
    deleted = 0
    for start in range(0, len(keys), DELETE_BATCH):
        batch = keys[start : start + DELETE_BATCH]
        if cache.cluster:
            deleted += int((yield Call("delete", *batch)))
        else:
            deleted += int((yield ("DEL", *batch)))
    return deleted


def drop_corrupt(cache: Backend, corrupt: Iterable[tuple[str, CorruptValue]]) -> Steps[None]:
    """Values we cannot read are misses: log and count them, then delete them."""
    fulls = []
    for full, exc in corrupt:
        cache.runtime.counters.corrupt += 1
        cache.log_corrupt(full, exc)
        fulls.append(full)
    with contextlib.suppress(Unavailable):  # they stay misses; the next read tries again
        yield from delete_keys(cache, fulls)


class Scan(Call):
    """Every key matching a glob, on every primary (``SCAN``, never ``KEYS``)."""

    __slots__ = ()

    def __init__(self, pattern: str, count: int | None = None) -> None:
        super().__init__("scan_iter", match=pattern, count=count or SCAN_COUNT)

    def send(self, client: Any) -> Any:
        return list(super().send(client))

    async def asend(self, client: Any) -> Any:
        return [key async for key in client.scan_iter(**self.kwargs)]


def delete_glob(cache: Backend, glob: str, count: int | None = None) -> Steps[int]:
    """Delete every key matching ``glob`` (SCAN, every primary)."""
    found: list[bytes] = yield Scan(glob, count)
    deleted = yield from delete_keys(cache, found)
    cache.forget_local(text(k) for k in found)
    cache.runtime.counters.deletes += deleted
    return deleted


def measure(cache: Backend, operation: str, result: str, n: int = 1) -> None:
    """Count ``n`` outcomes ``result`` of ``operation`` if the alias has metrics
    (``CACHE_METRICS``); one ``is None`` test while it has none."""
    metrics = cache.runtime.metrics
    if metrics is not None:
        metrics.count(operation, result, n)


def tracing() -> float:
    """The start time of a call when ``django_creator_cache.ops`` logs at DEBUG, else 0.0
    (one cached level check: nothing else is done while that level is off)."""
    return time.perf_counter() if logger.isEnabledFor(_DEBUG) else 0.0


def trace(operation: str, key: object, outcome: str, started: float) -> None:
    """One DEBUG line: operation, key, outcome and time taken (with ``started`` set)."""
    if started:
        ms = (time.perf_counter() - started) * 1000
        logger.debug("%s %s %s %.3f ms", operation, key, outcome, ms)
