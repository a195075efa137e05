"""Invalidation by prefix and by tag, without scanning the keyspace."""
