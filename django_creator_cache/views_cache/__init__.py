"""Whole-response caching for views: ``cache_response``."""

from .decorator import cache_response

__all__ = ["cache_response"]
