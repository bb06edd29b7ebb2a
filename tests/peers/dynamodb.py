"""The dynamodb backend's factories for the contract suites (none registered yet)."""
