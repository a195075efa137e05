#!/usr/bin/env python
"""Requests per second of the example project's pages: cache bypassed against a cache hit.

Pages: the dashboard (``/``: four aggregate queries over the demo data, then a
template) and the campaign list (``/campaigns/``: an annotated, paginated query,
then a template), both decorated with ``cache_response``.

How the cache is bypassed: the project honours the request header
``X-Cache-Bypass: 1`` when ``EXAMPLE_ALLOW_CACHE_BYPASS=1`` is set (set here, off
by default). Then the pages' ``key_func`` returns None, so ``cache_response``
neither reads nor writes (``X-Cache: SKIP``), and the dashboard also skips its
data cache (``dashboard:stats``): every bypassed request runs the ORM queries and
renders the template, through the same URL, middleware and decorators as a hit.
Each measured response is checked: status 200 and ``X-Cache`` SKIP or HIT.

Two parts, in the same run, on one real redis-server started by the script
(free port on 127.0.0.1, temp dir, no persistence) and a SQLite database in a
temp dir, migrated and filled by ``load_demo_data``:

1. in process, one client: Django's full WSGI handler (``WSGIHandler`` called
   with a WSGI environ, as a server would); bypass and hit alternate in
   time slices (order rotated), ratios per round, median over rounds. Pinned
   with redis-server to one CPU by default, as the other benchmarks.
2. over HTTP: gunicorn (``example_project.wsgi``, 127.0.0.1, a free port,
   ``--workers 2``, gthread worker with 2 threads each so keep-alive works),
   started and stopped by PID by this script; ``--clients`` (4) client
   processes each doing GETs on one ``http.client`` keep-alive connection for
   ``--seconds`` per phase; bypass and hit phases alternate (order rotated).
   Not pinned: everything (clients, gunicorn, redis-server) shares the machine's
   CPUs, so this measures the whole box.

Run from the repository root::

    python benchmarks/example_bench.py [--rounds 5] [--slice-seconds 0.5]
        [--http-rounds 3] [--seconds 4] [--clients 4] [--workers 2] [--slices 4]
        [--no-pin] [--cpu N] [--json out.json]
"""

from __future__ import annotations

import http.client
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import harness
from benchmarks.harness import REPO, Response

PAGES = {"dashboard": "/", "campaign list": "/campaigns/"}
MODES = ("bypass", "hit")
EXPECTED = {"bypass": "SKIP", "hit": "HIT"}
HOST = "127.0.0.1"
BYPASS_HEADER = "X-Cache-Bypass"


# -- setup --------------------------------------------------------------------------------------


def project_env(db: Path, redis_url: str) -> dict[str, str]:
    """The example project's environment: the real server, bypass allowed, DEBUG off."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "CACHE_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="example_project.settings",
        EXAMPLE_PROJECT_DB=str(db),
        REDIS_URL=redis_url,
        EXAMPLE_ALLOW_CACHE_BYPASS="1",
        DJANGO_DEBUG="0",  # DEBUG would record every query in memory
        PYTHONPATH=str(REPO),
        # No background statistics flushes: Redis command counts are the requests' own.
        CACHE_STATS_FLUSH_INTERVAL="0",
    )
    return env


def prepare_database(env: dict[str, str]) -> None:
    for args in (["migrate", "--noinput", "-v", "0"], ["load_demo_data"]):
        subprocess.run(
            [sys.executable, "manage.py", *args], cwd=REPO, env=env, check=True, timeout=300
        )


# -- part 1: in process -------------------------------------------------------------------------


def requester(path: str, bypass: bool) -> Callable[[], Response]:
    """One GET of ``path`` through Django's WSGI handler, bypassing the cache if asked."""
    extra = {"HTTP_HOST": HOST}
    if bypass:
        extra["HTTP_X_CACHE_BYPASS"] = "1"
    return harness.wsgi_requester(path, HOST, extra)


def check(response: Response, mode: str, what: str) -> None:
    status, headers, body = response
    if status != "200 OK" or headers.get("X-Cache") != EXPECTED[mode] or not body:
        raise SystemExit(f"{what}: {status}, X-Cache {headers.get('X-Cache')!r}")


def run_slice(get: Callable[[], Response], seconds: float) -> tuple[int, float]:
    """Requests for about ``seconds`` (at least one); (requests, elapsed)."""
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        get()
        count += 1
        now = time.perf_counter()
        if now >= deadline:
            return count, now - start


