"""Projector runtime and read views (built on the event spine; see DESIGN.md, Projections)."""
