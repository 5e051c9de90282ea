"""Reading trace files: tailing across rotation, parsing, pricing, content policy, quarantine."""
