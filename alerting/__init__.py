"""Alert rules, their lifecycle and notification routing (filled in by the alerting issue)."""
