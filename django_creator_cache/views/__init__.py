"""The app's views, a module per job.

* ``health``: the anonymous health endpoint for load balancers (``urls.py``).
* ``admin``: the staff-only stats page and its actions (``admin.CacheAliasAdmin``).
* ``actions``: the admin actions and their forms; ``charts``: the stats chart's geometry.
"""
