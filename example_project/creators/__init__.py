"""Campaigns of the creator promotion platform."""
