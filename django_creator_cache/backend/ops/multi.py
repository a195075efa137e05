"""Requests made of several commands in one round trip: ``Scripts`` pipelines Lua script
calls (each atomic), ``Tx`` runs plain commands as one MULTI/EXEC."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError

from ..direct import pooled, transaction
from ..execution import Request, pipeline
from ..indexes import slot_of, to_bytes
from ..scripts import LuaScript


class Scripts(Request):
    """Several Lua script calls in one pipeline (one round trip per node), each atomic.

    ``calls`` are ``(LuaScript, keys, args)`` (and the keys' slot, when known) or plain
    commands; replies come back in
    order. A server that lacks a script answers NOSCRIPT for it (it did not run): the
    script is loaded and those calls alone are sent again. Any other error reply fails the request.
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
                    node = client.nodes_manager.get_node_from_slot(slot)
                    pipe.execute_command(*command, target_nodes=node)
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


class Tx(Request):
    """A few commands run as one MULTI/EXEC on a single server (one round trip, all or
    none run); their replies in order. Plain commands cost the server less than a script
    doing the same (no interpreter, no argument tables), so the commonest write uses it."""

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
            return transaction(client, self.commands)
        return self._queued(client).execute()

    async def asend(self, client: Any) -> Any:
        return await self._queued(client).execute()
