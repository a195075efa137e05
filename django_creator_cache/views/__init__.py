"""The app's views, a module per job.

* ``health``: the anonymous health endpoint for load balancers (``urls.py``).
* ``metrics``: ``metrics_view``, the Prometheus exposition of ``CACHE_METRICS`` (route it).
* ``admin``: the staff-only stats page and its actions (``admin.CacheAliasAdmin``).
* ``actions``: the admin actions and their forms; ``charts``: the stats chart's geometry.
"""
