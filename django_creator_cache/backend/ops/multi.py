"""Requests made of several commands in one round trip: ``Scripts`` pipelines Lua script
calls (each atomic), ``Tx`` runs plain commands as one MULTI/EXEC, ``SlotTxs`` many such
transactions across a Cluster's nodes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import (
    AskError,
    ClusterDownError,
    NoScriptError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..direct import pooled, read_transaction, send_transactions, transaction
from ..execution import Request, pipeline
from ..indexes import slot_of, to_bytes
from ..scripts import LuaScript


def node_of(client: Any, slot: int) -> Any:
    """The primary serving ``slot`` on a Cluster. A slot missing from the client's map (a
    topology change half seen) makes it read the map again once, as redis-py does for its
    own commands; a slot still not served raises ``SlotNotCoveredError``."""
    nodes = client.nodes_manager
    try:
        return nodes.get_node_from_slot(slot)
    except SlotNotCoveredError:
        nodes.initialize()
        return nodes.get_node_from_slot(slot)


class Scripts(Request):
    """Several Lua script calls in one pipeline (one round trip per node), each atomic.

    ``calls`` are ``(LuaScript, keys, args)`` (and the keys' slot, when known) or plain
    commands; replies come back in order. A server that lacks a script answers NOSCRIPT
    for it (it did not run): the script is loaded and those calls alone are sent again.
    Any other error reply fails the request.
    """

    __slots__ = ("calls",)

    def __init__(self, calls: Sequence[tuple[Any, ...]]) -> None:
        super().__init__()
        self.calls = calls

    def _pipe(self, client: Any, todo: list[int], routed: bool = False) -> Any:
        pipe = pipeline(client)
        for at in todo:
            call = self.calls[at]
            if isinstance(call[0], LuaScript):
                script, keys, args = call[:3]
                command = ("EVALSHA", script.sha, len(keys), *keys, *args)
                if routed:  # redis-py's sync Cluster pipeline asks the server for a
                    # script's keys (COMMAND GETKEYS, a round trip per call): name the node
                    slot = call[3] if len(call) > 3 else None
                    if slot is None:
                        slot = slot_of(to_bytes(keys[0]))
                    pipe.execute_command(*command, target_nodes=node_of(client, slot))
                else:
                    pipe.execute_command(*command)
            else:
                pipe.execute_command(*call)
        return pipe

    def _missing(self, replies: list[Any], todo: list[int], out: list[Any]) -> list[int]:
        again = []
        for at, reply in zip(todo, replies, strict=True):
            if isinstance(reply, NoScriptError):
                again.append(at)
            elif isinstance(reply, Exception):
                raise reply
            else:
                out[at] = reply
        return again

    def send(self, client: Any) -> Any:
        out: list[Any] = [None] * len(self.calls)
        todo = list(range(len(self.calls)))
        routed = hasattr(client, "nodes_manager")
        for _ in range(2):
            todo = self._missing(self._pipe(client, todo, routed).execute(False), todo, out)
            if not todo:
                break
            for script in {self.calls[at][0] for at in todo}:
                client.script_load(script.source)
        if todo:
            raise NoScriptError("scripts could not be loaded")
        return out

    async def asend(self, client: Any) -> Any:
        out: list[Any] = [None] * len(self.calls)
        todo = list(range(len(self.calls)))
        for _ in range(2):
            todo = self._missing(await self._pipe(client, todo).execute(False), todo, out)
            if not todo:
                break
            for script in {self.calls[at][0] for at in todo}:
                await client.script_load(script.source)
        if todo:
            raise NoScriptError("scripts could not be loaded")
        return out


class Rerun:
    """The reply of writes sent again after a lost reply: they may have run before, so
    what they found already there (an index shard, say) may be the first run's doing."""

    __slots__ = ("reply",)

    def __init__(self, reply: Any) -> None:
        self.reply = reply


class Tx(Request):
    """A few commands run as one MULTI/EXEC on a single server (one round trip, all or
    none run); their replies in order (a ``Rerun`` of them if sent again). Plain commands
    cost the server less than a script doing the same (no interpreter, no argument
    tables), so the commonest write uses it."""

    __slots__ = ("commands",)

    def __init__(self, commands: Sequence[tuple[Any, ...]]) -> None:
        super().__init__()
        self.commands = commands

    def _queued(self, client: Any) -> Any:
        pipe = client.pipeline(transaction=True)
        for command in self.commands:
            pipe.execute_command(*command)
        return pipe

    def send(self, client: Any) -> Any:
        if pooled(client):
            replies, resent = transaction(client, self.commands)
            return Rerun(replies) if resent else replies
        return self._queued(client).execute()

    async def asend(self, client: Any) -> Any:
        return await self._queued(client).execute()


# Error replies that say a queued transaction did not run because its slot is served
# elsewhere now, or not yet (MovedError is an AskError).
_REDIRECTED = (AskError, TryAgainError, ClusterDownError)


class SlotTxs(Request):
    """Transactions (``Tx`` commands) of one slot each on a Cluster, in one round trip:
    each node's written in one buffer, to every node before any is read. A redis-py
    Cluster pipeline is one transaction at most, at several times the cost of the
    commands it carries.

    ``txs``: ``(slot, commands)``. A transaction refused while queued (its slot moved or
    is not served: MOVED, ASK, TRYAGAIN, CLUSTERDOWN) did not run: it runs again as a
    redis-py Cluster transaction, which follows the redirection and learns the new
    layout. A connection that fails leaves the transactions it did not answer to the
    same writes as single-slot script calls (``scripts()``, one per transaction) through
    redis-py's Cluster pipeline: every command in them may run twice. Replies in order:
    EXEC's lists (``Rerun`` of the scripts' for those sent again). An async client sends
    ``scripts()`` from the start.
    """

    __slots__ = ("scripts", "txs")

    def __init__(
        self,
        txs: Sequence[tuple[int, Sequence[tuple[Any, ...]]]],
        scripts: Callable[[], Sequence[Any]],
    ) -> None:
        super().__init__()
        self.txs = txs
        self.scripts = scripts

    def send(self, client: Any) -> Any:
        out: list[Any] = [None] * len(self.txs)
        again: list[int] = []
        try:
            self._exchange(client, out, again)
        except (RedisConnectionError, RedisTimeoutError):
            # Every command may run twice: what is unanswered goes again, as the scripts,
            # through redis-py's Cluster pipeline (its retries, its topology refresh).
            undone = [at for at, reply in enumerate(out) if reply is None and at not in again]
            if undone:
                scripts = self.scripts()
                redone = Scripts([scripts[at] for at in undone]).send(client)
                for at, reply in zip(undone, redone, strict=True):
                    out[at] = Rerun(reply)
        for at in again:
            out[at] = Tx(self.txs[at][1]).send(client)
        return out

    def _exchange(self, client: Any, out: list[Any], again: list[int]) -> None:
        """Send each node's transactions, then read them into ``out`` (``again``: those
        redirected). A connection that fails is dropped, with every other it took."""
        by_node: dict[str, tuple[Any, list[int]]] = {}
        for at, (slot, _) in enumerate(self.txs):
            node = node_of(client, slot)
            found = by_node.get(node.name)
            if found is None:
                by_node[node.name] = (node, [at])
            else:
                found[1].append(at)
        failed: ResponseError | None = None
        taken: list[tuple[Any, Any, list[int]]] = []
        try:
            for node, ats in by_node.values():
                pool = client.get_redis_connection(node).connection_pool
                taken.append((pool, pool.get_connection(), ats))
                send_transactions(taken[-1][1], [self.txs[at][1] for at in ats])
            for _, conn, ats in taken:
                for at in ats:
                    try:
                        out[at] = read_transaction(conn, len(self.txs[at][1]))
                    except _REDIRECTED:
                        again.append(at)
                    except ResponseError as exc:  # every reply is read all the same
                        failed = failed or exc
        except BaseException:  # replies may be on their way: no one else reads them
            for _, conn, _ in taken:
                conn.disconnect()
            raise
        finally:
            for pool, conn, _ in taken:
                pool.release(conn)
        if failed is not None:
            raise failed

    async def asend(self, client: Any) -> Any:
        return await Scripts(self.scripts()).asend(client)


class SlotTx(SlotTxs):
    """A ``SlotTxs`` of one transaction: its reply alone."""

    __slots__ = ()

    def send(self, client: Any) -> Any:
        return super().send(client)[0]

    async def asend(self, client: Any) -> Any:
        return (await super().asend(client))[0]
