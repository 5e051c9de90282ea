"""The `llm-collector` command line."""
