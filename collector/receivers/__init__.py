"""Endpoints instrumented applications send their calls to, instead of writing trace lines."""
