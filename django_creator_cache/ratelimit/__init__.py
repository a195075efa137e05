"""Rate limiting on Redis: one atomic round trip per check, exact across processes.

``rate_limited`` for views; ``Limiter``/``hit`` for counters without a request (e.g. per
platform and user). Settings: ``RATELIMIT_*`` (see ``config``).
"""

from ..exceptions import Ratelimited
from .client_ip import client_ip, ip_group
from .core import ALGORITHMS, Limiter, Usage, hit
from .decorator import RatelimitState, rate_limited
from .rates import Rate, parse_rate

__all__ = [
    "ALGORITHMS",
    "Limiter",
    "Rate",
    "RatelimitState",
    "Ratelimited",
    "Usage",
    "client_ip",
    "hit",
    "ip_group",
    "parse_rate",
    "rate_limited",
]
