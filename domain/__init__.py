"""The pure core: events, partitions, identity, errors, append rules and ports. No I/O here."""
