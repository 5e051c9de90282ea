"""Where the ledger's rows are sent."""
