"""Real redis-server processes for the test suite: single servers, a cluster, a sentinel group.

The cache backend's fault tolerance (reconnects, cluster failover, sentinel failover) can only be
proved against real servers, so this module starts them. Every process:

* listens on 127.0.0.1 only, on a port from :func:`free_port`;
* lives in its own ``tempfile.mkdtemp`` directory, which also holds its logfile;
* is a child started with ``subprocess.Popen`` (never ``--daemonize``, never the system service)
  and is stopped through its ``Popen`` object, so only processes started here are ever signalled;
* keeps no data on disk (``--save "" --appendonly no``): a restarted server is empty.

An ``atexit`` hook stops whatever is still running and removes the temp directories, as a safety
net for tests that forget to clean up. Waiting is done by polling with short sleeps, never by
fixed long sleeps, to keep startup fast.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

HOST = "127.0.0.1"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"

CLUSTER_BUS_OFFSET = 10000
"""Redis Cluster's bus listens on ``port + 10000`` (the ``cluster-port`` default)."""

POLL_INTERVAL = 0.02
"""Seconds between readiness checks: short, so waiting costs little beyond the real delay."""

T = TypeVar("T")
_Slots = tuple[tuple[int, int], ...]
"""Inclusive hash slot ranges, as ``CLUSTER NODES`` lists them."""

_handed_out: set[int] = set()
_live_processes: dict[int, subprocess.Popen[bytes]] = {}
_temp_dirs: set[Path] = set()


class RedisServerError(RuntimeError):
    """A server, cluster or sentinel group failed to start or to reach the awaited state."""


class _NotReady(Exception):
    """Raised by a readiness check; the message says what is still missing."""


def free_port(*, cluster_bus: bool = False) -> int:
    """Return a free port on 127.0.0.1, never the same one twice in this process.

    The kernel picks the port (bind to port 0). With ``cluster_bus`` the cluster bus port
    (``port + 10000``) must be bindable too and is reserved as well, so that no other server
    started by this module lands on it.
    """
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
            if port in _handed_out:
                continue
            if cluster_bus:
                bus_port = port + CLUSTER_BUS_OFFSET
                if bus_port in _handed_out or not _is_bindable(bus_port):
                    continue
                _handed_out.add(bus_port)
        _handed_out.add(port)
        return port
    raise RedisServerError("no free port found on 127.0.0.1")


def _is_bindable(port: int) -> bool:
    """Tell whether ``port`` exists and nothing is bound to it on 127.0.0.1."""
    if port > 65535:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _wait_until(check: Callable[[], T], timeout: float, what: str) -> T:
    """Poll ``check`` until it returns instead of raising, and return its result.

    ``check`` raises :class:`_NotReady` (or a Redis error, e.g. a refused connection) while the
    awaited state is not reached; the last reason is reported if ``timeout`` seconds pass.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (_NotReady, redis.RedisError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise RedisServerError(f"timed out after {timeout}s waiting for {what}; last: {reason}")
        time.sleep(POLL_INTERVAL)


def _request_stop(proc: subprocess.Popen[bytes]) -> None:
    """Ask a process to shut down, also if it was frozen with SIGSTOP.

    ``Popen.send_signal`` does nothing once the process has been reaped, so a recycled PID is
    never signalled.
    """
    proc.terminate()
    proc.send_signal(signal.SIGCONT)


def _reap(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait for a process to exit, SIGKILL it if it takes longer than ``timeout`` seconds."""
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    _live_processes.pop(proc.pid, None)


def _stop_processes(procs: Sequence[subprocess.Popen[bytes]], timeout: float = 10.0) -> None:
    """Stop processes in parallel: Redis acts on SIGTERM in its cron (up to 100 ms later)."""
    for proc in procs:
        _request_stop(proc)
    for proc in procs:
        _reap(proc, timeout)


