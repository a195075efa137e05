"""Which exceptions are Redis failures, and which of them mean an outage.

Redis down, slow past the command timeout, or answering with an error is
normal life: ``execution`` turns these failures into cache behaviour (a read
becomes a miss, a write reports False); only strict mode
(``OPTIONS["STRICT"] = True``) raises ``CacheUnavailable``.
"""

from __future__ import annotations

from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    MasterDownError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    TryAgainError,
)
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from redis.exceptions import (
    TimeoutError as RedisTimeoutError,
)

from .resend import ReplyLost

# OSError covers socket errors raised before redis-py wraps them;
# RedisClusterException is not a RedisError ("cannot be connected", no targets).
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, RedisClusterException, OSError)

# Failures that mean "Redis is not reachable right now" (they trip the circuit);
# any other error reply means Redis answered, just not with what we wanted.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    ClusterDownError,
    TryAgainError,
    MasterDownError,
    ReadOnlyError,
    RedisClusterException,
    ReplyLost,
    OSError,
)

# On a Cluster these concern one node, whose slots redis-py re-routed (see ``Executor.fail``).
CLUSTER_NODE_ERRORS: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError)
