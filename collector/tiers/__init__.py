"""Rollup tiers: rolling raw events into 1h, 1d and 1mo windows, retention, summaries."""
