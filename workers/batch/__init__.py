"""Batch worker: validates batch submissions against the registry, stores them, answers each."""
