"""The view and function decorators, thin over their cores.

``cache_response`` (``views_cache``), ``cached`` (``cache_aside``),
``rate_limited`` (``ratelimit``).
"""

from .cache_aside import cached
from .ratelimit import rate_limited
from .views_cache import cache_response

__all__ = ["cache_response", "cached", "rate_limited"]
