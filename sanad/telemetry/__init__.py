"""Logging, Prometheus metrics and request ids shared by every process."""
