"""InfluxDB 2.x: the outbox over the ledger, line protocol, the writer, shipping."""
