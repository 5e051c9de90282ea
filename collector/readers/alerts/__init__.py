"""The alert engine's reader: windows over raw events and tiers, kept incrementally."""
