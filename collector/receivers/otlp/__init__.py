"""OpenTelemetry (OTLP/HTTP) traces: spans that are model calls become ``llm_call`` events."""
