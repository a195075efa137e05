"""A small app for the model-invalidation and response-cache tests: campaigns and promoters."""
