"""``manage.py cache_stats``: statistics, health and server facts of each cache alias.

A table per alias (``--json`` for machines). Server facts (keys, memory,
version) are only asked for when the alias's health check passes, so an
outage costs one bounded health check. Locations never carry passwords.
"""

from __future__ import annotations

import json
from typing import Any

from ... import health
from ..aliases import AliasCommand


def _bytes(value: Any) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(value)  # pragma: no cover - the loop always returns


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The lines of one alias's table, in reading order."""
    latency = report["latency_ms"]
    table = [
        ("mode", report["mode"]),
        ("location", report["location"]),
        ("healthy", _value(report["healthy"])),
        ("latency", "-" if latency is None else f"{latency:.2f} ms"),
        ("circuit", report["circuit"]),
        ("hits", _value(report["hits"])),
        ("misses", _value(report["misses"])),
        ("hit rate", f"{report['hit_rate'] * 100:.1f} %"),
        ("sets", _value(report["sets"])),
        ("deletes", _value(report["deletes"])),
        ("errors", _value(report["errors"])),
        ("counts", "site-wide" if report["site_wide"] else "this process only"),
    ]
    if report["available"]:
        table += [
            ("keys", _value(report["keys"])),
            ("memory used", _bytes(report["used_memory"])),
            ("memory peak", _bytes(report["used_memory_peak"])),
            ("evictions", _value(report["evicted_keys"])),
            ("redis version", _value(report["redis_version"])),
            ("uptime", f"{report['uptime_seconds']:,} s"),
        ]
        if report["mode"] == "cluster":
            table += [("primary", node["address"]) for node in report["nodes"]]
    error = report["health_error"] or report.get("server_error")
    if error:
        table.append(("error", str(error)))
    return table


class Command(AliasCommand):
    help = "Show hits, misses, hit rate, errors, keys, memory and health of each cache alias."

    def handle(self, *args: Any, **options: Any) -> None:
        found = self.aliases(options)
        reports = {alias: health.report(cache) for alias, cache in found}
        if options["json"]:
            self.stdout.write(json.dumps(reports, indent=2, sort_keys=True, default=str))
            return
        for number, (alias, report) in enumerate(reports.items()):
            if number:
                self.stdout.write("")
            table = rows(report)
            width = max(len(label) for label, _ in table)
            state = (
                self.style.SUCCESS("healthy")
                if report["healthy"]
                else self.style.ERROR("UNHEALTHY")
            )
            self.stdout.write(self.style.MIGRATE_HEADING(f"cache {alias!r}") + f"  {state}")
            for label, value in table:
                self.stdout.write(f"  {label:<{width}}  {value}")
