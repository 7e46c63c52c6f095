"""Ingest worker: stores submitted transactions and applies their status changes."""
