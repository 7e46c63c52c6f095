"""A realistic, deterministic Ad Dakhiliyah dataset (2023-2024) and its loader."""