def commands_per_request(server: Any, get: Callable[[], Response], n: int) -> float:
    return sum(harness.commands_during(server, lambda: harness.run_cell(get, n)).values()) / n


def in_process(args: Any, server: Any) -> dict[str, Any]:
    import django

    django.setup()
    gets = {
        (page, mode): requester(path, mode == "bypass")
        for page, path in PAGES.items()
        for mode in MODES
    }
    for (page, mode), get in gets.items():
        first = get()
        if mode == "hit" and first[1].get("X-Cache") not in {"MISS", "HIT"}:
            raise SystemExit(f"{page}: the first request was {first[1].get('X-Cache')}")
        check(get(), mode, f"{page}, {mode}")
    commands = {
        f"{page}, {mode}": commands_per_request(server, gets[page, mode], 20)
        for page in PAGES
        for mode in MODES
    }
    render_ms = {}
    for page in PAGES:  # warm-up
        for mode in MODES:
            run_slice(gets[page, mode], args.slice_seconds)

    def run(page: str, mode: str) -> tuple[int, float]:
        count, elapsed = run_slice(gets[page, mode], args.slice_seconds)
        check(gets[page, mode](), mode, f"{page}, {mode}")
        return count, elapsed

    results = harness.interleaved(
        PAGES,
        lambda page: MODES,
        run,
        rounds=args.rounds,
        slices=args.slices,
        label="in process: ",
    )
    for page in PAGES:
        render_ms[page] = 1000 / statistics.median(results[page]["bypass"])
    return {"req_per_s": results, "redis_commands_per_request": commands, "bypass_ms": render_ms}


# -- part 2: gunicorn and client processes ------------------------------------------------------


def start_gunicorn(
    env: dict[str, str], port: int, workers: int, log: Path
) -> subprocess.Popen[Any]:
    argv = [
        sys.executable, "-m", "gunicorn", "example_project.wsgi:application",
        "--bind", f"{HOST}:{port}", "--workers", str(workers),
        "--worker-class", "gthread", "--threads", "2", "--keep-alive", "30",
        "--log-level", "warning", "--error-logfile", str(log),
    ]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=REPO, env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited with {proc.returncode}:\n{log.read_text()}")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=30)
            conn.request("GET", "/campaigns/")
            conn.getresponse().read()
            conn.close()
            return proc
        except OSError:
            time.sleep(0.1)
    stop_gunicorn(proc)
    raise SystemExit("gunicorn did not answer within 60 s")


