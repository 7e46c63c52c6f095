"""Intake: accepts transactions, publishes them durably, and tracks them."""