def _close_all(servers: Iterable[RedisServer]) -> None:
    """Stop servers in parallel, then delete their temp directories."""
    servers = list(servers)
    _stop_processes([s._proc for s in servers if s._proc is not None])
    for server in servers:
        server.close()


_owner_pid = os.getpid()


@atexit.register
def _cleanup_at_exit() -> None:
    """Safety net: stop the processes started here that are still alive, remove temp dirs.

    A forked child that exits through atexit must leave its parent's servers alone.
    """
    if os.getpid() != _owner_pid:
        return
    _stop_processes(list(_live_processes.values()))
    for path in list(_temp_dirs):
        shutil.rmtree(path, ignore_errors=True)


class RedisServer:
    """One redis-server process on 127.0.0.1, in its own temp directory.

    The port and directory are fixed at construction, so :meth:`restart` (or :meth:`start`
    after :meth:`stop` or :meth:`kill`) comes back on the same address and, for a cluster node,
    with the same ``nodes.conf``. :meth:`close` (also run by the context manager) stops the
    server for good and deletes the directory.
    """

    def __init__(self, extra_args: Sequence[str] = (), *, port: int | None = None) -> None:
        self.host = HOST
        self.port = free_port() if port is None else port
        self.extra_args = list(extra_args)
        self.dir = Path(tempfile.mkdtemp(prefix=f"redis-{self.port}-"))
        _temp_dirs.add(self.dir)
        self.logfile = self.dir / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._frozen = False

    def __repr__(self) -> str:
        pid = self._proc.pid if self._proc is not None else None
        return f"{type(self).__name__}(port={self.port}, pid={pid}, running={self.is_running})"

    def __enter__(self) -> Self:
        if not self.is_running:
            try:
                self.start()
            except BaseException:
                self.close()
                raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def url(self) -> str:
        """URL of database 0, as a Django ``LOCATION`` or ``redis.from_url`` expects it."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``, the form Sentinel and Cluster clients report addresses in."""
        return (self.host, self.port)

    @property
    def pid(self) -> int:
        """PID of the current (or last) process."""
        if self._proc is None:
            raise RedisServerError(f"{self!r} was never started")
        return self._proc.pid

    @property
    def is_running(self) -> bool:
        """True while the process exists (a SIGSTOPped server counts as running)."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def is_frozen(self) -> bool:
        """True after ``kill(SIGSTOP)`` until ``kill(SIGCONT)``: running, but not answering."""
        return self._frozen and self.is_running

    def command_line(self) -> list[str]:
        """The argv the server is started with."""
        return [
            REDIS_SERVER,
            "--bind", HOST,
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.dir),
            "--protected-mode", "no",
            "--logfile", str(self.logfile),
            # Any server may become a primary after a failover; the 5 s default delay before a
            # diskless full sync would make every replica wait for nothing.
            "--repl-diskless-sync-delay", "0",
            *self.extra_args,
        ]  # fmt: skip

    def start(self, *, wait: bool = True, timeout: float = 10.0) -> None:
        """Start the process; with ``wait``, return once it answers PING."""
        if self.is_running:
            raise RedisServerError(f"{self!r} is already running")
        self._frozen = False
        # Errors raised before the logfile is opened (bad arguments, port in use) go to stderr.
        with open(self.dir / "stderr.log", "ab") as output:
            self._proc = subprocess.Popen(
                self.command_line(),
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
            )
        _live_processes[self._proc.pid] = self._proc
        if wait:
            try:
                self.wait_ready(timeout)
            except BaseException:
                self.stop()
                raise

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until the server answers PING; raise with the log tail if it exits or times out."""
        with self._admin_client() as client:

            def answers_ping() -> None:
                if not self.is_running:
                    raise RedisServerError(f"{self!r} is not running (exited at startup?)")
                client.ping()

            try:
                _wait_until(answers_ping, timeout, f"{self!r} to answer PING")
            except RedisServerError as exc:
                raise RedisServerError(f"{exc}\n{self.log_tail()}") from None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the server and wait for it to exit (SIGKILL after ``timeout`` seconds).

        The directory is kept, so the server can be started again on the same port.
        """
        if self._proc is not None:
            _stop_processes([self._proc], timeout)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the server, e.g. SIGKILL to simulate a crash or SIGSTOP to freeze it.

        After SIGKILL the process is reaped before returning, so :attr:`is_running` is False.
        """
        if not self.is_running:
            raise RedisServerError(f"{self!r} is not running")
        assert self._proc is not None
        self._proc.send_signal(sig)
        if sig in (signal.SIGSTOP, signal.SIGCONT):
            self._frozen = sig == signal.SIGSTOP
        if sig == signal.SIGKILL:
            _reap(self._proc, timeout=10.0)

    def restart(self) -> None:
        """Stop and start again on the same port, so clients reconnect to the same address.

        The data is gone afterwards: nothing is persisted.
        """
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server for good and delete its temp directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        _temp_dirs.discard(self.dir)

    def client(self, **kwargs: Any) -> redis.Redis:
        """A ``redis.Redis`` client for this server; ``kwargs`` go to its constructor."""
        return redis.Redis(host=self.host, port=self.port, **kwargs)

    def _admin_client(self) -> redis.Redis:
        """Client for this module's own polling: decoded, short timeouts, no hidden retries."""
        return self.client(
            decode_responses=True,
            socket_timeout=2,
            socket_connect_timeout=2,
            retry=Retry(NoBackoff(), 0),
        )

    def info(self, section: str) -> dict[str, Any]:
        """One ``INFO`` section, parsed by redis-py."""
        with self._admin_client() as client:
            info: dict[str, Any] = client.info(section)
        return info

    def commandstats(self) -> dict[str, int]:
        """Calls per command since startup, from ``INFO commandstats``.

        Keys are lower-case command names as Redis reports them (``"get"``, ``"evalsha"``,
        ``"client|setname"``). Measure deltas: this call's own connection adds ``hello`` and
        ``info`` calls, and the counters restart with the server.
        """
        return {
            name.removeprefix("cmdstat_"): int(stats["calls"])
            for name, stats in self.info("commandstats").items()
        }

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's log and stderr, for error messages."""
        parts = []
        for path in (self.dir / "stderr.log", self.logfile):
            if path.exists() and (text := path.read_text(errors="replace").strip()):
                tail = "\n".join(text.splitlines()[-lines:])
                parts.append(f"--- {path} ---\n{tail}")
        return "\n".join(parts) or f"(no output in {self.dir})"


