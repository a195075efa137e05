"""Steps shared by several operations: bulk deletes, scans, dropping unreadable values."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ...exceptions import CorruptValue
from ..execution import Call, Steps, Unavailable

if TYPE_CHECKING:
    from ..protocol import Backend

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
