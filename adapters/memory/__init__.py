"""In-memory event spine and view store: tests and explicit lab use only."""
