"""Thin controllers: one per resource; they hand a command to the core and shape the answer."""
