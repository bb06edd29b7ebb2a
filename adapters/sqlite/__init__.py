"""SQLite, the embedded default: the event spine (group commit, WAL), the view store, and the file settings they share."""
