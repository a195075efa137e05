"""The package's structure, held by tests: no import circle, the backend imports no
feature, features use no private member of the backend, and no module outgrows its job.

Imports are read from the source (``ast``), ``TYPE_CHECKING`` ones included: a circle
that only type checkers follow is still a circle for a reader.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "django_creator_cache"
NAME = PACKAGE.name
# The floors below the backend: what it may import outside itself.
FOUNDATION = {"exceptions", "keys", "ttl", "conf", "durations", "embedded", "env", "redis_urls"}
LONGEST = 500


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join([*base, node.module] if node.module else base)
                else:
                    target = node.module or ""
                named = {f"{target}.{alias.name}" for alias in node.names}
                hits = named & modules.keys()
                edges[name] |= hits or ({target} & modules.keys())
            elif isinstance(node, ast.Import):
                edges[name] |= {alias.name for alias in node.names} & modules.keys()
    return edges


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    return found


def test_no_import_circle() -> None:
    assert _circles(_imports(_modules())) == []


def test_the_backend_imports_no_feature() -> None:
    edges = _imports(_modules())
    backend = f"{NAME}.backend"
    allowed = {f"{NAME}.{module}" for module in FOUNDATION} | {NAME}
    for module, targets in edges.items():
        if module == backend or module.startswith(backend + "."):
            outside = {t for t in targets if not t.startswith(backend)} - allowed
            assert outside == set(), f"{module} imports features: {sorted(outside)}"


def test_no_feature_uses_a_private_member_of_the_backend() -> None:
    # ``cache._x`` / ``backend._x`` on an object that is the backend.
    private = re.compile(r"\b(?:cache|backend|self\.cache|self\._cache)\._(?!_)[a-z]\w*")
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "backend" in path.relative_to(PACKAGE).parts:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if private.search(line):
                offenders.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert offenders == []


def test_no_module_outgrows_its_job() -> None:
    sizes = {
        str(path.relative_to(PACKAGE)): len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    assert {name: n for name, n in sizes.items() if n > LONGEST} == {}
