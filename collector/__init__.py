"""The collector: tail -> parse -> ledger, and the daemon and CLI that wire everything."""
