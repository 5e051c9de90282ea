"""Pydantic models shared by every part of llm-collector; imports nothing else of ours."""
