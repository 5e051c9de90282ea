"""`llm-collector run`: the daemon, its scheduled jobs, /healthz and /metrics."""
