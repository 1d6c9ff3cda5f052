"""MLtraq databases (design §10): safe decoding, read-only SQLite access, and the experiments they hold."""
