"""The composition root: HTTP app, settings, error mapping, SSE and the `spine` CLI."""