@dataclass(frozen=True)
class _ClusterNode:
    """One line of ``CLUSTER NODES``, as seen by one node."""

    node_id: str
    port: int
    flags: frozenset[str]
    primary_id: str | None
    slots: _Slots

    @property
    def is_healthy(self) -> bool:
        """Not failed, not suspected, not still joining."""
        return not self.flags & {"fail", "fail?", "handshake", "noaddr"}

    @property
    def is_serving_primary(self) -> bool:
        """A healthy primary that owns slots (a failed-over primary keeps the flag, not slots)."""
        return "master" in self.flags and self.is_healthy and bool(self.slots)

    @classmethod
    def parse_all(cls, text: str) -> list[_ClusterNode]:
        """Parse ``CLUSTER NODES``; slot migration markers (``[...]``) are ignored."""
        nodes = []
        for line in text.splitlines():
            fields = line.split()
            if not fields:
                continue
            node_id, address, flags, primary_id = fields[:4]
            nodes.append(
                cls(
                    node_id=node_id,
                    port=int(address.split("@")[0].rsplit(":", 1)[1]),
                    flags=frozenset(flags.split(",")) - {"myself"},
                    primary_id=None if primary_id == "-" else primary_id,
                    slots=tuple(_slot_range(s) for s in fields[8:] if not s.startswith("[")),
                )
            )
        return nodes


