"""One fast, fault-tolerant Redis caching layer for Django."""

__version__ = "0.1.0.dev0"
