"""One package per backend (`memory`, `sqlite`, `dynamodb`, `firestore`, `cosmos`, `redis`), each
implementing the ports it serves (event spine, view store, notifier); beside them what they
share: the group-commit tail, decoded reads, the in-process notifier, JWT tokens and the secret
resolver. SDKs are imported here and nowhere closer to the domain."""
