"""The SQLite ledger: the connection, its migrations, the writer lock, streams and events."""
