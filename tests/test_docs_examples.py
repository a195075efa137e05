"""The documentation's examples run: every block marked ``<!-- readme-test -->`` in README.md
and in the site's pages (docs/*.md).

Each runs on a real redis-server, in a namespace holding the stand-ins the
prose assumes (a campaign dict, a user, ...). Top-level ``await`` is allowed.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.cache import caches

ROOT = Path(__file__).resolve().parent.parent
MARKER = "<!-- readme-test -->"
BLOCK = re.compile(re.escape(MARKER) + r"\n```python\n(.*?)\n```", re.S)
# Examples executed when the user guide moved from the README to docs/ (16) plus the
# README's minimal CACHES: fewer means an example was lost or its marker broken.
MIN_EXAMPLES = 17
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def pages() -> list[Path]:
    """README.md, then the site's pages in name order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]


def examples() -> list[tuple[str, int, str]]:
    """(file relative to the repository, index in that file, source) of each marked block."""
    found = []
    for page in pages():
        for index, source in enumerate(BLOCK.findall(page.read_text(encoding="utf-8"))):
            found.append((page.relative_to(ROOT).as_posix(), index, source))
    return found


EXAMPLES = examples()


def test_no_example_was_lost() -> None:
    assert len(EXAMPLES) >= MIN_EXAMPLES, "the documentation lost tested examples"
    for page in pages():
        text = page.read_text(encoding="utf-8")
        # A marker not directly followed by a python block would be skipped silently.
        assert text.count(MARKER) == len(BLOCK.findall(text)), f"{page}: a marker without a block"


def test_readme_links_every_page() -> None:
    """The README is the landing page: it links each page of the guide, and its links resolve."""
    readme = ROOT / "README.md"
    targets = set(LINK.findall(readme.read_text(encoding="utf-8")))
    local = {t for t in targets if "://" not in t}
    for target in local:
        assert (ROOT / target).exists(), f"README.md links {target}, which does not exist"
    for page in sorted((ROOT / "docs").glob("*.md")):
        if page.name != "index.md":
            assert f"docs/{page.name}" in local, f"README.md does not link docs/{page.name}"


@pytest.fixture
def docs_cache(settings: Any, redis_server: Any) -> Any:
    settings.CACHES = {
        "default": {
            "BACKEND": "django_creator_cache.backend.RedisCache",
            "LOCATION": redis_server.url,
            "KEY_PREFIX": "creators",
            "OPTIONS": {"INVALIDATION_PREFIXES": ["campaigns", "dashboard", "lists"]},
        }
    }
    cache = caches["default"]
    cache.clear()
    yield cache
    cache.clear()


def namespace(cache: Any) -> dict[str, Any]:
    return {
        "cache": cache,
        "campaign_dict": {"id": 42, "name": "Spring launch"},
        "rows": [1, 2, 3],
        "page": "<html>dashboard</html>",
        "fn": lambda: "computed",
        "load_campaigns": lambda: ["c1", "c2"],
        "promoter_id": 7,
        "campaign_id": 42,
        "user": SimpleNamespace(pk=7),
        "day": date(2024, 1, 15),
        "Decimal": Decimal,
        "data": {"name": "ann"},
        "token": "tok-123",
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("page", "index", "source"), EXAMPLES, ids=[f"{p}-{i}" for p, i, _ in EXAMPLES]
)
def test_example_runs(docs_cache: Any, page: str, index: int, source: str) -> None:
    code = compile(source, f"{page} example {index}", "exec", ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    ns = namespace(docs_cache)
    # An example that no longer matches the code raises here.
    result = eval(code, ns)
    if inspect.iscoroutine(result):
        asyncio.run(result)
