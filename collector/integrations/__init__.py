"""Recording the calls of LLM frameworks, each behind an optional extra
(``pip install 'llm-metrics-collector[langchain]'``)."""
