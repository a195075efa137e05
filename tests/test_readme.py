"""The README's examples run: every block marked ``<!-- readme-test -->``.

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

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"<!-- readme-test -->\n```python\n(.*?)\n```", re.S)


def blocks() -> list[str]:
    found = BLOCK.findall(README.read_text(encoding="utf-8"))
    assert len(found) >= 10, "the README lost its tested examples"
    return found


@pytest.fixture
def readme_cache(settings: Any, redis_server: Any) -> Any:
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
@pytest.mark.parametrize("index", range(len(BLOCK.findall(README.read_text("utf-8")))))
def test_readme_example_runs(readme_cache: Any, index: int) -> None:
    source = blocks()[index]
    code = compile(source, f"README.md example {index}", "exec", ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    ns = namespace(readme_cache)
    # An example that no longer matches the code raises here.
    result = eval(code, ns)
    if inspect.iscoroutine(result):
        asyncio.run(result)
