"""Use cases: read-decide-append units (budget, saves, analytics, audit, control plane, moving a
log, exporting and importing a tenant), each deciding against the aggregate's stream, not a
lagging view."""