def stop_gunicorn(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM to the master (by PID): it stops its workers gracefully; SIGKILL if stuck."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def client(port: int, path: str, mode: str, seconds: float, start: Any, out: Any) -> None:
    """One client process: GETs on one keep-alive connection until ``seconds`` are up."""
    headers = {"Host": HOST}
    if mode == "bypass":
        headers[BYPASS_HEADER] = "1"
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    count = errors = 0
    start.wait()
    began = time.perf_counter()
    deadline = began + seconds
    while time.perf_counter() < deadline:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200 or response.getheader("X-Cache") != EXPECTED[mode] or not body:
            errors += 1
        count += 1
    elapsed = time.perf_counter() - began
    conn.close()
    out.put((count, errors, elapsed))


def http_phase(port: int, path: str, mode: str, clients: int, seconds: float) -> tuple[float, int]:
    """(requests per second over all clients, errors) of one phase."""
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=client, args=(port, path, mode, seconds, start, out))
        for _ in range(clients)
    ]
    for proc in procs:
        proc.start()
    time.sleep(0.2)  # all connected and waiting
    start.set()
    results = [out.get(timeout=seconds + 120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
        if proc.exitcode != 0:
            raise SystemExit(f"a client process exited with {proc.exitcode}")
    total = sum(r[0] for r in results)
    return total / max(r[2] for r in results), sum(r[1] for r in results)


def over_http(args: Any, env: dict[str, str], tmp: Path) -> dict[str, Any]:
    port = harness.free_port()
    log = tmp / "gunicorn.log"
    proc = start_gunicorn(env, port, args.workers, log)
    results: dict[str, dict[str, list[float]]] = {p: {m: [] for m in MODES} for p in PAGES}
    errors = 0
    try:
        for path in PAGES.values():  # fill and warm both workers
            for mode in MODES:
                http_phase(port, path, mode, args.clients, 0.5)
        for round_no in range(args.http_rounds):
            for page, path in PAGES.items():
                for mode in harness.rotated(MODES, round_no):
                    rate, failed = http_phase(port, path, mode, args.clients, args.seconds)
                    results[page][mode].append(rate)
                    errors += failed
            harness.progress(f"gunicorn: round {round_no + 1}/{args.http_rounds} done")
    finally:
        stop_gunicorn(proc)
    if errors:
        raise SystemExit(
            f"{errors} responses were not 200 with the expected X-Cache:\n{log.read_text()}"
        )
    return {"req_per_s": results, "gunicorn_pid": proc.pid}


# -- report -------------------------------------------------------------------------------------


def table(results: dict[str, dict[str, list[float]]]) -> str:
    rows = [
        [
            page,
            harness.fmt_ops(statistics.median(per_mode["bypass"])),
            harness.fmt_ops(statistics.median(per_mode["hit"])),
            harness.fmt_ratio(harness.median_ratio(per_mode["hit"], per_mode["bypass"]), 1),
        ]
        for page, per_mode in results.items()
    ]
    header = ["page", "cache bypassed req/s", "cache hit req/s", "hit / bypassed"]
    return harness.markdown_table(header, rows, "lrrr")


def parse_args(argv: list[str] | None = None) -> Any:
    parser = harness.arguments(__doc__, rounds=5)
    parser.add_argument("--slices", type=int, default=4, help="slices per mode and round (4)")
    parser.add_argument("--slice-seconds", type=float, default=0.5, help="seconds a slice (0.5)")
    parser.add_argument("--http-rounds", type=int, default=3, help="gunicorn rounds (default 3)")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds a phase (4)")
    parser.add_argument("--clients", type=int, default=4, help="client processes (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    return harness.parse(parser, argv, ("http_rounds", "clients", "workers"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    all_cpus = os.sched_getaffinity(0)
    cpu = harness.chosen_cpu(args)
    with (
        harness.redis_server(cpu) as server,
        tempfile.TemporaryDirectory(prefix="example-bench-") as tmp,
    ):
        env = project_env(Path(tmp) / "db.sqlite3", server.url)
        prepare_database(env)
        client_ = server.client()
        client_.flushdb()  # what load_demo_data's invalidation left
        client_.close()
        os.environ.update(env)
        harness.pin(cpu)  # after the migrations: they run in subprocesses
        print("# example project benchmark", flush=True)
        started = time.perf_counter()
        part1 = in_process(args, server)
        os.sched_setaffinity(0, all_cpus)  # gunicorn and the clients get every CPU
        part2 = over_http(args, env, Path(tmp))
        duration = time.perf_counter() - started
        meta = harness.versions(("Django", "redis-py", "gunicorn"), harness.server_version(server))

    print()
    print("In process, one client (Django's WSGI handler, no network):")
    print()
    print(table(part1["req_per_s"]))
    print()
    print(
        f"Over HTTP: gunicorn, {args.workers} workers (gthread, 2 threads each), "
        f"{args.clients} client processes with keep-alive:"
    )
    print()
    print(table(part2["req_per_s"]))
    print()
    print("Platforms like this report ~16x on dashboards; we aim higher.")
    print()
    commands = part1["redis_commands_per_request"]
    print(
        "Redis commands per request: "
        + ", ".join(f"{name} {calls:g}" for name, calls in commands.items())
        + "."
    )
    print(
        "Bypassed: X-Cache-Bypass: 1 with EXAMPLE_ALLOW_CACHE_BYPASS=1, so cache_response's "
        "key_func returns None (X-Cache: SKIP: no read, no write) and the dashboard skips "
        "its data cache: every request runs the queries and renders. Hit: X-Cache: HIT, "
        "one GET. Same URLs, middleware and decorators; SQLite database filled by "
        "load_demo_data."
    )
    return harness.finish(
        args,
        meta,
        {"pinned_cpu": cpu, "in_process": part1, "http": part2},
        pinned=f"{f'part 1 and redis-server on CPU {cpu}' if cpu is not None else 'no'}; "
        f"part 2 unpinned on {len(all_cpus)} CPUs shared by clients, gunicorn and redis-server.",
        method=f"part 1 {args.rounds} rounds x {args.slices} slices of {args.slice_seconds} s "
        f"per mode (alternating); part 2 {args.http_rounds} rounds of {args.seconds} s phases "
        "(alternating); ratios per round, medians over rounds.",
        ran=duration,
    )


if __name__ == "__main__":
    sys.exit(main())