def _slot_range(text: str) -> tuple[int, int]:
    """``"0-5460"`` -> ``(0, 5460)``, ``"42"`` -> ``(42, 42)``."""
    first, _, last = text.partition("-")
    return (int(first), int(last or first))


class RedisCluster:
    """A 6-node Redis Cluster on 127.0.0.1: 3 primaries with one replica each.

    ``--cluster-node-timeout 1000`` makes failure detection, and so failover tests, take a few
    seconds instead of the default 15+. The cluster is created with ``redis-cli --cluster
    create`` and :meth:`start` returns only once every node reports ``cluster_state:ok``, all
    nodes agree on the slot map and the roles, and every replica has synced with its primary
    (a replica that never synced is not allowed to fail over).
    """

    primaries_count = 3
    replicas_per_primary = 1
    node_timeout_ms = 1000

    def __init__(self) -> None:
        args = [
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(self.node_timeout_ms),
        ]  # fmt: skip
        count = self.primaries_count * (1 + self.replicas_per_primary)
        self.nodes = [RedisServer(args, port=free_port(cluster_bus=True)) for _ in range(count)]
        self.startup_nodes = [node.address for node in self.nodes]
        self.location = ""
        """Comma-separated URLs of the primaries when the cluster was created (Django LOCATION)."""
        self._slots: dict[int, _Slots] = {}

    def __repr__(self) -> str:
        return f"RedisCluster(ports={[node.port for node in self.nodes]})"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> None:
        """Start the nodes, create the cluster, wait until it is settled; stop all on failure."""
        try:
            for node in self.nodes:
                node.start(wait=False)
            for node in self.nodes:
                node.wait_ready()
            self._create(timeout)
            _wait_until(self._check_created, timeout, f"{self!r} to settle")
            self.location = ",".join(f"redis://{p.host}:{p.port}" for p in self.primaries())
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every node and delete their temp directories."""
        _close_all(self.nodes)

    def _create(self, timeout: float) -> None:
        """Run ``redis-cli --cluster create`` over all nodes."""
        command = [
            REDIS_CLI,
            "--cluster", "create",
            *(f"{node.host}:{node.port}" for node in self.nodes),
            "--cluster-replicas", str(self.replicas_per_primary),
            "--cluster-yes",
        ]  # fmt: skip
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
        if result.returncode != 0:
            raise RedisServerError(
                f"redis-cli --cluster create failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )

    def _server(self, port: int) -> RedisServer:
        """The node listening on ``port``."""
        for node in self.nodes:
            if node.port == port:
                return node
        raise RedisServerError(f"no node of {self!r} listens on port {port}")

    def _live_nodes(self) -> list[RedisServer]:
        """Nodes that can answer: running and not frozen."""
        return [node for node in self.nodes if node.is_running and not node.is_frozen]

    def _view(self, node: RedisServer) -> list[_ClusterNode]:
        """The cluster as ``node`` sees it."""
        with node._admin_client() as client:
            return _cluster_nodes(client)

    def _ask(self, query: Callable[[redis.Redis], T]) -> T:
        """Run ``query`` on the first live node that answers (a frozen node times out)."""
        for node in self._live_nodes():
            try:
                with node._admin_client() as client:
                    return query(client)
            except redis.RedisError:
                continue
        raise RedisServerError(f"no node of {self!r} answers")

    def _check_state_ok(self, node: RedisServer) -> None:
        state = _cluster_state(node)
        if state != "ok":
            raise _NotReady(f"{node!r} reports cluster_state:{state}")

    def _check_created(self) -> None:
        """All nodes ok and agreeing on slots and roles, all replicas in sync."""
        views = {}
        for node in self.nodes:
            self._check_state_ok(node)
            views[node.port] = self._view(node)
        signatures = {port: _topology(view) for port, view in views.items()}
        first = next(iter(signatures.values()))
        if any(signature != first for signature in signatures.values()):
            raise _NotReady(f"nodes disagree on the topology: {signatures}")
        view = next(iter(views.values()))
        if len(view) != len(self.nodes) or not all(n.is_healthy for n in view):
            raise _NotReady(f"not all nodes joined and healthy: {view}")
        primaries = [n for n in view if n.is_serving_primary]
        if len(primaries) != self.primaries_count or _covered(primaries) != 16384:
            raise _NotReady(f"slots not covered by {self.primaries_count} primaries: {view}")
        for replica in (n for n in view if "slave" in n.flags):
            status = self._server(replica.port).info("replication").get("master_link_status")
            if status != "up":
                raise _NotReady(f"replica on port {replica.port} has master_link_status:{status}")
        self._slots = {n.port: n.slots for n in primaries}

    def primaries(self) -> list[RedisServer]:
        """The primaries serving slots now, in slot order (asked from a live node)."""
        serving = [n for n in self._ask(_cluster_nodes) if n.is_serving_primary]
        return [self._server(n.port) for n in sorted(serving, key=lambda n: n.slots)]

    def replicas(self) -> list[RedisServer]:
        """The healthy replicas now, in the order of :meth:`primaries` (asked from a live node)."""
        view = self._ask(_cluster_nodes)
        by_id = {n.node_id: n for n in view}
        replicas = [n for n in view if "slave" in n.flags and n.is_healthy and n.primary_id]
        replicas.sort(key=lambda n: by_id[n.primary_id].slots if n.primary_id in by_id else ())
        return [self._server(n.port) for n in replicas]

    def primary_for_key(self, key: str | bytes) -> RedisServer:
        """The primary serving ``key`` now (``CLUSTER KEYSLOT``, then the slot map)."""
        slot = self._ask(lambda client: int(client.execute_command("CLUSTER", "KEYSLOT", key)))
        for primary in self._ask(_cluster_nodes):
            if primary.is_serving_primary and any(a <= slot <= b for a, b in primary.slots):
                return self._server(primary.port)
        raise RedisServerError(f"no primary serves slot {slot} of key {key!r}")

    def wait_for_failover(self, old_primary: RedisServer, timeout: float = 30.0) -> RedisServer:
        """After ``old_primary`` died, wait until its replica took over its slots; return it.

        ``old_primary`` may be dead (:meth:`RedisServer.kill`) or frozen (``SIGSTOP``). Done
        when every live node reports ``cluster_state:ok`` and agrees that a healthy primary
        other than ``old_primary`` serves the slots ``old_primary`` had when the cluster was
        last seen settled.
        """
        old_slots = self._slots.get(old_primary.port)
        if not old_slots:
            raise RedisServerError(f"{old_primary!r} was not a primary serving slots")

        def promoted() -> RedisServer:
            owners: set[int | None] = set()
            for node in self._live_nodes():
                self._check_state_ok(node)
                serving = (n for n in self._view(node) if n.is_serving_primary)
                owners.add(next((n.port for n in serving if n.slots == old_slots), None))
            if len(owners) != 1:
                raise _NotReady(f"nodes disagree on who serves slots {old_slots}: {owners}")
            (owner,) = owners
            if owner is None or owner == old_primary.port:
                raise _NotReady(f"slots {old_slots} are still served by {owner}")
            new_primary = self._server(owner)
            if new_primary not in self._live_nodes():
                raise _NotReady(f"{new_primary!r} serves the slots but is not live")
            return new_primary

        new_primary = _wait_until(promoted, timeout, f"failover of {old_primary!r}")
        self._slots[new_primary.port] = self._slots.pop(old_primary.port)
        return new_primary

    def commandstats(self) -> dict[str, int]:
        """:meth:`RedisServer.commandstats` summed over all live nodes.

        Replicas count the writes they replicate, so a client's SET shows up twice here.
        """
        total: Counter[str] = Counter()
        for node in self._live_nodes():
            total.update(node.commandstats())
        return dict(total)


def _cluster_nodes(client: redis.Redis) -> list[_ClusterNode]:
    """``CLUSTER NODES``, parsed.

    Sent as two words so that redis-py returns the raw text instead of its own parsed form.
    """
    return _ClusterNode.parse_all(client.execute_command("CLUSTER", "NODES"))


def _cluster_state(node: RedisServer) -> str:
    """``cluster_state`` from ``CLUSTER INFO``."""
    with node._admin_client() as client:
        return str(client.cluster("INFO")["cluster_state"])


def _topology(view: list[_ClusterNode]) -> frozenset[tuple[int, str, int | None, _Slots]]:
    """What all nodes must agree on: each node's role, primary and slots, by port."""
    port_of = {n.node_id: n.port for n in view}
    return frozenset(
        (
            n.port,
            "master" if "master" in n.flags else "slave",
            port_of.get(n.primary_id) if n.primary_id else None,
            n.slots,
        )
        for n in view
    )


