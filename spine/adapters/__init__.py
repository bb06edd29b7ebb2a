"""One module per backend and port. SDKs are imported here and nowhere closer to the domain."""
