"""Scheduled summaries over the tiers (filled in by the reports issue)."""