def _covered(primaries: list[_ClusterNode]) -> int:
    """Number of slots owned by ``primaries``."""
    return sum(last - first + 1 for n in primaries for first, last in n.slots)


class SentinelServer(RedisServer):
    """A ``redis-server sentinel.conf --sentinel`` process.

    Sentinel insists on a writable config file, which it rewrites with what it learns (peers,
    the current primary), so a restarted sentinel finds its state again. The file is written by
    :meth:`write_config` before the first start. The sentinel's id is chosen here so that peers
    can be told about it in their config files.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sentinel_id = secrets.token_hex(20)
        self.config_file = self.dir / "sentinel.conf"

    def command_line(self) -> list[str]:
        """Sentinel mode, from the config file."""
        return [REDIS_SERVER, str(self.config_file), "--sentinel"]

    def write_config(self, directives: Sequence[str]) -> None:
        """Write the config file: local settings, then the given ``sentinel ...`` directives."""
        lines = [
            f"port {self.port}",
            f"bind {HOST}",
            "protected-mode no",
            f'dir "{self.dir}"',
            f'logfile "{self.logfile}"',
            'save ""',
            "appendonly no",
            "sentinel resolve-hostnames no",
            f"sentinel myid {self.sentinel_id}",
            *directives,
        ]
        self.config_file.write_text("\n".join(lines) + "\n")


class RedisSentinelGroup:
    """One primary, one replica and three sentinels (quorum 2) on 127.0.0.1.

    ``down-after-milliseconds 1000`` makes a failover take a few seconds. :meth:`start` returns
    once the replica has synced and every sentinel is connected to the primary, the replica and
    the two other sentinels, so a killed primary is failed over.

    Each sentinel's config already names the replica and the other sentinels (``known-replica``,
    ``known-sentinel``, the lines Sentinel itself would persist). Otherwise sentinels discover
    each other through hello messages sent every 2 s and the replica through the primary's INFO,
    which adds 2-3 s to every start.
    """

    service_name = "mymaster"
    quorum = 2

    def __init__(self) -> None:
        self.primary = RedisServer()
        self.replica = RedisServer(["--replicaof", self.primary.host, str(self.primary.port)])
        self.sentinel_servers = [SentinelServer() for _ in range(3)]
        self.sentinels = [sentinel.address for sentinel in self.sentinel_servers]
        name = self.service_name
        for sentinel in self.sentinel_servers:
            peers = [peer for peer in self.sentinel_servers if peer is not sentinel]
            sentinel.write_config(
                [
                    f"sentinel monitor {name} {self.primary.host} {self.primary.port} "
                    f"{self.quorum}",
                    f"sentinel down-after-milliseconds {name} 1000",
                    f"sentinel failover-timeout {name} 5000",
                    f"sentinel parallel-syncs {name} 1",
                    f"sentinel known-replica {name} {self.replica.host} {self.replica.port}",
                    *(
                        f"sentinel known-sentinel {name} {p.host} {p.port} {p.sentinel_id}"
                        for p in peers
                    ),
                ]
            )

    def __repr__(self) -> str:
        return (
            f"RedisSentinelGroup(primary={self.primary.port}, replica={self.replica.port}, "
            f"sentinels={[port for _, port in self.sentinels]})"
        )

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> None:
        """Start everything and wait until the group is settled; stop all on failure."""
        servers = [self.primary, self.replica, *self.sentinel_servers]
        try:
            for server in servers:
                server.start(wait=False)
            for server in servers:
                server.wait_ready()
            _wait_until(self._check_settled, timeout, f"{self!r} to settle")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every process and delete their temp directories."""
        _close_all([*self.sentinel_servers, self.replica, self.primary])

    def _check_settled(self) -> None:
        """The replica is in sync; every sentinel is connected to everything it must know."""
        status = self.replica.info("replication").get("master_link_status")
        if status != "up":
            raise _NotReady(f"{self.replica!r} has master_link_status:{status}")
        for sentinel in self.sentinel_servers:
            with sentinel._admin_client() as client:
                primary = client.sentinel_master(self.service_name)
                replicas = client.sentinel_slaves(self.service_name)
                peers = client.sentinel_sentinels(self.service_name)
            connected = [s for s in [primary, *replicas, *peers] if _is_connected(s)]
            seen = {(s["ip"], s["port"]) for s in connected}
            expected = {self.primary.address, self.replica.address} | {
                peer.address for peer in self.sentinel_servers if peer is not sentinel
            }
            if seen != expected or primary not in connected:
                raise _NotReady(f"{sentinel!r} is connected to {seen}, not {expected}")
            if any(replica["master-link-status"] != "ok" for replica in replicas):
                raise _NotReady(f"{sentinel!r} has not seen the replica in sync yet")

    def _live_sentinels(self) -> list[SentinelServer]:
        """Sentinels that can answer: running and not frozen."""
        return [s for s in self.sentinel_servers if s.is_running and not s.is_frozen]

    def current_primary_address(self) -> tuple[str, int]:
        """``(host, port)`` of the primary according to the first sentinel that answers."""
        for sentinel in self._live_sentinels():
            try:
                with sentinel._admin_client() as client:
                    host, port = client.sentinel_get_master_addr_by_name(self.service_name)
            except redis.RedisError:
                continue
            return (host, int(port))
        raise RedisServerError(f"no sentinel of {self!r} answers")

    def wait_for_failover(self, timeout: float = 30.0) -> RedisServer:
        """After the primary died, wait until the replica took over; return the new primary.

        Done when every live sentinel reports the replica's address and the replica reports
        ``role:master``. :attr:`primary` and :attr:`replica` are then swapped.
        """
        new_primary = self.replica

        def promoted() -> None:
            for sentinel in self._live_sentinels():
                with sentinel._admin_client() as client:
                    host, port = client.sentinel_get_master_addr_by_name(self.service_name)
                if (host, int(port)) != new_primary.address:
                    raise _NotReady(f"{sentinel!r} still reports {host}:{port}")
            role = new_primary.info("replication")["role"]
            if role != "master":
                raise _NotReady(f"{new_primary!r} reports role:{role}")

        _wait_until(promoted, timeout, f"sentinel failover to {new_primary!r}")
        self.primary, self.replica = new_primary, self.primary
        return new_primary

    def commandstats(self) -> dict[str, int]:
        """:meth:`RedisServer.commandstats` of the current primary (as sentinels report it)."""
        address = self.current_primary_address()
        for server in (self.primary, self.replica):
            if server.address == address:
                return server.commandstats()
        raise RedisServerError(f"{address} is not a server of {self!r}")


def _is_connected(state: dict[str, Any]) -> bool:
    """A ``SENTINEL MASTER/REPLICAS/SENTINELS`` entry whose link is up and not deemed down."""
    return not (state["is_disconnected"] or state["is_sdown"] or state["is_odown"])
