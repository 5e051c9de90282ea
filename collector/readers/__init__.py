"""The ledger read for alerting and reports, through their read interfaces."""
