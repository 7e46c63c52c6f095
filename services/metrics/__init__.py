"""Metrics: statistics, the governorate report and the award leaderboard, from rollups."""
