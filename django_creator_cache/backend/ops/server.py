"""What the servers behind an alias say about themselves (``INFO``, ``DBSIZE``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..execution import Request, Steps, Unavailable

if TYPE_CHECKING:
    from ..cache import RedisCache


class PrimariesInfo(Request):
    """``(address, INFO, DBSIZE)`` of every primary (each Cluster primary, the Sentinel
    primary, or the one server)."""

    __slots__ = ()

    def send(self, client: Any) -> Any:
        if hasattr(client, "nodes_manager"):
            nodes = [(n.name, n.redis_connection) for n in client.get_primaries()]
        else:
            nodes = [(_address(client.connection_pool), client)]
        return [(address, node.info(), int(node.dbsize())) for address, node in nodes]

    async def asend(self, client: Any) -> Any:
        if hasattr(client, "nodes_manager"):
            await client.initialize()
            found = []
            for node in client.get_primaries():
                info = await client.info(target_nodes=node)
                keys = await client.dbsize(target_nodes=node)
                found.append((node.name, info, int(keys)))
            return found
        pool = client.connection_pool
        locate = getattr(pool, "get_master_address", None)
        address = ":".join(map(str, await locate())) if locate else _address(pool)
        return [(address, await client.info(), int(await client.dbsize()))]


def _address(pool: Any) -> str:
    locate = getattr(pool, "get_master_address", None)
    if locate is not None:  # Sentinel: the pool knows only the service; ask the sentinels
        host, port = locate()
        return f"{host}:{port}"
    kwargs = pool.connection_kwargs
    return str(kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}")


def primaries_info(cache: RedisCache) -> Steps[list[tuple[str, dict[str, Any], int]] | None]:
    """Every primary's address, ``INFO`` and key count; None if Redis cannot answer."""
    try:
        found: list[tuple[str, dict[str, Any], int]] = yield PrimariesInfo()
    except Unavailable:
        return None
    return found
