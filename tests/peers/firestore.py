"""The firestore backend's factories for the contract suites (none registered yet)."""
