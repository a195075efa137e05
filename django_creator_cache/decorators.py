"""The view and function decorators, thin over their cores.

``cached`` (``cache_aside``), ``rate_limited`` (``ratelimit``).
"""

from .cache_aside import cached
from .ratelimit import rate_limited

__all__ = ["cached", "rate_limited"]
