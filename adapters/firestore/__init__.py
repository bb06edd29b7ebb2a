"""Firestore (AsyncClient): the event spine (commit documents in transactions), its reads, and the view store."""
