"""The example project: a small creator promotion platform on django-creator-cache."""
